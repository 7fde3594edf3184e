#include "worker/train/step_exchange.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/error_reason.h"
#include "glog/logging.h"
#include "worker/train/membership.h"
#include "worker/train/recovery.h"

namespace ps {

StepExchange::StepExchange(const StepExchangeOptions& options, PsClient* client, Mlp* model)
    : options_(options),
      sync_(options.mode == v1::SYNC),
      overlap_(!sync_ && options.overlap),
      layer_overlap_(options.layer_overlap && options.mode != v1::SSP && !overlap_),
      client_(client),
      model_(model) {
  if (!overlap_) return;
  const int64_t n = model_->num_parameters();
  staging_.resize(2 * n);
  int64_t at = 0;
  for (const DenseTensor& t : model_->host_params()) {
    staged_params_.push_back({t.table, t.num_elements, staging_.data() + at});
    staged_grads_.push_back({t.table, t.num_elements, staging_.data() + n + at});
    at += t.num_elements;
  }
}

absl::Status StepExchange::PrepareStep(bool prefetch_next) {
  if (need_pull_ && overlap_ && prefetch_.valid()) {
    if (absl::Status s = TakePrefetched(); !s.ok()) return s;
  }
  if (overlap_ && !prefetch_.valid() && prefetch_next) {
    prefetch_ = std::async(std::launch::async,
                           [this] { return client_->Pull(staged_params_, 0, options_.worker); });
  }
  if (need_pull_) return PullNow();
  return absl::OkStatus();
}

absl::Status StepExchange::Pulled(int64_t version) {
  pulled_version_ = version;
  if (absl::Status s = model_->Upload(); !s.ok()) return s;
  need_pull_ = false;
  return absl::OkStatus();
}

// The parameters pulled in the background while the last step computed.
absl::Status StepExchange::TakePrefetched() {
  absl::StatusOr<int64_t> version = prefetch_.get();
  switch (RecoveryFor(Call::kBackgroundPull, options_.mode, version.status())) {
    case Recovery::kProceed:
      break;
    case Recovery::kPullAgain:
      LOG(WARNING) << "background pull failed, pulling again: " << Describe(version.status());
      return absl::OkStatus();
    default:
      return version.status();
  }
  for (size_t i = 0; i < staged_params_.size(); ++i) {
    std::copy_n(staged_params_[i].data, staged_params_[i].num_elements,
                model_->host_params()[i].data);
  }
  return Pulled(*version);
}

absl::Status StepExchange::PullNow() {
  absl::StatusOr<int64_t> version =
      client_->Pull(model_->host_params(), min_version(), options_.worker);
  const absl::Time give_up = absl::Now() + options_.retry_timeout;
  absl::Duration backoff = absl::Milliseconds(50);
  for (int tries = 1; absl::Now() < give_up; ++tries) {
    const Recovery recovery = RecoveryFor(Call::kPull, options_.mode, version.status());
    if (recovery != Recovery::kRetry && recovery != Recovery::kRejoinAndRetry) break;
    if (tries == 1 || tries % 10 == 0) {
      LOG(WARNING) << "pull failed (try " << tries << "), "
                   << (recovery == Recovery::kRetry ? "pulling again" : "rejoining") << ": "
                   << version.status().message();
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
    if (recovery == Recovery::kRejoinAndRetry) {
      if (absl::Status s = Rejoin(client_, options_.worker, options_.device); !s.ok()) return s;
    }
    version = client_->Pull(model_->host_params(), min_version(), options_.worker);
  }
  // kFail, or still failing when the time to retry ran out.
  if (!version.ok()) return version.status();
  return Pulled(*version);
}

Mlp::LayerReady StepExchange::StartLayers() {
  if (!layer_overlap_) return nullptr;
  // Finished (or dropped) before the next starts: it holds the client's push order.
  parts_.reset();
  parts_ = client_->StartPushPull(options_.worker, min_version());
  layer_error_ = absl::OkStatus();
  return [this](int layer) {
    if (!layer_error_.ok()) return;  // the step fails at Push; send no more of it
    if (absl::Status s = model_->DownloadLayerGrads(layer); !s.ok()) {
      layer_error_ = s;
      return;
    }
    parts_->Send(model_->LayerGrads(layer), model_->LayerParams(layer));
  };
}

absl::StatusOr<std::optional<int64_t>> StepExchange::PulledWithPush(
    const PsClient::PushPullResult& pp) {
  if (!pp.push.ok()) return std::nullopt;
  switch (RecoveryFor(Call::kPushPullPull, options_.mode, pp.pull.status())) {
    case Recovery::kProceed:
      return std::optional<int64_t>(*pp.pull);
    case Recovery::kPullAgain:
      return std::nullopt;  // the next step pulls
    default:
      return pp.pull.status();
  }
}

absl::StatusOr<StepExchange::PushReport> StepExchange::Push(bool last_of_epoch) {
  if (overlap_) return PushInBackground();
  absl::Status pushed;
  std::optional<int64_t> pulled_next;
  if (parts_ != nullptr) {
    // Sent layer by layer during backward: wait for the parts.
    PsClient::PushPullResult pp = parts_->Finish();
    parts_.reset();
    // A layer that could not be handed over is the job's failure (a GPU copy); the
    // parts that went are one incomplete push, which a sync shard holds apart.
    if (!layer_error_.ok()) return layer_error_;
    ++layered_pushes_;
    pushed = pp.push;
    absl::StatusOr<std::optional<int64_t>> next = PulledWithPush(pp);
    if (!next.ok()) return next.status();
    pulled_next = *next;
  } else if (!last_of_epoch && options_.mode != v1::SSP) {
    // The push and the next step's pull in one call per shard where possible.
    PsClient::PushPullResult pp = client_->PushPull(model_->host_grads(), model_->host_params(),
                                                    options_.worker, min_version());
    pushed = pp.push;
    absl::StatusOr<std::optional<int64_t>> next = PulledWithPush(pp);
    if (!next.ok()) return next.status();
    pulled_next = *next;
  } else {
    pushed = client_->Push(model_->host_grads(), PsClient::kPerShard, options_.worker);
  }
  PushReport report;
  report.sent = absl::Now();
  need_pull_ = true;
  if (absl::Status s = Settle(pushed, pulled_next, &report); !s.ok()) return s;
  return report;
}

absl::Status StepExchange::Settle(const absl::Status& pushed, std::optional<int64_t> pulled_next,
                                  PushReport* report) {
  switch (RecoveryFor(Call::kPush, options_.mode, pushed)) {
    case Recovery::kProceed:
      report->accepted = true;
      refused_in_a_row_ = 0;
      client_->set_clock(++pushes_);
      // The next step's parameters came with the push.
      if (pulled_next.has_value()) return Pulled(*pulled_next);
      return absl::OkStatus();
    case Recovery::kRejoinAndDrop:
      // This worker was dropped, or a shard restarted behind it: the gradient is
      // discarded where it was refused, and the worker rejoins at each shard's current
      // version.
      LOG(WARNING) << "step " << pulled_version_ << " gradient discarded: " << pushed.message();
      if (++refused_in_a_row_ >= options_.max_refused_steps && options_.max_refused_steps > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            refused_in_a_row_, " steps in a row were refused (the last: ", pushed.message(),
            "); the shards cannot take this worker's steps, so the job stops"));
      }
      return Rejoin(client_, options_.worker, options_.device);
    default:
      return pushed;
  }
}

