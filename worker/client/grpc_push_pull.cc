// GrpcPsClient's push-pull: a step's push and the next step's pull in one call per chunk
// (per shard through same-host windows), and what each shard's answer means for both.
#include <optional>
#include <utility>

#include "worker/client/grpc_ps_client_impl.h"

namespace ps {
namespace internal {

GrpcPsClient::PushPullResult GrpcPsClient::PushPull(const std::vector<DenseTensor>& grads,
                                                    const std::vector<DenseTensor>& params,
                                                    int worker, int64_t min_version) {
  std::optional<PushPullResult> r;
  if (worker >= 0) {
    // Released before the fallback below, whose Push takes it again.
    absl::MutexLock one_at_a_time(&push_order_mu_);
    if (push_window_mu_.TryLock()) {
      if (pull_window_mu_.TryLock()) {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/true);
        pull_window_mu_.Unlock();
      } else {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
      }
      push_window_mu_.Unlock();
    } else {
      r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
    }
  }
  if (r.has_value()) return *std::move(r);
  return PsClient::PushPull(grads, params, worker, min_version);
}

std::optional<GrpcPsClient::PushPullResult> GrpcPsClient::PushPullCombined(
    const std::vector<DenseTensor>& grads, const std::vector<DenseTensor>& params, int worker,
    int64_t min_version, bool windows) {
  if (!PushPullPairs(grads, params)) return std::nullopt;
  std::vector<Chunk> chunks = Plan(grads);
  const std::vector<WindowUse> use =
      windows ? transport_.PrepareWindows(&chunks, worker) : std::vector<WindowUse>(num_shards());
  if (!transport_.WriteToPushWindows(chunks, use)) return std::nullopt;
  PushPullCalls calls = MakePushPullCalls(chunks, worker, min_version, NextPushSequence());
  SendPushPulls(ShardsOf(chunks), &calls);
  PushPullResult result;
  const bool resent = ResendLostWindows(
      grads, chunks, kPerShard, worker,
      calls.empty() ? 0 : calls[0].request.message.push().id().sequence(), &calls);
  if (!TakePushOutcome(chunks, calls, worker, &result.push) || resent) {
    result.pull = PullAfterRefusedPush(chunks, calls);
    return result;
  }
  result.pull = TakePushPulled(chunks, calls, use, grads, params);
  return result;
}

PushPullCalls GrpcPsClient::MakePushPullCalls(const std::vector<Chunk>& chunks, int worker,
                                              int64_t min_version, int64_t sequence,
                                              int first_part) {
  PushPullCalls calls(chunks.size());
  int64_t grad_bytes = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const int64_t step = progress_.pulled(chunks[i].shard);
    wire::PushRequest push = WireDensePushRequest(chunks[i], Sender(worker), step, sequence,
                                                  first_part + static_cast<int>(i), &coder_);
    grad_bytes += PushedBytes(chunks[i], push.values);
    wire::PushPullRequest& request = calls[i].request;
    *request.message.mutable_push() = std::move(push.message);
    request.values = std::move(push.values);
    request.coded = std::move(push.coded);
    *request.message.mutable_pull() =
        DensePullRequest(chunks[i], Sender(worker),
                         min_version == kPerShard ? step + 1 : min_version, &options_.wire_formats);
  }
  bytes_pushed_.fetch_add(grad_bytes, std::memory_order_relaxed);
  return calls;
}

void GrpcPsClient::SendPushPulls(const std::vector<int>& shards, PushPullCalls* calls) {
  // A shard that refuses one chunk's push never reaches the version the other chunks'
  // pulls wait for there: cancel them rather than wait out the deadline.
  SendOptions send = stubs_.RpcOptions();
  send.max_in_flight_per_shard = 0;  // every chunk's push before any chunk's pull is answered
  send.cancel_siblings = [](const grpc::Status& st) {
    return st.error_code() != grpc::StatusCode::ALREADY_EXISTS &&
           st.error_code() != grpc::StatusCode::UNAVAILABLE &&
           st.error_code() != grpc::StatusCode::CANCELLED;
  };
  // Only a lost connection or a stopping shard is retried: the push is then applied
  // once (its id), and its pull is asked again.
  stubs_.SendWithRetries(*calls, shards, send, kWirePushPull,
                         [&](const PushPullCalls& c, size_t i) {
                           return c[i].status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                  CancelledByTheShard(c, shards, i, send.cancel_siblings);
                         });
}

bool GrpcPsClient::TakePushOutcome(const std::vector<Chunk>& chunks, const PushPullCalls& calls,
                                   int worker, absl::Status* push) {
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

absl::Status GrpcPsClient::PullAfterRefusedPush(const std::vector<Chunk>& chunks,
                                                const PushPullCalls& calls) const {
  absl::Status pull = absl::UnavailableError("not pulled: a shard did not take the push-pull");
  // A version that never came stays the job's failure, as for a plain pull.
  for (size_t i = 0; i < chunks.size(); ++i) {
    const v1::PushPullResponse& r = calls[i].response.message;
    if (calls[i].status.ok() &&
        r.pull_code() == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED)) {
      pull = ShardError(chunks[i].shard, "pull",
                        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, r.pull_message()));
    }
  }
  return pull;
}

absl::StatusOr<int64_t> GrpcPsClient::TakePushPulled(const std::vector<Chunk>& chunks,
                                                     const PushPullCalls& calls,
                                                     const std::vector<WindowUse>& use,
                                                     const std::vector<DenseTensor>& grads,
                                                     const std::vector<DenseTensor>& params) {
  PulledParts parts(num_shards());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const v1::PushPullResponse& r = calls[i].response.message;
    if (r.pull_code() != 0) {
      return ShardError(
          chunks[i].shard, "pull",
          grpc::Status(static_cast<grpc::StatusCode>(r.pull_code()), r.pull_message()));
    }
    absl::Status st = TakePulled(
        chunks[i], r.pull(), &calls[i].response.values, use,
        [&](const Piece& p) { return params[p.tensor - grads.data()].data + p.begin; }, &parts,
        &bytes_pulled_);
    if (!st.ok()) return st;
  }
  if (absl::Status st = FinishPulled(use, &parts); !st.ok()) return st;
  return chunks.empty() ? 0 : parts.version;
}

}  // namespace internal
}  // namespace ps
