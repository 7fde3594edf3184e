// Trainer: one data-parallel replica's training loop.
//
// Each step pulls the parameters (sync: waiting for the version of its step), computes
// the gradient of one mini-batch of its data shard, and pushes it. A background thread
// heartbeats to every shard with the worker's figures. Progress lines go to the log;
// worker 0 evaluates test accuracy after every epoch.
//
// Run() composes the units beside it: BatchSchedule (batching.h) for the mini-batches,
// GradientBuffer (gradient_buffer.h) for when to push, StepExchange (step_exchange.h)
// for the pulls and pushes of each consistency mode, RecoveryFor (recovery.h) for what
// a failed call means, and membership.h and progress.h for joining, heartbeats, leaving
// and progress lines.
//
// Thread safety: Run() is called once, from one thread.
#ifndef PS_WORKER_TRAIN_TRAINER_H_
#define PS_WORKER_TRAIN_TRAINER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kernels/backend.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/data/mnist.h"
#include "worker/model/mlp.h"

namespace ps {

struct TrainerOptions {
  int worker_index = 0;
  int num_workers = 1;
  int batch_size = 64;
  int epochs = 5;
  // Stop after this many steps in total (0: no limit), for tests and smoke runs.
  int64_t max_steps = 0;
  v1::ConsistencyMode mode = v1::SYNC;
  uint64_t seed = 1;
  int log_every = 100;
  bool evaluate_each_epoch = true;
  // Buffered gradients: accumulate local steps and push once when any limit is reached:
  // this many steps, this many bytes of gradient that would otherwise have been pushed,
  // or this long since the last push (0 = no such limit). Parameters are pulled once per
  // push. The buffer holds the sum of the steps' gradients, or their mean with
  // buffer_mean (the server then sees one larger batch).
  int buffer_steps = 1;
  int64_t buffer_bytes = 0;
  absl::Duration buffer_time = absl::ZeroDuration();
  bool buffer_mean = false;
  // Skip the steps this worker index had completed before (as the servers recorded from
  // its heartbeats), so a restarted worker resumes where its data shard left off.
  bool resume = true;
  // Async/SSP: pull the next step's parameters and push the last gradient in the
  // background while a step computes. Off by default: on a 2-core machine running
  // servers and workers it measured slower (9.2k vs 10.1k samples/s, docs/benchmarks.md)
  // and the extra step of staleness cost accuracy.
  bool overlap = false;
  // Sync/async: push each layer's gradient, with the pull of its next values, as soon
  // as backward has produced it, while backward computes the layers below (steps that
  // push and are not the last of an epoch; not with buffered steps, SSP or `overlap`).
  // Over TCP only: same-host windows carry the step in one call per shard.
  bool layer_overlap = false;
  // How long a pull keeps retrying while a shard is down or restarting.
  absl::Duration retry_timeout = absl::Minutes(2);
  // Sync: steps refused in a row that end the job (0: no limit; StepExchangeOptions).
  int max_refused_steps = 20;
  // How long to wait at start for all num_workers to register.
  absl::Duration start_timeout = absl::Seconds(120);
};

struct TrainResult {
  int64_t resumed_steps = 0;  // steps skipped because a previous run had done them
  int64_t steps = 0;   // local steps (mini-batches computed) by this run
  int64_t pushes = 0;  // gradient pushes (steps / buffer size)
  int64_t layered_pushes = 0;  // of those, sent layer by layer (layer_overlap)
  int64_t samples = 0;
  double seconds = 0;
  double first_loss = 0;  // mean loss over the first log window
  double last_loss = 0;   // mean loss over the last log window
  double test_accuracy = -1;  // after the last epoch; -1 if not evaluated
};

class Trainer {
 public:
  // All pointers must outlive the trainer. `test` may be null (no evaluation).
  Trainer(const TrainerOptions& options, PsClient* client, Mlp* model, const Dataset* train,
          const Dataset* test, const std::string& device_name);

  // Registers, trains every epoch of this worker's shard, and leaves.
  absl::StatusOr<TrainResult> Run();

  // Pulls the current parameters and returns test accuracy.
  absl::StatusOr<double> Evaluate(int64_t min_version);

 private:
  // One Run()'s state from step to step: its schedule, exchange, gradient buffer and
  // progress, and the figures so far (defined in trainer.cc).
  struct Loop;

  // The steps a restarted worker skips: those this worker index had completed, as the
  // servers recorded them from its heartbeats (0 without options_.resume).
  absl::StatusOr<int64_t> ResumePoint();
  // The largest clock any shard recorded for this worker index (0 if none).
  absl::StatusOr<int64_t> LastClock();
  // Trains epoch `epoch` (from 0); false once max_steps is reached.
  absl::StatusOr<bool> RunEpoch(int epoch, Loop* loop);
  // One mini-batch: parameters up to date, forward and backward, buffer, progress.
  absl::Status RunStep(int epoch, int64_t step, Loop* loop);
  // Pushes the buffered gradient and empties the buffer.
  absl::Status Flush(bool last_of_epoch, Loop* loop);
  // Worker 0's test accuracy after an epoch, where asked for.
  absl::Status EvaluateAfterEpoch(int epoch, Loop* loop);
  // Whether max_steps is reached `ahead` steps from now.
  bool OutOfSteps(const Loop& loop, int64_t ahead = 0) const;

  const TrainerOptions options_;
  PsClient* const client_;
  Mlp* const model_;
  const Dataset* const train_;
  const Dataset* const test_;
  const std::string device_name_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAINER_H_
