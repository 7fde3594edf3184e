#include "common/channel_credentials.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/client_interceptor.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ps {
namespace {

// Adds `authorization: Bearer <token>` to each call's initial metadata.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class TokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token)
      : header_(absl::StrCat("Bearer ", token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;  // outlives its interceptors: the channel owns the factory
};

// FileWatcherCertificateProvider counts whole seconds.
unsigned RefreshSeconds(absl::Duration d) {
  return static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(d)));
}

// OK for "" (not configured) or a file this process can read; else names it.
absl::Status Readable(const std::string& file) {
  if (file.empty() || std::ifstream(file).good()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("cannot read ", file));
}

}  // namespace

absl::StatusOr<std::string> LoadToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("PS_TOKEN");
    return env == nullptr ? std::string() : std::string(absl::StripAsciiWhitespace(env));
  }
  std::ifstream in(token_file);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", token_file));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(contents.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the token file ", token_file, " is empty"));
  }
  return token;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const ChannelCredentials& credentials,
                                          const grpc::ChannelArguments& args) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!credentials.token.empty()) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(credentials.token));
  }
  std::shared_ptr<grpc::ChannelCredentials> transport = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments channel_args = args;
  if (!credentials.tls_ca_file.empty()) {
    const unsigned refresh = RefreshSeconds(credentials.tls_refresh);
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
    grpc::experimental::TlsChannelCredentialsOptions options;
    if (!credentials.tls_cert_file.empty()) {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          credentials.tls_key_file, credentials.tls_cert_file, credentials.tls_ca_file, refresh);
      options.set_certificate_provider(provider);
      options.watch_identity_key_cert_pairs();
    } else {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          credentials.tls_ca_file, refresh);
      options.set_certificate_provider(provider);
    }
    options.watch_root_certs();
    transport = grpc::experimental::TlsCredentials(options);
    if (!credentials.tls_server_name.empty()) {
      channel_args.SetSslTargetNameOverride(credentials.tls_server_name);
    }
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, transport, channel_args,
                                                                 std::move(interceptors));
}

absl::Status CheckServerTls(const ServerTls& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both, or neither for plaintext");
  }
  for (const std::string* f : {&tls.cert_file, &tls.key_file, &tls.client_ca_file}) {
    if (absl::Status s = Readable(*f); !s.ok()) return s;
  }
  if (tls.client_certs != ServerTls::ClientCerts::kNone) {
    if (tls.cert_file.empty()) {
      return absl::InvalidArgumentError("client certificates need TLS: set --tls_cert_file");
    }
    if (tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "client certificates need the CA that signs them: set --tls_ca_file");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckChannelTls(const ChannelCredentials& c) {
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both, or neither");
  }
  if (!c.tls_cert_file.empty() && c.tls_ca_file.empty()) {
    return absl::InvalidArgumentError("a client certificate needs TLS: set --tls_ca_file");
  }
  for (const std::string* f : {&c.tls_ca_file, &c.tls_cert_file, &c.tls_key_file}) {
    if (absl::Status s = Readable(*f); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const ServerTls& tls) {
  if (tls.cert_file.empty()) return grpc::InsecureServerCredentials();
  const unsigned refresh = RefreshSeconds(tls.refresh);
  auto provider = tls.client_ca_file.empty()
                      ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, refresh)
                      : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            tls.key_file, tls.cert_file, tls.client_ca_file, refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!tls.client_ca_file.empty()) options.watch_root_certs();
  switch (tls.client_certs) {
    case ServerTls::ClientCerts::kNone:
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      break;
    case ServerTls::ClientCerts::kOptional:
      options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
    case ServerTls::ClientCerts::kRequire:
      options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::string Describe(const ServerTls& tls) {
  if (tls.cert_file.empty()) return "plaintext";
  switch (tls.client_certs) {
    case ServerTls::ClientCerts::kNone:
      return "TLS";
    case ServerTls::ClientCerts::kOptional:
      return "TLS, client certificates verified when given";
    case ServerTls::ClientCerts::kRequire:
      return "TLS, client certificates required";
  }
  return "TLS";
}

absl::StatusOr<ServerTls::ClientCerts> ParseClientCerts(const std::string& text) {
  if (text == "none") return ServerTls::ClientCerts::kNone;
  if (text == "optional") return ServerTls::ClientCerts::kOptional;
  if (text == "require") return ServerTls::ClientCerts::kRequire;
  return absl::InvalidArgumentError(
      absl::StrCat("--tls_client_certs=", text, " is not none, optional or require"));
}

}  // namespace ps
