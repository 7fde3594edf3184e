#include "common/host_port.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ps {

std::string JoinHostPort(absl::string_view host, int port) {
  const bool v6 = absl::StrContains(host, ':') && !absl::StartsWith(host, "[");
  return v6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

bool IsLoopbackHost(absl::string_view host) {
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "::1" || host == "[::1]";
}

absl::string_view HostOf(absl::string_view address) {
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    return close == absl::string_view::npos ? address : address.substr(1, close - 1);
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || address.find(':') != colon) return address;
  return address.substr(0, colon);
}

absl::Status CheckPlaintextTo(const std::vector<std::string>& addresses, bool tls, bool plaintext) {
  if (tls || plaintext) return absl::OkStatus();
  for (const std::string& a : addresses) {
    if (!IsLoopbackHost(HostOf(a))) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard ", a,
                       " is on another machine and this client has no TLS: give --tls_ca_file "
                       "(docs/security.md), or --plaintext to talk to it in the clear"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ps
