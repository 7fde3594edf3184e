#include "server/table/sparse_table.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <new>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/placement.h"
#include "glog/logging.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/table/initializer.h"

namespace ps {
namespace {

// The element index a key's row starts at, for the initializer's (seed, index) stream.
int64_t InitStream(int64_t key) { return static_cast<int64_t>(MixBits(key) >> 16); }

}  // namespace

absl::StatusOr<std::unique_ptr<SparseTable>> SparseTable::Create(const v1::TableSpec& spec,
                                                                 int shard, int num_shards,
                                                                 MemoryBudget* budget) {
  if (spec.row_width() <= 0 || spec.row_width() > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': row_width=",
                                                   spec.row_width(), " outside [1, 1048576]"));
  }
  if (spec.shape_size() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table '", spec.name(), "': a sparse table has row_width, not a shape"));
  }
  if (spec.consistency() != v1::ASYNC && spec.consistency() != v1::SSP) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", spec.name(), "': sparse tables support ASYNC and SSP, not ",
        v1::ConsistencyMode_Name(spec.consistency())));
  }
  if (spec.staleness_bound() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': staleness_bound=",
                                                   spec.staleness_bound(), " is negative"));
  }
  if (absl::Status s = ValidateInitializer(spec.initializer()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': ", s.message()));
  }
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec.optimizer());
  if (!opt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("table '", spec.name(), "': ", opt.status().message()));
  }
  return std::unique_ptr<SparseTable>(
      new SparseTable(spec, shard, num_shards, *std::move(opt), budget));
}

SparseTable::SparseTable(const v1::TableSpec& spec, int shard, int num_shards,
                         std::unique_ptr<Optimizer> optimizer, MemoryBudget* budget)
    : spec_(spec),
      width_(static_cast<int>(spec.row_width())),
      shard_(shard),
      num_shards_(num_shards),
      optimizer_(std::move(optimizer)),
      budget_(budget),
      slot_blocks_(optimizer_->num_slots()),
      index_(1024, kEmpty) {}

SparseTable::~SparseTable() {
  absl::MutexLock lock(&mu_);
  if (budget_ != nullptr) budget_->Release(reserved_bytes_);
}

int64_t SparseTable::BlockBytes() const {
  return kBlockRows * (static_cast<int64_t>(width_) * 4 * (1 + optimizer_->num_slots()) + 8);
}

absl::Status SparseTable::Reserve(int64_t more) {
  if (more <= 0) return absl::OkStatus();
  const int64_t rows = num_rows_ + more;
  if (rows > kMaxSparseRowsPerShard) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "table '", name(), "': ", rows, " rows would exceed ", kMaxSparseRowsPerShard,
        " rows on one shard"));
  }
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  const int64_t new_blocks = blocks - static_cast<int64_t>(row_blocks_.size());
  int64_t index_size = static_cast<int64_t>(index_.size());
  while (rows * 10 > index_size * 7) index_size *= 2;  // the index stays at most 70% full
  const int64_t index_bytes = (index_size - static_cast<int64_t>(index_.size())) * 4;
  const int64_t bytes = std::max<int64_t>(0, new_blocks) * BlockBytes() + index_bytes;
  if (bytes == 0) return absl::OkStatus();
  Reservation memory;
  if (absl::Status s = ReserveAndAllocate(
          budget_, bytes, absl::StrCat("table '", name(), "': ", more, " new rows"),
          [&] {
            mu_.AssertHeld();  // a lambda's body is analysed on its own
            AllocateRows(new_blocks, index_size);
          },
          &memory);
      !s.ok()) {
    return s;
  }
  memory.Commit();
  reserved_bytes_ += bytes;
  return absl::OkStatus();
}

