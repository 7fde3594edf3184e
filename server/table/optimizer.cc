#include "server/table/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ps {
namespace {

using v1::LearningRateSchedule;
using v1::OptimizerSpec;

constexpr double kPi = 3.14159265358979323846;

// ---------------------------------------------------------------------------------------
// Update rules. Each Apply() hoists the scalar math (schedule, bias corrections) and then
// runs one branch-free loop over contiguous arrays, so the loops vectorise and run at
// memory bandwidth (see the copts in server/BUILD). The loops live in free functions with
// __restrict parameters: the promise that the arrays are disjoint spares the compiler
// run-time alias checks, which its cost model may refuse to pay for.

// Where a loop's results go: into the arrays (Apply), or only into a flag that says
// whether any would be inf or NaN (AllFinite, which then writes nothing). The arithmetic
// is the same code either way, so the check agrees with the update bit for bit.
struct Store {
  void operator()(float* dst, float v) const { *dst = v; }
};
struct FiniteCheck {
  uint32_t bad = 0;
  // Exponent bits all ones: inf or NaN. Branch-free, so the loops still vectorise.
  void operator()(float*, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
};

// Apply() and AllFinite() of a rule, both through its Run<Out>(). AllFinite passes the
// read-only arrays as writable pointers: FiniteCheck never writes through them.
#define PS_OPTIMIZER_APPLY_AND_CHECK                                                      \
  void Apply(float* p, const float* g, int64_t n, float* const* slots, int64_t step)     \
      const override {                                                                   \
    Store out;                                                                           \
    Run(p, g, n, slots, step, out);                                                      \
  }                                                                                      \
  bool AllFinite(const float* p, const float* g, int64_t n, const float* const* slots,  \
                 int64_t step) const override {                                          \
    FiniteCheck out;                                                                     \
    Run(const_cast<float*>(p), g, n, const_cast<float* const*>(slots), step, out);       \
    return out.bad == 0;                                                                 \
  }

// torch.optim.SGD, with d = g + weight_decay * p:
//   momentum == 0:  p -= lr * d
//   otherwise:      buf = d on step 1, else momentum * buf + (1 - dampening) * d;
//                   p -= lr * (nesterov ? d + momentum * buf : buf)
// Slot 0 (only when momentum > 0): the momentum buffer.
template <typename Out>
void SgdLoop(float* __restrict p, const float* __restrict g, int64_t n, float lr, float wd,
             Out& out) {
  for (int64_t i = 0; i < n; ++i) out(&p[i], p[i] - lr * (g[i] + wd * p[i]));
}

template <bool kNesterov, typename Out>
void SgdMomentumLoop(float* __restrict p, const float* __restrict g, float* __restrict buf,
                     int64_t n, float lr, float wd, float momentum, float keep, float add,
                     Out& out) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float b = keep * buf[i] + add * d;
    out(&buf[i], b);
    if constexpr (kNesterov) {
      out(&p[i], p[i] - lr * (d + momentum * b));
    } else {
      out(&p[i], p[i] - lr * b);
    }
  }
}

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const OptimizerSpec& spec) : Optimizer(spec) {}
  std::string name() const override { return "sgd"; }
  int num_slots() const override { return spec_.momentum() > 0 ? 1 : 0; }
  void InitSlots(float* const* slots, int64_t n) const override {
    // Step 1 multiplies the buffer by 0, which gives exactly 0 only for finite values.
    if (num_slots() == 1) std::fill(slots[0], slots[0] + n, 0.0f);
  }
  PS_OPTIMIZER_APPLY_AND_CHECK

  template <typename Out>
  void Run(float* p, const float* g, int64_t n, float* const* slots, int64_t step,
           Out& out) const {
    const float lr = LearningRate(step);
    const float wd = spec_.weight_decay();
    if (spec_.momentum() == 0) {
      SgdLoop(p, g, n, lr, wd, out);
      return;
    }
    // Step 1 starts the buffer at d itself (no dampening), as PyTorch does.
    const bool first = step <= 1;
    const float momentum = spec_.momentum();
    const float keep = first ? 0.0f : momentum;
    const float add = first ? 1.0f : 1.0f - spec_.dampening();
    if (spec_.nesterov()) {
      SgdMomentumLoop<true>(p, g, slots[0], n, lr, wd, momentum, keep, add, out);
    } else {
      SgdMomentumLoop<false>(p, g, slots[0], n, lr, wd, momentum, keep, add, out);
    }
  }
};

