#include "server/table/dense_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/error_reason.h"
#include "common/input_checks.h"
#include "common/memory_budget.h"
#include "common/placement.h"
#include "common/value_format.h"
#include "glog/logging.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/table/initializer.h"

namespace ps {

absl::StatusOr<int64_t> DenseElementCount(const v1::TableSpec& spec) {
  if (spec.shape_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table '", spec.name(), "': a dense table needs a non-empty shape"));
  }
  if (spec.shape_size() > kMaxDenseDims) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': shape has ",
                                                   spec.shape_size(), " dimensions; the limit is ",
                                                   kMaxDenseDims));
  }
  int64_t n = 1;
  for (int64_t d : spec.shape()) {
    if (d <= 0 || n > kMaxDenseElements / d) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", spec.name(), "': shape [", absl::StrJoin(spec.shape(), ","),
          "] needs positive dimensions and at most ", kMaxDenseElements, " elements"));
    }
    n *= d;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<DenseTable>> DenseTable::Create(const v1::TableSpec& spec,
                                                               int shard, int num_shards,
                                                               MemoryBudget* budget) {
  absl::StatusOr<int64_t> n = DenseElementCount(spec);
  if (!n.ok()) return n.status();
  if (absl::Status s = ValidateInitializer(spec.initializer()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': ", s.message()));
  }
  if (spec.consistency() != v1::SYNC && spec.consistency() != v1::ASYNC &&
      spec.consistency() != v1::SSP) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", spec.name(), "': consistency mode ",
        v1::ConsistencyMode_Name(spec.consistency()), " is not supported; use SYNC, ASYNC or SSP"));
  }
  if (spec.staleness_bound() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': staleness_bound=",
                                                   spec.staleness_bound(), " is negative"));
  }
  if (spec.backup_workers() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': backup_workers=",
                                                   spec.backup_workers(), " is negative"));
  }
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec.optimizer());
  if (!opt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("table '", spec.name(), "': ", opt.status().message()));
  }
  const ShardRange r = LocalRange(spec.name(), *n, num_shards, shard);
  // Values and optimizer slots, and a sync table's step sum.
  const int64_t bytes = r.size() * 4 *
                        (1 + static_cast<int64_t>((*opt)->num_slots()) +
                         (spec.consistency() == v1::SYNC ? 1 : 0));
  std::unique_ptr<DenseTable> table;
  Reservation memory;
  if (absl::Status s = ReserveAndAllocate(
          budget, bytes, absl::StrCat("table '", spec.name(), "' (", r.size(), " elements here)"),
          [&] { table.reset(new DenseTable(spec, *n, r.begin, r.size(), *std::move(opt), budget)); },
          &memory);
      !s.ok()) {
    return s;
  }
  table->memory_ = std::move(memory);
  return table;
}

absl::StatusOr<std::unique_ptr<DenseTable>> DenseTable::Restore(
    const v1::TableCheckpoint& saved, int shard, int num_shards, MemoryBudget* budget) {
  absl::StatusOr<std::unique_ptr<DenseTable>> t = Create(saved.spec(), shard, num_shards, budget);
  if (!t.ok()) return t.status();
  DenseTable& table = **t;
  const int64_t n = table.local_size();
  if (saved.offset() != table.offset_ || static_cast<int64_t>(saved.params().size()) != n * 4 ||
      saved.slots_size() != table.optimizer_->num_slots() || saved.version() < 0) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint of table '", saved.spec().name(), "' holds offset ", saved.offset(), ", ",
        saved.params().size() / 4, " values and ", saved.slots_size(),
        " optimizer slots; this shard needs offset ", table.offset_, ", ", n, " values and ",
        table.optimizer_->num_slots(), " slots"));
  }
  absl::MutexLock lock(&table.mu_);
  // A shard may hold none of a small table (n == 0, data() null): memcpy must not see it.
  if (n > 0) std::memcpy(table.params_.data(), saved.params().data(), n * 4);
  for (int i = 0; i < saved.slots_size(); ++i) {
    if (static_cast<int64_t>(saved.slots(i).size()) != n * 4) {
      return absl::DataLossError(absl::StrCat("checkpoint of table '", saved.spec().name(),
                                              "': optimizer slot ", i, " has ",
                                              saved.slots(i).size(), " bytes, want ", n * 4));
    }
    if (n > 0) std::memcpy(table.slots_[i].data(), saved.slots(i).data(), n * 4);
  }
  table.version_ = saved.version();
  if (absl::Status s = table.RestoreStep(saved); !s.ok()) return s;
  return t;
}

