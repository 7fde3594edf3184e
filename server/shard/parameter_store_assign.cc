// ParameterStore: given values for untrained tables, and the listing of sparse rows
// (docs/model_files.md).
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/shard/parameter_store.h"
#include "server/shard/table_locks.h"

namespace ps {
namespace {

// A page's bytes at most (values, keys and their framing), under gRPC's default 4 MiB
// limit on a message a client receives.
constexpr int64_t kPageBytes = 3 << 20;

struct AssignPlan {
  std::vector<DenseTable*> dense;
  std::vector<SparseTable*> sparse;
};

}  // namespace

absl::Status ParameterStore::Assign(const v1::AssignRequest& request) {
  AssignPlan plan;
  int64_t bytes = 0;
  for (const v1::DenseSlice& slice : request.dense()) {
    absl::StatusOr<DenseTable*> t = Find(slice.table());
    if (!t.ok()) return t.status();
    if (absl::Status s = (*t)->CheckSlice(slice, /*with_values=*/true); !s.ok()) return s;
    plan.dense.push_back(*t);
    bytes += static_cast<int64_t>(slice.values().size());
  }
  absl::flat_hash_set<const SparseTable*> seen;
  for (const v1::SparseRows& rows : request.sparse()) {
    absl::StatusOr<SparseTable*> t = FindSparse(rows.table());
    if (!t.ok()) return t.status();
    if (absl::Status s = (*t)->CheckRows(rows, /*with_values=*/true, options_.max_sparse_keys);
        !s.ok()) {
      return s;
    }
    if (!seen.insert(*t).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", rows.table(), "': the request carries its rows twice"));
    }
    plan.sparse.push_back(*t);
    bytes += static_cast<int64_t>(rows.values().size());
  }
  if (bytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("assign of ", bytes, " bytes exceeds the limit of ",
                     options_.max_request_bytes, " bytes per request; split it into chunks"));
  }
  TableLocks<AssignPlan> locks(plan);
  // Every table untrained and every sparse row given room before anything changes.
  for (DenseTable* t : plan.dense) {
    t->mu()->AssertHeld();
    if (absl::Status s = t->CheckUntrained(); !s.ok()) return s;
  }
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    SparseTable* t = plan.sparse[i];
    t->mu()->AssertHeld();
    if (absl::Status s = t->CheckUntrained(); !s.ok()) return s;
    if (absl::Status s = t->PrepareRows(request.sparse(i)); !s.ok()) return s;
  }
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    plan.dense[i]->mu()->AssertHeld();
    plan.dense[i]->Assign(request.dense(i));
  }
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    plan.sparse[i]->mu()->AssertHeld();
    plan.sparse[i]->Assign(request.sparse(i));
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::ListRows(const v1::ListRowsRequest& request,
                                      v1::ListRowsResponse* response) const {
  absl::StatusOr<SparseTable*> t = FindSparse(request.table());
  if (!t.ok()) return t.status();
  if (request.start() < 0 || request.max_rows() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("table '", request.table(), "': start ",
                                                   request.start(), " and max_rows ",
                                                   request.max_rows(), " must not be negative"));
  }
  const int64_t page = std::max<int64_t>(1, kPageBytes / (int64_t{4} * (*t)->width() + 10));
  const int64_t max_rows = request.max_rows() == 0 ? page : std::min(request.max_rows(), page);
  absl::MutexLock lock((*t)->mu());
  const int64_t listed = (*t)->ListRows(request.start(), max_rows, response->mutable_rows());
  response->set_total_rows((*t)->num_rows());
  response->set_next(std::min(request.start(), (*t)->num_rows()) + listed);
  return absl::OkStatus();
}

}  // namespace ps
