#include "server/ps_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ps {

PsServer::PsServer(const ServerOptions& options) : options_(options) {}

PsServer::~PsServer() {
  Shutdown();
  Wait();
}

std::string PsServer::address() const {
  return absl::StrCat(options_.host == "0.0.0.0" ? "127.0.0.1" : options_.host, ":", port_);
}

absl::StatusOr<std::unique_ptr<PsServer>> PsServer::Start(const ServerOptions& options) {
  if (options.num_shards < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_shards=", options.num_shards, " < 1"));
  }
  if (options.shard_index < 0 || options.shard_index >= options.num_shards) {
    return absl::InvalidArgumentError(absl::StrCat("shard_index=", options.shard_index,
                                                   " outside [0, ", options.num_shards, ")"));
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port=", options.port, " outside [0, 65535]"));
  }
  if (options.heartbeat_timeout <= options.heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_timeout=", absl::FormatDuration(options.heartbeat_timeout),
        " must exceed heartbeat_interval=", absl::FormatDuration(options.heartbeat_interval)));
  }
  std::unique_ptr<PsServer> s(new PsServer(options));
  s->registry_ = std::make_unique<WorkerRegistry>(options.heartbeat_timeout, [] { return absl::Now(); });
  StoreOptions store_options;
  store_options.shard_index = options.shard_index;
  store_options.num_shards = options.num_shards;
  store_options.max_request_bytes = options.max_request_bytes;
  s->store_ = std::make_unique<ParameterStore>(store_options, s->registry_.get());
  s->service_ = std::make_unique<ParameterServerService>(
      s->store_.get(), s->registry_.get(), options.heartbeat_interval, options.max_pull_wait);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &s->port_);
  // Room for the largest request plus framing.
  const int max_message = static_cast<int>(options.max_request_bytes + (1 << 20));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  s->expire_thread_ = std::thread([p = s.get()] { p->ExpireLoop(); });
  LOG(INFO) << "ps_server shard " << options.shard_index << "/" << options.num_shards
            << " serving on " << options.host << ":" << s->port_;
  return s;
}

void PsServer::ExpireLoop() {
  const absl::Duration period =
      std::max(absl::Milliseconds(20), std::min(absl::Milliseconds(200), options_.heartbeat_timeout / 10));
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    if (!registry_->ExpireStale().empty()) store_->OnMembershipChange();
  }
}

void PsServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    LOG(INFO) << "shard " << options_.shard_index << " shutting down";
    server_->GetHealthCheckService()->SetServingStatus(false);
    stop_.Notify();
    store_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (expire_thread_.joinable()) expire_thread_.join();
    stopped_.Notify();
  });
}

void PsServer::Wait() { stopped_.WaitForNotification(); }

}  // namespace ps
