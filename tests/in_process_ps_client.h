// InProcessPsClient: a PsClient over Shards in this process, with no transport. Worker
// unit tests train against it instead of loopback servers: no socket is opened, and the
// shards are the real ones (server/shard/shard.h), fed the same requests the gRPC client
// would send (worker/client/request_plan.h), so a push reaches a shard as the same parts.
//
// It is the one place where worker-side and server-side code meet outside the wire, and
// it is testonly: production code never links both.
//
// Thread-safe, as PsClient: a Shard is thread-safe and the per-shard versions are locked.
#ifndef PS_TESTS_IN_PROCESS_PS_CLIENT_H_
#define PS_TESTS_IN_PROCESS_PS_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/shard/shard.h"
#include "worker/client/ps_client.h"
#include "worker/client/requests.h"

namespace ps {
namespace testing {

class InProcessPsClient : public PsClient {
 public:
  // Starts `num_shards` shards of a job (ShardOptions::store's shard index and count
  // are set here) and a client of them.
  InProcessPsClient(int num_shards, const ShardOptions& options = ShardOptions(),
                    const ClientOptions& client = ClientOptions());

  Shard* shard(int i) { return shards_[i].get(); }

  int num_shards() const override { return static_cast<int>(shards_.size()); }
  absl::Status CreateTable(const v1::TableSpec& spec) override;
  absl::Status RegisterWorker(int worker, const std::string& host, const std::string& device,
                              int64_t clock = 0) override;
  absl::Status RegisterWith(int shard, int worker, const std::string& host,
                            const std::string& device, int64_t clock) override;
  absl::Status Heartbeat(int worker, const v1::WorkerStats& stats) override;
  absl::Status HeartbeatTo(int shard, int worker, const v1::WorkerStats& stats) override;
  absl::Status LeaveWorker(int worker) override;
  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t min_version,
                               int worker) override;
  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) override;
  void ResetProgress() override;
  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int worker) override;
  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int worker) override;
  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override;

 private:
  absl::Time Deadline() const { return absl::Now() + options_.rpc_timeout; }
  RequestSender Sender(int worker) const { return {worker, incarnation(), clock()}; }

  const ClientOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
  mutable absl::Mutex mu_;
  std::vector<int64_t> next_ ABSL_GUARDED_BY(mu_);    // per shard, for kPerShard pulls
  std::vector<int64_t> pulled_ ABSL_GUARDED_BY(mu_);  // per shard, for kPerShard pushes
};

}  // namespace testing
}  // namespace ps

#endif  // PS_TESTS_IN_PROCESS_PS_CLIENT_H_
