// ParameterStore's numeric safety: a push whose update would leave any value or optimizer
// slot non-finite is refused whole, before any table changes.
#include <map>
#include <vector>

#include "server/shard/parameter_store.h"

namespace ps {

absl::Status ParameterStore::CheckFiniteLocked(const v1::PushRequest& request,
                                               const PushPlan& plan, const PushKey& key,
                                               const std::vector<int>& live) {
  // Sync: a table's slices of this request count together (they may complete the
  // worker's gradient and the step only together).
  std::map<DenseTable*, std::pair<std::vector<const v1::DenseSlice*>, std::vector<const char*>>>
      sync;
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    DenseTable* t = plan.dense[i];
    t->mu()->AssertHeld();
    if (t->is_sync()) {
      sync[t].first.push_back(&request.dense(i));
      sync[t].second.push_back(plan.values[i]);
    } else if (absl::Status s = t->CheckFinite(key, request.dense(i), plan.values[i]); !s.ok()) {
      return s;
    }
  }
  for (auto& [t, slices] : sync) {
    t->mu()->AssertHeld();
    if (absl::Status s =
            t->CheckFiniteStep(request.worker_index(), slices.first, slices.second, live);
        !s.ok()) {
      return s;
    }
  }
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    SparseTable* t = plan.sparse[i];
    t->mu()->AssertHeld();
    if (absl::Status s = t->CheckFinite(key, request.sparse(i)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace ps
