// TransferWindows: each same-host worker's push and pull windows on this shard (see
// docs/same_host.md). A window is plain memory in this process; the worker writes its
// gradients into the push window and reads pulled values out of the pull window with
// cross-memory attach, and the requests carry only the byte offsets.
//
// The server itself never reads or writes another process: everything it does to a
// window is local, so a wrong offset from a client can only ever touch that client's own
// window (offsets are checked against its size).
//
// Windows belong to one worker process: they are keyed by (worker index, incarnation)
// and freed only when that incarnation leaves, i.e. when the process that writes into
// them has said it will not any more. A call holds the shared_ptr for as long as it
// reads or writes a window, so a leave during a waiting pull frees nothing under it.
//
// Thread-safe.
#ifndef PS_SERVER_SHARD_TRANSFER_WINDOWS_H_
#define PS_SERVER_SHARD_TRANSFER_WINDOWS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/memory_budget.h"
#include "common/same_host.h"
#include "proto/v1/ps.pb.h"

namespace ps {

class TransferWindows {
 public:
  struct Window {
    explicit Window(int64_t n);
    const int64_t bytes;
    const std::unique_ptr<char[]> push;
    const std::unique_ptr<char[]> pull;
    Reservation memory;  // both windows' bytes in the budget, returned with them
  };

  // `enabled` false: no offers, and OpenWindow is FAILED_PRECONDITION. Windows are
  // reserved from `budget` (null: no limit), which must outlive every window.
  explicit TransferWindows(bool enabled, MemoryBudget* budget = nullptr);

  bool enabled() const { return enabled_; }
  // This process's identity and the probe a worker reads to prove it can attach.
  void FillOffer(v1::SameHostOffer* offer) const;

  // Gives `worker` windows of at least `bytes` each: its current ones when large enough,
  // else new ones of `max_bytes` (so they need replacing only when tables are added).
  // Replaced windows stay allocated until Close(): a call the worker still has in flight
  // may write into them. INVALID_ARGUMENT when bytes is not in (0, max_bytes];
  // FAILED_PRECONDITION when off; RESOURCE_EXHAUSTED when they do not fit the budget.
  absl::StatusOr<std::shared_ptr<const Window>> Open(int worker, uint64_t incarnation,
                                                     int64_t bytes, int64_t max_bytes);
  // The worker's windows; null when it has none. The pointer keeps them alive while a
  // call uses them, even if the worker reopens or leaves meanwhile.
  std::shared_ptr<const Window> Get(int worker, uint64_t incarnation) const;
  // Drops the incarnation's windows (memory goes once no call holds them).
  void Close(int worker, uint64_t incarnation);
  // Total bytes held in windows (push plus pull), for status reports.
  int64_t bytes_held() const;

 private:
  const bool enabled_;
  MemoryBudget* const budget_;
  const HostIdentity identity_;
  alignas(16) char probe_[16];
  using Key = std::pair<int, uint64_t>;  // (worker, incarnation)
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<const Window>> windows_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::vector<std::shared_ptr<const Window>>> retired_ ABSL_GUARDED_BY(mu_);
};

// Checks that [offset, offset + length * 4) lies inside a window of `window_bytes`;
// INVALID_ARGUMENT naming the table otherwise.
absl::Status CheckWindowRange(const std::string& table, int64_t offset, int64_t length,
                              int64_t window_bytes);

}  // namespace ps

#endif  // PS_SERVER_SHARD_TRANSFER_WINDOWS_H_
