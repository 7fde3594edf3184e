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

// What a run is to do, for its progress lines.
struct ProgressPlan {
  int worker = 0;
  int num_workers = 1;
  int epochs = 1;
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 1;    // of the whole run: epochs x steps_per_epoch, or --max_steps
  int64_t resumed_steps = 0;  // done before this process started (a resumed run)
};

// The plan of a run of `epochs` x `steps_per_epoch` steps, cut at `max_steps` (counting
// the resumed ones) when positive.
ProgressPlan PlanOf(int worker, int num_workers, int epochs, int64_t steps_per_epoch,
                    int64_t max_steps, int64_t resumed_steps);

// Writes the progress lines of one worker's run on stdout, without a log prefix (the logs
// stay on stderr or in their files):
//   "worker 0 epoch 2/5 step 200/469 loss 0.4123 samples/s 9876 (job ~19752)
//    elapsed 0:42 eta 2:05"
// (tests and demo scripts look for "epoch E/N step S/"). samples/s is this worker's over
// the window since the last line; the job's figure, with several workers, assumes they
// run at this worker's pace (in sync mode they do). The ETA is from this run's own pace.
// Each line's figures also go to the heartbeats.
class ProgressLog {
 public:
  // `loss_name` names the loss in lines ("loss", "logloss"). `heartbeat` may be null
  // (no figures sent) and must outlive the log.
  ProgressLog(const ProgressPlan& plan, std::string loss_name, HeartbeatThread* heartbeat);

  // Adds one step's summed loss over `samples` examples to the current window.
  void Add(double loss_sum, int64_t samples) {
    window_.Add(loss_sum, samples);
    ++steps_;
  }
  // Closes the window with a line for step `step` of epoch `epoch` (both from 0), hands
  // its figures to the heartbeats, and returns them.
  ProgressWindow::Figures Line(int epoch, int64_t step);
  // The line Line() prints, for the given figures and time since the run started.
  std::string Format(int epoch, int64_t step, const ProgressWindow::Figures& f,
                     absl::Duration elapsed) const;

  double first_loss() const { return window_.first_loss(); }
  double last_loss() const { return window_.last_loss(); }

 private:
  const ProgressPlan plan_;
  const std::string loss_name_;
  HeartbeatThread* const heartbeat_;
  const absl::Time start_ = absl::Now();
  int64_t steps_ = 0;  // steps added in this run
  ProgressWindow window_;
};

// "0:42", "12:05", "1:02:03".
std::string FormatClock(absl::Duration d);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_PROGRESS_H_
