// ServerMetrics: one shard's Prometheus metrics, served as text at
// http://<host>:<port>/metrics.
//
// Most figures are read from a fresh GetStatusResponse on every scrape (a custom
// prometheus::Collectable), so they never go stale and agree with what psctl shows:
//   ps_push_requests_total, ps_pull_requests_total, ps_push_bytes_total,
//   ps_pull_bytes_total, ps_duplicate_pushes_total, ps_waiting_pulls,
//   ps_window_bytes_held, ps_uptime_seconds, ps_live_workers                  {shard}
//   ps_table_version, ps_table_elements, ps_table_bytes, ps_table_pushes_total,
//   ps_table_pulls_total, ps_table_rejected_pushes_total                 {shard, table}
//   ps_worker_samples_per_second, ps_worker_loss, ps_worker_clock,
//   ps_worker_last_heartbeat_seconds                                    {shard, worker}
// Calls of ps.v1.ParameterServer that end in an error are counted by a gRPC server
// interceptor (NewInterceptorFactory) as ps_rejected_requests_total{shard, method, code}.
//
// Thread-safe: scrapes run on the HTTP server's threads, interceptors on gRPC's.
#ifndef PS_SERVER_RPC_METRICS_H_
#define PS_SERVER_RPC_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/v1/ps.pb.h"

namespace ps {

class ServerMetrics {
 public:
  using StatusFn = std::function<v1::GetStatusResponse()>;

  // Serves the metrics on `port` (0: a free one; see port()), bound to 127.0.0.1 when
  // `host` is a loopback address and to every interface otherwise. `status` returns the
  // shard's current status and must stay callable until the object is destroyed.
  // UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Start(const std::string& host, int port,
                                                              int shard_index, StatusFn status);
  ~ServerMetrics();

  int port() const { return port_; }
  // For metrics kept by other parts of the shard; every family should carry `shard`.
  prometheus::Registry& registry() { return *registry_; }

  // Returns an interceptor factory for grpc::ServerBuilder that counts failed
  // ParameterServer calls. This object must outlive the server it is installed in.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

  // Counts one call of `method` (e.g. "Push") that ended with `code` (not OK).
  void CountRejected(absl::string_view method, grpc::StatusCode code);

  // Builds the status-derived families from one status report (what a scrape returns).
  static std::vector<prometheus::MetricFamily> StatusFamilies(const v1::GetStatusResponse& status,
                                                              int shard_index);

 private:
  class StatusCollector;
  ServerMetrics(int shard_index, StatusFn status);

  const std::string shard_label_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rejected_ = nullptr;  // owned by registry_
  std::shared_ptr<StatusCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;  // last: stops serving before the rest goes
  int port_ = 0;
};

}  // namespace ps

#endif  // PS_SERVER_RPC_METRICS_H_
