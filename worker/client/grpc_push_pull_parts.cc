// GrpcPsClient's push-pull in parts (PsClient::StartPushPull) over TCP: each part is
// planned, coded and sent as soon as it is given, its calls run on a thread of their own
// and take in their pulled values there; Finish settles the whole push as one
// (grpc_push_pull.cc's TakePushOutcome) and records the shards' versions.
//
// The parts are chunks of one push: one sequence, numbered on from part to part, so the
// shard's ledger sees one push arriving in pieces, in any order, as a chunked push does.
// A sync table's step completes once every live worker has covered it, table by table,
// so an early part's pull is answered while later parts are still being computed.
#include <algorithm>
#include <deque>
#include <future>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "glog/logging.h"
#include "worker/client/grpc_ps_client_impl.h"

namespace ps {
namespace internal {

class GrpcPsClient::Parts final : public PsClient::PushPullParts {
 public:
  Parts(GrpcPsClient* client, int worker, int64_t min_version)
      : client_(client), worker_(worker), min_version_(min_version) {
    order_.emplace(&client_->push_order_mu_);
    sequence_ = client_->NextPushSequence();
  }

  ~Parts() override { WaitForParts(); }

  void Send(std::vector<DenseTensor> grads, std::vector<DenseTensor> params) override {
    // A caller's mistake, and parts sent before were taken: no way to undo them.
    CHECK(PushPullPairs(grads, params)) << "a push-pull part's gradients and parameters differ";
    Part& part = parts_.emplace_back();
    part.grads = std::move(grads);
    part.params = std::move(params);
    part.chunks = client_->Plan(part.grads);
    part.calls =
        client_->MakePushPullCalls(part.chunks, worker_, min_version_, sequence_, next_part_);
    next_part_ += static_cast<int>(part.chunks.size());
    part.done = std::async(std::launch::async, [this, &part] { Exchange(&part); });
  }

  PushPullResult Finish() override {
    WaitForParts();
    PushPullResult result;
    std::vector<Chunk> chunks;
    PushPullCalls calls;
    for (Part& part : parts_) {
      for (Chunk& c : part.chunks) chunks.push_back(std::move(c));
      for (auto& c : part.calls) calls.push_back(std::move(c));
    }
    if (!client_->TakePushOutcome(chunks, calls, worker_, &result.push)) {
      result.pull = client_->PullAfterRefusedPush(chunks, calls);
      order_.reset();
      return result;
    }
    PulledParts all(client_->num_shards());
    for (const Part& part : parts_) {
      if (!part.pulled.ok()) {
        result.pull = part.pulled;
        order_.reset();
        return result;
      }
      all.version = std::min(all.version, part.taken.version);
      for (size_t s = 0; s < all.shard_version.size(); ++s) {
        all.shard_version[s] = std::min(all.shard_version[s], part.taken.shard_version[s]);
      }
    }
    client_->progress_.RecordPulled(all.shard_version);
    result.pull = chunks.empty() ? 0 : all.version;
    order_.reset();
    return result;
  }

 private:
  struct Part {
    std::vector<DenseTensor> grads, params;
    std::vector<Chunk> chunks;  // pieces point into grads
    PushPullCalls calls;
    // What the calls brought, when every one of them succeeded.
    absl::Status pulled = absl::UnavailableError("not pulled");
    PulledParts taken{0};
    std::future<void> done;
  };

  // On the part's own thread: sends its calls, and where every call came back with its
  // pull, copies the pulled values into the part's params.
  void Exchange(Part* part) {
    client_->SendPushPulls(ShardsOf(part->chunks), &part->calls);
    part->taken = PulledParts(client_->num_shards());
    absl::flat_hash_map<const DenseTensor*, float*> param_of;
    for (size_t i = 0; i < part->grads.size(); ++i) {
      param_of[&part->grads[i]] = part->params[i].data;
    }
    const std::vector<WindowUse> in_band(client_->num_shards());
    for (size_t i = 0; i < part->chunks.size(); ++i) {
      const auto& call = part->calls[i];
      if (!call.status.ok()) return;  // Finish reports the push's outcome
      const v1::PushPullResponse& r = call.response.message;
      if (r.pull_code() != 0) {
        part->pulled = client_->ShardError(
            part->chunks[i].shard, "pull",
            grpc::Status(static_cast<grpc::StatusCode>(r.pull_code()), r.pull_message()));
        return;
      }
      absl::Status st = TakePulled(
          part->chunks[i], r.pull(), &call.response.values, in_band,
          [&](const Piece& p) { return param_of.at(p.tensor) + p.begin; }, &part->taken,
          &client_->bytes_pulled_);
      if (!st.ok()) {
        part->pulled = st;
        return;
      }
    }
    part->pulled = absl::OkStatus();
  }

  void WaitForParts() {
    for (Part& part : parts_) {
      if (part.done.valid()) part.done.get();
    }
  }

  GrpcPsClient* const client_;
  const int worker_;
  const int64_t min_version_;
  std::optional<absl::MutexLock> order_;  // push_order_mu_, until finished
  int64_t sequence_ = 0;
  int next_part_ = 0;
  std::deque<Part> parts_;  // stable: the parts' threads hold pointers
};

std::unique_ptr<PsClient::PushPullParts> GrpcPsClient::StartPushPull(int worker,
                                                                     int64_t min_version) {
  if (worker < 0 || transport_.usable_shards() > 0) {
    LOG_FIRST_N(INFO, 1) << "layer overlap: steps go whole through the same-host windows";
    return PsClient::StartPushPull(worker, min_version);
  }
  return std::make_unique<Parts>(this, worker, min_version);
}

}  // namespace internal
}  // namespace ps
