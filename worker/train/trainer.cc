#include "worker/train/trainer.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "glog/logging.h"
#include "worker/train/batching.h"
#include "worker/train/gradient_buffer.h"
#include "worker/train/membership.h"
#include "worker/train/progress.h"
#include "worker/train/step_exchange.h"

namespace ps {
namespace {

StepExchangeOptions ExchangeOptions(const TrainerOptions& o, const std::string& device) {
  StepExchangeOptions e;
  e.worker = o.worker_index;
  e.device = device;
  e.mode = o.mode;
  e.overlap = o.overlap;
  e.layer_overlap = o.layer_overlap;
  e.retry_timeout = o.retry_timeout;
  e.max_refused_steps = o.max_refused_steps;
  return e;
}

GradientBufferLimits BufferLimits(const TrainerOptions& o) {
  GradientBufferLimits l;
  l.steps = o.buffer_steps;
  l.bytes = o.buffer_bytes;
  l.time = o.buffer_time;
  l.mean = o.buffer_mean;
  return l;
}

}  // namespace

struct Trainer::Loop {
  Loop(const TrainerOptions& o, PsClient* client, Mlp* model, const Dataset& train,
       const std::string& device, BatchSchedule* schedule, HeartbeatThread* heartbeat,
       int64_t resume)
      : schedule(schedule),
        heartbeat(heartbeat),
        resume(resume),
        x(static_cast<size_t>(o.batch_size) * train.dim),
        y(o.batch_size),
        progress(PlanOf(o.worker_index, o.num_workers, o.epochs, schedule->steps_per_epoch(),
                        o.max_steps, resume),
                 "loss", heartbeat),
        exchange(ExchangeOptions(o, device), client, model),
        buffer(BufferLimits(o), model->num_parameters() * 4, absl::Now()) {}

