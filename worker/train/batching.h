// Which examples each step of an epoch trains on: this worker's shard of the training
// set (ShardIndices in membership.h), reshuffled at the start of every epoch from a
// generator seeded by the job's seed and the worker index, and cut in order into
// mini-batches of `batch_size` (the last of an epoch may be shorter). Shared by the
// dense and the sparse trainer, so both visit their data alike.
//
// Thread safety: one thread at a time; GatherRows is pure.
#ifndef PS_WORKER_TRAIN_BATCHING_H_
#define PS_WORKER_TRAIN_BATCHING_H_

#include <cstdint>
#include <random>
#include <vector>

#include "worker/data/mnist.h"

namespace ps {

class BatchSchedule {
 public:
  // The examples out of `num_examples` that are worker `worker`'s of `num_workers`.
  // `batch_size` must be positive.
  BatchSchedule(int64_t num_examples, int worker, int num_workers, int batch_size, uint64_t seed);

  // Examples `examples[0..size)` of the data set.
  struct Batch {
    const int64_t* examples = nullptr;
    int size = 0;
  };

  int64_t shard_size() const { return static_cast<int64_t>(shard_.size()); }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Puts the shard in the next epoch's order.
  void Shuffle();
  // The mini-batch of step `step` (0 <= step < steps_per_epoch()) of this epoch.
  Batch At(int64_t step) const;

 private:
  std::vector<int64_t> shard_;
  const int batch_size_;
  const int64_t steps_per_epoch_;
  std::mt19937_64 rng_;
};

// Copies the features and labels of `batch`'s examples of `data` into the first rows
// of `x` (batch.size * data.dim floats) and `y` (batch.size labels).
void GatherRows(const Dataset& data, BatchSchedule::Batch batch, float* x, int32_t* y);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_BATCHING_H_
