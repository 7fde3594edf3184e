#include "common/client_security_flags.h"

#include "absl/flags/flag.h"
#include "common/host_port.h"

ABSL_FLAG(bool, plaintext, false,
          "Talk to shards on other machines without TLS: chosen explicitly, for trusted "
          "networks (docs/security.md).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "TLS: the CA bundle the shards' certificates chain to; unset: plaintext.");
ABSL_FLAG(std::string, tls_cert_file, "", "mTLS: this client's certificate chain (PEM).");
ABSL_FLAG(std::string, tls_key_file, "", "mTLS: this client's private key (PEM).");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name the shards' certificates carry, when not the --servers host.");

namespace ps {

ChannelCredentials TlsCredentialsFromFlags() {
  ChannelCredentials c;
  c.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  c.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  c.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  c.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  return c;
}

absl::Status CheckClientSecurityFlags(const std::vector<std::string>& servers) {
  const ChannelCredentials c = TlsCredentialsFromFlags();
  if (absl::Status s = CheckChannelTls(c); !s.ok()) return s;
  return CheckPlaintextTo(servers, !c.tls_ca_file.empty(), absl::GetFlag(FLAGS_plaintext));
}

std::vector<std::string> ClientSecurityFlagNames() {
  return {"plaintext", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_server_name"};
}

}  // namespace ps
