#include "worker/train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <atomic>
#include <future>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "worker/train/membership.h"

namespace ps {

Trainer::Trainer(const TrainerOptions& options, PsClient* client, Mlp* model,
                 const Dataset* train, const Dataset* test, const std::string& device_name)
    : options_(options),
      client_(client),
      model_(model),
      train_(train),
      test_(test),
      device_name_(device_name) {}

absl::StatusOr<double> Trainer::Evaluate(int64_t min_version) {
  if (test_ == nullptr) return absl::FailedPreconditionError("no test set loaded");
  absl::StatusOr<int64_t> v = client_->Pull(model_->host_params(), min_version, -1);
  if (!v.ok()) return v.status();
  if (absl::Status s = model_->Upload(); !s.ok()) return s;
  absl::StatusOr<kernels::ComputeBackend::LossResult> r =
      model_->Evaluate(test_->features.data(), test_->labels.data(), test_->size);
  if (!r.ok()) return r.status();
  return static_cast<double>(r->correct) / static_cast<double>(test_->size);
}

absl::StatusOr<int64_t> Trainer::LastClock() {
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
  if (!status.ok()) return status.status();
  int64_t clock = 0;
  for (const v1::GetStatusResponse& shard : *status) {
    for (const v1::WorkerStatus& w : shard.workers()) {
      if (w.worker_index() == options_.worker_index) clock = std::max(clock, w.stats().clock());
    }
  }
  return clock;
}

absl::Status Trainer::FinishPush(std::future<absl::Status>* push) {
  if (!push->valid()) return absl::OkStatus();
  absl::Status s = push->get();
  if (absl::IsUnavailable(s)) {
    // Async: a gradient that a restarting shard missed is dropped, as on arrival there.
    LOG(WARNING) << "background push failed, gradient dropped: " << s;
    return absl::OkStatus();
  }
  return s;
}

absl::StatusOr<TrainResult> Trainer::Run() {
  const int worker = options_.worker_index;
  const bool sync = options_.mode == v1::SYNC;
  if (absl::Status s = client_->RegisterWorker(worker, HostName(), device_name_); !s.ok()) {
    return s;
  }
  auto rejoin = [&]() -> absl::Status {
    client_->ResetProgress();
    return client_->RegisterWorker(worker, HostName(), device_name_, client_->clock());
  };
  // Heartbeats carry the figures the operator sees in status reports. They start at
  // once: a worker waiting for its peers must not be dropped meanwhile.
  HeartbeatThread heartbeat(client_, worker, device_name_);
  // A job starts once every worker is there (or has already started without this one,
  // which then rejoins at the current version), so no step runs short-handed.
  if (absl::Status s = WaitForWorkers(client_, options_.num_workers, options_.start_timeout);
      !s.ok()) {
    return s;
  }

  std::vector<int64_t> shard =
      ShardIndices(train_->size, worker, options_.num_workers, options_.seed);
  LOG(INFO) << "worker " << worker << "/" << options_.num_workers << ": " << shard.size()
            << " training examples, batch " << options_.batch_size << ", "
            << v1::ConsistencyMode_Name(options_.mode) << ", device " << device_name_;
  const int dim = train_->dim;
  std::vector<float> x(static_cast<size_t>(options_.batch_size) * dim);
  std::vector<int32_t> y(options_.batch_size);
  const int64_t steps_per_epoch =
      (static_cast<int64_t>(shard.size()) + options_.batch_size - 1) / options_.batch_size;

  TrainResult result;
  // A restarted worker skips the steps it had completed before (the servers remember its
  // clock, through their own restarts too: it is in their checkpoints).
  int64_t resume = 0;
  if (options_.resume) {
    absl::StatusOr<int64_t> last = LastClock();
    if (!last.ok()) return last.status();
    resume = *last;
    if (resume > 0) LOG(INFO) << "worker " << worker << " resumes after step " << resume;
  }
  result.resumed_steps = resume;
  int64_t visited = 0;  // steps of the schedule passed, done before or now
  std::mt19937_64 rng(options_.seed * 7919 + worker);
  ProgressWindow window;
  const absl::Time start = absl::Now();
  const int64_t grad_bytes = model_->num_parameters() * 4;
  bool need_pull = true;
  int64_t pulled_version = 0;
  int buffered = 0;  // local steps in the gradient buffer
  // Async: overlap communication with computation. Parameters for the next step are
  // pulled, and the last gradient pushed, in the background while a step computes (one
  // step more staleness, none of the waiting).
  const bool overlap = !sync && options_.overlap;
  std::vector<float> staging;
  std::vector<DenseTensor> staged_params, staged_grads;
  if (overlap) {
    staging.resize(2 * model_->num_parameters());
    int64_t at = 0;
    for (const DenseTensor& t : model_->host_params()) {
      staged_params.push_back({t.table, t.num_elements, staging.data() + at});
      staged_grads.push_back(
          {t.table, t.num_elements, staging.data() + model_->num_parameters() + at});
      at += t.num_elements;
    }
  }
  std::future<absl::StatusOr<int64_t>> prefetch;
  std::future<absl::Status> pending_push;
  // Waits for the background transfers before evaluating or finishing.
  auto drain = [&]() -> absl::Status {
    if (prefetch.valid()) prefetch.get().IgnoreError();
    need_pull = true;
    return FinishPush(&pending_push);
  };
  absl::Time last_push = absl::Now();
  for (int epoch = 0; epoch < options_.epochs; ++epoch) {
    std::shuffle(shard.begin(), shard.end(), rng);
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      if (options_.max_steps > 0 && resume + result.steps >= options_.max_steps) break;
      if (visited++ < resume) continue;
      const int64_t first = step * options_.batch_size;
      const int batch = static_cast<int>(
          std::min<int64_t>(options_.batch_size, static_cast<int64_t>(shard.size()) - first));
      for (int i = 0; i < batch; ++i) {
        const int64_t idx = shard[first + i];
        std::copy_n(train_->features.data() + idx * dim, dim, x.data() + i * dim);
        y[i] = train_->labels[idx];
      }
      if (need_pull && overlap && prefetch.valid()) {
        // The parameters pulled in the background while the last step computed.
        absl::StatusOr<int64_t> version = prefetch.get();
        if (version.ok()) {
          for (size_t i = 0; i < staged_params.size(); ++i) {
            std::copy_n(staged_params[i].data, staged_params[i].num_elements,
                        model_->host_params()[i].data);
          }
          pulled_version = *version;
          if (absl::Status s = model_->Upload(); !s.ok()) return s;
          need_pull = false;
        } else {
          LOG(WARNING) << "background pull failed, pulling again: " << version.status();
        }
      }
      const bool last_of_epoch =
          step + 1 == steps_per_epoch ||
          (options_.max_steps > 0 && resume + result.steps + 1 >= options_.max_steps);
      // Prefetch while this step computes if it is the last of a buffer (so the next
      // step pulls) and not the last of the epoch (where transfers are drained).
      if (overlap && !prefetch.valid() && !last_of_epoch &&
          buffered + 1 >= options_.buffer_steps) {
        prefetch = std::async(std::launch::async, [&] {
          return client_->Pull(staged_params, 0, worker);
        });
      }
      if (need_pull) {
        absl::StatusOr<int64_t> version =
            client_->Pull(model_->host_params(), sync ? PsClient::kPerShard : 0, worker);
        // A shard that went down mid-call (UNAVAILABLE) or restarted from an older
        // checkpoint than this worker has seen (FAILED_PRECONDITION): rejoin and pull again.
        const absl::Time give_up = absl::Now() + options_.retry_timeout;
        while ((absl::IsUnavailable(version.status()) ||
                (sync && absl::IsFailedPrecondition(version.status()))) &&
               absl::Now() < give_up) {
          LOG(WARNING) << "pull failed, rejoining: " << version.status().message();
          absl::SleepFor(absl::Milliseconds(200));
          if (absl::Status s = rejoin(); !s.ok()) return s;
          version = client_->Pull(model_->host_params(), sync ? PsClient::kPerShard : 0, worker);
        }
        if (!version.ok()) return version.status();
        pulled_version = *version;
        if (absl::Status s = model_->Upload(); !s.ok()) return s;
        need_pull = false;
      }
      absl::StatusOr<kernels::ComputeBackend::LossResult> loss =
          model_->TrainStep(x.data(), y.data(), batch, /*accumulate=*/buffered > 0);
      if (!loss.ok()) return loss.status();
      ++buffered;
      const bool flush =
          last_of_epoch || buffered >= options_.buffer_steps ||
          (options_.buffer_bytes > 0 && buffered * grad_bytes >= options_.buffer_bytes) ||
          (options_.buffer_time > absl::ZeroDuration() &&
           absl::Now() - last_push >= options_.buffer_time);
      if (flush) {
        const float scale = options_.buffer_mean ? 1.0f / static_cast<float>(buffered) : 1.0f;
        if (absl::Status s = model_->DownloadGrads(scale); !s.ok()) return s;
        absl::Status pushed;
        std::optional<int64_t> pulled_next;
        if (overlap) {
          // Send in the background while the next step computes; the previous push is
          // done first, so gradients leave in order and the staging buffer is free.
          pushed = FinishPush(&pending_push);
          for (size_t i = 0; i < staged_grads.size(); ++i) {
            std::copy_n(model_->host_grads()[i].data, staged_grads[i].num_elements,
                        staged_grads[i].data);
          }
          pending_push = std::async(std::launch::async, [&, v = pulled_version] {
            return client_->Push(staged_grads, v, worker);
          });
        } else if (!last_of_epoch && options_.mode != v1::SSP) {
          // The push and the next step's pull in one call per shard where possible.
          // (SSP keeps them apart: its pull must carry the clock this push completes.)
          PsClient::PushPullResult pp = client_->PushPull(
              model_->host_grads(), model_->host_params(), worker, sync ? PsClient::kPerShard : 0);
          pushed = pp.push;
          if (pp.pull.ok()) pulled_next = *pp.pull;
          // As a separate pull would: a version that never came is the job's failure.
          if (pushed.ok() && absl::IsDeadlineExceeded(pp.pull.status())) return pp.pull.status();
        } else {
          pushed = client_->Push(model_->host_grads(), PsClient::kPerShard, worker);
        }
        buffered = 0;
        need_pull = true;
        last_push = absl::Now();
        if (absl::IsUnavailable(pushed) ||
            (sync && (absl::IsFailedPrecondition(pushed) || absl::IsAlreadyExists(pushed)))) {
          // This worker was dropped, or a shard restarted behind it: the gradient is
          // discarded where it was refused, and the worker rejoins at each shard's
          // current version.
          LOG(WARNING) << "step " << pulled_version << " gradient discarded: " << pushed.message();
          if (absl::Status s = rejoin(); !s.ok()) return s;
        } else if (!pushed.ok()) {
          return pushed;
        } else {
          result.pushes++;
          client_->set_clock(result.pushes);
          if (pulled_next.has_value()) {
            // The next step's parameters came with the push.
            pulled_version = *pulled_next;
            if (absl::Status s = model_->Upload(); !s.ok()) return s;
            need_pull = false;
          }
        }
      }
      result.steps++;
      result.samples += batch;
      window.Add(loss->loss_sum, batch);
      heartbeat.SetProgress(resume + result.steps, epoch + 1);
      if (result.steps % options_.log_every == 0 || step + 1 == steps_per_epoch) {
        const ProgressWindow::Figures f = window.Close();
        const double mean = f.mean_loss, rate = f.samples_per_sec;
        LOG(INFO) << "worker " << worker << " epoch " << epoch + 1 << "/" << options_.epochs
                  << " step " << step + 1 << "/" << steps_per_epoch << " loss " << mean
                  << " samples/s " << static_cast<int64_t>(rate);
        heartbeat.SetFigures(mean, rate);
      }
    }
    if (absl::Status s = drain(); !s.ok()) return s;
    if (options_.max_steps > 0 && resume + result.steps >= options_.max_steps) break;
    if (visited <= resume) continue;  // an epoch finished before the restart
    if (worker == 0 && options_.evaluate_each_epoch && test_ != nullptr) {
      absl::StatusOr<double> acc = Evaluate(sync ? PsClient::kPerShard : 0);
      if (!acc.ok()) return acc.status();
      result.test_accuracy = *acc;
      LOG(INFO) << "worker 0 epoch " << epoch + 1 << " test_accuracy " << *acc;
    }
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.first_loss = window.first_loss();
  result.last_loss = window.last_loss();
  // The last figures reach the servers before the worker leaves.
  if (absl::Status s = heartbeat.SendNow(); !s.ok()) LOG(WARNING) << "last heartbeat failed: " << s;
  heartbeat.Stop();
  if (absl::Status s = client_->LeaveWorker(worker); !s.ok()) {
    LOG(WARNING) << "leaving failed (the servers will drop this worker on timeout): " << s;
  }
  return result;
}

}  // namespace ps
