// GrpcPsClient, the gRPC implementation of PsClient (grpc_ps_client.h has its factories):
// plans each call (request_plan.h), lays it out in same-host windows where it can
// (same_host_transport.h), builds its requests (requests.h), sends them to every shard at
// once (shard_stubs.h), takes in the replies (pull_replies.h), and keeps the per-shard
// versions (shard_progress.h). Its methods are defined in grpc_ps_client.cc, the
// push-pull (a step's push and next pull in one call per shard) in grpc_push_pull.cc, and
// the push-pull in parts (StartPushPull) in grpc_push_pull_parts.cc.
// Internal to worker/client.
//
// Thread-safe, as PsClient.
#ifndef PS_WORKER_CLIENT_GRPC_PS_CLIENT_IMPL_H_
#define PS_WORKER_CLIENT_GRPC_PS_CLIENT_IMPL_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/status_util.h"
#include "proto/v1/ps.grpc.pb.h"
#include "worker/client/grpc_calls.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"
#include "worker/client/pull_replies.h"
#include "worker/client/request_plan.h"
#include "worker/client/requests.h"
#include "worker/client/same_host_transport.h"
#include "worker/client/shard_progress.h"
#include "worker/client/shard_stubs.h"

namespace ps {
namespace internal {

using PushPullCalls = std::vector<Call<wire::PushPullRequest, wire::PushPullResponse>>;

class GrpcPsClient final : public PsClient {
 public:
  GrpcPsClient(const std::vector<std::string>& servers, const ClientOptions& options,
               const ChannelFactory& make_channel)
      : options_(options),
        coder_(options.wire_formats),
        stubs_(servers, options, make_channel),
        progress_(static_cast<int>(servers.size())),
        transport_(
            servers, options.same_host,
            [this](int shard, int worker, int64_t bytes) {
              return stubs_.OpenWindow(shard, worker, incarnation(), bytes);
            },
            &window_bytes_) {}

  int num_shards() const override { return stubs_.num_shards(); }

  absl::Status WaitForShards(absl::Duration timeout) override;
  absl::Status CreateTable(const v1::TableSpec& spec) override;

  absl::Status RegisterWorker(int worker, const std::string& host, const std::string& device,
                              int64_t clock) override {
    return Register(stubs_.AllShards(), worker, host, device, clock);
  }

  absl::Status RegisterWith(int shard, int worker, const std::string& host,
                            const std::string& device, int64_t clock) override {
    return Register({shard}, worker, host, device, clock);
  }

  absl::Status Heartbeat(int worker, const v1::WorkerStats& stats) override {
    return SendHeartbeats(stubs_.AllShards(), worker, stats);
  }

  absl::Status HeartbeatTo(int shard, int worker, const v1::WorkerStats& stats) override {
    return SendHeartbeats({shard}, worker, stats);
  }

  absl::Duration heartbeat_interval(int shard) const override {
    return progress_.heartbeat_interval(shard);
  }

  absl::Status LeaveWorker(int worker) override;

  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override;

  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t min_version,
                               int worker) override;

  PushPullResult PushPull(const std::vector<DenseTensor>& grads,
                          const std::vector<DenseTensor>& params, int worker,
                          int64_t min_version) override;

  // Over TCP, the parts go out as they come (grpc_push_pull_parts.cc); with same-host windows,
  // which carry a whole step in one call per shard, as one PushPull at Finish.
  std::unique_ptr<PushPullParts> StartPushPull(int worker, int64_t min_version) override;

