// WorkerRegistry: the live set of workers as one shard sees it.
//
// Workers register, heartbeat and leave. A worker silent for longer than the timeout is
// dropped by ExpireStale(), so a dead worker never hangs a sync step; it may register
// again later and rejoins at the current version. Time comes from an injected clock so
// tests control it.
//
// A worker index is bound to the incarnation (a random number per worker process) that
// registered it last: heartbeats and leaves from another incarnation are refused
// (FAILED_PRECONDITION, reason WORKER_REPLACED), so neither a stale process nor a
// stranger's LeaveWorker can end a live worker's membership. Incarnation 0 (tools, old
// clients) binds nothing beyond itself.
//
// Thread-safe: all methods may be called concurrently.
#ifndef PS_SERVER_SHARD_WORKER_REGISTRY_H_
#define PS_SERVER_SHARD_WORKER_REGISTRY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"

namespace ps {

class WorkerRegistry {
 public:
  using Clock = std::function<absl::Time()>;

  WorkerRegistry(absl::Duration heartbeat_timeout, Clock clock);

  absl::Duration heartbeat_timeout() const { return timeout_; }

  // Adds (or re-adds) a worker to the live set, bound to `incarnation`; a new
  // incarnation replaces the old one. INVALID_ARGUMENT for a negative index.
  absl::Status Register(int worker, const std::string& host, const std::string& device,
                        uint64_t incarnation = 0);
  // Records a heartbeat. NOT_FOUND (reason UNKNOWN_WORKER) if the worker is not live
  // (never registered, left, or dropped after a timeout): it must register again.
  absl::Status Heartbeat(int worker, const v1::WorkerStats& stats, uint64_t incarnation = 0);
  // Removes a worker from the live set. NOT_FOUND if it was not live.
  absl::Status Leave(int worker, uint64_t incarnation = 0);
  // OK when `worker` is live and `incarnation` registered it; FAILED_PRECONDITION with
  // reason UNKNOWN_WORKER when it is not live (never registered, left, dropped, or known
  // only from a checkpoint), WORKER_REPLACED when another incarnation holds it.
  absl::Status CheckIncarnation(int worker, uint64_t incarnation) const;
  // Drops every worker silent for longer than the timeout; returns their indices.
  std::vector<int> ExpireStale();

  bool IsLive(int worker) const;
  // Indices of the live workers, ascending.
  std::vector<int> LiveWorkers() const;
  int num_live() const;
  // Every worker ever seen, live or not, for status reports.
  std::vector<v1::WorkerStatus> Snapshot() const;
  // Adds workers from a checkpoint as not live, with their last figures, so a restarted
  // worker can find where it was. Workers already known are left as they are.
  void RestoreHistory(const std::vector<v1::WorkerStatus>& workers);
  // The live workers and their incarnations, for a checkpoint.
  std::vector<v1::LiveWorker> LiveIncarnations() const;
  // Takes workers that were live when a checkpoint was written as live again, bound to
  // their incarnations, as if each had just heartbeaten: a planned restart of a shard
  // does not make them register again, and one that died meanwhile is dropped after the
  // timeout as usual. Call after RestoreHistory.
  void RestoreLive(const std::vector<v1::LiveWorker>& workers);

 private:
  struct Entry {
    bool live = false;
    uint64_t incarnation = 0;
    std::string host;
    std::string device;
    absl::Time last_heartbeat;
    v1::WorkerStats stats;
  };

  // WORKER_REPLACED unless `incarnation` holds `e`.
  static absl::Status Mismatch(int worker, const Entry& e, uint64_t incarnation, const char* what);

  const absl::Duration timeout_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  std::map<int, Entry> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_WORKER_REGISTRY_H_
