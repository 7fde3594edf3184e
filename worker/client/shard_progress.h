// What a client keeps per shard between calls: the version its kPerShard pulls wait for
// there (the one after its last successful push), the version its last pull got from
// there (which its kPerShard pushes name as their step), and the heartbeat interval the
// shard asked for at registration.
//
// Thread-safe: every method takes the one mutex; none blocks otherwise.
#ifndef PS_WORKER_CLIENT_SHARD_PROGRESS_H_
#define PS_WORKER_CLIENT_SHARD_PROGRESS_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/client/request_plan.h"

namespace ps {

class ShardProgress {
 public:
  // Versions start at 0, heartbeat intervals at 1 s.
  explicit ShardProgress(int num_shards);

  ShardProgress(const ShardProgress&) = delete;
  ShardProgress& operator=(const ShardProgress&) = delete;

  // The version a kPerShard pull waits for on `shard`.
  int64_t next(int shard) const;
  // The version the last pull got from `shard`.
  int64_t pulled(int shard) const;
  // Records, for each shard whose entry is not INT64_MAX, the version a pull got there.
  void RecordPulled(const std::vector<int64_t>& shard_version);
  // After a push: on each shard that one of `chunks` went to and whose `shard_ok` entry
  // is true, the next kPerShard pull waits for the version after the one last pulled.
  void RecordPushed(const std::vector<Chunk>& chunks, const std::vector<bool>& shard_ok);
  // Sets every shard's versions back to 0 (heartbeat intervals stay).
  void Reset();

  absl::Duration heartbeat_interval(int shard) const;
  void set_heartbeat_interval(int shard, absl::Duration interval);

 private:
  mutable absl::Mutex mu_;
  std::vector<int64_t> next_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> pulled_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> heartbeat_interval_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_SHARD_PROGRESS_H_
