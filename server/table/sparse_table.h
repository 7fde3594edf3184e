// SparseTable: one shard's rows of a sparse table (int64 key -> `row_width` floats) and
// their optimizer state.
//
// Rows are created on first touch (pull or push) by the table's initializer, seeded by
// the key, so a row is the same whichever shard creates it. Storage is compact: rows and
// their keys live in fixed-size blocks (no vector-doubling slack) and the index is an
// open-addressing array of 4-byte row numbers, so a row costs its floats plus about
// 8 + 4/load bytes (measured in sparse_table_test). Updates apply on arrival (ASYNC and
// SSP); SYNC is not offered for sparse tables (see docs/consistency.md).
//
// Thread safety: the caller holds mu() around methods marked ABSL_EXCLUSIVE_LOCKS_REQUIRED.
#ifndef PS_SERVER_TABLE_SPARSE_TABLE_H_
#define PS_SERVER_TABLE_SPARSE_TABLE_H_

#include <cstdint>
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

class SparseTable {
 public:
  // Rows are allocated in blocks, each reserved from `budget` (null: none) first.
  static absl::StatusOr<std::unique_ptr<SparseTable>> Create(const v1::TableSpec& spec,
                                                             int shard, int num_shards,
                                                             MemoryBudget* budget = nullptr);
  static absl::StatusOr<std::unique_ptr<SparseTable>> Restore(const v1::TableCheckpoint& saved,
                                                              int shard, int num_shards,
                                                              MemoryBudget* budget = nullptr);
  ~SparseTable();

  const v1::TableSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name(); }
  int width() const { return width_; }
  bool is_ssp() const { return spec_.consistency() == v1::SSP; }
  absl::Mutex* mu() const ABSL_LOCK_RETURNED(mu_) { return &mu_; }

  // Checks keys (held by this shard, at most `max_keys`; distinct when pushing) and, with
  // values, the byte length and finiteness. Reads only immutable fields.
  absl::Status CheckRows(const v1::SparseRows& rows, bool with_values, int64_t max_keys) const;

  int64_t version() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return version_; }
  int64_t num_rows() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_rows_; }
  // Bytes held for rows, keys and the index (optimizer state aside).
  int64_t row_bytes() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the rows of `keys` to `out`. A key without a row reads as its initial values
  // and creates nothing: only pushes create rows.
  void Read(const v1::SparseRows& request, std::string* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room, against the budget, for every row a checked push will create: blocks and
  // index. RESOURCE_EXHAUSTED (budget or allocation) leaves the table as it was; on
  // success Push allocates nothing. Rows a reader sees do not change either way.
  absl::Status PrepareRows(const v1::SparseRows& rows) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // INVALID_ARGUMENT naming the table, key and element when the push's update would
  // leave a row's value or optimizer slot non-finite (rows not created yet count from
  // their initial values); changes nothing.
  absl::Status CheckFinite(const PushKey& key, const v1::SparseRows& rows) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a checked, prepared push: one optimizer update of the touched rows. The
  // requests of one push (`key`) share one update (version += 1 once).
  void Push(const PushKey& key, int64_t step, const v1::SparseRows& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Given values and listing (sparse_table_assign.cc). FAILED_PRECONDITION naming the table
  // once a push reached it.
  absl::Status CheckUntrained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the rows of checked (CheckRows with values), prepared (PrepareRows) `rows` of an
  // untrained table, creating those not there yet; their optimizer state stays initial.
  void Assign(const v1::SparseRows& rows) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keys and values of rows [start, start + max_rows) in creation order, in place of what
  // `out` held (with the table's name and version); returns the number of rows listed.
  int64_t ListRows(int64_t start, int64_t max_rows, v1::SparseRows* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void FillStatus(v1::TableStatus* status) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountPull() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ++pulls_; }
  void CountRejected() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ++rejected_; }
  v1::TableCheckpoint Capture() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  static constexpr int64_t kBlockRows = 4096;
  static constexpr uint32_t kEmpty = 0xffffffffu;

  SparseTable(const v1::TableSpec& spec, int shard, int num_shards,
              std::unique_ptr<Optimizer> optimizer, MemoryBudget* budget);
  // Row number of `key`, or kEmpty.
  uint32_t Find(int64_t key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Row number of `key`, created (initialised) if absent, in room PrepareRows made.
  uint32_t FindOrCreate(int64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Room for `more` new rows: blocks and index, reserved and allocated, all or nothing.
  absl::Status Reserve(int64_t more) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reserve()'s allocations: `new_blocks` more blocks of rows, keys and slots, and the
  // index at `index_size` slots. May throw std::bad_alloc, before any row changes.
  void AllocateRows(int64_t new_blocks, int64_t index_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t BlockBytes() const;
  float* Row(uint32_t row) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  float* Slot(int slot, uint32_t row) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Key(uint32_t row) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rebuilds the index at `size` (a power of two) slots.
  void Grow(int64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const v1::TableSpec spec_;
  const int width_;
  const int shard_;
  const int num_shards_;
  const std::unique_ptr<Optimizer> optimizer_;
  MemoryBudget* const budget_;  // may be null

  mutable absl::Mutex mu_;
  int64_t num_rows_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // in budget_, for blocks and index
  std::vector<std::unique_ptr<float[]>> row_blocks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<int64_t[]>> key_blocks_ ABSL_GUARDED_BY(mu_);
  // slot_blocks_[slot][block]
  std::vector<std::vector<std::unique_ptr<float[]>>> slot_blocks_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> index_ ABSL_GUARDED_BY(mu_);  // power-of-two size; kEmpty or a row
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  UpdateCounter updates_ ABSL_GUARDED_BY(mu_);
  int64_t pushes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pulls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t staleness_sum_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t staleness_max_ ABSL_GUARDED_BY(mu_) = 0;
};

// Rows per table per shard are limited by the 4-byte row numbers.
inline constexpr int64_t kMaxSparseRowsPerShard = 0xfffffff0;

}  // namespace ps

#endif  // PS_SERVER_TABLE_SPARSE_TABLE_H_
