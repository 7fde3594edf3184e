#include "server/shard/worker_registry.h"

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "common/input_checks.h"
#include "glog/logging.h"

namespace ps {

WorkerRegistry::WorkerRegistry(absl::Duration heartbeat_timeout, Clock clock)
    : timeout_(heartbeat_timeout), clock_(std::move(clock)) {}

absl::Status WorkerRegistry::Mismatch(int worker, const Entry& e, uint64_t incarnation,
                                      const char* what) {
  if (e.incarnation == incarnation) return absl::OkStatus();
  return WithReason(absl::FailedPreconditionError(absl::StrCat(
                        what, " for worker ", worker,
                        " from a process that no longer holds it: the worker is now registered "
                        "by another process")),
                    kReasonWorkerReplaced);
}

absl::Status WorkerRegistry::Register(int worker, const std::string& host,
                                      const std::string& device, uint64_t incarnation) {
  if (worker < 0) {
    return absl::InvalidArgumentError(absl::StrCat("worker index ", worker, " is negative"));
  }
  if (absl::Status s = CheckLabel("host", host); !s.ok()) return s;
  if (absl::Status s = CheckLabel("device", device); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Entry& e = workers_[worker];
  const bool rejoin = e.last_heartbeat != absl::Time();
  if (rejoin && e.incarnation != incarnation) {
    LOG(INFO) << "worker " << worker << ": incarnation " << incarnation << " replaces "
              << e.incarnation;
  }
  e.incarnation = incarnation;
  e.live = true;
  e.host = host;
  e.device = device;
  e.last_heartbeat = clock_();
  LOG(INFO) << "worker " << worker << (rejoin ? " re-registered" : " registered") << " from "
            << host << " (" << device << ")";
  return absl::OkStatus();
}

absl::Status WorkerRegistry::Heartbeat(int worker, const v1::WorkerStats& stats,
                                       uint64_t incarnation) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker);
  if (it == workers_.end() || !it->second.live) {
    return WithReason(absl::NotFoundError(absl::StrCat(
                          "worker ", worker, " is not registered; register before heartbeating")),
                      kReasonUnknownWorker);
  }
  if (absl::Status s = Mismatch(worker, it->second, incarnation, "heartbeat"); !s.ok()) return s;
  if (absl::Status s = CheckLabel("device", stats.device()); !s.ok()) return s;
  it->second.last_heartbeat = clock_();
  it->second.stats = stats;
  return absl::OkStatus();
}

absl::Status WorkerRegistry::Leave(int worker, uint64_t incarnation) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker);
  if (it == workers_.end() || !it->second.live) {
    return WithReason(absl::NotFoundError(absl::StrCat("worker ", worker, " is not registered")),
                      kReasonUnknownWorker);
  }
  if (absl::Status s = Mismatch(worker, it->second, incarnation, "leave"); !s.ok()) return s;
  it->second.live = false;
  LOG(INFO) << "worker " << worker << " left";
  return absl::OkStatus();
}

std::vector<int> WorkerRegistry::ExpireStale() {
  std::vector<int> dropped;
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  for (auto& [index, e] : workers_) {
    if (e.live && now - e.last_heartbeat > timeout_) {
      e.live = false;
      dropped.push_back(index);
      LOG(WARNING) << "worker " << index << " dropped: no heartbeat for "
                   << absl::FormatDuration(now - e.last_heartbeat);
    }
  }
  return dropped;
}

absl::Status WorkerRegistry::CheckIncarnation(int worker, uint64_t incarnation) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker);
  // Only a live registration binds the index: a worker dropped for silence, or known
  // only from a checkpoint's history, is unknown (it registers again), not replaced.
  if (it == workers_.end() || !it->second.live) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          "worker ", worker, " is not registered with this shard")),
                      kReasonUnknownWorker);
  }
  return Mismatch(worker, it->second, incarnation, "a call");
}

bool WorkerRegistry::IsLive(int worker) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker);
  return it != workers_.end() && it->second.live;
}

std::vector<int> WorkerRegistry::LiveWorkers() const {
  std::vector<int> live;
  absl::MutexLock lock(&mu_);
  for (const auto& [index, e] : workers_)
    if (e.live) live.push_back(index);
  return live;
}

int WorkerRegistry::num_live() const { return static_cast<int>(LiveWorkers().size()); }

std::vector<v1::WorkerStatus> WorkerRegistry::Snapshot() const {
  std::vector<v1::WorkerStatus> out;
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  for (const auto& [index, e] : workers_) {
    v1::WorkerStatus s;
    s.set_worker_index(index);
    s.set_live(e.live);
    s.set_host(e.host);
    s.set_last_heartbeat_ms_ago(absl::ToInt64Milliseconds(now - e.last_heartbeat));
    *s.mutable_stats() = e.stats;
    if (s.stats().device().empty()) s.mutable_stats()->set_device(e.device);
    out.push_back(std::move(s));
  }
  return out;
}

void WorkerRegistry::RestoreHistory(const std::vector<v1::WorkerStatus>& workers) {
  absl::MutexLock lock(&mu_);
  for (const v1::WorkerStatus& w : workers) {
    if (workers_.count(w.worker_index())) continue;
    Entry& e = workers_[w.worker_index()];
    e.live = false;
    e.host = w.host();
    e.device = w.stats().device();
    e.stats = w.stats();
    e.last_heartbeat = clock_() - absl::Milliseconds(w.last_heartbeat_ms_ago());
  }
}

std::vector<v1::LiveWorker> WorkerRegistry::LiveIncarnations() const {
  std::vector<v1::LiveWorker> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [index, e] : workers_) {
    if (!e.live) continue;
    v1::LiveWorker& w = out.emplace_back();
    w.set_worker_index(index);
    w.set_incarnation(e.incarnation);
  }
  return out;
}

void WorkerRegistry::RestoreLive(const std::vector<v1::LiveWorker>& workers) {
  absl::MutexLock lock(&mu_);
  for (const v1::LiveWorker& w : workers) {
    if (w.worker_index() < 0) continue;
    Entry& e = workers_[w.worker_index()];
    e.live = true;
    e.incarnation = w.incarnation();
    e.last_heartbeat = clock_();
  }
}

}  // namespace ps
