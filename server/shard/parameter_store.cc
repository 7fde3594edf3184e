#include "server/shard/parameter_store.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/error_reason.h"
#include "common/input_checks.h"
#include "common/value_format.h"
#include "glog/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/shard/table_locks.h"

namespace ps {
namespace {

// Names what differs between two specs of the same table, for ALREADY_EXISTS messages.
std::string DescribeSpecDifference(const v1::TableSpec& a, const v1::TableSpec& b) {
  if (a.kind() != b.kind()) return "kind differs";
  if (!std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end())) {
    return absl::StrCat("shape [", absl::StrJoin(a.shape(), ","), "] vs requested [",
                        absl::StrJoin(b.shape(), ","), "]");
  }
  if (a.consistency() != b.consistency()) {
    return absl::StrCat("consistency ", v1::ConsistencyMode_Name(a.consistency()),
                        " vs requested ", v1::ConsistencyMode_Name(b.consistency()));
  }
  // The fields that differ, e.g. "optimizer.kind: SGD vs requested MOMENTUM".
  std::string fields;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&fields);
  differ.Compare(a, b);
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(fields, '\n', absl::SkipEmpty())) {
    std::string l(absl::StripAsciiWhitespace(line));
    absl::StrReplaceAll({{" -> ", " vs requested "},
                         {"modified: ", ""},
                         {"added: ", "requested only: "},
                         {"deleted: ", "on the shard only: "}},
                        &l);
    lines.push_back(std::move(l));
    if (lines.size() == 4) break;
  }
  return lines.empty() ? "settings differ" : absl::StrJoin(lines, "; ");
}

// What to do about a table that exists with other settings.
constexpr char kSpecHint[] =
    ". The model lives on the shards until they stop: run every worker with the flags of the "
    "job that created it (--model, --layers, --optimizer and its settings, --mode, --seed), or "
    "stop the shards (and move their --checkpoint_dir aside) to train a new model";

}  // namespace

ParameterStore::ParameterStore(const StoreOptions& options, WorkerRegistry* registry,
                               MemoryBudget* budget)
    : options_(options), registry_(registry), budget_(budget) {}

absl::StatusOr<DenseTable*> ParameterStore::Find(const std::string& name) const {
  absl::MutexLock lock(&tables_mu_);
  auto it = tables_.find(name);
  if (it == tables_.end()) {
    if (sparse_.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", Printable(name), "' is sparse; address it by keys, not ranges"));
    }
    return absl::NotFoundError(absl::StrCat("table '", Printable(name), "' does not exist on shard ",
                                            options_.shard_index));
  }
  return it->second.get();
}

absl::StatusOr<SparseTable*> ParameterStore::FindSparse(const std::string& name) const {
  absl::MutexLock lock(&tables_mu_);
  auto it = sparse_.find(name);
  if (it == sparse_.end()) {
    if (tables_.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", Printable(name), "' is dense; address it by ranges, not keys"));
    }
    return absl::NotFoundError(absl::StrCat("table '", Printable(name), "' does not exist on shard ",
                                            options_.shard_index));
  }
  return it->second.get();
}

std::optional<absl::Status> ParameterStore::Existing(const v1::TableSpec& spec,
                                                     v1::CreateTableResponse* response) const {
  const v1::TableSpec* have = nullptr;
  auto dense = tables_.find(spec.name());
  auto sparse = sparse_.find(spec.name());
  if (dense != tables_.end()) have = &dense->second->spec();
  if (sparse != sparse_.end()) have = &sparse->second->spec();
  if (have == nullptr) return std::nullopt;
  if (!google::protobuf::util::MessageDifferencer::Equals(*have, spec)) {
    return absl::AlreadyExistsError(absl::StrCat("table '", spec.name(),
                                                 "' already exists with a different spec: ",
                                                 DescribeSpecDifference(*have, spec), kSpecHint));
  }
  response->set_created(false);
  if (dense != tables_.end()) {
    absl::MutexLock table_lock(dense->second->mu());
    response->set_version(dense->second->version());
    response->set_elements_on_shard(dense->second->local_size());
  } else {
    absl::MutexLock table_lock(sparse->second->mu());
    response->set_version(sparse->second->version());
    response->set_elements_on_shard(sparse->second->num_rows());
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::CheckRoom(const std::string& name) const {
  if (static_cast<int64_t>(tables_.size() + sparse_.size()) < options_.max_tables) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "shard ", options_.shard_index, " holds ", options_.max_tables,
      " tables, its limit (--max_tables); table '", name, "' not created"));
}