void SparseTable::AllocateRows(int64_t new_blocks, int64_t index_size) {
  const size_t blocks = row_blocks_.size() + static_cast<size_t>(new_blocks);
  // Allocate everything first, then move it in: a failure changes nothing.
  std::vector<std::unique_ptr<float[]>> rows_new, slots_new;
  std::vector<std::unique_ptr<int64_t[]>> keys_new;
  for (int64_t b = 0; b < new_blocks; ++b) {
    rows_new.emplace_back(new float[kBlockRows * width_]);
    keys_new.emplace_back(new int64_t[kBlockRows]);
    for (size_t s = 0; s < slot_blocks_.size(); ++s) {
      slots_new.emplace_back(new float[kBlockRows * width_]);
    }
  }
  row_blocks_.reserve(blocks);
  key_blocks_.reserve(blocks);
  for (auto& slot : slot_blocks_) slot.reserve(blocks);
  if (index_size > static_cast<int64_t>(index_.size())) Grow(index_size);
  for (int64_t b = 0; b < new_blocks; ++b) {  // no allocation from here on
    row_blocks_.push_back(std::move(rows_new[b]));
    key_blocks_.push_back(std::move(keys_new[b]));
    for (size_t s = 0; s < slot_blocks_.size(); ++s) {
      slot_blocks_[s].push_back(std::move(slots_new[b * slot_blocks_.size() + s]));
    }
  }
}

absl::Status SparseTable::PrepareRows(const v1::SparseRows& rows) {
  int64_t more = 0;
  for (int64_t key : rows.keys()) more += Find(key) == kEmpty ? 1 : 0;  // keys are distinct
  return Reserve(more);
}

absl::StatusOr<std::unique_ptr<SparseTable>> SparseTable::Restore(
    const v1::TableCheckpoint& saved, int shard, int num_shards, MemoryBudget* budget) {
  absl::StatusOr<std::unique_ptr<SparseTable>> t = Create(saved.spec(), shard, num_shards, budget);
  if (!t.ok()) return t.status();
  SparseTable& table = **t;
  const size_t n = saved.keys_size(), row_bytes = static_cast<size_t>(table.width_) * 4;
  if (saved.params().size() != n * row_bytes ||
      saved.slots_size() != table.optimizer_->num_slots()) {
    return absl::DataLossError(absl::StrCat("checkpoint of sparse table '", saved.spec().name(),
                                            "': ", n, " keys but ", saved.params().size(),
                                            " bytes of rows and ", saved.slots_size(), " slots"));
  }
  absl::MutexLock lock(&table.mu_);
  if (absl::Status s = table.Reserve(static_cast<int64_t>(n)); !s.ok()) return s;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t row = table.FindOrCreate(saved.keys(i));
    std::memcpy(table.Row(row), saved.params().data() + i * row_bytes, row_bytes);
    for (int s = 0; s < saved.slots_size(); ++s) {
      if (saved.slots(s).size() != n * row_bytes) {
        return absl::DataLossError(absl::StrCat("checkpoint of sparse table '",
                                                saved.spec().name(), "': slot ", s, " has ",
                                                saved.slots(s).size(), " bytes"));
      }
      std::memcpy(table.Slot(s, row), saved.slots(s).data() + i * row_bytes, row_bytes);
    }
  }
  table.version_ = saved.version();
  return t;
}

absl::Status SparseTable::CheckRows(const v1::SparseRows& rows, bool with_values,
                                    int64_t max_keys) const {
  const int64_t n = rows.keys_size();
  if (n > max_keys) {
    return absl::ResourceExhaustedError(absl::StrCat("table '", name(), "': ", n,
                                                     " keys in one request exceed the limit of ",
                                                     max_keys, "; split the batch"));
  }
  for (int64_t key : rows.keys()) {
    if (ShardForKey(key, num_shards_) != shard_) {
      return absl::InvalidArgumentError(absl::StrCat("table '", name(), "': key ", key,
                                                     " belongs to shard ",
                                                     ShardForKey(key, num_shards_),
                                                     ", not shard ", shard_));
    }
  }
  if (!with_values) return absl::OkStatus();
  const int64_t want = n * width_ * 4;
  if (static_cast<int64_t>(rows.values().size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': ", n, " keys need ", n, " rows of width ", width_, " (", want,
        " bytes) but the push carries ", rows.values().size(), " bytes"));
  }
  absl::flat_hash_set<int64_t> seen;
  seen.reserve(n);
  for (int64_t key : rows.keys()) {
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", name(), "': key ", key, " appears twice in one push; sum duplicates first"));
    }
  }
  const char* bytes = rows.values().data();
  for (int64_t i = 0; i < n * width_; ++i) {
    float v;
    std::memcpy(&v, bytes + 4 * i, 4);
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("table '", name(), "': non-finite gradient ",
                                                     v, " for key ", rows.keys(i / width_)));
    }
  }
  return absl::OkStatus();
}