// torch.optim.Adagrad, with d = g + weight_decay * p and clr = lr / (1 + (step-1)*lr_decay):
//   sum += d^2;  p -= clr * d / (sqrt(sum) + eps)
// Slot 0: the squared-gradient sum, starting at initial_accumulator_value.
template <typename Out>
void AdagradLoop(float* __restrict p, const float* __restrict g, float* __restrict sum,
                 int64_t n, float clr, float wd, float eps, Out& out) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float s = sum[i] + d * d;
    out(&sum[i], s);
    out(&p[i], p[i] - clr * d / (std::sqrt(s) + eps));
  }
}

class Adagrad final : public Optimizer {
 public:
  explicit Adagrad(const OptimizerSpec& spec) : Optimizer(spec) {}
  std::string name() const override { return "adagrad"; }
  int num_slots() const override { return 1; }
  void InitSlots(float* const* slots, int64_t n) const override {
    std::fill(slots[0], slots[0] + n, spec_.initial_accumulator_value());
  }
  PS_OPTIMIZER_APPLY_AND_CHECK

  template <typename Out>
  void Run(float* p, const float* g, int64_t n, float* const* slots, int64_t step,
           Out& out) const {
    const int64_t t = std::max<int64_t>(step, 1);
    const double clr =
        LearningRate(t) / (1.0 + static_cast<double>(t - 1) * spec_.lr_decay());
    AdagradLoop(p, g, slots[0], n, static_cast<float>(clr), spec_.weight_decay(),
                spec_.epsilon(), out);
  }
};

// torch.optim.Adam (decoupled = false) and torch.optim.AdamW (decoupled = true):
//   Adam:  d = g + weight_decay * p            AdamW: p *= 1 - lr * weight_decay; d = g
//   m = beta1 * m + (1 - beta1) * d;  v = beta2 * v + (1 - beta2) * d^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Slots 0 and 1: m and v, starting at 0.
struct AdamScalars {
  float l2;            // weight_decay for Adam, 0 for AdamW
  float shrink;        // 1 - lr * weight_decay for AdamW, 1 for Adam
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float step_size;     // lr / (1 - beta1^t)
  float inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
  float eps;
};

template <typename Out>
void AdamLoop(float* __restrict p, const float* __restrict g, float* __restrict m,
              float* __restrict v, int64_t n, const AdamScalars& c, Out& out) {
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i];
    const float d = g[i] + c.l2 * pi;
    const float mi = c.beta1 * m[i] + c.one_minus_beta1 * d;
    const float vi = c.beta2 * v[i] + c.one_minus_beta2 * d * d;
    out(&m[i], mi);
    out(&v[i], vi);
    out(&p[i], pi * c.shrink - c.step_size * mi / (std::sqrt(vi) * c.inv_sqrt_bc2 + c.eps));
  }
}

class Adam final : public Optimizer {
 public:
  Adam(const OptimizerSpec& spec, bool decoupled) : Optimizer(spec), decoupled_(decoupled) {}
  std::string name() const override { return decoupled_ ? "adamw" : "adam"; }
  int num_slots() const override { return 2; }
  void InitSlots(float* const* slots, int64_t n) const override {
    std::fill(slots[0], slots[0] + n, 0.0f);
    std::fill(slots[1], slots[1] + n, 0.0f);
  }
  PS_OPTIMIZER_APPLY_AND_CHECK

