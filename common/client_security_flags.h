// The flags every client of the shards (ps_worker, psctl) takes for TLS and plaintext:
// --tls_ca_file, --tls_cert_file, --tls_key_file, --tls_server_name and --plaintext
// (docs/security.md). Defined once here; each binary reads them through these functions.
#ifndef PS_COMMON_CLIENT_SECURITY_FLAGS_H_
#define PS_COMMON_CLIENT_SECURITY_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/channel_credentials.h"

namespace ps {

// The TLS fields of ChannelCredentials from the flags (the token is not among them).
ChannelCredentials TlsCredentialsFromFlags();
// INVALID_ARGUMENT when the flags' files do not go together or cannot be read
// (CheckChannelTls), or plaintext to a shard on another machine was not chosen
// (CheckPlaintextTo).
absl::Status CheckClientSecurityFlags(const std::vector<std::string>& servers);
// The flags' names, for SetFlagsFromEnv (PS_TLS_CA_FILE, ...).
std::vector<std::string> ClientSecurityFlagNames();

}  // namespace ps

#endif  // PS_COMMON_CLIENT_SECURITY_FLAGS_H_
