#include "server/rpc/ps_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "common/host_port.h"
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
  return JoinHostPort(options_.host == "0.0.0.0" ? "127.0.0.1" : options_.host, port_);
}

int PsServer::metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }

namespace {

// INVALID_ARGUMENT naming the first option out of range.
absl::Status ValidateOptions(const ServerOptions& options) {
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
    return absl::InvalidArgumentError(absl::StrCat(
        "peers lists ", options.peers.size(), " addresses but num_shards=", options.num_shards));
  }
  return absl::OkStatus();
}

ShardOptions ShardOptionsOf(const ServerOptions& options) {
  ShardOptions shard;
  shard.store.shard_index = options.shard_index;
  shard.store.num_shards = options.num_shards;
  shard.store.max_request_bytes = options.max_request_bytes;
  shard.store.max_sparse_keys = options.max_sparse_keys;
  shard.store.max_tables = options.max_tables;
  shard.store.check_finite_updates = options.check_finite_updates;
  shard.heartbeat_interval = options.heartbeat_interval;
  shard.heartbeat_timeout = options.heartbeat_timeout;
  shard.max_pull_wait = options.max_pull_wait;
  shard.same_host_windows = options.same_host_windows;
  shard.memory_budget_bytes = options.memory_budget_bytes;
  return shard;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PsServer>> PsServer::Start(const ServerOptions& options) {
  if (absl::Status st = ValidateOptions(options); !st.ok()) return st;
  std::unique_ptr<PsServer> s(new PsServer(options));
  s->shard_ = std::make_unique<Shard>(ShardOptionsOf(options));
  absl::StatusOr<Checkpointer*> checkpointer = s->RestoreCheckpoints();
  if (!checkpointer.ok()) return checkpointer.status();
  if (absl::Status st = s->StartServices(*checkpointer); !st.ok()) return st;
  const bool refused = s->RefuseIfStateLost();
  if (absl::Status st = s->Listen(); !st.ok()) return st;
  s->server_->GetHealthCheckService()->SetServingStatus("ps.v1.Admin", true);
  s->SetReady(!options.start_not_ready && !refused);
  s->expire_thread_ = std::thread([p = s.get()] { p->ExpireLoop(); });
  // A shard that refuses to serve writes nothing: a file of its empty state would be
  // restored at its next start as if it were the job's.
  if (s->checkpoints_ != nullptr && !refused) s->checkpoints_->Start();
  LOG(INFO) << "ps_server shard " << options.shard_index << "/" << options.num_shards
            << " serving on " << JoinHostPort(options.host, s->port_) << ", "
            << Describe(options.tls) << ", "
            << (options.auth.tokens_file.empty() ? "no authorization (anyone may call anything)"
                                                 : "tokens required (docs/security.md)");
  return s;
}

bool PsServer::RefuseIfStateLost() {
  if (restored_ || options_.peers.size() < 2 || options_.allow_start_without_state) return false;
  for (int i = 0; i < static_cast<int>(options_.peers.size()); ++i) {
    if (i == options_.shard_index) continue;
    // A channel of its own: the Admin service's would be left in reconnect backoff by a
    // peer that is not up yet (the usual case at a job's start).
    std::unique_ptr<v1::ParameterServer::Stub> stub =
        v1::ParameterServer::NewStub(NewChannel(options_.peers[i], options_.peer_credentials));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::GetStatusResponse peer;
    if (!stub->GetStatus(&context, v1::GetStatusRequest(), &peer).ok()) continue;
    int64_t version = 0, clock = 0;
    for (const v1::TableStatus& t : peer.tables()) version = std::max(version, t.version());
    for (const v1::WorkerStatus& w : peer.workers()) clock = std::max(clock, w.stats().clock());
    if (version == 0 && clock == 0) continue;
    absl::Status why = WithReason(
        absl::FailedPreconditionError(absl::StrCat(
            "shard ", options_.shard_index, " started without its state (",
            options_.checkpoint.dir.empty() ? "no --checkpoint_dir"
                                            : "no checkpoint in " + options_.checkpoint.dir,
            ") while shard ", i, " (", options_.peers[i], ") holds the job at table version ",
            version, ", worker clock ", clock,
            ": serving would start this shard's tables afresh in a model the rest of the job "
            "has trained. Give it back its checkpoint directory, or restart every shard to "
            "begin a new job")),
        kReasonStateLost);
    LOG(ERROR) << why.message();
    shard_->RefuseService(why);
    return true;
  }
  return false;
}

absl::StatusOr<Checkpointer*> PsServer::RestoreCheckpoints() {
  if (options_.checkpointer != nullptr || options_.checkpoint.dir.empty()) {
    return options_.checkpointer;
  }
  CheckpointOptions checkpoint = options_.checkpoint;
  // Interval checkpoints of sync tables at one version on every shard: shard 0 asks them
  // all (admin_ exists by the time the writer runs). Without the peers' addresses each
  // shard writes its own.
  if (options_.peers.size() > 1) {
    checkpoint.sync_interval = [this, last = int64_t{-1}]() mutable {
      if (options_.shard_index != 0 || admin_ == nullptr) return;
      // Two steps past the newest version any shard has reached, so that the request is
      // at every shard before its steps get there (at the newest version itself, a shard
      // that moved on meanwhile would refuse it). Nothing new since the last: no file.
      const int64_t newest = MaxSyncVersion(admin_->GetClusterStatus());
      if (newest == last) return;
      last = newest;
      // A short wait: this runs on the checkpoint writer's thread, which a stopping shard
      // joins (Stop() cancels the calls to the peers).
      absl::StatusOr<v1::CheckpointResponse> all =
          admin_->CheckpointAllShards(newest + 2, absl::Seconds(5));
      if (!all.ok()) LOG(ERROR) << "interval checkpoint of every shard failed: " << all.status();
    };
  }
  checkpoints_ = std::make_unique<CheckpointManager>(
      checkpoint, options_.shard_index, options_.num_shards, store(), registry(), shard_->ledger());
  if (absl::Status s = checkpoints_->CheckDirUsable(); !s.ok()) return s;
  // Restore before listening: no call ever sees a half-restored shard, and the health
  // service cannot report SERVING before the shard holds its state.
  absl::StatusOr<std::string> restored = checkpoints_->RestoreNewest();
  if (!restored.ok()) return restored.status();
  if (restored->empty()) {
    LOG(INFO) << "no checkpoint in " << options_.checkpoint.dir << "; starting empty";
  }
  // A file with no tables restores no state (such files are no longer written).
  restored_ =
      !restored->empty() && (!store()->Tables().empty() || !store()->SparseTables().empty());
  CheckpointManager* cm = checkpoints_.get();
  shard_->SetStatusDecorator([cm](v1::GetStatusResponse* status) {
    const std::string path = cm->latest_path();
    const int64_t version = cm->latest_version();
    for (v1::TableStatus& t : *status->mutable_tables()) {
      t.set_checkpoint_path(path);
      t.set_checkpoint_version(version);
    }
  });
  return cm;
}

absl::Status PsServer::StartServices(Checkpointer* checkpointer) {
  if (absl::Status s = CheckServerTls(options_.tls); !s.ok()) return s;
  if (absl::Status s = CheckChannelTls(options_.peer_credentials); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Authorizer>> auth = Authorizer::Create(options_.auth);
  if (!auth.ok()) return auth.status();
  auth_ = *std::move(auth);
  service_ = std::make_unique<ParameterServerService>(shard_.get(), auth_.get());
  // This shard's status as its GetStatus answers it, read from the shard.
  auto local_status = [shard = shard_.get()] {
    v1::GetStatusResponse response;
    shard->GetStatus(&response);
    return response;
  };
  AdminServiceOptions admin_options;
  admin_options.shard_index = options_.shard_index;
  admin_options.peers = options_.peers;
  admin_options.self_address = [this] { return address(); };
  admin_options.authorizer = auth_.get();
  admin_options.peer_credentials = options_.peer_credentials;
  admin_ = std::make_unique<AdminService>(std::move(admin_options), local_status, checkpointer);
  if (options_.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<ServerMetrics>> metrics = ServerMetrics::Start(
        options_.host, options_.metrics_port, options_.shard_index, local_status);
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
  }
  if (options_.health_port >= 0) {
    absl::StatusOr<std::unique_ptr<HealthServer>> health =
        HealthServer::Start(options_.host, options_.health_port);
    if (!health.ok()) return health.status();
    health_ = *std::move(health);
    health_->SetServing(false);  // until SetReady
  }
  return absl::OkStatus();
}

absl::Status PsServer::Listen() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC turns SO_REUSEPORT on by default; then a second shard started on a port an old
  // one still holds would "serve" too and the kernel would spread connections over both.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Workers ping every 60 s, also between calls (worker/client/shard_stubs.cc); gRPC's
  // default would answer pings more often than every 5 minutes without data with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30 * 1000);
  builder.AddListeningPort(JoinHostPort(options_.host, options_.port),
                           ServerCredentialsFor(options_.tls), &port_);
  // Room for the largest request plus framing.
  const int max_message = static_cast<int>(options_.max_request_bytes + (1 << 20));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_.get());
  if (metrics_ != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(metrics_->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", JoinHostPort(options_.host, options_.port)));
  }
  return absl::OkStatus();
}

void PsServer::ExpireLoop() {
  const absl::Duration period = std::max(
      absl::Milliseconds(20), std::min(absl::Milliseconds(200), options_.heartbeat_timeout / 10));
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    shard_->ExpireStale();
  }
}