  template <typename Out>
  void Run(float* p, const float* g, int64_t n, float* const* slots, int64_t step,
           Out& out) const {
    const int64_t t = std::max<int64_t>(step, 1);
    const double lr = LearningRate(t);
    const double beta1 = spec_.beta1(), beta2 = spec_.beta2();
    const double wd = spec_.weight_decay();
    // One loop serves both rules: the unused term is multiplied by exactly 0 or 1.
    AdamScalars c;
    c.l2 = decoupled_ ? 0.0f : static_cast<float>(wd);
    c.shrink = decoupled_ ? static_cast<float>(1.0 - lr * wd) : 1.0f;
    c.beta1 = spec_.beta1();
    c.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    c.beta2 = spec_.beta2();
    c.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    c.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, static_cast<double>(t))));
    c.inv_sqrt_bc2 =
        static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, static_cast<double>(t))));
    c.eps = spec_.epsilon();
    AdamLoop(p, g, slots[0], slots[1], n, c, out);
  }

 private:
  const bool decoupled_;
};

// FTRL-proximal (McMahan et al. 2013), as TensorFlow's ApplyFtrlV2 kernel with Keras'
// `beta` (which Keras folds into l2 as l2 + beta / (2 * lr)). With k = -lr_power >= 0 and
// w the weight before the step:
//   n_new = n + g^2
//   sigma = (n_new^k - n^k) / lr
//   z    += g - sigma * w
//   w     = |z| <= l1 ? 0 : -(z - sign(z) * l1) / ((n_new^k + beta) / lr + 2 * l2)
//   n     = n_new
// For lr_power = -0.5 the powers are square roots and this is the paper's Algorithm 1 (its
// lambda2 is 2 * l2 here). The weight is a closed form of (z, n), so entries with
// |z| <= l1 are exactly zero. Slots 0 and 1: z (starting at 0) and n (starting at
// initial_accumulator_value). Validate keeps the scheduled lr positive; a step whose rate
// has underflowed (a very long STEP decay) leaves the range untouched rather than NaN.
template <bool kSqrt, typename Out>
void FtrlLoop(float* __restrict w, const float* __restrict g, float* __restrict z,
              float* __restrict acc, int64_t n, float inv_lr, float k, float l1, float beta,
              float two_l2, Out& out) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float old_acc = acc[i];
    const float new_acc = old_acc + gi * gi;
    float new_pow, old_pow;
    if constexpr (kSqrt) {
      new_pow = std::sqrt(new_acc);
      old_pow = std::sqrt(old_acc);
    } else {
      new_pow = std::pow(new_acc, k);
      old_pow = std::pow(old_acc, k);
    }
    const float zi = z[i] + gi - (new_pow - old_pow) * inv_lr * w[i];
    const float quadratic = (new_pow + beta) * inv_lr + two_l2;
    // Divides unconditionally and then selects: a branch-free loop vectorises, and the
    // quotient it discards is the 0/0 of an untouched entry (n = 0, beta = l2 = 0).
    const float solved = (std::copysign(l1, zi) - zi) / quadratic;
    out(&z[i], zi);
    out(&acc[i], new_acc);
    out(&w[i], std::abs(zi) <= l1 ? 0.0f : solved);
  }
}

class Ftrl final : public Optimizer {
 public:
  explicit Ftrl(const OptimizerSpec& spec) : Optimizer(spec) {}
  std::string name() const override { return "ftrl"; }
  int num_slots() const override { return 2; }
  void InitSlots(float* const* slots, int64_t n) const override {
    std::fill(slots[0], slots[0] + n, 0.0f);
    std::fill(slots[1], slots[1] + n, spec_.initial_accumulator_value());
  }
  PS_OPTIMIZER_APPLY_AND_CHECK

