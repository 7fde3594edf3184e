// PsServer: one running shard. Owns the worker registry, the parameter store, the gRPC
// service (with the standard health service and reflection) and the thread that drops
// workers whose heartbeats stopped. Used by ps_server's main() and by tests that need a
// real server on a loopback port.
//
// Thread-safe: Shutdown() may be called from any thread, once or more.
#ifndef PS_SERVER_PS_SERVER_H_
#define PS_SERVER_PS_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/parameter_store.h"
#include "server/ps_service.h"
#include "server/worker_registry.h"

namespace ps {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0: the kernel picks a free port; see PsServer::port()
  int shard_index = 0;
  int num_shards = 1;
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration max_pull_wait = absl::Minutes(5);
  int64_t max_request_bytes = 64 << 20;
};

class PsServer {
 public:
  // Validates the options, binds, and starts serving. INVALID_ARGUMENT for bad options,
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<PsServer>> Start(const ServerOptions& options);
  ~PsServer();

  int port() const { return port_; }
  std::string address() const;
  ParameterStore* store() { return store_.get(); }
  WorkerRegistry* registry() { return registry_.get(); }

  // Stops accepting calls, wakes waiting pulls, and lets running calls finish.
  void Shutdown();
  // Blocks until Shutdown() has completed.
  void Wait();

 private:
  explicit PsServer(const ServerOptions& options);
  void ExpireLoop();

  const ServerOptions options_;
  int port_ = 0;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<ParameterStore> store_;
  std::unique_ptr<ParameterServerService> service_;
  std::unique_ptr<grpc::Server> server_;
  absl::Notification stop_;
  absl::Notification stopped_;
  std::thread expire_thread_;
  std::once_flag shutdown_once_;
};

}  // namespace ps

#endif  // PS_SERVER_PS_SERVER_H_
