#include "worker/train/progress.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "worker/train/membership.h"

namespace ps {

ProgressWindow::Figures ProgressWindow::Close() {
  const absl::Time now = absl::Now();
  Figures f;
  f.mean_loss = loss_sum_ / static_cast<double>(std::max<int64_t>(1, samples_));
  f.samples_per_sec = samples_ / std::max(1e-9, absl::ToDoubleSeconds(now - start_));
  if (!closed_any_) first_loss_ = f.mean_loss;
  closed_any_ = true;
  last_loss_ = f.mean_loss;
  loss_sum_ = 0;
  samples_ = 0;
  start_ = now;
  return f;
}

ProgressLog::ProgressLog(const ProgressPlan& plan, std::string loss_name,
                         HeartbeatThread* heartbeat)
    : plan_(plan), loss_name_(std::move(loss_name)), heartbeat_(heartbeat) {}

ProgressPlan PlanOf(int worker, int num_workers, int epochs, int64_t steps_per_epoch,
                    int64_t max_steps, int64_t resumed_steps) {
  ProgressPlan p;
  p.worker = worker;
  p.num_workers = num_workers;
  p.epochs = epochs;
  p.steps_per_epoch = steps_per_epoch;
  p.total_steps = epochs * steps_per_epoch;
  if (max_steps > 0) p.total_steps = std::min(p.total_steps, max_steps);
  p.resumed_steps = std::min(resumed_steps, p.total_steps);
  return p;
}

std::string FormatClock(absl::Duration d) {
  const int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

std::string ProgressLog::Format(int epoch, int64_t step, const ProgressWindow::Figures& f,
                                absl::Duration elapsed) const {
  std::string line = absl::StrFormat("worker %d epoch %d/%d step %d/%d %s %.4f samples/s %.0f",
                                     plan_.worker, epoch + 1, plan_.epochs, step + 1,
                                     plan_.steps_per_epoch, loss_name_, f.mean_loss,
                                     f.samples_per_sec);
  if (plan_.num_workers > 1) {
    absl::StrAppendFormat(&line, " (job ~%.0f)", f.samples_per_sec * plan_.num_workers);
  }
  absl::StrAppend(&line, " elapsed ", FormatClock(elapsed));
  const int64_t left = plan_.total_steps - plan_.resumed_steps - steps_;
  if (steps_ > 0 && left >= 0) {
    absl::StrAppend(&line, " eta ", FormatClock(elapsed * (static_cast<double>(left) / steps_)));
  }
  return line;
}

ProgressWindow::Figures ProgressLog::Line(int epoch, int64_t step) {
  const ProgressWindow::Figures f = window_.Close();
  const std::string line = Format(epoch, step, f, absl::Now() - start_);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  VLOG(1) << line;
  if (heartbeat_ != nullptr) heartbeat_->SetFigures(f.mean_loss, f.samples_per_sec);
  return f;
}

}  // namespace ps
