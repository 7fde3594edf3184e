#include "worker/train/progress.h"

#include <algorithm>
#include <utility>

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

ProgressLog::ProgressLog(int worker, int epochs, int64_t steps_per_epoch, std::string loss_name,
                         HeartbeatThread* heartbeat)
    : worker_(worker),
      epochs_(epochs),
      steps_per_epoch_(steps_per_epoch),
      loss_name_(std::move(loss_name)),
      heartbeat_(heartbeat) {}

ProgressWindow::Figures ProgressLog::Line(int epoch, int64_t step) {
  const ProgressWindow::Figures f = window_.Close();
  LOG(INFO) << "worker " << worker_ << " epoch " << epoch + 1 << "/" << epochs_ << " step "
            << step + 1 << "/" << steps_per_epoch_ << " " << loss_name_ << " " << f.mean_loss
            << " samples/s " << static_cast<int64_t>(f.samples_per_sec);
  if (heartbeat_ != nullptr) heartbeat_->SetFigures(f.mean_loss, f.samples_per_sec);
  return f;
}

}  // namespace ps
