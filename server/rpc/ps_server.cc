#include "server/rpc/ps_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/metrics.h"

namespace ps {

PsServer::PsServer(const ServerOptions& options) : options_(options) {}

PsServer::~PsServer() {
  Shutdown();
  Wait();
}

std::string PsServer::address() const {
  return absl::StrCat(options_.host == "0.0.0.0" ? "127.0.0.1" : options_.host, ":", port_);
}

int PsServer::metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }

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
  if (!options.peers.empty() && static_cast<int>(options.peers.size()) != options.num_shards) {
    return absl::InvalidArgumentError(absl::StrCat("peers lists ", options.peers.size(),
                                                   " addresses but num_shards=", options.num_shards));
  }
  std::unique_ptr<PsServer> s(new PsServer(options));
  ShardOptions shard_options;
  shard_options.store.shard_index = options.shard_index;
  shard_options.store.num_shards = options.num_shards;
  shard_options.store.max_request_bytes = options.max_request_bytes;
  shard_options.store.max_sparse_keys = options.max_sparse_keys;
  shard_options.heartbeat_interval = options.heartbeat_interval;
  shard_options.heartbeat_timeout = options.heartbeat_timeout;
  shard_options.max_pull_wait = options.max_pull_wait;
  shard_options.same_host_windows = options.same_host_windows;
  s->shard_ = std::make_unique<Shard>(shard_options);
  Checkpointer* checkpointer = options.checkpointer;
  if (checkpointer == nullptr && !options.checkpoint.dir.empty()) {
    s->checkpoints_ = std::make_unique<CheckpointManager>(
        options.checkpoint, options.shard_index, options.num_shards, s->store(),
        s->registry());
    // Restore before listening: no call ever sees a half-restored shard, and the health
    // service cannot report SERVING before the shard holds its state.
    absl::StatusOr<std::string> restored = s->checkpoints_->RestoreNewest();
    if (!restored.ok()) return restored.status();
    if (restored->empty()) {
      LOG(INFO) << "no checkpoint in " << options.checkpoint.dir << "; starting empty";
    }
    checkpointer = s->checkpoints_.get();
  }
  s->service_ = std::make_unique<ParameterServerService>(s->shard_.get());
  if (CheckpointManager* cm = s->checkpoints_.get()) {
    s->shard_->SetStatusDecorator([cm](v1::GetStatusResponse* status) {
      const std::string path = cm->latest_path();
      const int64_t version = cm->latest_version();
      for (v1::TableStatus& t : *status->mutable_tables()) {
        t.set_checkpoint_path(path);
        t.set_checkpoint_version(version);
      }
    });
  }
  // This shard's status as its GetStatus answers it, read from the shard.
  auto local_status = [shard = s->shard_.get()] {
    v1::GetStatusResponse response;
    shard->GetStatus(&response);
    return response;
  };
  AdminServiceOptions admin_options;
  admin_options.shard_index = options.shard_index;
  admin_options.peers = options.peers;
  admin_options.self_address = [p = s.get()] { return p->address(); };
  s->admin_ = std::make_unique<AdminService>(std::move(admin_options), local_status,
                                             checkpointer);
  if (options.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<ServerMetrics>> metrics = ServerMetrics::Start(
        options.host, options.metrics_port, options.shard_index, local_status);
    if (!metrics.ok()) return metrics.status();
    s->metrics_ = *std::move(metrics);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC turns SO_REUSEPORT on by default; then a second shard started on a port an old
  // one still holds would "serve" too and the kernel would spread connections over both.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &s->port_);
  // Room for the largest request plus framing.
  const int max_message = static_cast<int>(options.max_request_bytes + (1 << 20));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(s->service_.get());
  builder.RegisterService(s->admin_.get());
  if (s->metrics_ != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(s->metrics_->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  s->server_->GetHealthCheckService()->SetServingStatus("ps.v1.Admin", true);
  s->SetReady(!options.start_not_ready);
  s->expire_thread_ = std::thread([p = s.get()] { p->ExpireLoop(); });
  if (s->checkpoints_ != nullptr) s->checkpoints_->Start();
  LOG(INFO) << "ps_server shard " << options.shard_index << "/" << options.num_shards
            << " serving on " << options.host << ":" << s->port_;
  return s;
}

void PsServer::ExpireLoop() {
  const absl::Duration period =
      std::max(absl::Milliseconds(20), std::min(absl::Milliseconds(200), options_.heartbeat_timeout / 10));
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    shard_->ExpireStale();
  }
}

void PsServer::SetReady(bool ready) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", ready);
  health->SetServingStatus("ps.v1.ParameterServer", ready);
}

void PsServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    LOG(INFO) << "shard " << options_.shard_index << " shutting down";
    // server_ is null when Start() failed to bind; the destructor still runs this.
    // Shutdown() makes every service NOT_SERVING for good: SetReady() no longer applies.
    if (server_ != nullptr) server_->GetHealthCheckService()->Shutdown();
    if (admin_ != nullptr) admin_->Stop();  // ends Watch streams, which would delay shutdown
    stop_.Notify();
    shard_->Shutdown();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
    if (expire_thread_.joinable()) expire_thread_.join();
    if (checkpoints_ != nullptr) {
      checkpoints_->Stop();
      // A last checkpoint once no call can change the tables any more.
      if (server_ != nullptr && (!store()->Tables().empty() || !store()->SparseTables().empty())) {
        absl::StatusOr<v1::CheckpointResponse::Written> w =
            checkpoints_->Checkpoint(0, absl::Seconds(10));
        if (!w.ok()) LOG(ERROR) << "final checkpoint failed: " << w.status();
      }
    }
    stopped_.Notify();
  });
}

void PsServer::Wait() { stopped_.WaitForNotification(); }

}  // namespace ps
