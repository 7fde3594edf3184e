// SspClocks: each worker's clock (steps completed) as one shard sees it, for tables with
// bounded staleness (SSP). A pull from a worker at clock c on a table with bound s waits
// until the slowest live worker has reached c - s.
//
// A worker that (re)registers having completed `clock` steps joins no further behind
// than the slowest live worker: its effective clock is a per-worker base (set at
// registration) plus its own count.
//
// Nothing here waits: the store parks pulls (server/shard/pull_waiters.h) and asks
// Reached() again when a clock or the live set changes.
//
// Thread-safe.
#ifndef PS_SERVER_SHARD_SSP_CLOCKS_H_
#define PS_SERVER_SHARD_SSP_CLOCKS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ps {

class SspClocks {
 public:
  // Places a (re)registered worker's clock; `live` is the live set, ascending.
  void Register(int worker, int64_t clock, const std::vector<int>& live);
  // The live set changed (a departed worker holds no pull back).
  void SetLive(const std::vector<int>& live);
  // Records that `worker` has completed `clock` steps (never moves a clock back).
  void Advance(int worker, int64_t clock);
  // Records `worker` at `clock` for a pull with staleness `bound`, and returns the clock
  // the slowest live worker must reach before that pull is answered (<= 0: none).
  int64_t Enter(int worker, int64_t clock, int64_t bound);
  // Whether the slowest live worker has reached `want`.
  bool Reached(int64_t want) const;
  // The DEADLINE_EXCEEDED status of a pull by `worker` that still waits for `want`;
  // names `table`.
  absl::Status Behind(int worker, int64_t want, int64_t bound, const std::string& table) const;

 private:
  int64_t MinLiveClock() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<int, int64_t> base_ ABSL_GUARDED_BY(mu_);
  std::map<int, int64_t> clock_ ABSL_GUARDED_BY(mu_);
  std::vector<int> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SSP_CLOCKS_H_