absl::Status DenseTable::RestoreStep(const v1::TableCheckpoint& saved) {
  const int64_t n = local_size();
  auto lost = [&saved](const std::string& what) {
    return absl::DataLossError(absl::StrCat("checkpoint of table '", saved.spec().name(),
                                            "': its step in progress ", what));
  };
  if (saved.step_contributions_size() > 0 && !is_sync()) return lost("belongs to no sync table");
  if (!saved.step_sum().empty()) {
    if (static_cast<int64_t>(saved.step_sum().size()) != n * 4) return lost("has a sum of the wrong size");
    step_sum_.resize(n);
    if (n > 0) std::memcpy(step_sum_.data(), saved.step_sum().data(), n * 4);
    step_sum_empty_ = false;
  }
  for (const v1::SyncContribution& saved_c : saved.step_contributions()) {
    Contribution c;
    if (saved_c.span_bounds_size() % 2 != 0) return lost("has an odd span list");
    for (int i = 0; i < saved_c.span_bounds_size(); i += 2) {
      const int64_t b = saved_c.span_bounds(i), e = saved_c.span_bounds(i + 1);
      if (b < 0 || e <= b || e > n) return lost("has a span outside the range");
      c.spans.emplace(b, e);
      c.covered += e - b;
    }
    if (c.covered > n) return lost("covers more than the range");
    if (c.covered == n) {
      if (step_sum_empty_) return lost("has a whole gradient but no sum");
      ++step_full_;
    } else {
      if (static_cast<int64_t>(saved_c.partial().size()) != n * 4) {
        return lost("has a partial gradient of the wrong size");
      }
      if (absl::Status s = ReserveAndAllocate(
              budget_, n * 4, absl::StrCat("table '", name(), "': a restored chunked gradient"),
              [&] { c.partial.resize(n); }, &c.partial_memory);
          !s.ok()) {
        return s;
      }
      std::memcpy(c.partial.data(), saved_c.partial().data(), n * 4);
    }
    step_contrib_[saved_c.worker_index()] = std::move(c);
  }
  if (step_full_ == 0 && !step_sum_empty_) return lost("has a sum but no whole gradient");
  return absl::OkStatus();
}

v1::TableCheckpoint DenseTable::Capture() const {
  v1::TableCheckpoint out;
  *out.mutable_spec() = spec_;
  out.set_offset(offset_);
  out.set_version(version_);
  out.set_params(reinterpret_cast<const char*>(params_.data()), params_.size() * 4);
  for (const std::vector<float>& slot : slots_) {
    out.add_slots(reinterpret_cast<const char*>(slot.data()), slot.size() * 4);
  }
  if (!step_sum_empty_) {
    out.set_step_sum(reinterpret_cast<const char*>(step_sum_.data()), step_sum_.size() * 4);
  }
  for (const auto& [worker, c] : step_contrib_) {
    if (c.covered == 0) continue;  // a buffer made for a push that was refused
    v1::SyncContribution* saved = out.add_step_contributions();
    saved->set_worker_index(worker);
    for (const auto& [begin, end] : c.spans) {
      saved->add_span_bounds(begin);
      saved->add_span_bounds(end);
    }
    if (c.covered < local_size_) {
      saved->set_partial(reinterpret_cast<const char*>(c.partial.data()), c.partial.size() * 4);
    }
  }
  return out;
}

DenseTable::DenseTable(const v1::TableSpec& spec, int64_t num_elements, int64_t offset,
                       int64_t local_size, std::unique_ptr<Optimizer> optimizer,
                       MemoryBudget* budget)
    : spec_(spec),
      num_elements_(num_elements),
      offset_(offset),
      local_size_(local_size),
      optimizer_(std::move(optimizer)),
      budget_(budget),
      params_(local_size) {
  FillInitial(spec_.initializer(), offset_, local_size, params_.data());
  if (is_sync()) step_sum_.resize(local_size);  // all allocation happens here, up front
  slots_.resize(optimizer_->num_slots(), std::vector<float>(local_size, 0.0f));
  std::vector<float*> slot_ptrs;
  for (auto& s : slots_) slot_ptrs.push_back(s.data());
  optimizer_->InitSlots(slot_ptrs.data(), local_size);
}

