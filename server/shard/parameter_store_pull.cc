// ParameterStore's pull path: planned once, then tried without blocking until every table
// it names is ready (server/shard/pull_waiters.h parks it meanwhile).
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "server/shard/parameter_store.h"

namespace ps {

void ParameterStore::EnterSsp(const v1::PullRequest& request, PullPlan* plan) {
  // Wait once, for the tightest bound among the tables asked for.
  auto consider = [&](const v1::TableSpec& spec) {
    if (spec.consistency() == v1::SSP &&
        (plan->ssp == nullptr || spec.staleness_bound() < plan->ssp->staleness_bound())) {
      plan->ssp = &spec;
    }
  };
  for (const DenseTable* t : plan->dense) consider(t->spec());
  for (const SparseTable* t : plan->sparse) consider(t->spec());
  if (plan->ssp == nullptr) return;
  plan->ssp_want =
      clocks_.Enter(request.worker_index(), request.clock(), plan->ssp->staleness_bound());
}

std::optional<absl::Status> ParameterStore::TryPull(const v1::PullRequest& request,
                                                    const PullPlan& plan,
                                                    const std::vector<char*>& dense_out,
                                                    v1::PullResponse* response) {
  if (shutdown_.load()) {
    return WithReason(absl::UnavailableError("shard is shutting down"), kReasonShuttingDown);
  }
  if (plan.ssp_want > 0 && !clocks_.Reached(plan.ssp_want)) return std::nullopt;
  const int64_t want = request.min_version();
  for (DenseTable* t : plan.dense) {
    absl::MutexLock lock(t->mu());
    if (t->version() >= want) continue;
    // A sync worker never asks for more than one step past a shard's version, unless
    // the shard restarted from an older checkpoint than the worker has seen.
    if (t->is_sync() && want > t->version() + 1) {
      return WithReason(
          absl::FailedPreconditionError(absl::StrCat(
              "table '", t->name(), "' on shard ", options_.shard_index, " is at version ",
              t->version(), " but the pull asks for ", want,
              " (the shard restarted from a checkpoint); pull again from its current version")),
          kReasonWrongStep);
    }
    return std::nullopt;
  }
  // Versions only grow: every table stays ready while it is read.
  for (size_t i = 0; i < plan.sparse.size(); ++i) {
    SparseTable* t = plan.sparse[i];
    absl::MutexLock lock(t->mu());
    v1::SparseRows* out = response->add_sparse();
    out->set_table(request.sparse(i).table());
    t->Read(request.sparse(i), out->mutable_values());
    out->set_version(t->version());
    t->CountPull();
  }
  for (size_t i = 0; i < plan.dense.size(); ++i) {
    ReadDense(plan.dense[i], request.dense(i), request.dense(i).format(),
              dense_out.empty() ? nullptr : dense_out[i], response);
  }
  return absl::OkStatus();
}

absl::Status ParameterStore::PullExpired(const v1::PullRequest& request,
                                         const PullPlan& plan) const {
  if (plan.ssp_want > 0 && !clocks_.Reached(plan.ssp_want)) {
    return clocks_.Behind(request.worker_index(), plan.ssp_want, plan.ssp->staleness_bound(),
                          plan.ssp->name());
  }
  const int64_t want = request.min_version();
  for (DenseTable* t : plan.dense) {
    absl::MutexLock lock(t->mu());
    if (t->version() < want) {
      return absl::DeadlineExceededError(
          absl::StrCat("table '", t->name(), "': version ", want,
                       " not reached before the deadline (at ", t->version(), ")"));
    }
  }
  return absl::DeadlineExceededError("pull not answered before the deadline");
}

void ParameterStore::ReadDense(DenseTable* t, const v1::DenseSlice& slice,
                               v1::ValueFormat format, char* window,
                               v1::PullResponse* response) {
  absl::MutexLock lock(t->mu());
  v1::DenseSlice* out = response->add_dense();
  out->set_table(slice.table());
  out->set_offset(slice.offset());
  out->set_length(slice.length());
  out->set_version(t->version());
  if (window != nullptr) {
    t->ReadInto(slice.offset(), slice.length(), window);
    out->set_window_offset(slice.window_offset());
  } else {
    t->Read(slice.offset(), slice.length(), format, out->mutable_values());
    if (format != v1::FLOAT32) out->set_format(format);
  }
  t->CountPull();
}

uint64_t ParameterStore::PullAsync(const v1::PullRequest& request, absl::Time deadline,
                                   v1::PullResponse* response, std::vector<char*> dense_out,
                                   PullWaiters::Done done) {
  absl::StatusOr<PullPlan> plan =
      PlanPull(request, dense_out.empty() ? nullptr : &dense_out);
  if (!plan.ok()) {
    done(plan.status());
    return 0;
  }
  EnterSsp(request, &*plan);
  // Entering may have raised the slowest live clock, which other SSP pulls wait for.
  if (plan->ssp != nullptr) waiters_.Notify();
  auto shared = std::make_shared<const PullPlan>(*std::move(plan));
  auto out = std::make_shared<const std::vector<char*>>(std::move(dense_out));
  return waiters_.Wait(
      [this, &request, shared, out, response] {
        return TryPull(request, *shared, *out, response);
      },
      deadline, [this, &request, shared] { return PullExpired(request, *shared); },
      std::move(done));
}

absl::Status ParameterStore::Pull(const v1::PullRequest& request, absl::Time deadline,
                                  v1::PullResponse* response,
                                  const std::vector<char*>* dense_out) {
  return WaitForAnswer([&](PullWaiters::Done done) {
    PullAsync(request, deadline, response,
              dense_out == nullptr ? std::vector<char*>() : *dense_out, std::move(done));
  });
}

}  // namespace ps