absl::StatusOr<StepExchange::PushReport> StepExchange::PushInBackground() {
  // The previous push is done first, so gradients leave in order and the staging
  // buffer is free.
  const absl::Status previous = FinishBackgroundPush();
  for (size_t i = 0; i < staged_grads_.size(); ++i) {
    std::copy_n(model_->host_grads()[i].data, staged_grads_[i].num_elements, staged_grads_[i].data);
  }
  pending_push_ = std::async(std::launch::async, [this, v = pulled_version_] {
    return client_->Push(staged_grads_, v, options_.worker);
  });
  PushReport report;
  report.sent = absl::Now();
  need_pull_ = true;
  // The previous push's outcome is settled (dropped or failed) by FinishBackgroundPush;
  // this one counts as sent.
  if (!previous.ok()) return previous;
  report.accepted = true;
  client_->set_clock(++pushes_);
  return report;
}

absl::Status StepExchange::FinishBackgroundPush() {
  if (!pending_push_.valid()) return absl::OkStatus();
  absl::Status s = pending_push_.get();
  switch (RecoveryFor(Call::kBackgroundPush, options_.mode, s)) {
    case Recovery::kProceed:
      return absl::OkStatus();
    case Recovery::kDrop:
      LOG(WARNING) << "background push failed, gradient dropped: " << Describe(s);
      return absl::OkStatus();
    default:
      return s;
  }
}

absl::Status StepExchange::Drain() {
  if (prefetch_.valid()) prefetch_.get().IgnoreError();
  need_pull_ = true;
  return FinishBackgroundPush();
}

}  // namespace ps
