// ParameterStore: every table one shard holds, and the request-level rules for creating,
// pulling and pushing them. Knows nothing of gRPC: the service adapter passes protobuf
// messages in and turns the returned absl::Status into a gRPC status.
//
// A push is all-or-nothing: every slice is checked (table, range, bytes, finiteness,
// step, duplicates) under the locks of all the tables it names, taken in name order,
// before any slice is applied. A pull is answered once each table it names has reached
// the requested version (and the SSP clock allows it), or when the deadline passes
// (DEADLINE_EXCEEDED); until then it is parked without a thread (server/shard/pull_waiters.h)
// and looked at again after each push and membership change.
//
// Thread-safe: all methods may be called concurrently.
#ifndef PS_SERVER_SHARD_PARAMETER_STORE_H_
#define PS_SERVER_SHARD_PARAMETER_STORE_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/memory_budget.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"
#include "server/shard/pull_waiters.h"
#include "server/shard/ssp_clocks.h"
#include "server/shard/worker_registry.h"
#include "server/table/dense_table.h"
#include "server/table/sparse_table.h"

namespace ps {

struct StoreOptions {
  int shard_index = 0;
  int num_shards = 1;
  // Largest payload one push or pull may carry.
  int64_t max_request_bytes = 64 << 20;
  // Most sparse keys one table's part of a request may carry.
  int64_t max_sparse_keys = 1 << 17;
  // Most tables (dense and sparse) one shard holds.
  int64_t max_tables = 4096;
  // Refuse a push whose update would leave a value or optimizer slot non-finite. Costs
  // one read pass over the updated range per push (docs/benchmarks.md).
  bool check_finite_updates = true;
};

class ParameterStore {
 public:
  // `registry` and `budget` (null: no limit) must outlive the store. Every table's
  // memory is reserved from `budget` (common/memory_budget.h).
  ParameterStore(const StoreOptions& options, WorkerRegistry* registry,
                 MemoryBudget* budget = nullptr);

  // Creates this shard's part of a table. An identical spec already present is not an
  // error (created = false), so every worker may create the tables it uses; a different
  // spec under the same name is ALREADY_EXISTS.
  absl::Status CreateTable(const v1::CreateTableRequest& request,
                           v1::CreateTableResponse* response);
  // Answers the pull through `done`, on this thread if it is ready, else on the thread
  // of the push (or timer) that makes it ready. `dense_out`, when not empty, has one
  // entry per request.dense(): a non-null entry receives that slice's values (length * 4
  // bytes, written under the table's lock) instead of the response, whose slice then
  // carries the request's window_offset. `request`, `response` and those targets must stay
  // valid until `done` runs. Returns an id for CancelPull().
  uint64_t PullAsync(const v1::PullRequest& request, absl::Time deadline,
                     v1::PullResponse* response, std::vector<char*> dense_out,
                     PullWaiters::Done done);
  // A waiting pull's caller gave up: it is answered CANCELLED at once.
  void CancelPull(uint64_t id) { waiters_.Cancel(id); }
  // PullAsync, waited for on this thread.
  absl::Status Pull(const v1::PullRequest& request, absl::Time deadline,
                    v1::PullResponse* response,
                    const std::vector<char*>* dense_out = nullptr);
  // The most tensor bytes one push or pull request may carry.
  int64_t max_request_bytes() const { return options_.max_request_bytes; }
  // Pulls parked now, waiting for a version or an SSP clock.
  int waiting_pulls() const { return waiters_.parked(); }
  // `dense_values`, when given, has one entry per request.dense(): a non-null entry holds
  // that slice's gradient (length * 4 bytes, e.g. in a transfer window), and the slice's
  // own `values` must then be empty.
  absl::Status Push(const v1::PushRequest& request, v1::PushResponse* response,
                    const std::vector<const char*>* dense_values = nullptr);

  // Given values for tables no push has reached yet (AssignRequest, docs/model_files.md):
  // every slice and row is checked (range, length, float32, finite) and every table
  // named must be untrained, else nothing changes (INVALID_ARGUMENT, NOT_FOUND,
  // FAILED_PRECONDITION naming the table). In parameter_store_assign.cc.
  absl::Status Assign(const v1::AssignRequest& request);
  // A page of a sparse table's rows (ListRowsRequest).
  absl::Status ListRows(const v1::ListRowsRequest& request, v1::ListRowsResponse* response) const;

  // Re-checks every sync table after the live set shrank, so a dropped or departed
  // worker never holds a step back, and wakes SSP pulls waiting on a departed worker.
  void OnMembershipChange();
  // Places a (re)registered worker's SSP clock: a process that has completed `clock`
  // steps joins no further behind than the slowest live worker.
  void OnWorkerRegistered(int worker, int64_t clock);

