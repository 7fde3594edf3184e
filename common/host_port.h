// Listening and dialling addresses: "host:port", with an IPv6 literal in brackets
// ("[fd00::7]:50051"), as gRPC and the HTTP servers want them. A pod's address from
// the downward API (status.podIP) is a bare literal of either family.
//
// Thread-safe: pure functions.
#ifndef PS_COMMON_HOST_PORT_H_
#define PS_COMMON_HOST_PORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

// "h:p" for a name or IPv4 literal, "[h]:p" for an IPv6 literal (one already in
// brackets is kept as it is).
std::string JoinHostPort(absl::string_view host, int port);

// Whether `host` names this machine only: 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackHost(absl::string_view host);

// The host of "host:port" or "[v6]:port" (the text itself when it has no port).
absl::string_view HostOf(absl::string_view address);

// Plaintext "chosen explicitly" (docs/security.md): OK when `tls` is on, `plaintext`
// was asked for, or every address is this machine's; else INVALID_ARGUMENT naming the
// first address on another machine and what to give.
absl::Status CheckPlaintextTo(const std::vector<std::string>& addresses, bool tls, bool plaintext);

}  // namespace ps

#endif  // PS_COMMON_HOST_PORT_H_
