#include "common/health_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/host_port.h"

namespace ps {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& host,
                                                                 int port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<HealthServer> s(new HealthServer());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(JoinHostPort(host, port), grpc::InsecureServerCredentials(), &s->port_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", JoinHostPort(host, port)));
  }
  s->SetServing(true);
  return s;
}

HealthServer::~HealthServer() {
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
}

void HealthServer::SetServing(bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(serving);
}

}  // namespace ps
