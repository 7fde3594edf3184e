#include "common/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace ps {
namespace {

// The number in the first line of `path`; nullopt-like -1 when absent or "max".
int64_t ReadLimit(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return -1;
  int64_t v = -1;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &v)) return -1;
  return v;
}

}  // namespace

absl::Status MemoryBudget::Reserve(int64_t bytes, absl::string_view what) {
  if (bytes <= 0) return absl::OkStatus();
  if (limit_ <= 0) {
    used_.fetch_add(bytes, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  int64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ - used) {
      return absl::ResourceExhaustedError(absl::StrCat(
          what, " needs ", FormatBytesIEC(bytes), " but the shard's memory budget of ",
          FormatBytesIEC(limit_), " has ", FormatBytesIEC(std::max<int64_t>(0, limit_ - used)),
          " left (--memory_budget_mb); nothing was allocated"));
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return absl::OkStatus();
}

void MemoryBudget::Release(int64_t bytes) {
  if (bytes > 0) used_.fetch_sub(bytes, std::memory_order_relaxed);
}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void Reservation::Reset() {
  if (budget_ != nullptr) budget_->Release(bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

absl::Status ReserveScoped(MemoryBudget* budget, int64_t bytes, absl::string_view what,
                           Reservation* out) {
  if (budget == nullptr) return absl::OkStatus();
  if (absl::Status s = budget->Reserve(bytes, what); !s.ok()) return s;
  *out = Reservation(budget, bytes);
  return absl::OkStatus();
}

absl::Status AllocationFailed(int64_t bytes, absl::string_view what) {
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " needs ", FormatBytesIEC(bytes), " but the shard could not allocate it"));
}

int64_t DefaultMemoryBudget() {
  const int64_t physical =
      static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
  int64_t limit = physical > 0 ? physical : std::numeric_limits<int64_t>::max();
  for (const char* path : {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const int64_t cgroup = ReadLimit(path);
    if (cgroup > 0) limit = std::min(limit, cgroup);
  }
  return limit / 10 * 8;
}

std::string FormatBytesIEC(int64_t bytes) {
  if (bytes >= (int64_t{1} << 30)) return absl::StrFormat("%.1f GiB", bytes / double(1 << 30));
  if (bytes >= (int64_t{1} << 20)) return absl::StrFormat("%.1f MiB", bytes / double(1 << 20));
  if (bytes >= (int64_t{1} << 10)) return absl::StrFormat("%.1f KiB", bytes / double(1 << 10));
  return absl::StrCat(bytes, " bytes");
}

}  // namespace ps
