#include "worker/train/membership.h"

#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/error_reason.h"
#include "glog/logging.h"
#include "worker/train/recovery.h"

namespace ps {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::vector<int64_t> ShardIndices(int64_t n, int worker, int workers, uint64_t seed) {
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  const int64_t begin = n * worker / workers, end = n * (worker + 1) / workers;
  return std::vector<int64_t>(all.begin() + begin, all.begin() + end);
}

absl::Status WaitForWorkers(PsClient* client, int num_workers, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  absl::Time next_log = absl::Now();
  while (true) {
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
    if (!status.ok()) return status.status();
    int live = num_workers;
    bool started = false;
    for (const v1::GetStatusResponse& shard : *status) {
      int shard_live = 0;
      for (const v1::WorkerStatus& w : shard.workers()) shard_live += w.live();
      live = std::min(live, shard_live);
      for (const v1::TableStatus& t : shard.tables()) started |= t.version() > 0;
    }
    if (live >= num_workers || started) return absl::OkStatus();
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat("only ", live, " of ", num_workers,
                                                      " workers registered within ",
                                                      absl::FormatDuration(timeout)));
    }
    if (absl::Now() >= next_log) {
      LOG(INFO) << "waiting for workers: " << live << " of " << num_workers << " registered";
      next_log = absl::Now() + absl::Seconds(5);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::StatusOr<std::unique_ptr<HeartbeatThread>> JoinJob(PsClient* client, int worker,
                                                         const std::string& device,
                                                         int num_workers,
                                                         absl::Duration start_timeout) {
  if (absl::Status s = client->RegisterWorker(worker, HostName(), device); !s.ok()) return s;
  auto heartbeat = std::make_unique<HeartbeatThread>(client, worker, device);
  if (absl::Status s = WaitForWorkers(client, num_workers, start_timeout); !s.ok()) return s;
  return heartbeat;
}

absl::Status Rejoin(PsClient* client, int worker, const std::string& device) {
  client->ResetProgress();
  return client->RegisterWorker(worker, HostName(), device, client->clock());
}

void LeaveJob(PsClient* client, int worker, HeartbeatThread* heartbeat,
              bool send_last_figures) {
  if (send_last_figures) {
    // The last figures reach the servers before the worker leaves.
    // (SendNow has registered again where a shard had forgotten the worker.)
    if (absl::Status s = heartbeat->SendNow(); !s.ok()) {
      LOG(WARNING) << "last heartbeat failed: " << Describe(s);
    }
  }
  heartbeat->Stop();
  absl::Status s = client->LeaveWorker(worker);
  if (RecoveryFor(Call::kLeave, v1::CONSISTENCY_UNSPECIFIED, s) == Recovery::kLogAndContinue) {
    LOG(WARNING) << "leaving failed (the servers will drop this worker on timeout): " << Describe(s);
  }
}

HeartbeatThread::HeartbeatThread(PsClient* client, int worker, const std::string& device)
    : client_(client), worker_(worker), device_(device) {
  stats_.set_device(device);
  for (int s = 0; s < client_->num_shards(); ++s) threads_.emplace_back([this, s] { Loop(s); });
}

HeartbeatThread::~HeartbeatThread() { Stop(); }

void HeartbeatThread::SetProgress(int64_t clock, int epoch) {
  absl::MutexLock lock(&mu_);
  stats_.set_clock(clock);
  stats_.set_epoch(epoch);
}

void HeartbeatThread::SetFigures(double loss, double samples_per_sec) {
  absl::MutexLock lock(&mu_);
  stats_.set_loss(static_cast<float>(loss));
  stats_.set_samples_per_sec(samples_per_sec);
}

v1::WorkerStats HeartbeatThread::Stats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::Status HeartbeatThread::Beat(int shard) {
  absl::Status s = client_->HeartbeatTo(shard, worker_, Stats());
  // Heartbeats' decisions do not depend on the job's consistency mode.
  if (RecoveryFor(Call::kHeartbeat, v1::CONSISTENCY_UNSPECIFIED, s) == Recovery::kRegisterAgain) {
    LOG(WARNING) << "shard " << shard << " no longer knows this worker (" << Describe(s)
                 << "); registering again";
    s = client_->RegisterWith(shard, worker_, HostName(), device_, client_->clock());
  }
  return s;
}

absl::Status HeartbeatThread::SendNow() {
  absl::Status s = client_->Heartbeat(worker_, Stats());
  if (RecoveryFor(Call::kHeartbeat, v1::CONSISTENCY_UNSPECIFIED, s) == Recovery::kRegisterAgain) {
    LOG(WARNING) << "a shard no longer knows this worker (" << Describe(s) << "); registering again";
    s = client_->RegisterWorker(worker_, HostName(), device_, client_->clock());
  }
  return s;
}

void HeartbeatThread::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void HeartbeatThread::Loop(int shard) {
  while (!stop_.WaitForNotificationWithTimeout(client_->heartbeat_interval(shard))) {
    if (absl::Status s = Beat(shard); !s.ok()) LOG(WARNING) << "heartbeat failed: " << Describe(s);
  }
}

}  // namespace ps
