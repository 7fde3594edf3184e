// PsServer: one running shard. Owns the Shard (registry, store, windows), the gRPC
// services (ParameterServer, Admin, the standard health service and reflection), the
// optional Prometheus endpoint and the thread that drops workers whose heartbeats
// stopped. Used by ps_server's main() and by tests that need a real server on a loopback
// port.
//
// Thread-safe: Shutdown() may be called from any thread, once or more.
#ifndef PS_SERVER_RPC_PS_SERVER_H_
#define PS_SERVER_RPC_PS_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/checkpoint/checkpoint_manager.h"
#include "server/checkpoint/checkpointer.h"
#include "common/channel_credentials.h"
#include "common/health_server.h"
#include "server/rpc/auth.h"
#include "server/rpc/ps_service.h"
#include "server/shard/parameter_store.h"
#include "server/shard/shard.h"
#include "server/shard/worker_registry.h"

namespace ps {

class AdminService;
class ServerMetrics;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: the kernel picks a free port; see PsServer::port()
  int shard_index = 0;
  int num_shards = 1;
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration max_pull_wait = absl::Minutes(5);
  int64_t max_request_bytes = 64 << 20;
  int64_t max_sparse_keys = 1 << 17;
  int64_t max_tables = 4096;
  bool check_finite_updates = true;  // StoreOptions::check_finite_updates
  // Serve even when nothing was restored while a peer holds the job's progress (a new
  // job on old peers, or a shard that holds none of the job's elements), instead of
  // refusing every call with STATE_LOST.
  bool allow_start_without_state = false;
  // Bytes tables, sync buffers and windows may hold (common/memory_budget.h); <= 0: no
  // limit. ps_server's --memory_budget_mb defaults it from the machine.
  int64_t memory_budget_bytes = 0;
  // Every shard's address in shard order, for the Admin service's cluster view; empty:
  // this shard alone. When given, its length must equal num_shards.
  std::vector<std::string> peers;
  // Prometheus endpoint: -1 off, 0 a free port (see PsServer::metrics_port()).
  int metrics_port = -1;
  // Checkpoints: with checkpoint.dir set, the shard restores its newest checkpoint before
  // it listens, writes them periodically and on Admin.Checkpoint, and writes a last one
  // on Shutdown().
  CheckpointOptions checkpoint;
  // Replaces the built-in checkpoints for Admin.Checkpoint (tests); must outlive the server.
  Checkpointer* checkpointer = nullptr;
  // Offer same-host transfer windows to workers on this host (docs/same_host.md).
  bool same_host_windows = true;
  // Report NOT_SERVING on the health service until SetReady(true) (e.g. after a restore).
  bool start_not_ready = false;
  // Who may call what (server/rpc/auth.h); tokens_file empty: everyone everything.
  AuthOptions auth;
  // TLS on the port (gRPC and health); no certificate: plaintext.
  ServerTls tls;
  // A plaintext port serving only the standard health service, mirroring the main
  // port's (for the kubelet's gRPC probes, which cannot speak TLS): -1 off, 0 a free one.
  int health_port = -1;
  // What this shard presents when it calls its peers (Admin's cluster view, checkpoint
  // fan-out, the start-up check): an operator's token where they check.
  ChannelCredentials peer_credentials;
};

class PsServer {
 public:
  // Validates the options, binds, and starts serving. INVALID_ARGUMENT for bad options,
  // UNAVAILABLE when the address cannot be bound (also when another process holds the
  // port: SO_REUSEPORT is off, so two shards never share one).
  static absl::StatusOr<std::unique_ptr<PsServer>> Start(const ServerOptions& options);
  ~PsServer();

  int port() const { return port_; }
  std::string address() const;
  // The Prometheus endpoint's port; -1 when metrics are off.
  int metrics_port() const;
  // The health-only port; -1 when off.
  int health_port() const { return health_ == nullptr ? -1 : health_->port(); }
  Shard* shard() { return shard_.get(); }
  ParameterStore* store() { return shard_->store(); }
  // Null unless options.checkpoint.dir was given.
  CheckpointManager* checkpoints() { return checkpoints_.get(); }
  WorkerRegistry* registry() { return shard_->registry(); }

  // Sets the health status of the server ("") and of ps.v1.ParameterServer to SERVING or
  // NOT_SERVING. Has no effect after Shutdown().
  void SetReady(bool ready);

  // Stops accepting calls, wakes waiting pulls and pending checkpoint requests, lets
  // running calls finish (for up to 2 s), and writes a last checkpoint.
  void Shutdown();
  // Blocks until Shutdown() has completed.
  void Wait();
  // After Wait(): how the shutdown went; the final checkpoint's error when it failed
  // (the process should then exit non-zero: the newest state is not on disk).
  absl::Status shutdown_status() const { return shutdown_status_; }

 private:
  explicit PsServer(const ServerOptions& options);
  // The checkpointer for Admin.Checkpoint: the one given, or a CheckpointManager that
  // has restored the newest checkpoint of options.checkpoint.dir; null without either.
  absl::StatusOr<Checkpointer*> RestoreCheckpoints();
  // A shard that restored nothing while a peer holds the job at a later point (tables
  // past version 0, workers past clock 0) restarted without its state: it refuses every
  // call with reason STATE_LOST (and reports NOT_SERVING) instead of serving afresh
  // tables the workers would train on as if nothing had happened. Returns whether it does.
  bool RefuseIfStateLost();
  // The ParameterServer and Admin services, and the metrics endpoint when asked for.
  absl::Status StartServices(Checkpointer* checkpointer);
  // Binds the port and starts serving; UNAVAILABLE naming the address when it cannot.
  absl::Status Listen();
  void ExpireLoop();

  const ServerOptions options_;
  int port_ = 0;
  std::unique_ptr<Shard> shard_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<ParameterServerService> service_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<ServerMetrics> metrics_;  // null when off; outlives server_'s interceptors
  std::unique_ptr<HealthServer> health_;    // null when off
  std::unique_ptr<CheckpointManager> checkpoints_;  // null without checkpoint.dir
  std::unique_ptr<grpc::Server> server_;
  absl::Notification stop_;
  absl::Notification stopped_;
  std::thread expire_thread_;
  std::once_flag shutdown_once_;
  absl::Status shutdown_status_;
  bool restored_ = false;  // a checkpoint was restored at start  // written once, inside shutdown_once_, before stopped_
};

}  // namespace ps

#endif  // PS_SERVER_RPC_PS_SERVER_H_
