// What every kind of worker does around its training loop: find its data shard, wait
// for the other workers at start, and heartbeat its figures to every shard.
//
// Thread safety: HeartbeatThread's methods may be called from any thread; the free
// functions are pure or use only the client (which is thread-safe).
#ifndef PS_WORKER_TRAIN_MEMBERSHIP_H_
#define PS_WORKER_TRAIN_MEMBERSHIP_H_

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
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

// The figures of a progress line: mean loss and throughput over the steps since the
// last line. Keeps the first and last means for the worker's final summary.
class ProgressWindow {
 public:
  struct Figures {
    double mean_loss = 0;
    double samples_per_sec = 0;
  };

  // Adds one step: its summed loss over `samples` examples.
  void Add(double loss_sum, int64_t samples) {
    loss_sum_ += loss_sum;
    samples_ += samples;
  }
  // Returns the window's figures and starts the next window.
  Figures Close();
  double first_loss() const { return first_loss_; }
  double last_loss() const { return last_loss_; }

 private:
  double loss_sum_ = 0;
  int64_t samples_ = 0;
  absl::Time start_ = absl::Now();
  bool closed_any_ = false;
  double first_loss_ = 0;
  double last_loss_ = 0;
};

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
