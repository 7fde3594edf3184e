#include "server/shard/ssp_clocks.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace ps {

int64_t SspClocks::MinLiveClock() const {
  int64_t min_clock = std::numeric_limits<int64_t>::max();
  for (int w : live_) {
    auto it = clock_.find(w);
    min_clock = std::min(min_clock, it == clock_.end() ? 0 : it->second);
  }
  return min_clock;  // no live workers: nobody to wait for
}

void SspClocks::Register(int worker, int64_t clock, const std::vector<int>& live) {
  absl::MutexLock lock(&mu_);
  live_ = live;
  int64_t slowest = -1;
  for (int w : live_) {
    if (w == worker) continue;
    auto it = clock_.find(w);
    const int64_t c = it == clock_.end() ? 0 : it->second;
    slowest = slowest < 0 ? c : std::min(slowest, c);
  }
  const int64_t base = std::max<int64_t>(0, slowest - clock);
  base_[worker] = base;
  clock_[worker] = base + clock;
}

void SspClocks::SetLive(const std::vector<int>& live) {
  absl::MutexLock lock(&mu_);  // releasing it re-evaluates waiting pulls
  live_ = live;
}

void SspClocks::Advance(int worker, int64_t clock) {
  absl::MutexLock lock(&mu_);
  int64_t& c = clock_[worker];
  c = std::max(c, base_[worker] + clock);
}

absl::Status SspClocks::Wait(int worker, int64_t clock, int64_t bound, const std::string& table,
                             absl::Time deadline) {
  int64_t want = 0;
  {
    absl::MutexLock lock(&mu_);
    const int64_t effective = base_[worker] + clock;
    int64_t& c = clock_[worker];
    c = std::max(c, effective);
    want = effective - bound;
  }
  if (want <= 0) return absl::OkStatus();
  struct Ready {
    const SspClocks* clocks;
    int64_t want;
    bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return clocks->shutdown_.load() || clocks->MinLiveClock() >= want;
    }
  } ready{this, want};
  const bool ok = mu_.LockWhenWithDeadline(absl::Condition(&ready), deadline);
  const int64_t slowest = MinLiveClock();
  mu_.Unlock();
  if (shutdown_.load()) return absl::UnavailableError("shard is shutting down");
  if (!ok) {
    return absl::DeadlineExceededError(absl::StrCat(
        "table '", table, "': worker ", worker, " at clock ", want + bound,
        " waits for the slowest live worker to reach ", want, " (staleness bound ", bound,
        "); slowest is at ", slowest));
  }
  return absl::OkStatus();
}

void SspClocks::Shutdown() {
  shutdown_.store(true);
  absl::MutexLock lock(&mu_);  // releasing it wakes waiting pulls
}

}  // namespace ps
