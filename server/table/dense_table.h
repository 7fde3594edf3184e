// DenseTable: one shard's contiguous range of a dense table, its optimizer state, and
// the table's consistency rules (see docs/consistency.md).
//
// - ASYNC and SSP: every pushed slice is applied on arrival; each push is one update
//   (version += 1, and the optimizer's step count), however many slices or requests
//   carry it (server/table/push_key.h). SSP's clock bound is enforced
//   by ParameterStore on pulls; the table applies updates exactly as ASYNC does.
// - SYNC: gradients for step == version are summed per worker; when every live worker
//   (all but `backup_workers` of them) has pushed its whole range, the average is applied
//   once and version becomes step + 1. A worker's chunked push is held apart until the
//   worker has covered the range, so a worker that dies mid-push never skews the average.
//
// Thread safety: the caller holds mu() around every method marked ABSL_EXCLUSIVE_LOCKS_
// REQUIRED; ParameterStore takes several tables' locks in name order.
#ifndef PS_SERVER_TABLE_DENSE_TABLE_H_
#define PS_SERVER_TABLE_DENSE_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/memory_budget.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"
#include "server/table/optimizer.h"
#include "server/table/push_key.h"

namespace ps {

class DenseTable {
 public:
  // Validates `spec` (shape, initializer, optimizer) and builds this shard's part. Its
  // memory (values, optimizer state, a sync step's sum) is reserved from `budget` (null:
  // none) first: RESOURCE_EXHAUSTED, and nothing allocated, when it does not fit.
  static absl::StatusOr<std::unique_ptr<DenseTable>> Create(const v1::TableSpec& spec,
                                                            int shard, int num_shards,
                                                            MemoryBudget* budget = nullptr);
  // Rebuilds a table from a checkpoint written by Capture(). DATA_LOSS when the saved
  // range or sizes do not fit the spec and this shard layout.
  static absl::StatusOr<std::unique_ptr<DenseTable>> Restore(const v1::TableCheckpoint& saved,
                                                             int shard, int num_shards,
                                                             MemoryBudget* budget = nullptr);

  const v1::TableSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name(); }
  int64_t num_elements() const { return num_elements_; }
  // This shard's range [offset(), offset() + local_size()) of the flattened table.
  int64_t offset() const { return offset_; }
  int64_t local_size() const { return local_size_; }
  bool is_sync() const { return spec_.consistency() == v1::SYNC; }
  bool is_ssp() const { return spec_.consistency() == v1::SSP; }

  absl::Mutex* mu() const ABSL_LOCK_RETURNED(mu_) { return &mu_; }

  // Checks a slice's range (and, with values, its byte length and finiteness) against
  // this shard's part. Needs no lock: it reads only immutable fields. `values`, when not
  // null, holds the slice's length * 4 bytes in place of slice.values(), which must then
  // be empty; the wire decoder (common/tensor_coding.h) turns 16-bit values into those,
  // and 16-bit values in the message are refused.
  absl::Status CheckSlice(const v1::DenseSlice& slice, bool with_values,
                          const char* values = nullptr) const;

