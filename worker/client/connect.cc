#include "worker/client/connect.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/host_port.h"

namespace ps {
namespace {

bool Contains(absl::string_view message, std::initializer_list<absl::string_view> needles) {
  const std::string lower = absl::AsciiStrToLower(message);
  for (absl::string_view n : needles) {
    if (absl::StrContains(lower, absl::AsciiStrToLower(n))) return true;
  }
  return false;
}

constexpr std::initializer_list<absl::string_view> kNotGrpc = {
    "http1.x server", "HTTP/1", "Failed parsing HTTP/2"};

}  // namespace

bool MayBeStarting(const absl::Status& s) {
  if (Contains(s.message(), kNotGrpc)) return false;  // another kind of server answers
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

std::string ExplainUnreachable(absl::string_view address, const absl::Status& s) {
  const std::string host(HostOf(address));
  const size_t colon = address.rfind(':');
  const std::string port(colon == absl::string_view::npos ? "" : address.substr(colon + 1));
  const absl::string_view m = s.message();
  if (Contains(m, {"DNS resolution failed", "name resolution", "Domain name not found",
                   "Name or service not known", "Could not resolve"})) {
    return absl::StrCat("DNS: the name ", host,
                        " does not resolve; check the host name in --servers (or the DNS "
                        "of this machine)");
  }
  if (Contains(m, {"Connection refused"})) {
    return absl::StrCat("connection refused: nothing listens on port ", port, " of ", host,
                        "; is ps_server running there, and is ", port,
                        " its gRPC --port (not --metrics_port or --health_port)?");
  }
  if (Contains(m, kNotGrpc)) {
    return absl::StrCat("port ", port, " of ", host,
                        " speaks HTTP/1, not gRPC: probably the shard's --metrics_port; "
                        "give its --port");
  }
  if (Contains(m, {"ssl", "tls", "handshake", "certificate"})) {
    return absl::StrCat("TLS handshake with ", address, " failed (", m,
                        "): the shard and this worker disagree on TLS, or its certificate "
                        "is not signed by --tls_ca_file or not made for ", host,
                        " (--tls_server_name); see docs/security.md");
  }
  if (Contains(m, {"Socket closed", "Connection reset", "end of file", "GOAWAY"})) {
    return absl::StrCat(address,
                        " closed the connection: it may be serving TLS to a plaintext "
                        "client (give --tls_ca_file), or not be a ps_server");
  }
  if (Contains(m, {"No route to host", "Network is unreachable", "Host is unreachable"})) {
    return absl::StrCat("no route to ", host, ": the network or a firewall keeps it out of reach");
  }
  if (s.code() == absl::StatusCode::kDeadlineExceeded || Contains(m, {"timed out", "Timeout"})) {
    return absl::StrCat("no answer from ", address,
                        ": the host is down, or a firewall drops packets to port ", port);
  }
  if (s.code() == absl::StatusCode::kUnauthenticated) {
    return absl::StrCat(address, " requires a token this worker does not present or that it "
                        "does not know (", m, "): give --token_file or PS_TOKEN; see docs/security.md");
  }
  if (s.code() == absl::StatusCode::kPermissionDenied) {
    return absl::StrCat(address, " refused this worker's credential (", m, ")");
  }
  if (s.code() == absl::StatusCode::kUnimplemented) {
    return absl::StrCat(address, " is not a ps_server (", m, ")");
  }
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", m);
}

absl::Status CheckShardIdentity(const std::vector<std::string>& servers, int listed_as,
                                int shard_index, int num_shards) {
  const int listed = static_cast<int>(servers.size());
  const std::string address = servers[listed_as];
  if (num_shards != listed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--servers lists ", listed, listed == 1 ? " shard" : " shards", " (",
        absl::StrJoin(servers, ","), ") but ", address, " says the job has ", num_shards,
        ": give every worker the same --servers list as the shards, in shard order"));
  }
  if (shard_index != listed_as) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--servers lists ", address, " as shard ", listed_as, " but it is shard ", shard_index,
        " of ", num_shards, ": list the shards in shard order, as the shards' own --servers"));
  }
  return absl::OkStatus();
}

}  // namespace ps
