// MemoryBudget: the bytes one shard may hold in what clients can make it allocate (dense
// and sparse tables with their optimizer state, sync step buffers, same-host transfer
// windows). Every such allocation reserves its bytes first; a reservation that does not
// fit is RESOURCE_EXHAUSTED naming the budget, and the caller allocates nothing. So a
// request too large for the machine fails cleanly instead of getting the process
// OOM-killed (and its final checkpoint lost).
//
// Thread-safe.
#ifndef PS_COMMON_MEMORY_BUDGET_H_
#define PS_COMMON_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <new>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

class MemoryBudget {
 public:
  // `limit_bytes` <= 0: no limit (tests, tools).
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Reserves `bytes` for `what` (e.g. "table 'emb': 4096 rows"), or RESOURCE_EXHAUSTED
  // saying how much is in use, the limit, and the flag that sets it.
  absl::Status Reserve(int64_t bytes, absl::string_view what);
  // Returns a reservation's bytes.
  void Release(int64_t bytes);

  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

// A reservation returned when it goes out of scope unless Commit()ted: for code that
// reserves, then allocates (which may still throw), then keeps the memory.
class Reservation {
 public:
  Reservation() = default;
  Reservation(MemoryBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
  Reservation(Reservation&& other) noexcept { *this = std::move(other); }
  Reservation& operator=(Reservation&& other) noexcept;
  ~Reservation() { Reset(); }
  // The bytes stay reserved for good (their owner releases them later).
  void Commit() { bytes_ = 0; }
  void Reset();

 private:
  MemoryBudget* budget_ = nullptr;
  int64_t bytes_ = 0;
};

// Reserves `bytes` from `budget` (null: unlimited), as a Reservation.
absl::Status ReserveScoped(MemoryBudget* budget, int64_t bytes, absl::string_view what,
                           Reservation* out);

// RESOURCE_EXHAUSTED for an allocation of `bytes` for `what` that the system refused.
absl::Status AllocationFailed(int64_t bytes, absl::string_view what);

// Reserves `bytes` for `what` from `budget` (null: no limit), then runs `allocate`, which
// may throw std::bad_alloc. RESOURCE_EXHAUSTED when either fails, and then nothing stays
// reserved; on success `*out` holds the reservation. `allocate` should change nothing a
// reader sees until it cannot fail any more.
template <typename Allocate>
absl::Status ReserveAndAllocate(MemoryBudget* budget, int64_t bytes, absl::string_view what,
                                Allocate allocate, Reservation* out) {
  Reservation memory;
  if (absl::Status s = ReserveScoped(budget, bytes, what, &memory); !s.ok()) return s;
  try {
    allocate();
  } catch (const std::bad_alloc&) {
    return AllocationFailed(bytes, what);
  }
  *out = std::move(memory);
  return absl::OkStatus();
}

// The default budget: 80% of this process's memory limit, the smaller of the cgroup's
// (v2 memory.max, v1 memory.limit_in_bytes) and the machine's physical memory.
int64_t DefaultMemoryBudget();
// "3.2 GiB", "512.0 MiB", "96 bytes".
std::string FormatBytesIEC(int64_t bytes);

}  // namespace ps

#endif  // PS_COMMON_MEMORY_BUDGET_H_
