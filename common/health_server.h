// HealthServer: the standard gRPC health service and server reflection for a process
// that serves no gRPC API of its own (ps_worker), or for a shard whose port speaks TLS
// (the kubelet's probes cannot), so Kubernetes' native gRPC probes and
// stock tools (grpcurl, grpc_health_probe) work on every daemon.
//
// Thread-safe: SetServing() may be called from any thread.
#ifndef PS_COMMON_HEALTH_SERVER_H_
#define PS_COMMON_HEALTH_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace ps {

class HealthServer {
 public:
  // Listens on host:port (port 0: a free one). UNAVAILABLE if it cannot bind.
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& host, int port);
  ~HealthServer();

  int port() const { return port_; }
  // SERVING while the daemon does its work; NOT_SERVING once it is failing or done.
  void SetServing(bool serving);

 private:
  HealthServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace ps

#endif  // PS_COMMON_HEALTH_SERVER_H_