absl::Status DenseTable::CheckSlice(const v1::DenseSlice& slice, bool with_values,
                                    const char* values) const {
  const int64_t begin = slice.offset(), length = slice.length();
  if (begin < 0 || length <= 0 || begin > num_elements_ - length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': range [", begin, ", ", begin + length,
        ") is empty or outside the table's ", num_elements_, " elements"));
  }
  if (begin < offset_ || begin + length > offset_ + local_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': range [", begin, ", ", begin + length,
        ") is not held by this shard, which holds [", offset_, ", ", offset_ + local_size(),
        ")"));
  }
  if (!with_values) return absl::OkStatus();
  if (values == nullptr && slice.format() != v1::FLOAT32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': slice at ", begin, " carries ", ValueFormatName(slice.format()),
        " values, which only the wire decoder reads"));
  }
  if (values != nullptr && !slice.values().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': slice at ", begin, " carries both values and a window offset"));
  }
  if (values == nullptr && static_cast<int64_t>(slice.values().size()) != length * 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", name(), "': slice at ", begin, " carries ", slice.values().size(),
        " bytes but its length ", length, " needs ", length * 4));
  }
  const char* bytes = values != nullptr ? values : slice.values().data();
  // A branch-free scan first (it vectorises); the element is looked up only on failure.
  uint32_t worst = 0;
  for (int64_t i = 0; i < length; ++i) {
    uint32_t bits;
    std::memcpy(&bits, bytes + 4 * i, 4);
    // Exponent all ones: infinity or NaN.
    worst |= ((bits & 0x7f800000u) == 0x7f800000u) ? 1u : 0u;
  }
  if (worst == 0) return absl::OkStatus();
  for (int64_t i = 0; i < length; ++i) {
    float v;
    std::memcpy(&v, bytes + 4 * i, 4);
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("table '", name(),
                                                     "': non-finite gradient ", v,
                                                     " at element ", begin + i));
    }
  }
  return absl::OkStatus();
}

void DenseTable::Read(int64_t offset, int64_t length, v1::ValueFormat format,
                      std::string* out) const {
  const float* from = params_.data() + (offset - offset_);
  if (format == v1::FLOAT32) {
    // assign() copies once; resize() + memcpy would zero-fill first.
    out->assign(reinterpret_cast<const char*>(from), length * 4);
    return;
  }
  // The 16-bit formats are coded straight from the table, in the same one pass.
  out->resize(length * ValueBytes(format));
  EncodeValues(format, from, length, out->data());
}

void DenseTable::ReadInto(int64_t offset, int64_t length, char* out) const {
  std::memcpy(out, params_.data() + (offset - offset_), length * 4);
}