float* SparseTable::Row(uint32_t row) const {
  return row_blocks_[row / kBlockRows].get() + (row % kBlockRows) * width_;
}

float* SparseTable::Slot(int slot, uint32_t row) const {
  return slot_blocks_[slot][row / kBlockRows].get() + (row % kBlockRows) * width_;
}

int64_t SparseTable::Key(uint32_t row) const {
  return key_blocks_[row / kBlockRows][row % kBlockRows];
}

void SparseTable::Grow(int64_t size) {
  std::vector<uint32_t> bigger(size, kEmpty);
  const uint64_t mask = bigger.size() - 1;
  for (uint32_t row : index_) {
    if (row == kEmpty) continue;
    uint64_t at = MixBits(Key(row)) & mask;
    while (bigger[at] != kEmpty) at = (at + 1) & mask;
    bigger[at] = row;
  }
  index_.swap(bigger);
}

uint32_t SparseTable::Find(int64_t key) const {
  const uint64_t mask = index_.size() - 1;
  for (uint64_t at = MixBits(key) & mask; index_[at] != kEmpty; at = (at + 1) & mask) {
    if (Key(index_[at]) == key) return index_[at];
  }
  return kEmpty;
}

uint32_t SparseTable::FindOrCreate(int64_t key) {
  const uint64_t mask = index_.size() - 1;
  uint64_t at = MixBits(key) & mask;
  while (index_[at] != kEmpty) {
    if (Key(index_[at]) == key) return index_[at];
    at = (at + 1) & mask;
  }
  // New row, in the room Reserve() made: the row count goes up only once it is set.
  CHECK_LT(num_rows_ / kBlockRows, static_cast<int64_t>(row_blocks_.size()))
      << "table '" << name() << "': a row was created without Reserve()";
  CHECK_LE((num_rows_ + 1) * 10, static_cast<int64_t>(index_.size()) * 7);
  const uint32_t row = static_cast<uint32_t>(num_rows_);
  key_blocks_[row / kBlockRows][row % kBlockRows] = key;
  FillInitial(spec_.initializer(), InitStream(key), width_, Row(row));
  std::vector<float*> slots;
  for (size_t s = 0; s < slot_blocks_.size(); ++s) {
    float* p = Slot(static_cast<int>(s), row);
    std::fill(p, p + width_, 0.0f);
    slots.push_back(p);
  }
  if (!slots.empty()) optimizer_->InitSlots(slots.data(), width_);
  index_[at] = row;
  ++num_rows_;
  return row;
}

int64_t SparseTable::row_bytes() const {
  const int64_t blocks = static_cast<int64_t>(row_blocks_.size());
  return blocks * kBlockRows * (width_ * 4 + 8) + static_cast<int64_t>(index_.size()) * 4;
}

void SparseTable::Read(const v1::SparseRows& request, std::string* out) {
  const size_t row_bytes = static_cast<size_t>(width_) * 4;
  const size_t start = out->size();
  out->resize(start + request.keys_size() * row_bytes);
  for (int i = 0; i < request.keys_size(); ++i) {
    char* dst = out->data() + start + i * row_bytes;
    const uint32_t row = Find(request.keys(i));
    if (row != kEmpty) {
      std::memcpy(dst, Row(row), row_bytes);
    } else {
      // The values the row would be created with (the same stream FindOrCreate uses).
      FillInitial(spec_.initializer(), InitStream(request.keys(i)), width_,
                  reinterpret_cast<float*>(dst));
    }
  }
}

