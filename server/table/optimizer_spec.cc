#include "server/table/optimizer_spec.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ps {
namespace {

using v1::LearningRateSchedule;
using v1::OptimizerSpec;

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------
// Validation

std::string KindName(OptimizerSpec::Kind kind) {
  switch (kind) {
    case OptimizerSpec::SGD: return "sgd";
    case OptimizerSpec::ADAM: return "adam";
    case OptimizerSpec::ADAGRAD: return "adagrad";
    case OptimizerSpec::ADAMW: return "adamw";
    case OptimizerSpec::FTRL: return "ftrl";
    default: return "";
  }
}

// An interval of allowed values. Comparisons are written so that NaN is never inside.
struct Interval {
  double lo;
  double hi;
  bool lo_open;
  bool hi_open;

  bool Contains(double x) const {
    const bool above = lo_open ? x > lo : x >= lo;
    const bool below = hi_open ? x < hi : x <= hi;
    return above && below;
  }
  std::string ToString() const {
    return absl::StrCat(lo_open ? "(" : "[", lo == -kInf ? "-inf" : absl::StrCat(lo), ", ",
                        hi == kInf ? "inf" : absl::StrCat(hi), hi_open ? ")" : "]");
  }
};

// The infinite bounds are open, so every interval below also rejects +-inf.
constexpr Interval kPositive{0, kInf, true, true};      // (0, inf)
constexpr Interval kNonNegative{0, kInf, false, true};  // [0, inf)
constexpr Interval kNonPositive{-kInf, 0, true, false};  // (-inf, 0]
constexpr Interval kUnitOpen{0, 1, false, true};        // [0, 1)
constexpr Interval kUnitClosed{0, 1, false, false};     // [0, 1]
constexpr Interval kCountPositive{1, kInf, false, true};  // [1, inf) for integer fields
// A learning rate above 1000 is a typo or an attack, not a setting (1e30 was accepted once).
constexpr Interval kLearningRate{0, 1000, true, false};  // (0, 1000]

// Checks one hyper-parameter of optimizer `opt`; `value` is float or int64.
template <typename T>
absl::Status CheckIn(absl::string_view opt, absl::string_view param, T value,
                     const Interval& allowed) {
  if (allowed.Contains(static_cast<double>(value))) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("optimizer ", opt, ": ", param, "=", value,
                                                 " outside ", allowed.ToString()));
}

// Rejects NaN/Inf in every float field, including those the chosen rule ignores, so a
// corrupt spec never passes silently.
absl::Status CheckAllFinite(absl::string_view opt, const OptimizerSpec& s) {
  const std::pair<absl::string_view, float> fields[] = {
      {"learning_rate", s.learning_rate()},
      {"momentum", s.momentum()},
      {"dampening", s.dampening()},
      {"weight_decay", s.weight_decay()},
      {"beta1", s.beta1()},
      {"beta2", s.beta2()},
      {"epsilon", s.epsilon()},
      {"initial_accumulator_value", s.initial_accumulator_value()},
      {"lr_decay", s.lr_decay()},
      {"l1", s.l1()},
      {"l2", s.l2()},
      {"lr_power", s.lr_power()},
      {"beta", s.beta()},
      {"schedule.gamma", s.schedule().gamma()},
      {"schedule.min_lr", s.schedule().min_lr()},
  };
  for (const auto& [param, value] : fields) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer ", opt, ": ", param, "=", value, " is not finite"));
    }
  }
  return absl::OkStatus();
}

// Runs the checks in order and returns the first failure.
absl::Status FirstError(std::initializer_list<absl::Status> checks) {
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateSchedule(absl::string_view opt, const OptimizerSpec& spec) {
  const LearningRateSchedule& s = spec.schedule();
  switch (s.kind()) {
    case LearningRateSchedule::CONSTANT:
      return absl::OkStatus();
    case LearningRateSchedule::STEP:
      return FirstError({
          CheckIn(opt, "schedule.step_size", s.step_size(), kCountPositive),
          CheckIn(opt, "schedule.gamma", s.gamma(), Interval{0, 1, true, false}),
      });
    case LearningRateSchedule::COSINE:
      // FTRL divides by the learning rate, so its schedule must not reach 0.
      return FirstError({
          CheckIn(opt, "schedule.total_steps", s.total_steps(), kCountPositive),
          CheckIn(opt, "schedule.min_lr", s.min_lr(),
                  Interval{0, spec.learning_rate(), spec.kind() == OptimizerSpec::FTRL,
                           false}),
      });
    case LearningRateSchedule::LINEAR_WARMUP:
      return CheckIn(opt, "schedule.warmup_steps", s.warmup_steps(), kCountPositive);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "optimizer ", opt, ": schedule.kind=", s.kind(),
          " unknown; want CONSTANT, STEP, COSINE or LINEAR_WARMUP"));
  }
}