absl::Status ParameterStore::CreateTable(const v1::CreateTableRequest& request,
                                         v1::CreateTableResponse* response) {
  // Absent hyper-parameters are PyTorch's defaults: filled in before anything compares
  // or stores the spec.
  v1::TableSpec spec = request.spec();
  *spec.mutable_optimizer() = WithDefaults(spec.optimizer());
  if (absl::Status s = CheckTableName(spec.name()); !s.ok()) return s;
  if (spec.kind() != v1::DENSE && spec.kind() != v1::SPARSE) {
    return absl::InvalidArgumentError(absl::StrCat("table '", spec.name(), "': kind ",
                                                   v1::TableKind_Name(spec.kind()),
                                                   " is not DENSE or SPARSE"));
  }
  {
    absl::MutexLock lock(&tables_mu_);
    if (std::optional<absl::Status> s = Existing(spec, response)) return *s;
    if (absl::Status s = CheckRoom(spec.name()); !s.ok()) return s;
  }
  // Build outside the map lock: initialising a large table takes a while.
  std::unique_ptr<DenseTable> dense;
  std::unique_ptr<SparseTable> sparse;
  // A failure may be a twin of this call holding the budget for the same table: if it
  // created the table meanwhile, this call's answer is that one.
  auto failed = [&](absl::Status s) {
    absl::MutexLock lock(&tables_mu_);
    if (std::optional<absl::Status> created = Existing(spec, response)) return *created;
    return s;
  };
  if (spec.kind() == v1::DENSE) {
    absl::StatusOr<std::unique_ptr<DenseTable>> t =
        DenseTable::Create(spec, options_.shard_index, options_.num_shards, budget_);
    if (!t.ok()) return failed(t.status());
    dense = *std::move(t);
  } else {
    absl::StatusOr<std::unique_ptr<SparseTable>> t =
        SparseTable::Create(spec, options_.shard_index, options_.num_shards, budget_);
    if (!t.ok()) return failed(t.status());
    sparse = *std::move(t);
  }
  absl::MutexLock lock(&tables_mu_);
  if (std::optional<absl::Status> s = Existing(spec, response)) return *s;  // created meanwhile
  if (absl::Status s = CheckRoom(spec.name()); !s.ok()) return s;
  response->set_created(true);
  response->set_version(0);
  if (dense != nullptr) {
    response->set_elements_on_shard(dense->local_size());
    LOG(INFO) << "created dense table '" << spec.name() << "' shape ["
              << absl::StrJoin(spec.shape(), ",") << "] "
              << v1::ConsistencyMode_Name(spec.consistency()) << " "
              << v1::OptimizerSpec::Kind_Name(spec.optimizer().kind()) << ": elements ["
              << dense->offset() << ", " << dense->offset() + dense->local_size()
              << ") on shard " << options_.shard_index;
    tables_.emplace(spec.name(), std::move(dense));
  } else {
    LOG(INFO) << "created sparse table '" << spec.name() << "' row width " << spec.row_width()
              << " " << v1::ConsistencyMode_Name(spec.consistency()) << " "
              << v1::OptimizerSpec::Kind_Name(spec.optimizer().kind());
    sparse_.emplace(spec.name(), std::move(sparse));
  }
  return absl::OkStatus();
}