  int64_t version() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return version_; }
  // Copies a checked slice's current values into `out`, coded in `format`
  // (length * ValueBytes(format) bytes, common/value_format.h).
  void Read(int64_t offset, int64_t length, v1::ValueFormat format, std::string* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same into `out` (length * 4 bytes of caller memory).
  void ReadInto(int64_t offset, int64_t length, char* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks that `worker` may push `slice` for `step` now (sync: the current step, a live
  // worker, no element pushed twice). Changes nothing.
  absl::Status CheckPush(int worker, bool worker_live, int64_t step,
                         const v1::DenseSlice& slice) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Async and SSP: INVALID_ARGUMENT naming the table and the first element when applying
  // the slice would leave a parameter or optimizer slot non-finite; changes nothing.
  // (dense_table_finite.cc)
  absl::Status CheckFinite(const PushKey& key, const v1::DenseSlice& slice,
                           const char* values) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sync: the same for the step's update when this request's slices of the table
  // (`values` as for CheckSlice, one per slice) complete `worker`'s gradient and, with the
  // workers in `live` (ascending), the step; or when they would overflow the step's sum.
  absl::Status CheckFiniteStep(int worker, const std::vector<const v1::DenseSlice*>& slices,
                               const std::vector<const char*>& values,
                               const std::vector<int>& live) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sync: allocates, against the budget, the buffer a chunk of a worker's gradient
  // collects in (a slice that is not the whole range at once). RESOURCE_EXHAUSTED when it
  // does not fit; either way nothing a reader sees changes. Call after CheckPush.
  // `allocated` (optional) tells whether this call made the buffer.
  absl::Status PrepareChunk(int worker, const v1::DenseSlice& slice, bool* allocated = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives back a chunk buffer PrepareChunk made for a push that was then refused, if the
  // worker has pushed nothing into it yet.
  void DropChunk(int worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies (async, SSP) or accumulates (sync) a slice that passed CheckSlice and
  // CheckPush. `step` is the version the gradient was computed from; `key` names the
  // push the slice belongs to (async and SSP: one update per push).
  // `values` as for CheckSlice.
  void Push(const PushKey& key, int64_t step, const v1::DenseSlice& slice,
            const char* values = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sync: applies the pending step if the workers in `live` (ascending) have all pushed
  // (up to backup_workers). Returns true if the version advanced. With `check_finite`
  // (steps finished by a membership change, which no push's check saw), a step whose
  // update would leave a value non-finite is skipped: the version advances, values and
  // slots stay, and the log says so.
  bool MaybeFinishStep(const std::vector<int>& live, bool check_finite = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Given values (ps_worker --init_from, docs/model_files.md), in dense_table_assign.cc:
  // FAILED_PRECONDITION naming the table once any push reached it (an update applied, or
  // a sync step's gradient held); the values are the table's to keep from then on.
  absl::Status CheckUntrained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces a slice's values (checked by CheckSlice with values, float32) of an
  // untrained table; the optimizer's state stays as created.
  void Assign(const v1::DenseSlice& slice) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Counters and sizes for status reports.
  void FillStatus(v1::TableStatus* status) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountPull() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ++pulls_; }
  // Counts a rejected push; `step` tells a late gradient (sync with backup workers).
  void CountRejected(int64_t step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++rejected_;
    if (is_sync() && spec_.backup_workers() > 0 && step < version_) ++late_dropped_;
  }
  // Copies the table's state for a checkpoint, with a sync step in progress (the
  // gradients pushed for it so far), so that a planned restart (the final checkpoint)
  // loses no acknowledged push.
  v1::TableCheckpoint Capture() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  DenseTable(const v1::TableSpec& spec, int64_t num_elements, int64_t offset,
             int64_t local_size, std::unique_ptr<Optimizer> optimizer, MemoryBudget* budget);

  // A sync step's gradient from one worker, while it arrives in chunks.
  struct Contribution {
    int64_t covered = 0;                            // elements pushed so far
    std::map<int64_t, int64_t> spans;  // begin -> end, [begin, end) local, pushed so far
    std::vector<float> partial;                     // gradient until covered == size
    Reservation partial_memory;                     // partial's bytes in the budget
  };

  // Restore(): the sync step in progress a checkpoint holds (DATA_LOSS when it does not fit).
  absl::Status RestoreStep(const v1::TableCheckpoint& saved) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the optimizer's update number `t` (1-based) to a range.
  void ApplyUpdate(int64_t local_begin, const float* grad, int64_t n, int64_t t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const v1::TableSpec spec_;
  const int64_t num_elements_;
  const int64_t offset_;
  const int64_t local_size_;  // params_.size(), which never changes
  const std::unique_ptr<Optimizer> optimizer_;
  MemoryBudget* const budget_;  // may be null
  Reservation memory_;          // values, slots and step sum

  mutable absl::Mutex mu_;
  std::vector<float> params_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<float>> slots_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // Async and SSP: which push each worker's last slice belonged to.
  UpdateCounter updates_ ABSL_GUARDED_BY(mu_);
  // Sync: the summed gradients of workers that covered the range for step version_.
  std::vector<float> step_sum_ ABSL_GUARDED_BY(mu_);
  // No contribution in step_sum_ yet: the first one is copied in, not added, so the sum
  // never needs clearing.
  bool step_sum_empty_ ABSL_GUARDED_BY(mu_) = true;
  int step_full_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, Contribution> step_contrib_ ABSL_GUARDED_BY(mu_);
  int64_t pushes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pulls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t late_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  // Staleness of async/SSP pushes: version at apply minus the gradient's version.
  int64_t staleness_sum_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t staleness_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t staleness_max_ ABSL_GUARDED_BY(mu_) = 0;
};

// FAILED_PRECONDITION, reason TABLE_TRAINED, for given values that reach `table` after
// training began (its version and the pushed parts applied or pending), saying what to do.
absl::Status TrainedError(const std::string& table, int64_t version, int64_t pushes);

// Elements in a dense spec's shape; INVALID_ARGUMENT for an empty or non-positive shape
// or more than kMaxDenseElements.
absl::StatusOr<int64_t> DenseElementCount(const v1::TableSpec& spec);
inline constexpr int64_t kMaxDenseElements = int64_t{1} << 32;
inline constexpr int kMaxDenseDims = 8;

}  // namespace ps

#endif  // PS_SERVER_TABLE_DENSE_TABLE_H_
