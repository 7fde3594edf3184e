#include "worker/train/sparse_trainer.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "worker/train/batching.h"
#include "worker/train/membership.h"
#include "worker/train/progress.h"

namespace ps {

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
  // Heartbeats start at once: waiting for slow starters must not get this worker dropped.
  // A job starts once every worker is there, so SSP clocks start together.
  absl::StatusOr<std::unique_ptr<HeartbeatThread>> heartbeat = JoinJob(
      client_, worker, device_name_, options_.num_workers, options_.start_timeout);
  if (!heartbeat.ok()) return heartbeat.status();

  BatchSchedule schedule(train_->size(), worker, options_.num_workers, options_.batch_size,
                         options_.seed);
  LOG(INFO) << "worker " << worker << "/" << options_.num_workers << ": " << model_->name()
            << ", " << schedule.shard_size() << " training examples, batch "
            << options_.batch_size << ", " << v1::ConsistencyMode_Name(options_.mode);
  SparseTrainResult result;
  if (absl::Status s = Train(&schedule, heartbeat->get(), &result); !s.ok()) return s;
  LeaveJob(client_, worker, heartbeat->get(), /*send_last_figures=*/false);
  if (worker == 0 && test_ != nullptr && test_->size() > 0) {
    if (absl::Status s = EvaluateFinalModel(&result); !s.ok()) return s;
  }
  return result;
}

absl::Status SparseTrainer::Train(BatchSchedule* schedule, HeartbeatThread* heartbeat,
                                  SparseTrainResult* result) {
  const int worker = options_.worker_index;
  const int64_t steps_per_epoch = schedule->steps_per_epoch();
  ProgressLog progress(PlanOf(worker, options_.num_workers, options_.epochs, steps_per_epoch,
                              options_.max_steps, /*resumed_steps=*/0),
                       "logloss", heartbeat);
  const absl::Time start = absl::Now();
  auto out_of_steps = [&] { return options_.max_steps > 0 && result->steps >= options_.max_steps; };
  for (int epoch = 0; epoch < options_.epochs && !out_of_steps(); ++epoch) {
    schedule->Shuffle();
    for (int64_t step = 0; step < steps_per_epoch && !out_of_steps(); ++step) {
      const BatchSchedule::Batch batch = schedule->At(step);
      absl::StatusOr<double> loss =
          model_->TrainStep(client_, {train_, batch.examples, batch.size}, worker);
      if (!loss.ok()) return loss.status();
      result->steps++;
      result->samples += batch.size;
      client_->set_clock(result->steps);  // SSP: steps completed
      progress.Add(*loss, batch.size);
      if (result->steps % options_.log_every == 0 || step + 1 == steps_per_epoch ||
          out_of_steps()) {
        heartbeat->SetProgress(result->steps, epoch + 1);
        progress.Line(epoch, step);
      }
    }
  }
  result->seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result->first_loss = progress.first_loss();
  result->last_loss = progress.last_loss();
  return absl::OkStatus();
}

absl::Status SparseTrainer::EvaluateFinalModel(SparseTrainResult* result) {
  // Async workers finish at different times: evaluate the model they all trained.
  if (absl::Status s = WaitForOthersToLeave(); !s.ok()) {
    LOG(WARNING) << s << "; evaluating the current model";
  }
  client_->set_clock(0);  // evaluation is no worker's step: never wait on SSP clocks
  absl::StatusOr<double> test_loss = Evaluate();
  if (!test_loss.ok()) return test_loss.status();
  result->test_logloss = *test_loss;
  std::printf("worker 0 test_logloss %.4f on %zu held-out examples\n", *test_loss,
              static_cast<size_t>(test_->size()));
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace ps