  BatchSchedule* const schedule;
  HeartbeatThread* const heartbeat;
  const int64_t resume;  // steps done before this run
  int64_t visited = 0;   // steps of the schedule passed, done before or now
  std::vector<float> x;  // the mini-batch's rows
  std::vector<int32_t> y;
  ProgressLog progress;
  const absl::Time start = absl::Now();
  StepExchange exchange;
  GradientBuffer buffer;
  TrainResult result;
};

Trainer::Trainer(const TrainerOptions& options, PsClient* client, Mlp* model, const Dataset* train,
                 const Dataset* test, const std::string& device_name)
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

absl::StatusOr<int64_t> Trainer::ResumePoint() {
  // The servers remember the worker's clock through their own restarts too: it is in
  // their checkpoints.
  if (!options_.resume) return 0;
  absl::StatusOr<int64_t> last = LastClock();
  if (!last.ok()) return last.status();
  if (*last > 0) {
    LOG(INFO) << "worker " << options_.worker_index << " resumes after step " << *last;
  }
  return *last;
}

bool Trainer::OutOfSteps(const Loop& loop, int64_t ahead) const {
  return options_.max_steps > 0 && loop.resume + loop.result.steps + ahead >= options_.max_steps;
}

absl::StatusOr<TrainResult> Trainer::Run() {
  const int worker = options_.worker_index;
  // Heartbeats carry the figures the operator sees in status reports. A job starts once
  // every worker is there (or has already started without this one, which then rejoins
  // at the current version), so no step runs short-handed.
  absl::StatusOr<std::unique_ptr<HeartbeatThread>> heartbeat =
      JoinJob(client_, worker, device_name_, options_.num_workers, options_.start_timeout);
  if (!heartbeat.ok()) return heartbeat.status();

  BatchSchedule schedule(train_->size, worker, options_.num_workers, options_.batch_size,
                         options_.seed);
  LOG(INFO) << "worker " << worker << "/" << options_.num_workers << ": " << schedule.shard_size()
            << " training examples, batch " << options_.batch_size << ", "
            << v1::ConsistencyMode_Name(options_.mode) << ", device " << device_name_;
  absl::StatusOr<int64_t> resume = ResumePoint();
  if (!resume.ok()) return resume.status();

  Loop loop(options_, client_, model_, *train_, device_name_, &schedule, heartbeat->get(), *resume);
  const ProgressPlan plan = PlanOf(worker, options_.num_workers, options_.epochs,
                                   schedule.steps_per_epoch(), options_.max_steps, *resume);
  if (*resume > 0 && plan.resumed_steps >= plan.total_steps) {
    LOG(WARNING) << "worker " << worker << ": the shards record all " << plan.total_steps
                 << " steps of this run as done (they hold the model of the job that ran "
                    "before); nothing is left to train. For a new model, stop the shards (and "
                    "move their --checkpoint_dir aside) and start them again; --noresume "
                    "trains the steps again on the current model";
  }
  for (int epoch = 0; epoch < options_.epochs; ++epoch) {
    absl::StatusOr<bool> more = RunEpoch(epoch, &loop);
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  TrainResult result = loop.result;
  result.resumed_steps = loop.resume;
  result.pushes = loop.exchange.pushes();
  result.layered_pushes = loop.exchange.layered_pushes();
  result.seconds = absl::ToDoubleSeconds(absl::Now() - loop.start);
  result.first_loss = loop.progress.first_loss();
  result.last_loss = loop.progress.last_loss();
  LeaveJob(client_, worker, heartbeat->get(), /*send_last_figures=*/true);
  return result;
}

absl::StatusOr<bool> Trainer::RunEpoch(int epoch, Loop* loop) {
  loop->schedule->Shuffle();
  for (int64_t step = 0; step < loop->schedule->steps_per_epoch(); ++step) {
    if (OutOfSteps(*loop)) break;
    if (loop->visited++ < loop->resume) continue;
    if (absl::Status s = RunStep(epoch, step, loop); !s.ok()) return s;
  }
  // Background transfers finish before evaluating or finishing.
  if (absl::Status s = loop->exchange.Drain(); !s.ok()) return s;
  if (OutOfSteps(*loop)) return false;
  if (loop->visited <= loop->resume) return true;  // an epoch finished before the restart
  if (absl::Status s = EvaluateAfterEpoch(epoch, loop); !s.ok()) return s;
  return true;
}

absl::Status Trainer::RunStep(int epoch, int64_t step, Loop* loop) {
  const int64_t steps_per_epoch = loop->schedule->steps_per_epoch();
  const BatchSchedule::Batch batch = loop->schedule->At(step);
  GatherRows(*train_, batch, loop->x.data(), loop->y.data());
  const bool last_of_epoch = step + 1 == steps_per_epoch || OutOfSteps(*loop, 1);
  // Prefetch while this step computes if it is the last of a buffer (so the next step
  // pulls) and not the last of the epoch (where transfers are drained).
  if (absl::Status s = loop->exchange.PrepareStep(!last_of_epoch && loop->buffer.NextStepFills());
      !s.ok()) {
    return s;
  }
  // A step that replaces the buffer and fills it pushes for sure: its layers may go as
  // backward produces them.
  Mlp::LayerReady layer_ready;
  if (!last_of_epoch && !loop->buffer.accumulating() && loop->buffer.NextStepFills()) {
    layer_ready = loop->exchange.StartLayers();
  }
  absl::StatusOr<kernels::ComputeBackend::LossResult> loss = model_->TrainStep(
      loop->x.data(), loop->y.data(), batch.size, loop->buffer.accumulating(), layer_ready);
  if (!loss.ok()) return loss.status();
  loop->buffer.Add();
  if (loop->buffer.Full(last_of_epoch, absl::Now())) {
    if (absl::Status s = Flush(last_of_epoch, loop); !s.ok()) return s;
  }
  TrainResult& result = loop->result;
  result.steps++;
  result.samples += batch.size;
  loop->progress.Add(loss->loss_sum, batch.size);
  loop->heartbeat->SetProgress(loop->resume + result.steps, epoch + 1);
  if (result.steps % options_.log_every == 0 || step + 1 == steps_per_epoch) {
    loop->progress.Line(epoch, step);
  }
  return absl::OkStatus();
}

absl::Status Trainer::Flush(bool last_of_epoch, Loop* loop) {
  if (!loop->exchange.sending_layers()) {
    if (absl::Status s = model_->DownloadGrads(loop->buffer.scale()); !s.ok()) return s;
  }
  absl::StatusOr<StepExchange::PushReport> pushed = loop->exchange.Push(last_of_epoch);
  if (!pushed.ok()) return pushed.status();
  // The time limit counts from when the push returned, accepted or not.
  loop->buffer.Flushed(pushed->sent);
  return absl::OkStatus();
}

absl::Status Trainer::EvaluateAfterEpoch(int epoch, Loop* loop) {
  if (options_.worker_index != 0 || !options_.evaluate_each_epoch || test_ == nullptr) {
    return absl::OkStatus();
  }
  absl::StatusOr<double> acc = Evaluate(options_.mode == v1::SYNC ? PsClient::kPerShard : 0);
  if (!acc.ok()) return acc.status();
  loop->result.test_accuracy = *acc;
  std::printf("worker 0 epoch %d/%d test_accuracy %.4f\n", epoch + 1, options_.epochs, *acc);
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace ps
