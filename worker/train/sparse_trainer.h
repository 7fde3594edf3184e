// SparseTrainer: one data-parallel replica's training loop for a SparseModel (logistic
// regression or the CTR model) over LibSVM examples.
//
// Each worker trains on its own shard (a contiguous block of a fixed permutation shared
// by all workers) for `epochs` passes in shuffled mini-batches; every step pulls the rows
// the batch touches, computes the gradient and pushes it (ASYNC, or SSP where the
// servers hold a worker back once it is more than the tables' staleness bound ahead of
// the slowest; the worker's clock is the number of steps it has completed). A background
// thread heartbeats with the worker's figures. At the end worker 0 waits for the others
// to leave and reports the held-out log-loss of the final model.
//
// Run() shares its units with the dense Trainer: BatchSchedule (batching.h), joining,
// heartbeats and leaving (membership.h), and progress lines (progress.h). A failed step
// fails the job: this loop rejoins and retries nothing itself (recovery.h; the client
// still resends pushes whose replies were lost).
//
// Thread safety: Run() is called once, from one thread.
#ifndef PS_WORKER_TRAIN_SPARSE_TRAINER_H_
#define PS_WORKER_TRAIN_SPARSE_TRAINER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/data/libsvm.h"
#include "worker/model/sparse_model.h"

namespace ps {

struct SparseTrainerOptions {
  int worker_index = 0;
  int num_workers = 1;
  int batch_size = 256;
  int epochs = 3;
  // Stop after this many steps in total (0: no limit), for tests and smoke runs.
  int64_t max_steps = 0;
  v1::ConsistencyMode mode = v1::ASYNC;  // ASYNC or SSP
  uint64_t seed = 1;
  int log_every = 100;
  // Examples per pull when evaluating.
  int eval_batch = 4096;
  // How long to wait at start for all num_workers to register, and at the end (worker 0)
  // for the others to leave before the final evaluation.
  absl::Duration start_timeout = absl::Seconds(120);
  absl::Duration finish_timeout = absl::Seconds(300);
};

struct SparseTrainResult {
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;
  double first_loss = 0;     // mean log-loss over the first log window
  double last_loss = 0;      // mean log-loss over the last log window
  double test_logloss = -1;  // worker 0, final model; -1 if not evaluated
};

class BatchSchedule;
class HeartbeatThread;

class SparseTrainer {
 public:
  // All pointers must outlive the trainer. `test` may be null (no evaluation).
  SparseTrainer(const SparseTrainerOptions& options, PsClient* client, SparseModel* model,
                const SparseDataset* train, const SparseDataset* test,
                const std::string& device_name);

  // Registers, trains every epoch of this worker's shard, leaves, and (worker 0)
  // evaluates the final model.
  absl::StatusOr<SparseTrainResult> Run();

  // Pulls the current parameters and returns the mean log-loss on the test set.
  absl::StatusOr<double> Evaluate();

 private:
  // Trains every epoch of `schedule`, sending progress with `heartbeat`.
  absl::Status Train(BatchSchedule* schedule, HeartbeatThread* heartbeat,
                     SparseTrainResult* result);
  // Worker 0, after leaving: waits for the others, then the held-out log-loss.
  absl::Status EvaluateFinalModel(SparseTrainResult* result);
  // Blocks until no shard sees a live worker (all have left or been dropped).
  absl::Status WaitForOthersToLeave();

  const SparseTrainerOptions options_;
  PsClient* const client_;
  SparseModel* const model_;
  const SparseDataset* const train_;
  const SparseDataset* const test_;
  const std::string device_name_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_SPARSE_TRAINER_H_
