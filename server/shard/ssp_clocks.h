// SspClocks: each worker's clock (steps completed) as one shard sees it, for tables with
// bounded staleness (SSP). A pull from a worker at clock c on a table with bound s waits
// until the slowest live worker has reached c - s.
//
// A worker that (re)registers having completed `clock` steps joins no further behind
// than the slowest live worker: its effective clock is a per-worker base (set at
// registration) plus its own count.
//
// Thread-safe.
#ifndef PS_SERVER_SHARD_SSP_CLOCKS_H_
#define PS_SERVER_SHARD_SSP_CLOCKS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ps {

class SspClocks {
 public:
  // Places a (re)registered worker's clock; `live` is the live set, ascending.
  void Register(int worker, int64_t clock, const std::vector<int>& live);
  // The live set changed: waiting pulls look again (a departed worker holds none back).
  void SetLive(const std::vector<int>& live);
  // Records that `worker` has completed `clock` steps (never moves a clock back).
  void Advance(int worker, int64_t clock);
  // Records `worker` at `clock`, then waits until the slowest live worker has reached
  // clock - bound. DEADLINE_EXCEEDED names `table`; UNAVAILABLE after Shutdown().
  absl::Status Wait(int worker, int64_t clock, int64_t bound, const std::string& table,
                    absl::Time deadline);
  // Wakes every waiting pull with UNAVAILABLE; later waits fail at once.
  void Shutdown();

 private:
  int64_t MinLiveClock() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::atomic<bool> shutdown_{false};
  mutable absl::Mutex mu_;
  std::map<int, int64_t> base_ ABSL_GUARDED_BY(mu_);
  std::map<int, int64_t> clock_ ABSL_GUARDED_BY(mu_);
  std::vector<int> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SSP_CLOCKS_H_
