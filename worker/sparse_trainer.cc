#include "worker/sparse_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace ps {
namespace {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

// This worker's examples: a contiguous block of a permutation every worker draws alike,
// so shards are disjoint, cover the data, and differ in size by at most one (as Trainer).
std::vector<int64_t> ShardIndices(int64_t n, int worker, int workers, uint64_t seed) {
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  const int64_t begin = n * worker / workers, end = n * (worker + 1) / workers;
  return std::vector<int64_t>(all.begin() + begin, all.begin() + end);
}

// Heartbeats every second with a copy of `stats` until stopped (at the latest when
// destroyed), re-registering with a shard that has forgotten the worker.
class HeartbeatThread {
 public:
  HeartbeatThread(PsClient* client, int worker, const std::string& device)
      : client_(client), worker_(worker), device_(device) {
    stats_.set_device(device);
    thread_ = std::thread([this] { Loop(); });
  }
  ~HeartbeatThread() { Stop(); }

  void Update(int64_t clock, int epoch, double loss, double rate) {
    absl::MutexLock lock(&mu_);
    stats_.set_clock(clock);
    stats_.set_epoch(epoch);
    stats_.set_loss(static_cast<float>(loss));
    stats_.set_samples_per_sec(rate);
  }
  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      v1::WorkerStats copy;
      {
        absl::MutexLock lock(&mu_);
        copy = stats_;
      }
      absl::Status s = client_->Heartbeat(worker_, copy);
      if (absl::IsNotFound(s)) {
        LOG(WARNING) << "a shard no longer knows this worker (" << s << "); registering again";
        s = client_->RegisterWorker(worker_, HostName(), device_, client_->clock());
      }
      if (!s.ok()) LOG(WARNING) << "heartbeat failed: " << s;
    }
  }

  PsClient* const client_;
  const int worker_;
  const std::string device_;
  absl::Mutex mu_;
  v1::WorkerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace

SparseTrainer::SparseTrainer(const SparseTrainerOptions& options, PsClient* client,
                             SparseModel* model, const SparseDataset* train,
                             const SparseDataset* test, const std::string& device_name)
    : options_(options),
      client_(client),
      model_(model),
      train_(train),
      test_(test),
      device_name_(device_name) {}

absl::StatusOr<double> SparseTrainer::Evaluate() {
  if (test_ == nullptr || test_->size() == 0) {
    return absl::FailedPreconditionError("no test set loaded");
  }
  const int chunk = std::max(1, options_.eval_batch);
  std::vector<int64_t> examples(chunk);
  double loss = 0;
  for (int64_t first = 0; first < test_->size(); first += chunk) {
    const int n = static_cast<int>(std::min<int64_t>(chunk, test_->size() - first));
    std::iota(examples.begin(), examples.begin() + n, first);
    absl::StatusOr<double> l = model_->Loss(client_, {test_, examples.data(), n}, -1);
    if (!l.ok()) return l.status();
    loss += *l;
  }
  return loss / static_cast<double>(test_->size());
}

