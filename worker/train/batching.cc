#include "worker/train/batching.h"

#include <algorithm>

#include "worker/train/membership.h"

namespace ps {

BatchSchedule::BatchSchedule(int64_t num_examples, int worker, int num_workers, int batch_size,
                             uint64_t seed)
    : shard_(ShardIndices(num_examples, worker, num_workers, seed)),
      batch_size_(batch_size),
      steps_per_epoch_((static_cast<int64_t>(shard_.size()) + batch_size - 1) / batch_size),
      // Not the shard's seed: each worker shuffles its own shard its own way.
      rng_(seed * 7919 + worker) {}

void BatchSchedule::Shuffle() { std::shuffle(shard_.begin(), shard_.end(), rng_); }

BatchSchedule::Batch BatchSchedule::At(int64_t step) const {
  const int64_t first = step * batch_size_;
  Batch b;
  b.examples = shard_.data() + first;
  b.size = static_cast<int>(std::min<int64_t>(batch_size_, shard_size() - first));
  return b;
}

void GatherRows(const Dataset& data, BatchSchedule::Batch batch, float* x, int32_t* y) {
  const int dim = data.dim;
  for (int i = 0; i < batch.size; ++i) {
    const int64_t idx = batch.examples[i];
    std::copy_n(data.features.data() + idx * dim, dim, x + static_cast<int64_t>(i) * dim);
    y[i] = data.labels[idx];
  }
}

}  // namespace ps
