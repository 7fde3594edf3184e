// What a process presents when it calls a shard, and the channels that present it: TLS
// (the shards' CA, and optionally a client certificate for mTLS), and a bearer token
// (gRPC metadata `authorization: Bearer <token>`, docs/security.md) added to every call
// by a client interceptor, so no call site can forget it. Every channel to a shard
// (workers, psctl, shard to shard) comes from NewChannel. Certificate files are watched
// and read again when they change (Kubernetes rotates Secrets in place).
//
// Thread-safe: the channels are gRPC's; LoadToken reads the environment and a file.
#ifndef PS_COMMON_CHANNEL_CREDENTIALS_H_
#define PS_COMMON_CHANNEL_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {

struct ChannelCredentials {
  std::string token;  // empty: no authorization header
  // TLS: the CA bundle the shards' certificates must chain to. Empty: plaintext.
  std::string tls_ca_file;
  // mTLS: this process's certificate chain and key (both or neither).
  std::string tls_cert_file, tls_key_file;
  // The name the shard's certificate must carry, when not the address's host.
  std::string tls_server_name;
  // How often the files are looked at for changes.
  absl::Duration tls_refresh = absl::Seconds(60);
};

// The server side: a certificate chain and key, and the CA of client certificates.
struct ServerTls {
  std::string cert_file, key_file;  // both empty: plaintext
  std::string client_ca_file;       // verifies client certificates when they are asked for
  enum class ClientCerts { kNone, kOptional, kRequire } client_certs = ClientCerts::kNone;
  absl::Duration refresh = absl::Seconds(60);
};

// INVALID_ARGUMENT naming the problem (a missing or unreadable file, a key without a
// certificate, client certificates without a CA).
absl::Status CheckServerTls(const ServerTls& tls);
absl::Status CheckChannelTls(const ChannelCredentials& credentials);
// The listening credentials for `tls`: plaintext when it names no certificate.
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const ServerTls& tls);
// "plaintext", "TLS", "TLS, client certificates required", ... for log lines.
std::string Describe(const ServerTls& tls);
// Parses "none", "optional" or "require"; INVALID_ARGUMENT otherwise.
absl::StatusOr<ServerTls::ClientCerts> ParseClientCerts(const std::string& text);

// The token a client presents: the contents of `token_file` (surrounding whitespace
// removed) when it is set, else the environment's PS_TOKEN, else none. A file that cannot
// be read, or holds no token, is INVALID_ARGUMENT naming it.
absl::StatusOr<std::string> LoadToken(const std::string& token_file);

// A channel to `address` whose every call carries `credentials`.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const ChannelCredentials& credentials,
                                          const grpc::ChannelArguments& args = {});

}  // namespace ps

#endif  // PS_COMMON_CHANNEL_CREDENTIALS_H_
