// Per-shard versions and heartbeat intervals of one client.
#include "worker/client/shard_progress.h"

#include <algorithm>
#include <limits>

namespace ps {

ShardProgress::ShardProgress(int num_shards)
    : next_(num_shards, 0),
      pulled_(num_shards, 0),
      heartbeat_interval_(num_shards, absl::Seconds(1)) {}

int64_t ShardProgress::next(int shard) const {
  absl::MutexLock lock(&mu_);
  return next_[shard];
}

int64_t ShardProgress::pulled(int shard) const {
  absl::MutexLock lock(&mu_);
  return pulled_[shard];
}

void ShardProgress::RecordPulled(const std::vector<int64_t>& shard_version) {
  absl::MutexLock lock(&mu_);
  for (size_t s = 0; s < shard_version.size(); ++s) {
    if (shard_version[s] != std::numeric_limits<int64_t>::max()) pulled_[s] = shard_version[s];
  }
}

void ShardProgress::RecordPushed(const std::vector<Chunk>& chunks,
                                 const std::vector<bool>& shard_ok) {
  absl::MutexLock lock(&mu_);
  for (const Chunk& c : chunks) {
    if (shard_ok[c.shard]) next_[c.shard] = pulled_[c.shard] + 1;
  }
}

void ShardProgress::Reset() {
  absl::MutexLock lock(&mu_);
  std::fill(next_.begin(), next_.end(), 0);
  std::fill(pulled_.begin(), pulled_.end(), 0);
}

absl::Duration ShardProgress::heartbeat_interval(int shard) const {
  absl::MutexLock lock(&mu_);
  return heartbeat_interval_[shard];
}

void ShardProgress::set_heartbeat_interval(int shard, absl::Duration interval) {
  absl::MutexLock lock(&mu_);
  heartbeat_interval_[shard] = interval;
}

}  // namespace ps