absl::StatusOr<ParameterStore::PullPlan> ParameterStore::PlanPull(
    const v1::PullRequest& request, const std::vector<char*>* dense_out) const {
  if (dense_out != nullptr && dense_out->size() != static_cast<size_t>(request.dense_size())) {
    return absl::InternalError("pull destinations do not match the request's slices");
  }
  PullPlan plan;
  int64_t bytes = 0;
  for (const v1::SparseRows& rows : request.sparse()) {
    absl::StatusOr<SparseTable*> t = FindSparse(rows.table());
    if (!t.ok()) return t.status();
    if (absl::Status s = (*t)->CheckRows(rows, /*with_values=*/false, options_.max_sparse_keys);
        !s.ok()) {
      return s;
    }
    bytes += static_cast<int64_t>(rows.keys_size()) * (*t)->width() * 4;
    plan.sparse.push_back(*t);
  }
  for (int i = 0; i < request.dense_size(); ++i) {
    const v1::DenseSlice& slice = request.dense(i);
    absl::StatusOr<DenseTable*> t = Find(slice.table());
    if (!t.ok()) return t.status();
    if (absl::Status s = (*t)->CheckSlice(slice, /*with_values=*/false); !s.ok()) return s;
    const size_t value_bytes = ValueBytes(slice.format());
    if (value_bytes == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pull: table '", slice.table(), "' slice at ", slice.offset(),
                       " asks for value format ", slice.format(), ", none of float32, bf16, fp16"));
    }
    // Values written to a transfer window are not in the reply: the window bounds them.
    if (dense_out == nullptr || (*dense_out)[i] == nullptr) {
      bytes += slice.length() * static_cast<int64_t>(value_bytes);
    }
    plan.dense.push_back(*t);
  }
  if (bytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pull of ", bytes, " bytes exceeds the limit of ", options_.max_request_bytes,
        " bytes per request; split it into chunks"));
  }
  return plan;
}

absl::StatusOr<ParameterStore::PushPlan> ParameterStore::PlanPush(
    const v1::PushRequest& request, const std::vector<const char*>* dense_values) const {
  if (request.dense_size() == 0 && request.sparse_size() == 0) {
    return absl::InvalidArgumentError("push carries no slices and no rows");
  }
  if (dense_values != nullptr &&
      dense_values->size() != static_cast<size_t>(request.dense_size())) {
    return absl::InternalError("push value pointers do not match the request's slices");
  }
  PushPlan plan;
  plan.values.assign(request.dense_size(), nullptr);
  if (dense_values != nullptr) plan.values = *dense_values;
  int64_t bytes = 0;
  for (int i = 0; i < request.dense_size(); ++i) {
    absl::StatusOr<DenseTable*> t = Find(request.dense(i).table());
    if (!t.ok()) return t.status();
    // Bytes in a transfer window are not in the message: the window's size bounds them.
    if (plan.values[i] == nullptr) bytes += static_cast<int64_t>(request.dense(i).values().size());
    plan.dense.push_back(*t);
  }
  for (const v1::SparseRows& rows : request.sparse()) {
    absl::StatusOr<SparseTable*> t = FindSparse(rows.table());
    if (!t.ok()) return t.status();
    bytes += static_cast<int64_t>(rows.values().size());
    plan.sparse.push_back(*t);
  }
  if (bytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "push of ", bytes, " bytes exceeds the limit of ", options_.max_request_bytes,
        " bytes per request; split it into chunks"));
  }
  if (absl::Status s = CheckPushed(request, plan); !s.ok()) return s;
  return plan;
}