  void ResetProgress() override { progress_.Reset(); }

  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) override;

  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int worker) override;

  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int worker) override;

  // grpc_assign.cc
  absl::Status Assign(const std::vector<DenseTensor>& tensors) override;
  absl::Status AssignSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                            const float* rows) override;

  int same_host_shards() const override { return transport_.usable_shards(); }

 private:
  // Windows are used (where a shard offers them) when `windows` is true.
  absl::StatusOr<int64_t> PullImpl(const std::vector<DenseTensor>& tensors, int64_t min_version,
                                   int worker, bool windows);

  absl::Status PushImpl(const std::vector<DenseTensor>& tensors, int64_t step, int worker,
                        bool windows);

  // Each request carries a chunk's push and the pull of the same slices: through the
  // shard's windows (one request per shard) or in-band (the usual chunks). nullopt, with
  // nothing sent, when the tensors do not pair up or a window write fails.
  std::optional<PushPullResult> PushPullCombined(const std::vector<DenseTensor>& grads,
                                                 const std::vector<DenseTensor>& params, int worker,
                                                 int64_t min_version, bool windows);

  // The chunks of a push that shards refused because their window is gone (a shard that
  // restarted) go again in-band, as further parts of push `sequence`, so each such shard
  // applies them once; their calls' statuses become the in-band outcome. Returns whether
  // any was resent (a push-pull's pull from those shards is then still to be done).
  template <typename Calls>
  bool ResendLostWindows(const std::vector<DenseTensor>& tensors, const std::vector<Chunk>& chunks,
                         int64_t step, int worker, int64_t sequence, Calls* calls) {
    std::vector<bool> lost(num_shards(), false);
    bool any = false;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (ForgetLostWindow(chunks[i].shard, worker, (*calls)[i].status)) {
        lost[chunks[i].shard] = any = true;
      }
    }
    if (!any) return false;
    std::vector<Chunk> again;
    for (Chunk& c : Plan(tensors)) {
      if (lost[c.shard]) again.push_back(std::move(c));
    }
    std::vector<Call<wire::PushRequest, v1::PushResponse>> resent(again.size());
    for (size_t i = 0; i < again.size(); ++i) {
      resent[i].request = WireDensePushRequest(
          again[i], Sender(worker), step == kPerShard ? progress_.pulled(again[i].shard) : step,
          sequence, static_cast<int>(chunks.size() + i), &coder_);
    }
    stubs_.SendWithRetries(resent, ShardsOf(again), stubs_.RpcOptions(), kWirePush,
                           ReplyMayBeLostAt<wire::PushRequest, v1::PushResponse>);
    std::vector<grpc::Status> outcome(num_shards());
    for (size_t i = 0; i < again.size(); ++i) {
      if (!resent[i].status.ok() && outcome[again[i].shard].ok()) {
        outcome[again[i].shard] = resent[i].status;
      }
    }
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (lost[chunks[i].shard]) (*calls)[i].status = outcome[chunks[i].shard];
    }
    return true;
  }

  class Parts;  // StartPushPull's, over TCP

  // One push-pull request per chunk, their pushes the parts first_part, first_part + 1,
  // ... of push `sequence`; counts the gradient bytes as pushed.
  PushPullCalls MakePushPullCalls(const std::vector<Chunk>& chunks, int worker, int64_t min_version,
                                  int64_t sequence, int first_part = 0);

  void SendPushPulls(const std::vector<int>& shards, PushPullCalls* calls);

  // Returns whether every call succeeded. Sets *push to the first refusal of the push (a
  // cancelled call only when nothing else failed) and records the push on the shards
  // that took it.
  bool TakePushOutcome(const std::vector<Chunk>& chunks, const PushPullCalls& calls, int worker,
                       absl::Status* push);

  // What a push-pull that not every shard took says of its pull.
  absl::Status PullAfterRefusedPush(const std::vector<Chunk>& chunks,
                                    const PushPullCalls& calls) const;

  // Takes in the pulls of push-pull calls that all succeeded: the values of each
  // gradient's slices land in the same slices of its parameter tensor.
  absl::StatusOr<int64_t> TakePushPulled(const std::vector<Chunk>& chunks,
                                         const PushPullCalls& calls,
                                         const std::vector<WindowUse>& use,
                                         const std::vector<DenseTensor>& grads,
                                         const std::vector<DenseTensor>& params);

  // Reads the queued windowed slices, then records each shard's pulled version. A window
  // that cannot be read turns that shard's windows off and is returned as the error;
  // nothing is recorded then.
  absl::Status FinishPulled(const std::vector<WindowUse>& use, PulledParts* parts) {
    if (absl::Status st = transport_.ReadPullWindows(use, parts->reads); !st.ok()) return st;
    progress_.RecordPulled(parts->shard_version);
    return absl::OkStatus();
  }

  bool ForgetLostWindow(int shard, int worker, const grpc::Status& st) {
    return transport_.ForgetLostWindow(shard, worker, FromGrpcStatus(st));
  }

  absl::Status ShardError(int shard, const char* what, const grpc::Status& s) const {
    return stubs_.ShardError(shard, what, s);
  }

  std::vector<Chunk> Plan(const std::vector<DenseTensor>& tensors) const {
    return PlanDense(tensors, num_shards(), options_.max_chunk_bytes);
  }
  std::vector<SparseChunk> PlanSparse(const std::vector<int64_t>& unique,
                                      bool every_shard = false) const {
    return ps::PlanSparse(unique, num_shards(), options_.max_sparse_keys_per_request, every_shard);
  }

  absl::Status Register(const std::vector<int>& targets, int worker, const std::string& host,
                        const std::string& device, int64_t clock);

  absl::Status SendHeartbeats(const std::vector<int>& targets, int worker,
                              const v1::WorkerStats& stats);

  // What this client's requests on behalf of `worker` say of their sender, now.
  RequestSender Sender(int worker) const { return {worker, incarnation(), clock()}; }

  const ClientOptions options_;
  GradientCoder coder_;  // 16-bit gradients and their residuals
  ShardStubs stubs_;
  ShardProgress progress_;
  SameHostTransport transport_;
  // One windowed pull and one windowed push at a time (each lays out the whole window).
  absl::Mutex pull_window_mu_;
  absl::Mutex push_window_mu_;
  // A worker's pushes go one after another (push, push-pull, sparse push): shards take a
  // push older than the newest they have seen from the worker for a copy of one already
  // answered (server/shard/push_ledger.h), so two at once could lose one's later parts.
  absl::Mutex push_order_mu_;
};

}  // namespace internal
}  // namespace ps

#endif  // PS_WORKER_CLIENT_GRPC_PS_CLIENT_IMPL_H_