  template <typename Out>
  void Run(float* p, const float* g, int64_t n, float* const* slots, int64_t step,
           Out& out) const {
    const float lr = LearningRate(step);
    if (!(lr >= std::numeric_limits<float>::min())) return;  // 1 / lr would overflow
    const float inv_lr = 1.0f / lr;
    const float k = -spec_.lr_power();
    const float l1 = spec_.l1(), beta = spec_.beta(), two_l2 = 2.0f * spec_.l2();
    // std::pow does not vectorise; the default power gets the sqrt instruction instead.
    if (k == 0.5f) {
      FtrlLoop<true>(p, g, slots[0], slots[1], n, inv_lr, k, l1, beta, two_l2, out);
    } else {
      FtrlLoop<false>(p, g, slots[0], slots[1], n, inv_lr, k, l1, beta, two_l2, out);
    }
  }
};

}  // namespace

absl::Status Optimizer::Validate(const v1::OptimizerSpec& spec) {
  return ValidateOptimizerSpec(spec);
}

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const v1::OptimizerSpec& spec) {
  if (absl::Status s = Validate(spec); !s.ok()) return s;
  switch (spec.kind()) {
    case v1::OptimizerSpec::SGD: return std::make_unique<Sgd>(spec);
    case v1::OptimizerSpec::ADAGRAD: return std::make_unique<Adagrad>(spec);
    case v1::OptimizerSpec::ADAM: return std::make_unique<Adam>(spec, /*decoupled=*/false);
    case v1::OptimizerSpec::ADAMW: return std::make_unique<Adam>(spec, /*decoupled=*/true);
    case v1::OptimizerSpec::FTRL: return std::make_unique<Ftrl>(spec);
    default: return absl::InternalError("Validate accepted an unknown optimizer kind");
  }
}

std::optional<Optimizer::NonFinite> Optimizer::FirstNonFinite(const float* p, const float* g,
                                                              int64_t n, const float* const* slots,
                                                              int64_t step) const {
  if (AllFinite(p, g, n, slots, step)) return std::nullopt;  // the usual case: one read pass
  constexpr int64_t kChunk = 4096;  // (1 + slots) * 16 KiB: stays in the L2 cache
  const int k = num_slots();
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(1 + k) * kChunk);
  float* copies[kMaxSlots];
  for (int s = 0; s < k; ++s) copies[s] = scratch.data() + (1 + s) * kChunk;
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const int64_t m = std::min(kChunk, n - begin);
    std::copy_n(p + begin, m, scratch.data());
    for (int s = 0; s < k; ++s) std::copy_n(slots[s] + begin, m, copies[s]);
    Apply(scratch.data(), g + begin, m, copies, step);
    for (int64_t i = 0; i < m; ++i) {
      if (!std::isfinite(scratch[i])) return NonFinite{begin + i, -1, scratch[i]};
      for (int s = 0; s < k; ++s) {
        if (!std::isfinite(copies[s][i])) return NonFinite{begin + i, s, copies[s][i]};
      }
    }
  }
  return std::nullopt;
}

float Optimizer::LearningRate(int64_t step) const {
  const double lr = spec_.learning_rate();
  const LearningRateSchedule& s = spec_.schedule();
  const int64_t t = std::max<int64_t>(step, 1);
  switch (s.kind()) {
    case LearningRateSchedule::STEP:
      return static_cast<float>(lr * std::pow(static_cast<double>(s.gamma()),
                                              static_cast<double>((t - 1) / s.step_size())));
    case LearningRateSchedule::COSINE: {
      const double frac = static_cast<double>(std::min(t - 1, s.total_steps())) /
                          static_cast<double>(s.total_steps());
      const double min_lr = s.min_lr();
      return static_cast<float>(min_lr +
                                (lr - min_lr) * 0.5 * (1.0 + std::cos(kPi * frac)));
    }
    case LearningRateSchedule::LINEAR_WARMUP:
      return static_cast<float>(
          lr * std::min(1.0, static_cast<double>(t) / static_cast<double>(s.warmup_steps())));
    default:
      return static_cast<float>(lr);
  }
}

}  // namespace ps