absl::Status ParameterStore::CheckPushed(const v1::PushRequest& request,
                                         const PushPlan& plan) const {
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    if (absl::Status s =
            plan.dense[i]->CheckSlice(request.dense(i), /*with_values=*/true, plan.values[i]);
        !s.ok()) {
      absl::MutexLock lock(plan.dense[i]->mu());
      plan.dense[i]->CountRejected(request.step());
      return s;
    }
  }
  absl::flat_hash_set<const SparseTable*> seen;
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    if (absl::Status s = plan.sparse[i]->CheckRows(request.sparse(i), /*with_values=*/true,
                                                   options_.max_sparse_keys);
        !s.ok()) {
      absl::MutexLock lock(plan.sparse[i]->mu());
      plan.sparse[i]->CountRejected();
      return s;
    }
    if (!seen.insert(plan.sparse[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", plan.sparse[i]->name(), "': push carries the table's rows twice"));
    }
  }
  // Two slices of one request must not overlap either: sorted by table and offset, only
  // neighbours can (n log n, not n^2).
  std::vector<int> order(plan.dense.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  auto key = [&](int i) { return std::make_pair(plan.dense[i], request.dense(i).offset()); };
  std::sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
  for (size_t k = 1; k < order.size(); ++k) {
    const int i = order[k - 1], j = order[k];
    const v1::DenseSlice& a = request.dense(i);
    const v1::DenseSlice& b = request.dense(j);
    if (plan.dense[i] == plan.dense[j] && b.offset() < a.offset() + a.length()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", a.table(), "': push carries overlapping ranges at ", a.offset(), " and ",
          b.offset()));
    }
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::PrepareMemory(const v1::PushRequest& request,
                                           const PushPlan& plan) {
  std::vector<DenseTable*> buffered;  // tables this request gave a new chunk buffer
  absl::Status s;
  for (size_t i = 0; s.ok() && i < plan.dense.size(); ++i) {
    bool allocated = false;
    s = plan.dense[i]->PrepareChunk(request.worker_index(), request.dense(i), &allocated);
    if (allocated) buffered.push_back(plan.dense[i]);
  }
  for (size_t i = 0; s.ok() && i < plan.sparse.size(); ++i) {
    s = plan.sparse[i]->PrepareRows(request.sparse(i));
  }
  // Refused: give back the chunk buffers this request made. (Sparse blocks reserved for
  // an earlier table stay as capacity: no row exists in them.)
  if (!s.ok()) {
    for (DenseTable* t : buffered) t->DropChunk(request.worker_index());
  }
  return s;
}

absl::Status ParameterStore::ApplyLocked(const v1::PushRequest& request, const PushPlan& plan,
                                         const PushKey& key, v1::PushResponse* response) {
  // The caller holds every table's lock; the analysis cannot name a set of locks, so
  // each use says so (absl::Mutex::AssertHeld also checks it in debug builds).
  const bool live = registry_->IsLive(request.worker_index());
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    DenseTable* table = plan.dense[i];
    table->mu()->AssertHeld();
    absl::Status s = table->CheckPush(request.worker_index(), live, request.step(),
                                      request.dense(i));
    if (!s.ok()) {
      table->CountRejected(request.step());
      for (SparseTable* t : plan.sparse) {
        t->mu()->AssertHeld();
        t->CountRejected();
      }
      return s;
    }
  }
  const std::vector<int> live_workers = registry_->LiveWorkers();
  if (absl::Status s = options_.check_finite_updates
                           ? CheckFiniteLocked(request, plan, key, live_workers)
                           : absl::OkStatus();
      !s.ok()) {
    for (DenseTable* t : plan.dense) {
      t->mu()->AssertHeld();
      t->CountRejected(request.step());
    }
    return s;
  }
  // Memory for chunk buffers and new sparse rows, reserved and allocated before anything
  // is applied: a push that does not fit the budget changes nothing.
  if (absl::Status s = PrepareMemory(request, plan); !s.ok()) return s;
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    DenseTable* table = plan.dense[i];
    table->mu()->AssertHeld();
    table->Push(key, request.step(), request.dense(i), plan.values[i]);
  }
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    SparseTable* table = plan.sparse[i];
    table->mu()->AssertHeld();
    table->Push(key, request.step(), request.sparse(i));
  }
  std::vector<DenseTable*> order = plan.dense;
  std::sort(order.begin(), order.end(),
            [](DenseTable* a, DenseTable* b) { return a->name() < b->name(); });
  order.erase(std::unique(order.begin(), order.end()), order.end());
  for (DenseTable* t : order) {
    t->mu()->AssertHeld();
    if (t->MaybeFinishStep(live_workers) && step_hook_) step_hook_(t);
  }
  for (DenseTable* t : plan.dense) {
    t->mu()->AssertHeld();
    response->add_dense_versions(t->version());
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::Push(const v1::PushRequest& request, v1::PushResponse* response,
                                  const std::vector<const char*>* dense_values) {
  absl::StatusOr<PushPlan> plan = PlanPush(request, dense_values);
  if (!plan.ok()) return plan.status();
  // One update per push: a request without an id is a push of its own.
  PushKey key{request.worker_index(), request.id().incarnation(), request.id().sequence()};
  if (key.incarnation == 0) key.sequence = -anonymous_pushes_.fetch_add(1) - 1;
  absl::Status status;
  {
    TableLocks locks(*plan);
    status = ApplyLocked(request, *plan, key, response);
  }
  const bool ssp =
      std::any_of(plan->dense.begin(), plan->dense.end(), [](DenseTable* t) { return t->is_ssp(); }) ||
      std::any_of(plan->sparse.begin(), plan->sparse.end(), [](SparseTable* t) { return t->is_ssp(); });
  if (status.ok() && ssp) clocks_.Advance(request.worker_index(), request.clock());
  if (status.ok()) waiters_.Notify();  // versions or clocks moved: parked pulls look again
  return status;
}

void ParameterStore::OnWorkerRegistered(int worker, int64_t clock) {
  clocks_.Register(worker, clock, registry_->LiveWorkers());
  waiters_.Notify();  // the worker's clock may be ahead of the old slowest
}

void ParameterStore::SetStepHook(std::function<void(DenseTable*)> hook) {
  step_hook_ = std::move(hook);
}

std::vector<DenseTable*> ParameterStore::Tables() const {
  std::vector<DenseTable*> out;
  absl::MutexLock lock(&tables_mu_);
  for (const auto& [name, t] : tables_) out.push_back(t.get());
  return out;
}

std::vector<SparseTable*> ParameterStore::SparseTables() const {
  std::vector<SparseTable*> out;
  absl::MutexLock lock(&tables_mu_);
  for (const auto& [name, t] : sparse_) out.push_back(t.get());
  return out;
}

void ParameterStore::OnMembershipChange() {
  const std::vector<int> live = registry_->LiveWorkers();
  clocks_.SetLive(live);
  for (DenseTable* t : Tables()) {
    absl::MutexLock lock(t->mu());
    if (t->MaybeFinishStep(live, options_.check_finite_updates)) {
      if (step_hook_) step_hook_(t);
      LOG(INFO) << "table '" << t->name() << "': step finished without departed workers, now at version "
                << t->version();
    }
  }
  waiters_.Notify();
}

void ParameterStore::Shutdown() {
  shutdown_.store(true);
  waiters_.Notify();  // every parked pull is answered UNAVAILABLE
}

void ParameterStore::FillStatus(v1::GetStatusResponse* response) const {
  response->set_shard_index(options_.shard_index);
  response->set_num_shards(options_.num_shards);
  absl::MutexLock lock(&tables_mu_);
  for (const auto& [name, t] : tables_) {
    absl::MutexLock table_lock(t->mu());
    t->FillStatus(response->add_tables());
  }
  for (const auto& [name, t] : sparse_) {
    absl::MutexLock table_lock(t->mu());
    t->FillStatus(response->add_tables());
  }
}

}  // namespace ps
