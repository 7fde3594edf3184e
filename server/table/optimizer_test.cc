#include "server/table/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using v1::LearningRateSchedule;
using v1::OptimizerSpec;

// float32 updates against double references: a few roundings per step, O(1) values.
constexpr double kRelTol = 1e-6;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Matches floats within kRelTol of `expected`, relative.
::testing::Matcher<float> Near(double expected) {
  return ::testing::FloatNear(static_cast<float>(expected),
                              static_cast<float>(kRelTol * std::abs(expected)));
}

// Creates the optimizer; a spec the test means to be valid failing is a bug in the test.
std::unique_ptr<Optimizer> MustCreate(const OptimizerSpec& spec) {
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  if (!opt.ok()) {
    std::fprintf(stderr, "Create(%s) failed: %s\n", spec.ShortDebugString().c_str(),
                 opt.status().ToString().c_str());
    std::abort();
  }
  return *std::move(opt);
}

// Holds parameters and slots the way a table shard does and counts steps from 1.
class Shard {
 public:
  Shard(const OptimizerSpec& spec, std::vector<float> params)
      : opt_(MustCreate(spec)), params_(std::move(params)) {
    // NaN first, so a slot that InitSlots forgets to fill poisons the results.
    slots_.assign(opt_->num_slots(), std::vector<float>(params_.size(), kNaN));
    opt_->InitSlots(SlotPointers().data(), Size());
  }

  void Step(const std::vector<float>& g) {
    ASSERT_EQ(g.size(), params_.size());
    opt_->Apply(params_.data(), g.data(), Size(), SlotPointers().data(), ++step_);
  }

  const std::vector<float>& params() const { return params_; }
  const std::vector<float>& slot(int i) const { return slots_[i]; }

 private:
  int64_t Size() const { return static_cast<int64_t>(params_.size()); }
  std::vector<float*> SlotPointers() {
    std::vector<float*> ptrs;
    for (std::vector<float>& s : slots_) ptrs.push_back(s.data());
    return ptrs;
  }

  std::unique_ptr<Optimizer> opt_;
  std::vector<float> params_;
  std::vector<std::vector<float>> slots_;
  int64_t step_ = 0;
};

// ---------------------------------------------------------------------------------------
// Reference implementations: the pseudo-code of the PyTorch documentation (torch.optim.SGD,
// Adagrad, Adam, AdamW) and of McMahan et al. 2013 (Algorithm 1, per coordinate, with
// TensorFlow's general lr_power and 2 * l2), transcribed in double one element at a time.
// `t` is the 1-based step.

struct RefSgd {
  double lr, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  std::vector<double> b = {};

  void Step(std::vector<double>& p, const std::vector<double>& g, int t) {
    b.resize(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double gt = g[i];
      if (weight_decay != 0) gt = gt + weight_decay * p[i];
      if (momentum != 0) {
        if (t > 1) {
          b[i] = momentum * b[i] + (1 - dampening) * gt;
        } else {
          b[i] = gt;
        }
        if (nesterov) {
          gt = gt + momentum * b[i];
        } else {
          gt = b[i];
        }
      }
      p[i] = p[i] - lr * gt;
    }
  }
};

struct RefAdagrad {
  double lr, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10;
  std::vector<double> state_sum = {};

  void Step(std::vector<double>& p, const std::vector<double>& g, int t) {
    if (state_sum.empty()) state_sum.assign(p.size(), initial_accumulator_value);
    const double clr = lr / (1 + (t - 1) * lr_decay);
    for (size_t i = 0; i < p.size(); ++i) {
      double gt = g[i];
      if (weight_decay != 0) gt = gt + weight_decay * p[i];
      state_sum[i] = state_sum[i] + gt * gt;
      p[i] = p[i] - clr * gt / (std::sqrt(state_sum[i]) + eps);
    }
  }
};

// Adam, or AdamW when `decoupled`.
struct RefAdam {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;
  std::vector<double> m = {}, v = {};