void PsServer::SetReady(bool ready) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", ready);
  health->SetServingStatus("ps.v1.ParameterServer", ready);
  if (health_ != nullptr) health_->SetServing(ready);
}

void PsServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    LOG(INFO) << "shard " << options_.shard_index << " shutting down";
    // server_ is null when Start() failed to bind; the destructor still runs this.
    // Shutdown() makes every service NOT_SERVING for good: SetReady() no longer applies.
    if (server_ != nullptr) server_->GetHealthCheckService()->Shutdown();
    if (health_ != nullptr) health_->SetServing(false);
    if (admin_ != nullptr) admin_->Stop();  // ends Watch streams, which would delay shutdown
    stop_.Notify();
    shard_->Shutdown();
    // Checkpoint requests waiting for a future version would hold their calls open.
    if (checkpoints_ != nullptr) checkpoints_->StopWaiting();
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
        if (!w.ok()) {
          LOG(ERROR) << "final checkpoint failed: " << w.status();
          shutdown_status_ = absl::Status(
              w.status().code(), absl::StrCat("final checkpoint failed: ", w.status().message()));
        } else {
          LOG(INFO) << "final checkpoint " << w->path() << " (version " << w->version() << ")";
        }
      }
    }
    stopped_.Notify();
  });
}

void PsServer::Wait() { stopped_.WaitForNotification(); }

}  // namespace ps
