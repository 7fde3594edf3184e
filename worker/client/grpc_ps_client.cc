// The gRPC implementation of PsClient: plans each call (request_plan.h), lays it out in
// same-host windows where it can (same_host_transport.h), builds its requests
// (requests.h), sends them to every shard at once (shard_stubs.h), takes in the replies
// (pull_replies.h), and keeps the per-shard versions (shard_progress.h).
#include "worker/client/grpc_ps_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_util.h"
#include "proto/v1/ps.grpc.pb.h"
#include "worker/client/grpc_calls.h"
#include "worker/client/ps_client.h"
#include "worker/client/pull_replies.h"
#include "worker/client/request_plan.h"
#include "worker/client/requests.h"
#include "worker/client/same_host_transport.h"
#include "worker/client/shard_progress.h"
#include "worker/client/shard_stubs.h"

namespace ps {
namespace {

using PushPullCalls = std::vector<Call<v1::PushPullRequest, v1::PushPullResponse>>;

class GrpcPsClient final : public PsClient {
 public:
  GrpcPsClient(const std::vector<std::string>& servers, const ClientOptions& options,
               const ChannelFactory& make_channel)
      : options_(options),
        stubs_(servers, options, make_channel),
        progress_(static_cast<int>(servers.size())),
        transport_(
            servers, options.same_host,
            [this](int shard, int worker, int64_t bytes) {
              return stubs_.OpenWindow(shard, worker, incarnation(), bytes);
            },
            &window_bytes_) {}

  int num_shards() const override { return stubs_.num_shards(); }

  absl::Status CreateTable(const v1::TableSpec& spec) override {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    std::vector<v1::CreateTableResponse> responses;
    return stubs_.OnShards(stubs_.AllShards(), request, kCreateTable, /*wait_for_ready=*/true,
                           &responses, "create table");
  }

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

  absl::Status LeaveWorker(int worker) override {
    {
      // No windowed call of this client is in flight once both locks are held, and none
      // starts after: the shards free this incarnation's windows when it leaves.
      absl::MutexLock push_lock(&push_window_mu_);
      absl::MutexLock pull_lock(&pull_window_mu_);
      transport_.ForgetWorker(worker);
    }
    v1::LeaveWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    std::vector<v1::LeaveWorkerResponse> responses;
    return stubs_.OnShards(stubs_.AllShards(), request, kLeave, /*wait_for_ready=*/false,
                           &responses, "leave");
  }

  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override {
    std::vector<v1::GetStatusResponse> out;
    absl::Status s = stubs_.OnShards(stubs_.AllShards(), v1::GetStatusRequest(), kGetStatus,
                                     /*wait_for_ready=*/false, &out, "status");
    if (!s.ok()) return s;
    return out;
  }

  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t min_version,
                               int worker) override {
    // One windowed pull at a time: a second one at once goes in-band.
    if (worker >= 0 && pull_window_mu_.TryLock()) {
      absl::StatusOr<int64_t> v = PullImpl(tensors, min_version, worker, /*windows=*/true);
      pull_window_mu_.Unlock();
      return v;
    }
    return PullImpl(tensors, min_version, worker, /*windows=*/false);
  }

  PushPullResult PushPull(const std::vector<DenseTensor>& grads,
                          const std::vector<DenseTensor>& params, int worker,
                          int64_t min_version) override {
    std::optional<PushPullResult> r;
    if (worker >= 0 && push_window_mu_.TryLock()) {
      if (pull_window_mu_.TryLock()) {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/true);
        pull_window_mu_.Unlock();
      } else {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
      }
      push_window_mu_.Unlock();
    } else if (worker >= 0) {
      r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
    }
    if (r.has_value()) return *std::move(r);
    return PsClient::PushPull(grads, params, worker, min_version);
  }