absl::Status SparseTrainer::WaitForWorkers() {
  const absl::Time give_up = absl::Now() + options_.start_timeout;
  absl::Time next_log = absl::Now();
  while (true) {
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
    if (!status.ok()) return status.status();
    int live = options_.num_workers;
    bool started = false;
    for (const v1::GetStatusResponse& shard : *status) {
      int shard_live = 0;
      for (const v1::WorkerStatus& w : shard.workers()) shard_live += w.live();
      live = std::min(live, shard_live);
      for (const v1::TableStatus& t : shard.tables()) started |= t.version() > 0;
    }
    if (live >= options_.num_workers || started) return absl::OkStatus();
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "only ", live, " of ", options_.num_workers, " workers registered within ",
          absl::FormatDuration(options_.start_timeout)));
    }
    if (absl::Now() >= next_log) {
      LOG(INFO) << "waiting for workers: " << live << " of " << options_.num_workers
                << " registered";
      next_log = absl::Now() + absl::Seconds(5);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status SparseTrainer::WaitForOthersToLeave() {
  const absl::Time give_up = absl::Now() + options_.finish_timeout;
  absl::Time next_log = absl::Now() + absl::Seconds(5);
  while (true) {
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
    if (!status.ok()) return status.status();
    int live = 0;
    for (const v1::GetStatusResponse& shard : *status) {
      for (const v1::WorkerStatus& w : shard.workers()) live += w.live();
    }
    if (live == 0) return absl::OkStatus();
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "workers still training after ", absl::FormatDuration(options_.finish_timeout)));
    }
    if (absl::Now() >= next_log) {
      LOG(INFO) << "waiting for the other workers to finish before evaluating";
      next_log = absl::Now() + absl::Seconds(5);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::StatusOr<SparseTrainResult> SparseTrainer::Run() {
  const int worker = options_.worker_index;
  if (options_.mode != v1::ASYNC && options_.mode != v1::SSP) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sparse training runs ASYNC or SSP, not ", v1::ConsistencyMode_Name(options_.mode)));
  }
  if (options_.batch_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", options_.batch_size, " <= 0"));
  }
  if (absl::Status s = client_->RegisterWorker(worker, HostName(), device_name_); !s.ok()) {
    return s;
  }
  // Heartbeats start at once: waiting for slow starters must not get this worker dropped.
  HeartbeatThread heartbeat(client_, worker, device_name_);
  // A job starts once every worker is there, so SSP clocks start together.
  if (absl::Status s = WaitForWorkers(); !s.ok()) return s;

  std::vector<int64_t> shard =
      ShardIndices(train_->size(), worker, options_.num_workers, options_.seed);
  const int64_t steps_per_epoch =
      (static_cast<int64_t>(shard.size()) + options_.batch_size - 1) / options_.batch_size;
  LOG(INFO) << "worker " << worker << "/" << options_.num_workers << ": " << model_->name()
            << ", " << shard.size() << " training examples, batch " << options_.batch_size
            << ", " << v1::ConsistencyMode_Name(options_.mode);

  SparseTrainResult result;
  std::mt19937_64 rng(options_.seed * 7919 + worker);
  double window_loss = 0;
  int64_t window_samples = 0;
  absl::Time window_start = absl::Now();
  const absl::Time start = absl::Now();
  bool first_window = true;
  auto out_of_steps = [&] { return options_.max_steps > 0 && result.steps >= options_.max_steps; };
  for (int epoch = 0; epoch < options_.epochs && !out_of_steps(); ++epoch) {
    std::shuffle(shard.begin(), shard.end(), rng);
    for (int64_t step = 0; step < steps_per_epoch && !out_of_steps(); ++step) {
      const int64_t first = step * options_.batch_size;
      const int batch = static_cast<int>(
          std::min<int64_t>(options_.batch_size, static_cast<int64_t>(shard.size()) - first));
      absl::StatusOr<double> loss =
          model_->TrainStep(client_, {train_, shard.data() + first, batch}, worker);
      if (!loss.ok()) return loss.status();
      result.steps++;
      result.samples += batch;
      client_->set_clock(result.steps);  // SSP: steps completed
      window_loss += *loss;
      window_samples += batch;
      if (result.steps % options_.log_every == 0 || step + 1 == steps_per_epoch ||
          out_of_steps()) {
        const double secs = absl::ToDoubleSeconds(absl::Now() - window_start);
        const double mean = window_loss / std::max<int64_t>(1, window_samples);
        const double rate = window_samples / std::max(1e-9, secs);
        if (first_window) result.first_loss = mean;
        first_window = false;
        result.last_loss = mean;
        LOG(INFO) << "worker " << worker << " epoch " << epoch + 1 << "/" << options_.epochs
                  << " step " << step + 1 << "/" << steps_per_epoch << " logloss " << mean
                  << " samples/s " << static_cast<int64_t>(rate);
        heartbeat.Update(result.steps, epoch + 1, mean, rate);
        window_loss = 0;
        window_samples = 0;
        window_start = absl::Now();
      }
    }
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  heartbeat.Stop();
  if (absl::Status s = client_->LeaveWorker(worker); !s.ok()) {
    LOG(WARNING) << "leaving failed (the servers will drop this worker on timeout): " << s;
  }
  if (worker == 0 && test_ != nullptr && test_->size() > 0) {
    // Async workers finish at different times: evaluate the model they all trained.
    if (absl::Status s = WaitForOthersToLeave(); !s.ok()) {
      LOG(WARNING) << s << "; evaluating the current model";
    }
    client_->set_clock(0);  // evaluation is no worker's step: never wait on SSP clocks
    absl::StatusOr<double> test_loss = Evaluate();
    if (!test_loss.ok()) return test_loss.status();
    result.test_logloss = *test_loss;
    LOG(INFO) << "worker 0 test_logloss " << *test_loss << " on " << test_->size()
              << " held-out examples";
  }
  return result;
}

}  // namespace ps
