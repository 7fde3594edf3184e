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

}  // namespace ps