absl::Status SparseTable::CheckFinite(const PushKey& key, const v1::SparseRows& rows) const {
  const int64_t t = updates_.Peek(key, version_);
  const float* grads = reinterpret_cast<const float*>(rows.values().data());
  const int k = static_cast<int>(slot_blocks_.size());
  std::vector<float> fresh(static_cast<size_t>(1 + k) * width_);  // a row not created yet
  std::vector<const float*> slots(k);
  for (int i = 0; i < rows.keys_size(); ++i) {
    const uint32_t row = Find(rows.keys(i));
    const float* values = nullptr;
    if (row != kEmpty) {
      values = Row(row);
      for (int s = 0; s < k; ++s) slots[s] = Slot(s, row);
    } else {
      FillInitial(spec_.initializer(), InitStream(rows.keys(i)), width_, fresh.data());
      std::vector<float*> init(k);
      for (int s = 0; s < k; ++s) {
        init[s] = fresh.data() + (1 + s) * width_;
        std::fill_n(init[s], width_, 0.0f);
        slots[s] = init[s];
      }
      if (k > 0) optimizer_->InitSlots(init.data(), width_);
      values = fresh.data();
    }
    std::optional<Optimizer::NonFinite> bad = optimizer_->FirstNonFinite(
        values, grads + static_cast<int64_t>(i) * width_, width_, slots.data(), t);
    if (bad.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", name(), "': this push's update would make element ", bad->element,
          " of key ", rows.keys(i), "'s row ",
          bad->slot < 0 ? std::string("(the value)") : absl::StrCat("(optimizer slot ", bad->slot, ")"),
          " ", bad->value, "; refused, the table is unchanged"));
    }
  }
  return absl::OkStatus();
}

void SparseTable::Push(const PushKey& key, int64_t step, const v1::SparseRows& rows) {
  ++pushes_;
  const int64_t staleness = std::max<int64_t>(0, version_ - step);
  staleness_sum_ += staleness;
  staleness_max_ = std::max(staleness_max_, staleness);
  const int64_t t = updates_.UpdateFor(key, &version_);
  const float* grads = reinterpret_cast<const float*>(rows.values().data());
  std::vector<float*> slots(slot_blocks_.size());
  for (int i = 0; i < rows.keys_size(); ++i) {
    const uint32_t row = FindOrCreate(rows.keys(i));
    for (size_t s = 0; s < slots.size(); ++s) slots[s] = Slot(static_cast<int>(s), row);
    optimizer_->Apply(Row(row), grads + static_cast<int64_t>(i) * width_, width_, slots.data(),
                      t);
  }
}

void SparseTable::FillStatus(v1::TableStatus* status) const {
  *status->mutable_spec() = spec_;
  status->set_elements_on_shard(num_rows_);
  status->set_bytes_on_shard(row_bytes() + static_cast<int64_t>(slot_blocks_.size()) *
                                               static_cast<int64_t>(row_blocks_.size()) *
                                               kBlockRows * width_ * 4);
  status->set_version(version_);
  status->set_pushes(pushes_);
  status->set_pulls(pulls_);
  status->set_rejected_pushes(rejected_);
  status->set_max_staleness(staleness_max_);
  status->set_mean_staleness(pushes_ == 0 ? 0.0 : static_cast<double>(staleness_sum_) / pushes_);
}

v1::TableCheckpoint SparseTable::Capture() const {
  v1::TableCheckpoint out;
  *out.mutable_spec() = spec_;
  out.set_version(version_);
  const size_t row_bytes = static_cast<size_t>(width_) * 4;
  std::string* params = out.mutable_params();
  params->resize(num_rows_ * row_bytes);
  std::vector<std::string*> slots;
  for (size_t s = 0; s < slot_blocks_.size(); ++s) {
    slots.push_back(out.add_slots());
    slots.back()->resize(num_rows_ * row_bytes);
  }
  for (int64_t r = 0; r < num_rows_; ++r) {
    const uint32_t row = static_cast<uint32_t>(r);
    out.add_keys(Key(row));
    std::memcpy(params->data() + r * row_bytes, Row(row), row_bytes);
    for (size_t s = 0; s < slots.size(); ++s) {
      std::memcpy(slots[s]->data() + r * row_bytes, Slot(static_cast<int>(s), row), row_bytes);
    }
  }
  return out;
}

}  // namespace ps
