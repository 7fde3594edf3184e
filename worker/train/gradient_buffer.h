// GradientBuffer: when the dense loop pushes. Local steps accumulate their gradients
// (on the device, see Mlp::TrainStep's `accumulate`) until a limit is reached: a number
// of steps, a number of gradient bytes that would otherwise have been pushed, or a time
// since the last push; the last step of an epoch always pushes. The buffer then holds
// the sum of its steps' gradients, or their mean with `mean` (the server sees one larger
// batch). Only the bookkeeping lives here: the gradients stay in the model.
//
// Thread safety: one thread at a time. Times are passed in, so tests need no clock.
#ifndef PS_WORKER_TRAIN_GRADIENT_BUFFER_H_
#define PS_WORKER_TRAIN_GRADIENT_BUFFER_H_

#include <cstdint>

#include "absl/time/time.h"

namespace ps {

// The limits; 0 (or a zero duration) is no such limit. TrainerOptions' buffer_* fields.
struct GradientBufferLimits {
  int steps = 1;
  int64_t bytes = 0;
  absl::Duration time = absl::ZeroDuration();
  bool mean = false;
};

class GradientBuffer {
 public:
  // `step_bytes`: the bytes of one step's gradient. `now`: when the time limit starts.
  GradientBuffer(const GradientBufferLimits& limits, int64_t step_bytes, absl::Time now)
      : limits_(limits), step_bytes_(step_bytes), last_flush_(now) {}

  // Whether the next step's gradient adds to the buffer (rather than replacing it).
  bool accumulating() const { return buffered_ > 0; }
  // Whether the next step fills the buffer by the step limit: it is the last of a push.
  bool NextStepFills() const { return buffered_ + 1 >= limits_.steps; }
  int buffered() const { return buffered_; }

  // Counts one more step's gradient in the buffer.
  void Add() { ++buffered_; }
  // Whether to push now: a limit is reached at `now`, or `last_of_epoch`.
  bool Full(bool last_of_epoch, absl::Time now) const;
  // The factor the buffered sum is scaled by before it is pushed.
  float scale() const { return limits_.mean ? 1.0f / static_cast<float>(buffered_) : 1.0f; }
  // Empties the buffer after a push that finished at `now` (accepted or not).
  void Flushed(absl::Time now) {
    buffered_ = 0;
    last_flush_ = now;
  }

 private:
  const GradientBufferLimits limits_;
  const int64_t step_bytes_;
  int buffered_ = 0;  // local steps in the buffer
  absl::Time last_flush_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_GRADIENT_BUFFER_H_