  void Step(std::vector<double>& p, const std::vector<double>& g, int t) {
    m.resize(p.size());
    v.resize(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double gt = g[i];
      if (decoupled) {
        p[i] = p[i] - lr * weight_decay * p[i];
      } else if (weight_decay != 0) {
        gt = gt + weight_decay * p[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * gt;
      v[i] = beta2 * v[i] + (1 - beta2) * gt * gt;
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      p[i] = p[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

struct RefFtrl {
  double alpha, lr_power = -0.5, l1 = 0, l2 = 0, beta = 0, initial_accumulator_value = 0.1;
  std::vector<double> z = {}, n = {};

  void Step(std::vector<double>& w, const std::vector<double>& g, int /*t*/) {
    if (n.empty()) {
      z.assign(w.size(), 0.0);
      n.assign(w.size(), initial_accumulator_value);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      const double n_new = n[i] + g[i] * g[i];
      const double sigma = (std::pow(n_new, -lr_power) - std::pow(n[i], -lr_power)) / alpha;
      z[i] += g[i] - sigma * w[i];
      n[i] = n_new;
      if (std::abs(z[i]) <= l1) {
        w[i] = 0;
      } else {
        const double sign = z[i] < 0 ? -1.0 : 1.0;
        w[i] = -(z[i] - sign * l1) / ((beta + std::pow(n[i], -lr_power)) / alpha + 2 * l2);
      }
    }
  }
};

// Gradients with magnitudes in [0.3, 0.8] and signs that vary with element and step.
std::vector<float> TestGradient(size_t n, int t) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) {
    const double mag = 0.3 + 0.5 * std::abs(std::sin(1.3 * i + 2.1 * t));
    g[i] = static_cast<float>((i + t) % 3 == 0 ? -mag : mag);
  }
  return g;
}

std::vector<float> TestParams(size_t n) {
  std::vector<float> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(std::cos(0.7 * i));
  return p;
}

// Runs `steps` updates through the optimizer and `ref` side by side on 19 elements (one
// 16-wide vector plus a scalar tail) and compares the parameters after every step.
template <typename Ref>
void ExpectMatchesReference(const OptimizerSpec& spec, Ref ref, int steps = 5) {
  constexpr size_t kN = 19;
  Shard shard(spec, TestParams(kN));
  std::vector<double> p(shard.params().begin(), shard.params().end());
  for (int t = 1; t <= steps; ++t) {
    const std::vector<float> g = TestGradient(kN, t);
    shard.Step(g);
    ref.Step(p, std::vector<double>(g.begin(), g.end()), t);
    for (size_t i = 0; i < kN; ++i) {
      if (p[i] == 0) {
        EXPECT_EQ(shard.params()[i], 0.0f) << "element " << i << " after step " << t;
      } else {
        EXPECT_NEAR(shard.params()[i], p[i], kRelTol * std::max(1.0, std::abs(p[i])))
            << "element " << i << " after step " << t;
      }
    }
  }
}

// Applies constant-per-step gradients `grads` to p (one element per entry of p).
std::vector<std::vector<float>> Trajectory(const OptimizerSpec& spec, std::vector<float> p,
                                           const std::vector<std::vector<float>>& grads) {
  Shard shard(spec, std::move(p));
  std::vector<std::vector<float>> out;
  for (const std::vector<float>& g : grads) {
    shard.Step(g);
    out.push_back(shard.params());
  }
  return out;
}

OptimizerSpec Sgd(float lr, float momentum = 0, float dampening = 0, bool nesterov = false,
                  float weight_decay = 0) {
  OptimizerSpec spec = DefaultOptimizerSpec(OptimizerSpec::SGD, lr);
  spec.set_momentum(momentum);
  spec.set_dampening(dampening);
  spec.set_nesterov(nesterov);
  spec.set_weight_decay(weight_decay);
  return spec;
}

// ---------------------------------------------------------------------------------------
// SGD

TEST(OptimizerTest, SgdPlainMatchesHandComputedValues) {
  // p -= 0.1 * g, element by element.
  auto traj = Trajectory(Sgd(0.1f), {1.0f, -2.0f}, {{0.5f, 1.0f}, {-1.0f, 0.0f}, {2.0f, -3.0f}});
  EXPECT_THAT(traj[0][0], Near(0.95));
  EXPECT_THAT(traj[0][1], Near(-2.1));
  EXPECT_THAT(traj[1][0], Near(1.05));
  EXPECT_THAT(traj[1][1], Near(-2.1));
  EXPECT_THAT(traj[2][0], Near(0.85));
  EXPECT_THAT(traj[2][1], Near(-1.8));
}

TEST(OptimizerTest, SgdMomentumMatchesHandComputedValues) {
  // g = 1 throughout: buf = 1, 1.9, 2.71; p = 1 - 0.1 * buf cumulatively.
  auto traj = Trajectory(Sgd(0.1f, 0.9f), {1.0f}, {{1.0f}, {1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.9));
  EXPECT_THAT(traj[1][0], Near(0.71));
  EXPECT_THAT(traj[2][0], Near(0.439));
}

TEST(OptimizerTest, SgdNesterovMatchesHandComputedValues) {
  // buf = 1, 1.9, 2.71 as above; the step is g + 0.9 * buf = 1.9, 2.71, 3.439.
  auto traj = Trajectory(Sgd(0.1f, 0.9f, 0.0f, /*nesterov=*/true), {1.0f},
                         {{1.0f}, {1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.81));
  EXPECT_THAT(traj[1][0], Near(0.539));
  EXPECT_THAT(traj[2][0], Near(0.1951));
}

TEST(OptimizerTest, SgdWeightDecayMatchesHandComputedValues) {
  // g = 0, so each step is p -= 0.1 * 0.5 * p, i.e. p *= 0.95.
  auto traj = Trajectory(Sgd(0.1f, 0, 0, false, 0.5f), {2.0f}, {{0.0f}, {0.0f}, {0.0f}});
  EXPECT_THAT(traj[0][0], Near(1.9));
  EXPECT_THAT(traj[1][0], Near(1.805));
  EXPECT_THAT(traj[2][0], Near(1.71475));
}

TEST(OptimizerTest, SgdDampeningSkipsFirstStep) {
  // PyTorch starts the buffer at g undamped: buf = 1, then 0.9 * 1 + 0.5 * 1 = 1.4.
  auto traj = Trajectory(Sgd(0.1f, 0.9f, 0.5f), {1.0f}, {{1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.9));
  EXPECT_THAT(traj[1][0], Near(0.76));
}

TEST(OptimizerTest, SgdPlainMatchesReference) {
  ExpectMatchesReference(Sgd(0.05f), RefSgd{0.05});
}

TEST(OptimizerTest, SgdMomentumWithDampeningMatchesReference) {
  ExpectMatchesReference(Sgd(0.05f, 0.9f, 0.3f), RefSgd{0.05, 0.9, 0.3});
}

TEST(OptimizerTest, SgdNesterovMatchesReference) {
  ExpectMatchesReference(Sgd(0.05f, 0.8f, 0.0f, true), RefSgd{0.05, 0.8, 0.0, 0.0, true});
}

TEST(OptimizerTest, SgdWeightDecayWithMomentumMatchesReference) {
  ExpectMatchesReference(Sgd(0.05f, 0.9f, 0.0f, false, 0.1f),
                         RefSgd{0.05, 0.9, 0.0, 0.1, false});
  ExpectMatchesReference(Sgd(0.05f, 0.0f, 0.0f, false, 0.1f), RefSgd{0.05, 0, 0, 0.1});
}

TEST(OptimizerTest, SgdUsesMomentumSlotOnlyWithMomentum) {
  EXPECT_EQ(MustCreate(Sgd(0.1f))->num_slots(), 0);
  EXPECT_EQ(MustCreate(Sgd(0.1f, 0.9f))->num_slots(), 1);
}

// ---------------------------------------------------------------------------------------
// AdaGrad

OptimizerSpec Adagrad(float lr, float lr_decay = 0, float weight_decay = 0,
                      float initial_accumulator_value = 0) {
  OptimizerSpec spec = DefaultOptimizerSpec(OptimizerSpec::ADAGRAD, lr);
  spec.set_lr_decay(lr_decay);
  spec.set_weight_decay(weight_decay);
  spec.set_initial_accumulator_value(initial_accumulator_value);
  return spec;
}

TEST(OptimizerTest, AdagradMatchesHandComputedValues) {
  // g = 1: the sum is t, so p -= 0.1 / sqrt(t).
  auto traj = Trajectory(Adagrad(0.1f), {1.0f}, {{1.0f}, {1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.9));
  EXPECT_THAT(traj[1][0], Near(0.82928932));  // 0.9 - 0.1 / sqrt(2)
  EXPECT_THAT(traj[2][0], Near(0.77155429));  // ... - 0.1 / sqrt(3)
}

TEST(OptimizerTest, AdagradLrDecayMatchesHandComputedValues) {
  // clr = 0.1 / (1 + (t - 1) * 0.5) = 0.1, 0.1 / 1.5, 0.05.
  auto traj = Trajectory(Adagrad(0.1f, 0.5f), {1.0f}, {{1.0f}, {1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.9));
  EXPECT_THAT(traj[1][0], Near(0.85285955));  // 0.9 - (0.1 / 1.5) / sqrt(2)
  EXPECT_THAT(traj[2][0], Near(0.82399203));  // ... - 0.05 / sqrt(3)
}

TEST(OptimizerTest, AdagradInitSlotsFillsInitialAccumulatorValue) {
  Shard shard(Adagrad(0.1f, 0, 0, 0.1f), {1.0f, 1.0f, 1.0f});
  for (float s : shard.slot(0)) EXPECT_THAT(s, Near(0.1));
  // The first step divides by sqrt(0.1 + 0.25): p = 1 - 0.1 * 0.5 / sqrt(0.35).
  shard.Step({0.5f, 0.5f, 0.5f});
  EXPECT_THAT(shard.params()[0], Near(0.91548457));
  EXPECT_THAT(shard.slot(0)[0], Near(0.35));
}

TEST(OptimizerTest, AdagradWithLrDecayMatchesReference) {
  ExpectMatchesReference(Adagrad(0.1f, 0.3f), RefAdagrad{0.1, 0.3});
}

TEST(OptimizerTest, AdagradWithWeightDecayAndAccumulatorMatchesReference) {
  ExpectMatchesReference(Adagrad(0.1f, 0.1f, 0.2f, 0.5f), RefAdagrad{0.1, 0.1, 0.2, 0.5});
}

TEST(OptimizerTest, AdagradAddsEpsilonAfterSquareRoot) {
  // A large epsilon tells sqrt(sum) + eps apart from sqrt(sum + eps).
  OptimizerSpec spec = Adagrad(0.1f);
  spec.set_epsilon(0.05f);
  ExpectMatchesReference(spec, RefAdagrad{0.1, 0, 0, 0, 0.05});
}

// ---------------------------------------------------------------------------------------
// Adam and AdamW

OptimizerSpec Adam(OptimizerSpec::Kind kind, float lr, float weight_decay) {
  OptimizerSpec spec = DefaultOptimizerSpec(kind, lr);
  spec.set_weight_decay(weight_decay);
  return spec;
}

TEST(OptimizerTest, AdamMatchesHandComputedValues) {
  // |g| = 1, so v_hat = 1 each step; m_hat = 1, -0.01 / 0.19, 0.091 / 0.271.
  auto traj = Trajectory(Adam(OptimizerSpec::ADAM, 0.01f, 0), {1.0f}, {{1.0f}, {-1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.99));
  EXPECT_THAT(traj[1][0], Near(0.99052632));
  EXPECT_THAT(traj[2][0], Near(0.98716838));
}

TEST(OptimizerTest, AdamConstantGradientMovesByLearningRate) {
  // With a constant gradient m_hat = g and v_hat = g^2: each step moves p by lr.
  auto traj =
      Trajectory(Adam(OptimizerSpec::ADAM, 0.01f, 0), {1.0f}, {{0.5f}, {0.5f}, {0.5f}});
  EXPECT_THAT(traj[0][0], Near(0.99));
  EXPECT_THAT(traj[1][0], Near(0.98));
  EXPECT_THAT(traj[2][0], Near(0.97));
}

TEST(OptimizerTest, AdamWeightDecayIsAddedToGradient) {
  // d = 0.5 + 0.5 * 1 = 1 on step 1, and Adam's first step is lr * sign(d).
  auto traj = Trajectory(Adam(OptimizerSpec::ADAM, 0.01f, 0.5f), {1.0f, -1.0f},
                         {{0.5f, 0.75f}});
  EXPECT_THAT(traj[0][0], Near(0.99));
  EXPECT_THAT(traj[0][1], Near(-1.01));  // d = 0.75 - 0.5 = 0.25 > 0
}

TEST(OptimizerTest, AdamMatchesReferenceOverFiveSteps) {
  RefAdam ref{0.01};
  ExpectMatchesReference(Adam(OptimizerSpec::ADAM, 0.01f, 0), ref);
}

TEST(OptimizerTest, AdamWithWeightDecayMatchesReference) {
  RefAdam ref{0.01};
  ref.weight_decay = 0.1;
  ExpectMatchesReference(Adam(OptimizerSpec::ADAM, 0.01f, 0.1f), ref);
}

TEST(OptimizerTest, AdamWMatchesHandComputedValues) {
  // Constant g: the Adam part moves p by lr = 0.1; decay first multiplies p by 0.99.
  auto traj =
      Trajectory(Adam(OptimizerSpec::ADAMW, 0.1f, 0.1f), {1.0f}, {{0.5f}, {0.5f}, {0.5f}});
  EXPECT_THAT(traj[0][0], Near(0.89));
  EXPECT_THAT(traj[1][0], Near(0.7811));
  EXPECT_THAT(traj[2][0], Near(0.673289));
}

TEST(OptimizerTest, AdamWMatchesReferenceOverFiveSteps) {
  RefAdam ref{0.01};
  ref.weight_decay = 0.05;
  ref.decoupled = true;
  ExpectMatchesReference(Adam(OptimizerSpec::ADAMW, 0.01f, 0.05f), ref);
}

// ---------------------------------------------------------------------------------------
// FTRL

OptimizerSpec Ftrl(float lr, float l1, float l2, float beta, float initial_accumulator_value,
                   float lr_power = -0.5f) {
  OptimizerSpec spec = DefaultOptimizerSpec(OptimizerSpec::FTRL, lr);
  spec.set_l1(l1);
  spec.set_l2(l2);
  spec.set_beta(beta);
  spec.set_initial_accumulator_value(initial_accumulator_value);
  spec.set_lr_power(lr_power);
  return spec;
}

TEST(OptimizerTest, FtrlMatchesHandComputedValues) {
  // n = 0, 9, 25, 169, so sqrt(n) = 3, 5, 13 and sigma = 3, 2, 8 (lr = 1):
  //   z = 3,                     w = -(3 - 1) / 3           = -2/3
  //   z = 3 + 4 + 2 * 2/3 = 25/3, w = -(25/3 - 1) / 5       = -22/15
  //   z = 25/3 + 12 + 8 * 22/15 = 481/15, w = -(481/15 - 1) / 13 = -466/195
  auto traj = Trajectory(Ftrl(1.0f, 1.0f, 0, 0, 0), {0.0f}, {{3.0f}, {4.0f}, {12.0f}});
  EXPECT_THAT(traj[0][0], Near(-2.0 / 3));
  EXPECT_THAT(traj[1][0], Near(-22.0 / 15));
  EXPECT_THAT(traj[2][0], Near(-466.0 / 195));
}

TEST(OptimizerTest, FtrlL1ProducesExactZeros) {
  // With l1 = 10 the weight stays 0 while |z| = 3, 7 <= 10; z = 19 gives -(19 - 10) / 13.
  auto traj = Trajectory(Ftrl(1.0f, 10.0f, 0, 0, 0), {0.0f, 0.0f},
                         {{3.0f, -3.0f}, {4.0f, 3.0f}, {12.0f, -3.0f}});
  EXPECT_EQ(traj[0][0], 0.0f);
  EXPECT_EQ(traj[1][0], 0.0f);
  EXPECT_THAT(traj[2][0], Near(-9.0 / 13));
  // Alternating gradients keep |z| small: the weight is exactly zero throughout.
  for (const auto& w : traj) EXPECT_EQ(w[1], 0.0f);
}

TEST(OptimizerTest, FtrlBetaAndL2EnterTheDenominator) {
  // n = 9, z = 3, w = -3 / ((3 + 1) / 0.5 + 2 * 0.25) = -3 / 8.5.
  auto traj = Trajectory(Ftrl(0.5f, 0, 0.25f, 1.0f, 0), {0.0f}, {{3.0f}});
  EXPECT_THAT(traj[0][0], Near(-3.0 / 8.5));
}

TEST(OptimizerTest, FtrlZeroGradientOnEmptyAccumulatorKeepsWeightZero) {
  // n = 0 and beta = l2 = 0 make the denominator 0; the weight must stay 0, not NaN.
  auto traj = Trajectory(Ftrl(0.1f, 0, 0, 0, 0), {0.0f, 0.0f}, {{0.0f, 1.0f}, {0.0f, 1.0f}});
  EXPECT_EQ(traj[1][0], 0.0f);
  EXPECT_THAT(traj[0][1], Near(-0.1));  // z = 1, w = -1 / (1 / 0.1)
}

TEST(OptimizerTest, FtrlStaysFiniteWhenScheduledRateUnderflows) {
  // lr = 0.1, 1e-31, then 1e-61, which is 0 in float: that step must not produce NaN.
  OptimizerSpec spec = Ftrl(0.1f, 0.01f, 0, 0, 0.1f);
  spec.mutable_schedule()->set_kind(LearningRateSchedule::STEP);
  spec.mutable_schedule()->set_step_size(1);
  spec.mutable_schedule()->set_gamma(1e-30f);
  auto traj = Trajectory(spec, {0.5f, -0.5f}, {{1.0f, -2.0f}, {0.5f, 0.5f}, {1.0f, 1.0f}});
  for (float w : traj[2]) EXPECT_TRUE(std::isfinite(w)) << w;
  EXPECT_EQ(traj[2], traj[1]);
}

TEST(OptimizerTest, FtrlInitSlotsStartsZAtZeroAndNAtInitialAccumulator) {
  Shard shard(Ftrl(0.1f, 0, 0, 0, 0.1f), {0.0f, 0.0f});
  for (float z : shard.slot(0)) EXPECT_EQ(z, 0.0f);
  for (float n : shard.slot(1)) EXPECT_THAT(n, Near(0.1));
}

TEST(OptimizerTest, FtrlMatchesReferenceWithL1Zeros) {
  RefFtrl ref{0.1};
  ref.l1 = 0.6;
  ref.l2 = 0.01;
  ref.beta = 0.5;
  ExpectMatchesReference(Ftrl(0.1f, 0.6f, 0.01f, 0.5f, 0.1f), ref, 6);
  // The test only means something if l1 zeroes some weights and not others.
  RefFtrl probe = ref;
  const std::vector<float> w0 = TestParams(19);
  std::vector<double> w(w0.begin(), w0.end());
  for (int t = 1; t <= 6; ++t) {
    const std::vector<float> g = TestGradient(19, t);
    probe.Step(w, std::vector<double>(g.begin(), g.end()), t);
  }
  const auto zeros = std::count(w.begin(), w.end(), 0.0);
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, 19);
}

TEST(OptimizerTest, FtrlGeneralLrPowerMatchesReference) {
  for (float lr_power : {-0.7f, -0.25f, 0.0f}) {
    SCOPED_TRACE(lr_power);
    RefFtrl ref{0.2};
    ref.lr_power = lr_power;
    ref.l1 = 0.05;
    ref.l2 = 0.1;
    ExpectMatchesReference(Ftrl(0.2f, 0.05f, 0.1f, 0, 0.1f, lr_power), ref);
  }
}

// ---------------------------------------------------------------------------------------
// Schedules

OptimizerSpec WithSchedule(LearningRateSchedule::Kind kind, float lr) {
  OptimizerSpec spec = DefaultOptimizerSpec(OptimizerSpec::SGD, lr);
  spec.mutable_schedule()->set_kind(kind);
  return spec;
}

TEST(OptimizerTest, ConstantScheduleKeepsLearningRate) {
  auto opt = MustCreate(WithSchedule(LearningRateSchedule::CONSTANT, 0.5f));
  for (int64_t t : {1, 2, 1000}) EXPECT_THAT(opt->LearningRate(t), Near(0.5));
}

TEST(OptimizerTest, StepScheduleDecaysEveryStepSize) {
  OptimizerSpec spec = WithSchedule(LearningRateSchedule::STEP, 1.0f);
  spec.mutable_schedule()->set_step_size(3);
  spec.mutable_schedule()->set_gamma(0.5f);
  auto opt = MustCreate(spec);
  EXPECT_THAT(opt->LearningRate(1), Near(1.0));
  EXPECT_THAT(opt->LearningRate(3), Near(1.0));
  EXPECT_THAT(opt->LearningRate(4), Near(0.5));
  EXPECT_THAT(opt->LearningRate(6), Near(0.5));
  EXPECT_THAT(opt->LearningRate(7), Near(0.25));
  EXPECT_THAT(opt->LearningRate(31), Near(1.0 / 1024));
}

TEST(OptimizerTest, CosineScheduleGoesFromLrToMinLr) {
  OptimizerSpec spec = WithSchedule(LearningRateSchedule::COSINE, 1.0f);
  spec.mutable_schedule()->set_total_steps(4);
  spec.mutable_schedule()->set_min_lr(0.1f);
  auto opt = MustCreate(spec);
  EXPECT_THAT(opt->LearningRate(1), Near(1.0));
  EXPECT_THAT(opt->LearningRate(2), Near(0.86819805));  // 0.1 + 0.45 * (1 + cos(pi/4))
  EXPECT_THAT(opt->LearningRate(3), Near(0.55));        // cos(pi/2) = 0
  EXPECT_THAT(opt->LearningRate(4), Near(0.23180195));  // 0.1 + 0.45 * (1 + cos(3pi/4))
  EXPECT_THAT(opt->LearningRate(5), Near(0.1));
  EXPECT_THAT(opt->LearningRate(100), Near(0.1));
}

TEST(OptimizerTest, LinearWarmupRampsThenHolds) {
  OptimizerSpec spec = WithSchedule(LearningRateSchedule::LINEAR_WARMUP, 1.0f);
  spec.mutable_schedule()->set_warmup_steps(4);
  auto opt = MustCreate(spec);
  EXPECT_THAT(opt->LearningRate(1), Near(0.25));
  EXPECT_THAT(opt->LearningRate(2), Near(0.5));
  EXPECT_THAT(opt->LearningRate(4), Near(1.0));
  EXPECT_THAT(opt->LearningRate(10), Near(1.0));
}

TEST(OptimizerTest, ApplyUsesScheduledLearningRate) {
  // Warmup over 2 steps: lr = 0.05, then 0.1; p -= lr * g with g = 1.
  OptimizerSpec spec = WithSchedule(LearningRateSchedule::LINEAR_WARMUP, 0.1f);
  spec.mutable_schedule()->set_warmup_steps(2);
  auto traj = Trajectory(spec, {1.0f}, {{1.0f}, {1.0f}, {1.0f}});
  EXPECT_THAT(traj[0][0], Near(0.95));
  EXPECT_THAT(traj[1][0], Near(0.85));
  EXPECT_THAT(traj[2][0], Near(0.75));

  // Adam under a step schedule: each constant-gradient step moves p by that step's lr.
  OptimizerSpec adam = Adam(OptimizerSpec::ADAM, 0.01f, 0);
  adam.mutable_schedule()->set_kind(LearningRateSchedule::STEP);
  adam.mutable_schedule()->set_step_size(1);
  adam.mutable_schedule()->set_gamma(0.5f);
  traj = Trajectory(adam, {1.0f}, {{0.5f}, {0.5f}, {0.5f}});
  EXPECT_THAT(traj[2][0], Near(1.0 - 0.01 - 0.005 - 0.0025));
}

// ---------------------------------------------------------------------------------------
// Create, defaults, ranges

TEST(OptimizerTest, DefaultsFollowPyTorchAndValidate) {
  const OptimizerSpec adam = DefaultOptimizerSpec(OptimizerSpec::ADAM, 0.001f);
  EXPECT_THAT(adam.beta1(), Near(0.9));
  EXPECT_THAT(adam.beta2(), Near(0.999));
  EXPECT_THAT(adam.epsilon(), Near(1e-8));
  EXPECT_EQ(adam.weight_decay(), 0.0f);
  EXPECT_THAT(DefaultOptimizerSpec(OptimizerSpec::ADAMW, 0.001f).weight_decay(), Near(0.01));
  EXPECT_THAT(DefaultOptimizerSpec(OptimizerSpec::ADAGRAD, 0.01f).epsilon(), Near(1e-10));
  const OptimizerSpec ftrl = DefaultOptimizerSpec(OptimizerSpec::FTRL, 0.05f);
  EXPECT_THAT(ftrl.lr_power(), Near(-0.5));
  EXPECT_THAT(ftrl.initial_accumulator_value(), Near(0.1));

  const struct {
    OptimizerSpec::Kind kind;
    const char* name;
    int slots;
  } kinds[] = {{OptimizerSpec::SGD, "sgd", 0},
               {OptimizerSpec::ADAM, "adam", 2},
               {OptimizerSpec::ADAGRAD, "adagrad", 1},
               {OptimizerSpec::ADAMW, "adamw", 2},
               {OptimizerSpec::FTRL, "ftrl", 2}};
  for (const auto& k : kinds) {
    const OptimizerSpec spec = DefaultOptimizerSpec(k.kind, 0.01f);
    EXPECT_TRUE(Optimizer::Validate(spec).ok()) << k.name;
    std::unique_ptr<Optimizer> opt = MustCreate(spec);
    EXPECT_EQ(opt->name(), k.name);
    EXPECT_EQ(opt->num_slots(), k.slots) << k.name;
  }
}

TEST(OptimizerTest, ApplyOnSplitRangesMatchesWholeRange) {
  // Shards apply updates per range; splitting must not change any element's result.
  for (OptimizerSpec::Kind kind : {OptimizerSpec::SGD, OptimizerSpec::ADAM,
                                   OptimizerSpec::ADAGRAD, OptimizerSpec::ADAMW,
                                   OptimizerSpec::FTRL}) {
    OptimizerSpec spec = DefaultOptimizerSpec(kind, 0.01f);
    if (kind == OptimizerSpec::SGD) spec.set_momentum(0.9f);
    std::unique_ptr<Optimizer> opt = MustCreate(spec);
    constexpr int64_t kN = 37, kCut = 13;
    std::vector<float> whole = TestParams(kN), split = whole;
    const int k = opt->num_slots();
    std::vector<std::vector<float>> whole_slots(k, std::vector<float>(kN));
    std::vector<std::vector<float>> split_slots = whole_slots;
    std::vector<float*> ws, ss_lo, ss_hi;
    for (int s = 0; s < k; ++s) {
      ws.push_back(whole_slots[s].data());
      ss_lo.push_back(split_slots[s].data());
      ss_hi.push_back(split_slots[s].data() + kCut);
    }
    opt->InitSlots(ws.data(), kN);
    opt->InitSlots(ss_lo.data(), kN);
    for (int t = 1; t <= 3; ++t) {
      const std::vector<float> g = TestGradient(kN, t);
      opt->Apply(whole.data(), g.data(), kN, ws.data(), t);
      opt->Apply(split.data(), g.data(), kCut, ss_lo.data(), t);
      opt->Apply(split.data() + kCut, g.data() + kCut, kN - kCut, ss_hi.data(), t);
    }
    EXPECT_EQ(whole, split) << opt->name();
    EXPECT_EQ(whole_slots, split_slots) << opt->name();
  }
}

// One spec Validate must reject, and the parameter its message must name.
struct BadSpec {
  std::string label;
  OptimizerSpec spec;
  std::string param;
};

BadSpec Bad(const std::string& label, OptimizerSpec::Kind kind,
            const std::function<void(OptimizerSpec&)>& mutate, const std::string& param) {
  OptimizerSpec spec = DefaultOptimizerSpec(kind, 0.1f);
  mutate(spec);
  return {label, spec, param};
}

TEST(OptimizerTest, ValidateRejectsEachBadHyperParameter) {
  using K = OptimizerSpec;
  using S = LearningRateSchedule;
  const std::vector<BadSpec> cases = {
      Bad("unspecified kind", K::OPTIMIZER_UNSPECIFIED, [](K&) {}, "kind"),
      Bad("unknown kind", K::SGD, [](K& s) { s.set_kind(static_cast<K::Kind>(42)); }, "kind"),
      Bad("zero lr", K::SGD, [](K& s) { s.set_learning_rate(0); }, "learning_rate"),
      Bad("negative lr", K::ADAM, [](K& s) { s.set_learning_rate(-1); }, "learning_rate"),
      Bad("nan lr", K::ADAM, [](K& s) { s.set_learning_rate(kNaN); }, "learning_rate"),
      Bad("inf lr", K::FTRL, [](K& s) { s.set_learning_rate(kInf); }, "learning_rate"),
      Bad("negative momentum", K::SGD, [](K& s) { s.set_momentum(-0.1f); }, "momentum"),
      Bad("dampening > 1", K::SGD, [](K& s) { s.set_dampening(1.5f); }, "dampening"),
      Bad("dampening < 0", K::SGD, [](K& s) { s.set_dampening(-0.5f); }, "dampening"),
      Bad("nesterov without momentum", K::SGD, [](K& s) { s.set_nesterov(true); }, "nesterov"),
      Bad("nesterov with dampening", K::SGD,
          [](K& s) {
            s.set_nesterov(true);
            s.set_momentum(0.9f);
            s.set_dampening(0.1f);
          },
          "dampening"),
      Bad("sgd negative weight_decay", K::SGD, [](K& s) { s.set_weight_decay(-1); },
          "weight_decay"),
      Bad("adam inf weight_decay", K::ADAM, [](K& s) { s.set_weight_decay(kInf); },
          "weight_decay"),
      Bad("adamw negative weight_decay", K::ADAMW, [](K& s) { s.set_weight_decay(-0.01f); },
          "weight_decay"),
      Bad("adagrad negative weight_decay", K::ADAGRAD, [](K& s) { s.set_weight_decay(-1); },
          "weight_decay"),
      Bad("ftrl weight_decay", K::FTRL, [](K& s) { s.set_weight_decay(0.1f); }, "weight_decay"),
      Bad("beta1 = 1", K::ADAM, [](K& s) { s.set_beta1(1.0f); }, "beta1"),
      Bad("beta1 < 0", K::ADAMW, [](K& s) { s.set_beta1(-0.1f); }, "beta1"),
      Bad("beta2 > 1", K::ADAM, [](K& s) { s.set_beta2(1.5f); }, "beta2"),
      Bad("adam epsilon 0", K::ADAM, [](K& s) { s.set_epsilon(0); }, "epsilon"),
      Bad("adamw epsilon < 0", K::ADAMW, [](K& s) { s.set_epsilon(-1e-8f); }, "epsilon"),
      Bad("adagrad epsilon 0", K::ADAGRAD, [](K& s) { s.set_epsilon(0); }, "epsilon"),
      Bad("negative lr_decay", K::ADAGRAD, [](K& s) { s.set_lr_decay(-0.1f); }, "lr_decay"),
      Bad("adagrad negative accumulator", K::ADAGRAD,
          [](K& s) { s.set_initial_accumulator_value(-0.1f); }, "initial_accumulator_value"),
      Bad("ftrl negative accumulator", K::FTRL,
          [](K& s) { s.set_initial_accumulator_value(-0.1f); }, "initial_accumulator_value"),
      Bad("negative l1", K::FTRL, [](K& s) { s.set_l1(-1); }, "l1"),
      Bad("negative l2", K::FTRL, [](K& s) { s.set_l2(-1); }, "l2"),
      Bad("positive lr_power", K::FTRL, [](K& s) { s.set_lr_power(0.5f); }, "lr_power"),
      Bad("negative beta", K::FTRL, [](K& s) { s.set_beta(-1); }, "beta"),
      Bad("nan in an unused field", K::SGD, [](K& s) { s.set_beta1(kNaN); }, "beta1"),
      Bad("inf l2", K::FTRL, [](K& s) { s.set_l2(kInf); }, "l2"),
      Bad("unknown schedule", K::SGD,
          [](K& s) { s.mutable_schedule()->set_kind(static_cast<S::Kind>(9)); }, "schedule"),
      Bad("step_size 0", K::SGD,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::STEP);
            s.mutable_schedule()->set_gamma(0.5f);
          },
          "step_size"),
      Bad("gamma 0", K::SGD,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::STEP);
            s.mutable_schedule()->set_step_size(10);
          },
          "gamma"),
      Bad("gamma > 1", K::ADAM,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::STEP);
            s.mutable_schedule()->set_step_size(10);
            s.mutable_schedule()->set_gamma(1.5f);
          },
          "gamma"),
      Bad("total_steps 0", K::ADAM, [](K& s) { s.mutable_schedule()->set_kind(S::COSINE); },
          "total_steps"),
      Bad("min_lr < 0", K::ADAM,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::COSINE);
            s.mutable_schedule()->set_total_steps(100);
            s.mutable_schedule()->set_min_lr(-0.01f);
          },
          "min_lr"),
      Bad("min_lr > lr", K::ADAM,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::COSINE);
            s.mutable_schedule()->set_total_steps(100);
            s.mutable_schedule()->set_min_lr(0.2f);
          },
          "min_lr"),
      Bad("ftrl cosine to 0", K::FTRL,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::COSINE);
            s.mutable_schedule()->set_total_steps(100);
          },
          "min_lr"),
      Bad("warmup_steps 0", K::ADAGRAD,
          [](K& s) { s.mutable_schedule()->set_kind(S::LINEAR_WARMUP); }, "warmup_steps"),
      Bad("nan gamma", K::SGD,
          [](K& s) {
            s.mutable_schedule()->set_kind(S::STEP);
            s.mutable_schedule()->set_step_size(10);
            s.mutable_schedule()->set_gamma(kNaN);
          },
          "gamma"),
  };
  for (const BadSpec& c : cases) {
    SCOPED_TRACE(c.label);
    const absl::Status s = Optimizer::Validate(c.spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.param));
    // Create reports the same error instead of building an optimizer.
    EXPECT_EQ(Optimizer::Create(c.spec).status(), s);
  }
}

TEST(OptimizerTest, ValidateMessageNamesOptimizerValueAndRange) {
  OptimizerSpec spec = DefaultOptimizerSpec(OptimizerSpec::ADAM, 0.001f);
  spec.set_beta2(1.5f);
  EXPECT_EQ(Optimizer::Validate(spec).message(), "optimizer adam: beta2=1.5 outside [0, 1)");

  spec = DefaultOptimizerSpec(OptimizerSpec::SGD, 0.1f);
  spec.set_dampening(2);
  EXPECT_EQ(Optimizer::Validate(spec).message(), "optimizer sgd: dampening=2 outside [0, 1]");

  spec = DefaultOptimizerSpec(OptimizerSpec::FTRL, 0.1f);
  spec.set_lr_power(0.5f);
  EXPECT_EQ(Optimizer::Validate(spec).message(),
            "optimizer ftrl: lr_power=0.5 outside (-inf, 0]");

  spec = DefaultOptimizerSpec(OptimizerSpec::ADAGRAD, 0.1f);
  spec.set_learning_rate(kNaN);
  EXPECT_THAT(std::string(Optimizer::Validate(spec).message()),
              HasSubstr("optimizer adagrad: learning_rate=nan"));
}

}  // namespace
}  // namespace ps