  void ResetProgress() override { progress_.Reset(); }

  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) override {
    if (worker >= 0 && push_window_mu_.TryLock()) {
      absl::Status s = PushImpl(tensors, step, worker, /*windows=*/true);
      push_window_mu_.Unlock();
      return s;
    }
    return PushImpl(tensors, step, worker, /*windows=*/false);
  }

  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    // Each distinct key is asked for once; its row is then copied to every position.
    std::vector<float> unused;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, 0, nullptr, &unused);
    std::vector<SparseChunk> chunks = PlanSparse(unique);
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      calls[i].request = SparsePullRequest(table, chunks[i], unique, Sender(worker));
    }
    stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPull);
    std::vector<float> unique_rows(unique.size() * static_cast<size_t>(width));
    int64_t version = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse pull", calls[i].status);
      absl::StatusOr<int64_t> v =
          TakeSparseRows(chunks[i], calls[i].response, table, width, unique_rows.data());
      if (!v.ok()) return v.status();
      bytes_pulled_.fetch_add(chunks[i].positions.size() * width * 4, std::memory_order_relaxed);
      version = std::min(version, *v);
    }
    ScatterRows(keys, unique, unique_rows, width, rows);
    return chunks.empty() ? 0 : version;
  }

  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    std::vector<float> summed;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, width, grads, &summed);
    // Every shard hears from every push, even without keys for it, so SSP clocks advance
    // on all shards.
    std::vector<SparseChunk> chunks = PlanSparse(unique, /*every_shard=*/true);
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      calls[i].request = SparsePushRequest(table, chunks[i], unique, summed, width, Sender(worker),
                                           step, sequence, static_cast<int>(i));
      bytes_pushed_.fetch_add(calls[i].request.sparse(0).values().size(),
                              std::memory_order_relaxed);
    }
    stubs_.SendWithRetries(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPush,
                           ReplyMayBeLostAt<v1::PushRequest, v1::PushResponse>);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse push", calls[i].status);
    }
    return absl::OkStatus();
  }

  int same_host_shards() const override { return transport_.usable_shards(); }

 private:
  // Windows are used (where a shard offers them) when `windows` is true.
  absl::StatusOr<int64_t> PullImpl(const std::vector<DenseTensor>& tensors, int64_t min_version,
                                   int worker, bool windows) {
    std::vector<Chunk> chunks = Plan(tensors);
    const std::vector<WindowUse> use =
        windows ? transport_.PrepareWindows(&chunks, worker) : std::vector<WindowUse>(num_shards());
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      calls[i].request = DensePullRequest(
          chunks[i], Sender(worker),
          min_version == kPerShard ? progress_.next(chunks[i].shard) : min_version);
    }
    stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPull);
    bool lost_window = false;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok() && ForgetLostWindow(chunks[i].shard, worker, calls[i].status)) {
        lost_window = true;
      }
    }
    if (lost_window) {
      // A shard no longer holds this worker's window (another process with this worker
      // index left): pull again in-band; the next call opens new windows.
      return PullImpl(tensors, min_version, worker, /*windows=*/false);
    }
    PulledParts parts(num_shards());
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "pull", calls[i].status);
      if (absl::Status st = TakePulled(
              chunks[i], calls[i].response, use,
              [](const Piece& p) { return p.tensor->data + p.begin; }, &parts, &bytes_pulled_);
          !st.ok()) {
        return st;
      }
    }
    if (absl::Status st = FinishPulled(use, &parts); !st.ok()) {
      // A shard answered but its window cannot be read: pull again without windows (a
      // pull changes nothing on the server).
      return PullImpl(tensors, min_version, worker, /*windows=*/false);
    }
    return chunks.empty() ? 0 : parts.version;
  }

  absl::Status PushImpl(const std::vector<DenseTensor>& tensors, int64_t step, int worker,
                        bool windows) {
    std::vector<Chunk> chunks = Plan(tensors);
    if (windows) {
      const std::vector<WindowUse> use = transport_.PrepareWindows(&chunks, worker);
      // Gradients go into each shard's push window before the calls that name them.
      if (!transport_.WriteToPushWindows(chunks, use)) {
        // Nothing was sent yet: the whole push goes in-band, planned afresh (windowed
        // requests are merged per shard and may exceed what an in-band request should be).
        return PushImpl(tensors, step, worker, /*windows=*/false);
      }
    }
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      calls[i].request = DensePushRequest(
          chunks[i], Sender(worker), step == kPerShard ? progress_.pulled(chunks[i].shard) : step,
          sequence, static_cast<int>(i));
      bytes_pushed_.fetch_add(ChunkBytes(chunks[i]), std::memory_order_relaxed);
    }
    stubs_.SendWithRetries(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPush,
                           ReplyMayBeLostAt<v1::PushRequest, v1::PushResponse>);
    ResendLostWindows(tensors, chunks, step, worker, sequence, &calls);
    absl::Status first_error;
    std::vector<bool> shard_ok(num_shards(), true);
    for (size_t i = 0; i < chunks.size(); ++i) {
      // Per-shard pushes are sync steps: a shard that already holds this worker's gradient
      // for the step (a retry after a lost reply or a rejoin) counts it as delivered.
      if (step == kPerShard && calls[i].status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        continue;
      }
      if (!calls[i].status.ok()) {
        ForgetLostWindow(chunks[i].shard, worker, calls[i].status);
        shard_ok[chunks[i].shard] = false;
        if (first_error.ok()) first_error = ShardError(chunks[i].shard, "push", calls[i].status);
      }
    }
    if (step == kPerShard) progress_.RecordPushed(chunks, shard_ok);
    return first_error;
  }

  // Each request carries a chunk's push and the pull of the same slices: through the
  // shard's windows (one request per shard) or in-band (the usual chunks). nullopt, with
  // nothing sent, when the tensors do not pair up or a window write fails.
  std::optional<PushPullResult> PushPullCombined(const std::vector<DenseTensor>& grads,
                                                 const std::vector<DenseTensor>& params, int worker,
                                                 int64_t min_version, bool windows) {
    if (!PushPullPairs(grads, params)) return std::nullopt;
    std::vector<Chunk> chunks = Plan(grads);
    const std::vector<WindowUse> use =
        windows ? transport_.PrepareWindows(&chunks, worker) : std::vector<WindowUse>(num_shards());
    if (!transport_.WriteToPushWindows(chunks, use)) return std::nullopt;
    PushPullCalls calls = MakePushPullCalls(chunks, worker, min_version);
    SendPushPulls(ShardsOf(chunks), &calls);
    PushPullResult result;
    const bool resent = ResendLostWindows(grads, chunks, kPerShard, worker,
                                          calls.empty() ? 0 : calls[0].request.push().id().sequence(),
                                          &calls);
    if (!TakePushOutcome(chunks, calls, worker, &result.push) || resent) {
      result.pull = PullAfterRefusedPush(chunks, calls);
      return result;
    }
    result.pull = TakePushPulled(chunks, calls, use, grads, params);
    return result;
  }

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
    std::vector<Call<v1::PushRequest, v1::PushResponse>> resent(again.size());
    for (size_t i = 0; i < again.size(); ++i) {
      resent[i].request = DensePushRequest(
          again[i], Sender(worker), step == kPerShard ? progress_.pulled(again[i].shard) : step,
          sequence, static_cast<int>(chunks.size() + i));
    }
    stubs_.SendWithRetries(resent, ShardsOf(again), stubs_.RpcOptions(), kPush,
                           ReplyMayBeLostAt<v1::PushRequest, v1::PushResponse>);
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

  // One push-pull request per chunk, its push numbered as one push; counts the gradient
  // bytes as pushed.
  PushPullCalls MakePushPullCalls(const std::vector<Chunk>& chunks, int worker,
                                  int64_t min_version) {
    PushPullCalls calls(chunks.size());
    int64_t grad_bytes = 0;
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      const int64_t step = progress_.pulled(chunks[i].shard);
      *calls[i].request.mutable_push() =
          DensePushRequest(chunks[i], Sender(worker), step, sequence, static_cast<int>(i));
      *calls[i].request.mutable_pull() = DensePullRequest(
          chunks[i], Sender(worker), min_version == kPerShard ? step + 1 : min_version);
      grad_bytes += ChunkBytes(chunks[i]);
    }
    bytes_pushed_.fetch_add(grad_bytes, std::memory_order_relaxed);
    return calls;
  }

  void SendPushPulls(const std::vector<int>& shards, PushPullCalls* calls) {
    // A shard that refuses one chunk's push never reaches the version the other chunks'
    // pulls wait for there: cancel them rather than wait out the deadline.
    SendOptions send = stubs_.RpcOptions();
    send.cancel_siblings = [](const grpc::Status& st) {
      return st.error_code() != grpc::StatusCode::ALREADY_EXISTS &&
             st.error_code() != grpc::StatusCode::UNAVAILABLE &&
             st.error_code() != grpc::StatusCode::CANCELLED;
    };
    // Only a lost connection or a stopping shard is retried: the push is then applied
    // once (its id), and its pull is asked again.
    stubs_.SendWithRetries(*calls, shards, send, kPushPull,
                           [&](const PushPullCalls& c, size_t i) {
                             return c[i].status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                    CancelledByTheShard(c, shards, i, send.cancel_siblings);
                           });
  }

  // Returns whether every call succeeded. Sets *push to the first refusal of the push (a
  // cancelled call only when nothing else failed) and records the push on the shards
  // that took it.
  bool TakePushOutcome(const std::vector<Chunk>& chunks, const PushPullCalls& calls, int worker,
                       absl::Status* push) {
    bool all_ok = true;
    std::vector<bool> shard_ok(num_shards(), true);
    absl::Status cancelled;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const grpc::Status& st = calls[i].status;
      // As in Push: a shard that already holds this step's gradient counts it delivered.
      if (!st.ok()) {
        ForgetLostWindow(chunks[i].shard, worker, st);
        all_ok = false;
        if (st.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
          shard_ok[chunks[i].shard] = false;
          // Report the refusal, not the calls it cancelled.
          absl::Status& slot = st.error_code() == grpc::StatusCode::CANCELLED ? cancelled : *push;
          if (slot.ok()) slot = ShardError(chunks[i].shard, "push", st);
        }
      }
    }
    if (push->ok() && !cancelled.ok()) *push = cancelled;
    progress_.RecordPushed(chunks, shard_ok);
    return all_ok;
  }

  // What a push-pull that not every shard took says of its pull.
  absl::Status PullAfterRefusedPush(const std::vector<Chunk>& chunks,
                                    const PushPullCalls& calls) const {
    absl::Status pull = absl::UnavailableError("not pulled: a shard did not take the push-pull");
    // A version that never came stays the job's failure, as for a plain pull.
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (calls[i].status.ok() &&
          calls[i].response.pull_code() == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED)) {
        pull = ShardError(
            chunks[i].shard, "pull",
            grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, calls[i].response.pull_message()));
      }
    }
    return pull;
  }

  // Takes in the pulls of push-pull calls that all succeeded: the values of each
  // gradient's slices land in the same slices of its parameter tensor.
  absl::StatusOr<int64_t> TakePushPulled(const std::vector<Chunk>& chunks,
                                         const PushPullCalls& calls,
                                         const std::vector<WindowUse>& use,
                                         const std::vector<DenseTensor>& grads,
                                         const std::vector<DenseTensor>& params) {
    PulledParts parts(num_shards());
    for (size_t i = 0; i < chunks.size(); ++i) {
      const v1::PushPullResponse& r = calls[i].response;
      if (r.pull_code() != 0) {
        return ShardError(
            chunks[i].shard, "pull",
            grpc::Status(static_cast<grpc::StatusCode>(r.pull_code()), r.pull_message()));
      }
      absl::Status st = TakePulled(
          chunks[i], r.pull(), use,
          [&](const Piece& p) { return params[p.tensor - grads.data()].data + p.begin; }, &parts,
          &bytes_pulled_);
      if (!st.ok()) return st;
    }
    if (absl::Status st = FinishPulled(use, &parts); !st.ok()) return st;
    return chunks.empty() ? 0 : parts.version;
  }

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
                        const std::string& device, int64_t clock) {
    v1::RegisterWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    request.set_clock(clock);
    request.set_host(host);
    request.set_device(device);
    std::vector<v1::RegisterWorkerResponse> responses;
    std::vector<grpc::Status> statuses;
    absl::Status s = stubs_.OnShards(targets, request, kRegister, /*wait_for_ready=*/true,
                                     &responses, "register", &statuses);
    for (size_t i = 0; i < targets.size(); ++i) {
      if (!statuses[i].ok()) continue;
      const v1::RegisterWorkerResponse& r = responses[i];
      transport_.AcceptOffer(targets[i], r.has_same_host() ? &r.same_host() : nullptr);
      if (r.heartbeat_interval_ms() > 0) {
        progress_.set_heartbeat_interval(targets[i], absl::Milliseconds(r.heartbeat_interval_ms()));
      }
    }
    return s;
  }

  absl::Status SendHeartbeats(const std::vector<int>& targets, int worker,
                              const v1::WorkerStats& stats) {
    v1::HeartbeatRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    *request.mutable_stats() = stats;
    std::vector<v1::HeartbeatResponse> responses;
    return stubs_.OnShards(targets, request, kHeartbeat, /*wait_for_ready=*/false, &responses,
                           "heartbeat");
  }

  // What this client's requests on behalf of `worker` say of their sender, now.
  RequestSender Sender(int worker) const { return {worker, incarnation(), clock()}; }

  const ClientOptions options_;
  ShardStubs stubs_;
  ShardProgress progress_;
  SameHostTransport transport_;
  // One windowed pull and one windowed push at a time (each lays out the whole window).
  absl::Mutex pull_window_mu_;
  absl::Mutex push_window_mu_;
};

}  // namespace

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options) {
  return std::make_unique<GrpcPsClient>(servers, options, nullptr);
}

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options,
                                          ChannelFactory make_channel) {
  return std::make_unique<GrpcPsClient>(servers, options, make_channel);
}

}  // namespace ps