  // Called with the table's lock held each time a sync table finishes a step.
  void SetStepHook(std::function<void(DenseTable*)> hook);
  // Every dense (sparse) table, in name order. Pointers stay valid for the store's life.
  std::vector<DenseTable*> Tables() const;
  std::vector<SparseTable*> SparseTables() const;
  // Adds a table rebuilt from a checkpoint; call before serving. ALREADY_EXISTS if a
  // table of that name is present. Fills the spec's absent hyper-parameters in.
  absl::Status RestoreTable(v1::TableCheckpoint* saved);
  // Every table of a checkpoint, all or none: on any error nothing is added and the
  // memory taken is given back.
  absl::Status RestoreTables(google::protobuf::RepeatedPtrField<v1::TableCheckpoint>* saved);
  // Wakes every waiting pull with UNAVAILABLE; later pulls fail at once.
  void Shutdown();

  void FillStatus(v1::GetStatusResponse* response) const;

 private:
  // The tables a request names, found and checked, in request order.
  struct PullPlan {
    std::vector<DenseTable*> dense;
    std::vector<SparseTable*> sparse;
    // SSP: the tightest bound among the tables, and the clock the slowest live worker
    // must reach first (none when ssp is null or ssp_want <= 0).
    const v1::TableSpec* ssp = nullptr;
    int64_t ssp_want = 0;
  };
  struct PushPlan {
    std::vector<DenseTable*> dense;
    std::vector<SparseTable*> sparse;
    std::vector<const char*> values;  // per dense slice: its gradient outside the message
  };

  // For CreateTable: OK (created = false, response filled) when an identical spec is
  // present, ALREADY_EXISTS for a different one, nullopt when the name is free.
  std::optional<absl::Status> Existing(const v1::TableSpec& spec,
                                       v1::CreateTableResponse* response) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tables_mu_);
  // RESOURCE_EXHAUSTED when the shard holds max_tables tables already.
  absl::Status CheckRoom(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(tables_mu_);
  // Returns the table, or NOT_FOUND naming it (INVALID_ARGUMENT if it is of the other kind).
  absl::StatusOr<DenseTable*> Find(const std::string& name) const;
  absl::StatusOr<SparseTable*> FindSparse(const std::string& name) const;

  // Finds and checks every table and range of a pull, and its reply's size.
  absl::StatusOr<PullPlan> PlanPull(const v1::PullRequest& request,
                                    const std::vector<char*>* dense_out) const;
  // SSP: records the worker's clock and what its pull waits for, for the tightest
  // staleness bound among the pull's tables.
  void EnterSsp(const v1::PullRequest& request, PullPlan* plan);
  // The pull's answer if every table is ready (its values then in `response`), an error,
  // or std::nullopt while it must wait. Never blocks.
  std::optional<absl::Status> TryPull(const v1::PullRequest& request, const PullPlan& plan,
                                      const std::vector<char*>& dense_out,
                                      v1::PullResponse* response);
  // The DEADLINE_EXCEEDED status naming what an unanswered pull still waits for.
  absl::Status PullExpired(const v1::PullRequest& request, const PullPlan& plan) const;
  // Reads a ready slice into `window` (when not null, float32) or the reply, coded in
  // `format`.
  void ReadDense(DenseTable* t, const v1::DenseSlice& slice, v1::ValueFormat format,
                 char* window, v1::PullResponse* response);
  // Finds the push's tables and checks everything that needs no table lock: sizes,
  // ranges, finiteness, duplicate and overlapping parts.
  absl::StatusOr<PushPlan> PlanPush(const v1::PushRequest& request,
                                    const std::vector<const char*>* dense_values) const;
  absl::Status CheckPushed(const v1::PushRequest& request, const PushPlan& plan) const;
  // With every table of the push locked: INVALID_ARGUMENT naming the table and element
  // when any update the push makes (or a sync step it completes, with `live` the live
  // workers) would leave a value or optimizer slot non-finite (parameter_store_finite.cc).
  absl::Status CheckFiniteLocked(const v1::PushRequest& request, const PushPlan& plan,
                                 const PushKey& key, const std::vector<int>& live)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // With every table of the push locked and checked: allocates (against the budget) the
  // chunk buffers and sparse rows the push needs; on failure gives back what it made.
  absl::Status PrepareMemory(const v1::PushRequest& request, const PushPlan& plan)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // With every table of the push locked: the checks that need the tables' state, then
  // the updates, and the sync steps they complete.
  absl::Status ApplyLocked(const v1::PushRequest& request, const PushPlan& plan,
                           const PushKey& key, v1::PushResponse* response);

  const StoreOptions options_;
  WorkerRegistry* const registry_;
  MemoryBudget* const budget_;
  std::atomic<bool> shutdown_{false};
  std::atomic<int64_t> anonymous_pushes_{0};  // gives requests without a push id a key
  std::function<void(DenseTable*)> step_hook_;  // set before serving

  SspClocks clocks_;
  mutable absl::Mutex tables_mu_;
  // Tables are never removed, so their pointers stay valid without the lock.
  std::map<std::string, std::unique_ptr<DenseTable>> tables_ ABSL_GUARDED_BY(tables_mu_);
  std::map<std::string, std::unique_ptr<SparseTable>> sparse_ ABSL_GUARDED_BY(tables_mu_);
  // Last: destroyed first, while the tables its parked pulls read are still there.
  PullWaiters waiters_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_PARAMETER_STORE_H_