absl::Status ValidateRule(absl::string_view opt, const OptimizerSpec& s) {
  switch (s.kind()) {
    case OptimizerSpec::SGD:
      if (absl::Status st = FirstError({
              CheckIn(opt, "momentum", s.momentum(), kNonNegative),
              CheckIn(opt, "dampening", s.dampening(), kUnitClosed),
              CheckIn(opt, "weight_decay", s.weight_decay(), kNonNegative),
          });
          !st.ok()) {
        return st;
      }
      // As torch.optim.SGD: Nesterov's look-ahead is only defined for undamped momentum.
      if (s.nesterov() && (s.momentum() <= 0 || s.dampening() != 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer sgd: nesterov requires momentum > 0 and dampening = 0 (got "
                         "momentum=",
                         s.momentum(), ", dampening=", s.dampening(), ")"));
      }
      return absl::OkStatus();
    case OptimizerSpec::ADAGRAD:
      return FirstError({
          CheckIn(opt, "lr_decay", s.lr_decay(), kNonNegative),
          CheckIn(opt, "weight_decay", s.weight_decay(), kNonNegative),
          CheckIn(opt, "initial_accumulator_value", s.initial_accumulator_value(),
                  kNonNegative),
          CheckIn(opt, "epsilon", s.epsilon(), kPositive),
      });
    case OptimizerSpec::ADAM:
    case OptimizerSpec::ADAMW:
      return FirstError({
          CheckIn(opt, "beta1", s.beta1(), kUnitOpen),
          CheckIn(opt, "beta2", s.beta2(), kUnitOpen),
          CheckIn(opt, "epsilon", s.epsilon(), kPositive),
          CheckIn(opt, "weight_decay", s.weight_decay(), kNonNegative),
      });
    case OptimizerSpec::FTRL:
      // FTRL has no weight_decay term; accepting one would silently ignore it.
      if (s.weight_decay() != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer ftrl: weight_decay=", s.weight_decay(),
                         " is not supported; regularise with l1 and l2"));
      }
      return FirstError({
          CheckIn(opt, "l1", s.l1(), kNonNegative),
          CheckIn(opt, "l2", s.l2(), kNonNegative),
          CheckIn(opt, "lr_power", s.lr_power(), kNonPositive),
          CheckIn(opt, "beta", s.beta(), kNonNegative),
          CheckIn(opt, "initial_accumulator_value", s.initial_accumulator_value(),
                  kNonNegative),
      });
    default:
      return absl::InternalError("ValidateRule called with an unknown kind");
  }
}

}  // namespace

absl::Status ValidateOptimizerSpec(const v1::OptimizerSpec& spec) {
  const std::string opt = KindName(spec.kind());
  if (opt.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer kind=", spec.kind(),
        spec.kind() == v1::OptimizerSpec::OPTIMIZER_UNSPECIFIED ? " (unspecified)"
                                                                 : " (unknown)",
        "; want SGD, ADAM, ADAGRAD, ADAMW or FTRL"));
  }
  return FirstError({
      CheckAllFinite(opt, spec),
      CheckIn(opt, "learning_rate", spec.learning_rate(), kLearningRate),
      ValidateRule(opt, spec),
      ValidateSchedule(opt, spec),
  });
}

v1::OptimizerSpec WithDefaults(const v1::OptimizerSpec& given) {
  v1::OptimizerSpec spec = given;
  const v1::OptimizerSpec::Kind kind = spec.kind();
  const bool adam = kind == v1::OptimizerSpec::ADAM || kind == v1::OptimizerSpec::ADAMW;
  const bool ftrl = kind == v1::OptimizerSpec::FTRL;
  // Unknown kinds get zeros and are left for Validate to reject.
  if (!spec.has_momentum()) spec.set_momentum(0.0f);
  if (!spec.has_dampening()) spec.set_dampening(0.0f);
  if (!spec.has_nesterov()) spec.set_nesterov(false);
  if (!spec.has_weight_decay()) {
    spec.set_weight_decay(kind == v1::OptimizerSpec::ADAMW ? 0.01f : 0.0f);
  }
  if (!spec.has_beta1()) spec.set_beta1(adam ? 0.9f : 0.0f);
  if (!spec.has_beta2()) spec.set_beta2(adam ? 0.999f : 0.0f);
  if (!spec.has_epsilon()) {
    spec.set_epsilon(adam ? 1e-8f : kind == v1::OptimizerSpec::ADAGRAD ? 1e-10f : 0.0f);
  }
  if (!spec.has_initial_accumulator_value()) {
    spec.set_initial_accumulator_value(ftrl ? 0.1f : 0.0f);
  }
  if (!spec.has_lr_decay()) spec.set_lr_decay(0.0f);
  if (!spec.has_l1()) spec.set_l1(0.0f);
  if (!spec.has_l2()) spec.set_l2(0.0f);
  if (!spec.has_lr_power()) spec.set_lr_power(ftrl ? -0.5f : 0.0f);
  if (!spec.has_beta()) spec.set_beta(0.0f);
  return spec;
}

v1::OptimizerSpec DefaultOptimizerSpec(v1::OptimizerSpec::Kind kind, float learning_rate) {
  v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return WithDefaults(spec);
}

}  // namespace ps
