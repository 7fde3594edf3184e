// Progress of a training loop: the figures of each progress line (mean loss and
// throughput since the last line), the line itself in the log, and the same figures
// handed to the heartbeats, which carry them to the servers' status reports.
//
// Thread safety: one thread at a time (the heartbeats have their own lock).
#ifndef PS_WORKER_TRAIN_PROGRESS_H_
#define PS_WORKER_TRAIN_PROGRESS_H_

#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ps {

class HeartbeatThread;

// The figures of a progress line: mean loss and throughput over the steps since the
// last line. Keeps the first and last means for the worker's final summary.
class ProgressWindow {
 public:
  struct Figures {
    double mean_loss = 0;
    double samples_per_sec = 0;
  };

  // Adds one step: its summed loss over `samples` examples.
  void Add(double loss_sum, int64_t samples) {
    loss_sum_ += loss_sum;
    samples_ += samples;
  }
  // Returns the window's figures and starts the next window.
  Figures Close();
  double first_loss() const { return first_loss_; }
  double last_loss() const { return last_loss_; }

 private:
  double loss_sum_ = 0;
  int64_t samples_ = 0;
  absl::Time start_ = absl::Now();
  bool closed_any_ = false;
  double first_loss_ = 0;
  double last_loss_ = 0;
};

// Writes the progress lines of one worker's run:
//   "worker 1 epoch 2/5 step 200/469 loss 0.41 samples/s 9876"
// (tests and demo scripts look for "epoch E/N step S/"), each also sent as the figures
// of the worker's heartbeats.
class ProgressLog {
 public:
  // `loss_name` names the loss in lines ("loss", "logloss"). `heartbeat` may be null
  // (no figures sent) and must outlive the log.
  ProgressLog(int worker, int epochs, int64_t steps_per_epoch, std::string loss_name,
              HeartbeatThread* heartbeat);

  // Adds one step's summed loss over `samples` examples to the current window.
  void Add(double loss_sum, int64_t samples) { window_.Add(loss_sum, samples); }
  // Closes the window with a line for step `step` of epoch `epoch` (both from 0), hands
  // its figures to the heartbeats, and returns them.
  ProgressWindow::Figures Line(int epoch, int64_t step);

  double first_loss() const { return window_.first_loss(); }
  double last_loss() const { return window_.last_loss(); }

 private:
  const int worker_;
  const int epochs_;
  const int64_t steps_per_epoch_;
  const std::string loss_name_;
  HeartbeatThread* const heartbeat_;
  ProgressWindow window_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_PROGRESS_H_
