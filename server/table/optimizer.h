// Optimizer: the server-side update rules, applied to one contiguous range of a table.
//
// The rules follow PyTorch's documented formulas (torch.optim.SGD, Adagrad, Adam, AdamW)
// and FTRL-proximal (McMahan et al. 2013, as in TensorFlow's FtrlOptimizer), so results
// agree with them to float32 rounding. State ("slots", e.g. Adam's m and v) is kept by
// the caller beside the parameters: num_slots() vectors of the same length as the range.
//
// Thread safety: an Optimizer is immutable after Create(); Apply() may be called from
// several threads on disjoint ranges.
#ifndef PS_SERVER_TABLE_OPTIMIZER_H_
#define PS_SERVER_TABLE_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/v1/ps.pb.h"
#include "server/table/optimizer_spec.h"

namespace ps {

class Optimizer {
 public:
  // Returns INVALID_ARGUMENT naming the hyper-parameter and its allowed range when `spec`
  // is not usable (e.g. "optimizer adam: beta2=1.5 outside [0, 1)").
  static absl::Status Validate(const v1::OptimizerSpec& spec);
  static absl::StatusOr<std::unique_ptr<Optimizer>> Create(const v1::OptimizerSpec& spec);

  virtual ~Optimizer() = default;

  // "sgd", "adam", "adagrad", "adamw", "ftrl".
  virtual std::string name() const = 0;
  // State vectors per parameter element.
  virtual int num_slots() const = 0;
  // Fills freshly created slots (e.g. AdaGrad's initial accumulator value).
  virtual void InitSlots(float* const* slots, int64_t n) const = 0;
  // Applies one update with gradient `g` to parameters `p` (n elements). `slots` holds
  // num_slots() arrays of n floats. `step` is the 1-based number of this update for the
  // range (bias correction, schedules, SGD's first momentum step).
  virtual void Apply(float* p, const float* g, int64_t n, float* const* slots,
                     int64_t step) const = 0;

  // Whether Apply() with the same arguments would leave every parameter and slot finite.
  // Runs the same arithmetic and writes nothing: one read pass over the arrays.
  virtual bool AllFinite(const float* p, const float* g, int64_t n, const float* const* slots,
                         int64_t step) const = 0;
  // Where Apply() with the same arguments would leave a parameter or a slot non-finite
  // (inf or NaN): nullopt when nowhere (AllFinite), else the first such element and what
  // it would hold, found by running the update on copies a few thousand elements at a
  // time (every rule is element-wise, so the copies get exactly what Apply() gives).
  struct NonFinite {
    int64_t element = 0;  // index into the range
    int slot = -1;        // -1: the parameter; else the optimizer slot
    float value = 0;
  };
  std::optional<NonFinite> FirstNonFinite(const float* p, const float* g, int64_t n,
                                          const float* const* slots, int64_t step) const;
  static constexpr int kMaxSlots = 4;

  // The learning rate the schedule gives at 1-based `step` t (t < 1 counts as 1), so each
  // schedule starts at the first update applied:
  //   CONSTANT       lr
  //   STEP           lr * gamma^floor((t - 1) / step_size)
  //   COSINE         min_lr + (lr - min_lr) * (1 + cos(pi * min(t - 1, total_steps) /
  //                  total_steps)) / 2, i.e. lr at t = 1 and min_lr from t = total_steps + 1
  //   LINEAR_WARMUP  lr * min(1, t / warmup_steps), i.e. lr / warmup_steps at t = 1
  float LearningRate(int64_t step) const;

 protected:
  explicit Optimizer(const v1::OptimizerSpec& spec) : spec_(spec) {}
  const v1::OptimizerSpec spec_;
};

}  // namespace ps

#endif  // PS_SERVER_TABLE_OPTIMIZER_H_
