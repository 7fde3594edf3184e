// What every kind of worker does around its training loop: find its data shard, join
// the job (register, wait for the other workers), heartbeat its figures to every shard,
// rejoin after a shard dropped or forgot it, and leave. What each failure of these calls
// means is in recovery.h.
//
// Thread safety: HeartbeatThread's methods may be called from any thread; the free
// functions are pure or use only the client (which is thread-safe).
#ifndef PS_WORKER_TRAIN_MEMBERSHIP_H_
#define PS_WORKER_TRAIN_MEMBERSHIP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"

namespace ps {

// This machine's host name, for registration ("unknown" if it cannot be read).
std::string HostName();

// Indices of worker `worker`'s examples out of `n`: a contiguous block of a permutation
// every worker draws alike from `seed`, so shards are disjoint, cover the data, and
// differ in size by at most one.
std::vector<int64_t> ShardIndices(int64_t n, int worker, int workers, uint64_t seed);

// Blocks until every shard sees `num_workers` live workers or training has already
// started (a rejoining worker does not wait); DEADLINE_EXCEEDED after `timeout`.
absl::Status WaitForWorkers(PsClient* client, int num_workers, absl::Duration timeout);

class HeartbeatThread;

// Registers with every shard, starts the heartbeats at once (a worker waiting for its
// peers must not be dropped meanwhile), and waits for the job's workers as
// WaitForWorkers does. Any failure is returned: the job cannot start.
absl::StatusOr<std::unique_ptr<HeartbeatThread>> JoinJob(PsClient* client, int worker,
                                                         const std::string& device,
                                                         int num_workers,
                                                         absl::Duration start_timeout);

// Registers again with every shard, at each shard's current version (the client forgets
// its per-shard versions first): after this worker was dropped, or a shard restarted
// behind it. The clock sent is the client's.
absl::Status Rejoin(PsClient* client, int worker, const std::string& device);

// Stops the heartbeats, after sending the last figures now if `send_last_figures`, and
// leaves every shard. Failures are logged only: the servers drop a silent worker anyway.
void LeaveJob(PsClient* client, int worker, HeartbeatThread* heartbeat,
              bool send_last_figures);

// Heartbeats each shard, at the interval that shard asked for at registration, with the
// worker's latest figures until stopped (at the latest when destroyed), registering again
// with a shard that has forgotten the worker. Each shard has a thread of its own, so a
// shard that does not answer delays the heartbeats of no other. Start it as soon as the
// worker has registered (also while it waits for its peers).
class HeartbeatThread {
 public:
  HeartbeatThread(PsClient* client, int worker, const std::string& device);
  ~HeartbeatThread();

  void SetProgress(int64_t clock, int epoch);
  void SetFigures(double loss, double samples_per_sec);
  // Sends the current figures to every shard now (e.g. the last ones before leaving).
  absl::Status SendNow();
  void Stop();

 private:
  v1::WorkerStats Stats();
  // Heartbeats `shard` once; registers again if it has forgotten the worker.
  absl::Status Beat(int shard);
  void Loop(int shard);

  PsClient* const client_;
  const int worker_;
  const std::string device_;
  absl::Mutex mu_;
  v1::WorkerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::vector<std::thread> threads_;  // one per shard
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_MEMBERSHIP_H_