absl::Status DenseTable::CheckPush(int worker, bool worker_live, int64_t step,
                                   const v1::DenseSlice& slice) const {
  if (!is_sync()) return absl::OkStatus();
  if (!worker_live) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          "table '", name(), "': worker ", worker,
                          " is not registered with this shard; sync pushes need a live worker")),
                      kReasonUnknownWorker);
  }
  if (step != version_) {
    return WithReason(absl::FailedPreconditionError(
                          absl::StrCat("table '", name(), "': push for step ", step,
                                       " but the current step is ", version_)),
                      kReasonWrongStep);
  }
  auto it = step_contrib_.find(worker);
  if (it != step_contrib_.end()) {
    // The spans never overlap, so only the last one starting before `e` can meet
    // [b, e): one lookup, whatever the number of slices pushed so far.
    const int64_t b = slice.offset() - offset_, e = b + slice.length();
    const std::map<int64_t, int64_t>& spans = it->second.spans;
    auto after = spans.lower_bound(e);
    if (after != spans.begin()) {
      const auto& [sb, se] = *std::prev(after);
      if (b < se && sb < e) {
        return WithReason(
            absl::AlreadyExistsError(absl::StrCat(
                "table '", name(), "': worker ", worker, " already pushed elements [",
                offset_ + std::max(b, sb), ", ", offset_ + std::min(e, se), ") for step ", step)),
            kReasonAlreadyPushed);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status DenseTable::PrepareChunk(int worker, const v1::DenseSlice& slice,
                                      bool* allocated) {
  if (allocated != nullptr) *allocated = false;
  if (!is_sync()) return absl::OkStatus();
  auto it = step_contrib_.find(worker);
  const bool whole = slice.length() == local_size() &&
                     (it == step_contrib_.end() || it->second.covered == 0);
  if (whole || (it != step_contrib_.end() && !it->second.partial.empty())) {
    return absl::OkStatus();  // goes straight into the sum, or the buffer is there
  }
  std::vector<float> partial;
  Reservation memory;
  if (absl::Status s = ReserveAndAllocate(
          budget_, local_size() * 4,
          absl::StrCat("table '", name(), "': worker ", worker, "'s chunked gradient"),
          [&] { partial.assign(local_size(), 0.0f); }, &memory);
      !s.ok()) {
    return s;
  }
  Contribution& c = step_contrib_[worker];
  c.partial = std::move(partial);
  c.partial_memory = std::move(memory);
  if (allocated != nullptr) *allocated = true;
  return absl::OkStatus();
}

void DenseTable::DropChunk(int worker) {
  auto it = step_contrib_.find(worker);
  if (it != step_contrib_.end() && it->second.covered == 0) step_contrib_.erase(it);
}

void DenseTable::ApplyUpdate(int64_t local_begin, const float* grad, int64_t n, int64_t t) {
  float* slot_ptrs[4];
  for (size_t i = 0; i < slots_.size(); ++i) slot_ptrs[i] = slots_[i].data() + local_begin;
  optimizer_->Apply(params_.data() + local_begin, grad, n, slot_ptrs, t);
}

void DenseTable::Push(const PushKey& key, int64_t step, const v1::DenseSlice& slice,
                      const char* values) {
  const int worker = key.worker;
  ++pushes_;
  const int64_t b = slice.offset() - offset_, n = slice.length();
  const float* grad =
      reinterpret_cast<const float*>(values != nullptr ? values : slice.values().data());
  if (!is_sync()) {
    const int64_t staleness = std::max<int64_t>(0, version_ - step);
    staleness_sum_ += staleness;
    ++staleness_count_;
    staleness_max_ = std::max(staleness_max_, staleness);
    ApplyUpdate(b, grad, n, updates_.UpdateFor(key, &version_));
    return;
  }
  if (step_sum_.empty()) step_sum_.resize(local_size());
  Contribution& c = step_contrib_[worker];
  auto add_to_sum = [this](const float* g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    float* sum = step_sum_.data();
    const int64_t size = local_size();
    if (step_sum_empty_) {
      std::memcpy(sum, g, size * 4);
      step_sum_empty_ = false;
    } else {
      for (int64_t i = 0; i < size; ++i) sum[i] += g[i];
    }
  };
  if (c.covered == 0 && n == local_size()) {
    // Fast path: the whole range in one slice goes straight into the sum.
    add_to_sum(grad);
  } else {
    if (c.partial.empty()) c.partial.assign(local_size(), 0.0f);
    std::memcpy(c.partial.data() + b, grad, n * 4);
    if (c.covered + n == local_size()) {
      add_to_sum(c.partial.data());
      std::vector<float>().swap(c.partial);
      c.partial_memory.Reset();
    }
  }
  c.spans.emplace(b, b + n);
  c.covered += n;
  if (c.covered == local_size()) ++step_full_;
}

bool DenseTable::MaybeFinishStep(const std::vector<int>& live, bool check_finite) {
  if (!is_sync() || step_full_ == 0) return false;
  int live_full = 0;
  for (int w : live) {
    auto it = step_contrib_.find(w);
    if (it != step_contrib_.end() && it->second.covered == local_size()) ++live_full;
  }
  const int needed = std::max(0, static_cast<int>(live.size()) - spec_.backup_workers());
  if (live_full < needed) return false;
  const float inv = 1.0f / static_cast<float>(step_full_);
  for (float& g : step_sum_) g *= inv;
  const float* slots[Optimizer::kMaxSlots];
  for (size_t i = 0; i < slots_.size(); ++i) slots[i] = slots_[i].data();
  if (check_finite && !optimizer_->AllFinite(params_.data(), step_sum_.data(), local_size(),
                                            slots, version_ + 1)) {
    LOG(ERROR) << "table '" << Printable(name()) << "': step " << version_
               << " skipped: its update would make a value non-finite";
  } else {
    ApplyUpdate(0, step_sum_.data(), local_size(), version_ + 1);
  }
  ++version_;
  step_sum_empty_ = true;
  step_full_ = 0;
  step_contrib_.clear();
  return true;
}

void DenseTable::FillStatus(v1::TableStatus* status) const {
  *status->mutable_spec() = spec_;
  status->set_offset(offset_);
  status->set_elements_on_shard(local_size());
  status->set_bytes_on_shard(local_size() * 4 * (1 + static_cast<int64_t>(slots_.size())));
  status->set_version(version_);
  status->set_pushes(pushes_);
  status->set_pulls(pulls_);
  status->set_rejected_pushes(rejected_);
  status->set_late_pushes_dropped(late_dropped_);
  status->set_max_staleness(staleness_max_);
  status->set_mean_staleness(staleness_count_ == 0 ? 0.0
                                                   : static_cast<double>(staleness_sum_) /
                                                         static_cast<double>(staleness_count_));
}

}  // namespace ps
