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
  absl::MutexLock lock(&mu_);
  live_ = live;
}

void SspClocks::Advance(int worker, int64_t clock) {
  absl::MutexLock lock(&mu_);
  int64_t& c = clock_[worker];
  c = std::max(c, base_[worker] + clock);
}

int64_t SspClocks::Enter(int worker, int64_t clock, int64_t bound) {
  absl::MutexLock lock(&mu_);
  const int64_t effective = base_[worker] + clock;
  int64_t& c = clock_[worker];
  c = std::max(c, effective);
  return effective - bound;
}

bool SspClocks::Reached(int64_t want) const {
  absl::MutexLock lock(&mu_);
  return MinLiveClock() >= want;
}

absl::Status SspClocks::Behind(int worker, int64_t want, int64_t bound,
                               const std::string& table) const {
  absl::MutexLock lock(&mu_);
  return absl::DeadlineExceededError(absl::StrCat(
      "table '", table, "': worker ", worker, " at clock ", want + bound,
      " waits for the slowest live worker to reach ", want, " (staleness bound ", bound,
      "); slowest is at ", MinLiveClock()));
}

}  // namespace ps
