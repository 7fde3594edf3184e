// StepExchange: the dense loop's traffic with the servers at each step boundary. It
// brings the model's parameters up to date before a step (a pull) and sends the
// buffered gradient after one (a push), choosing the calls by consistency mode:
//
// - SYNC pulls wait, on each shard, for the version after this worker's last push there,
//   and pushes name the version each shard's last pull returned (PsClient::kPerShard),
//   so a shard restored from an older checkpoint is followed at its own version.
// - Within an epoch, SYNC and ASYNC send a push and the next step's pull as one PushPull;
//   SSP keeps them apart (its pull must carry the clock this push completes), and so
//   does the last push of an epoch (nothing to pull after it).
// - With overlap (ASYNC/SSP only), the next parameters are pulled and the last gradient
//   pushed in the background while a step computes: one step more staleness, none of
//   the waiting. The push of one step is finished before the next is sent, so gradients
//   leave in order.
// - With layer overlap (SYNC/ASYNC, a step that pushes and is not the last of an epoch),
//   backward hands each layer over as soon as its gradient is complete: its push and its
//   next values' pull go out at once (PsClient::StartPushPull) while backward computes
//   the layers below, and Push waits for them all.
//
// What a failed call leads to (rejoin and retry, drop the gradient, fail) is decided by
// RecoveryFor (recovery.h); the exchange carries it out. Its clock for SSP is the
// number of accepted pushes, set on the client after each.
//
// Thread safety: one thread at a time. Background transfers run on threads of their
// own, over buffers the exchange owns; destroying it waits for them.
#ifndef PS_WORKER_TRAIN_STEP_EXCHANGE_H_
#define PS_WORKER_TRAIN_STEP_EXCHANGE_H_

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/model/mlp.h"

namespace ps {

struct StepExchangeOptions {
  int worker = 0;
  std::string device;  // sent when registering again
  v1::ConsistencyMode mode = v1::SYNC;
  // Background pulls and pushes; ignored for SYNC (TrainerOptions::overlap).
  bool overlap = false;
  // Push-pulls sent layer by layer during backward; ignored for SSP and with `overlap`
  // (TrainerOptions::layer_overlap).
  bool layer_overlap = false;
  // How long a pull keeps rejoining and retrying while a shard is down or restarting.
  absl::Duration retry_timeout = absl::Minutes(2);
  // Sync: this many steps refused in a row (each rejoined and pulled again) end the job:
  // a shard whose tables cannot take the worker's steps would otherwise have it spin.
  // 0: no limit (backup workers, whose late steps are refused by design).
  int max_refused_steps = 20;
};

class StepExchange {
 public:
  // `client` and `model` must outlive the exchange.
  StepExchange(const StepExchangeOptions& options, PsClient* client, Mlp* model);

  StepExchange(const StepExchange&) = delete;
  StepExchange& operator=(const StepExchange&) = delete;

  // Makes the model's parameters this step's, where a push since the last pull made
  // them stale: takes the background pull's values if there are any, else pulls now
  // (rejoining while a shard is down, up to retry_timeout). With overlap and
  // `prefetch_next` (this step is the last of a push, not of an epoch) the next step's
  // pull starts in the background.
  absl::Status PrepareStep(bool prefetch_next);

  // Layer overlap for a step that will push (not accumulating) and is not the last of
  // its epoch: returns the callback to give Mlp::TrainStep, which sends each layer's
  // gradient as backward completes it; null when layer overlap is off. Push then
  // finishes what was sent (the host gradients are already there: no DownloadGrads).
  // A step that fails before its Push leaves the parts sent to be waited for when the
  // exchange is destroyed (in sync, until the other workers complete those tables).
  Mlp::LayerReady StartLayers();
  bool sending_layers() const { return parts_ != nullptr; }

  // What became of a push.
  struct PushReport {
    bool accepted = false;  // counted, and the clock advanced; else the gradient is gone
    absl::Time sent;        // when the push call returned (before any rejoin)
  };
  // Pushes the model's host_grads() (already downloaded). `last_of_epoch`: no pull
  // follows within the epoch. An error is the job's failure.
  absl::StatusOr<PushReport> Push(bool last_of_epoch);

  // Waits for the background transfers (before evaluating, or at an epoch's end): a
  // prefetched pull is discarded and the next step pulls again.
  absl::Status Drain();

  // Accepted pushes so far, and how many of them went layer by layer.
  int64_t pushes() const { return pushes_; }
  int64_t layered_pushes() const { return layered_pushes_; }
  // The version the model's parameters came from (the smallest over the shards).
  int64_t pulled_version() const { return pulled_version_; }

 private:
  // The min_version of a step's pull: per shard for SYNC, the newest values otherwise.
  int64_t min_version() const { return sync_ ? PsClient::kPerShard : 0; }
  // Uploads parameters of `version` now in host_params(); no pull is due after.
  absl::Status Pulled(int64_t version);
  absl::Status TakePrefetched();
  absl::Status PullNow();
  absl::StatusOr<PushReport> PushInBackground();
  // Push-pull's outcome (sent whole, or in parts by layer) as Settle takes it.
  absl::StatusOr<std::optional<int64_t>> PulledWithPush(const PsClient::PushPullResult& pp);
  // Waits for the background push, dropping its gradient where RecoveryFor says so.
  absl::Status FinishBackgroundPush();
  // Acts on RecoveryFor(kPush) for `pushed`; `pulled_next`: parameters that came with it.
  absl::Status Settle(const absl::Status& pushed, std::optional<int64_t> pulled_next,
                      PushReport* report);

  const StepExchangeOptions options_;
  const bool sync_;
  const bool overlap_;
  const bool layer_overlap_;
  PsClient* const client_;
  Mlp* const model_;
  bool need_pull_ = true;
  int64_t pulled_version_ = 0;
  int64_t pushes_ = 0;
  int64_t layered_pushes_ = 0;
  int refused_in_a_row_ = 0;  // sync steps refused since the last accepted one
  // Overlap: copies of the parameters and gradients that background calls fill and
  // send, so the model's own buffers are free for the step computing meanwhile.
  std::vector<float> staging_;
  std::vector<DenseTensor> staged_params_, staged_grads_;
  // Declared after the buffers they use, so they are waited for first.
  std::future<absl::StatusOr<int64_t>> prefetch_;
  std::future<absl::Status> pending_push_;
  // Layer overlap: this step's push-pull being sent, and the first error in handing a
  // layer over.
  std::unique_ptr<PsClient::PushPullParts> parts_;
  absl::Status layer_error_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_STEP_EXCHANGE_H_
