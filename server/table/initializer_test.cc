#include "server/table/initializer.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::Each;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int64_t kSamples = 100'000;

v1::Initializer Uniform(float low, float high, uint64_t seed) {
  v1::Initializer init;
  init.set_kind(v1::Initializer::UNIFORM);
  init.set_low(low);
  init.set_high(high);
  init.set_seed(seed);
  return init;
}

v1::Initializer Normal(float mean, float stddev, uint64_t seed) {
  v1::Initializer init;
  init.set_kind(v1::Initializer::NORMAL);
  init.set_mean(mean);
  init.set_stddev(stddev);
  init.set_seed(seed);
  return init;
}

std::vector<float> Fill(const v1::Initializer& init, int64_t first, int64_t n) {
  std::vector<float> out(n, std::numeric_limits<float>::quiet_NaN());
  FillInitial(init, first, n, out.data());
  return out;
}

struct Moments {
  double mean;
  double stddev;
};

Moments ComputeMoments(const std::vector<float>& v) {
  double sum = 0, sum_sq = 0;
  for (float x : v) sum += x;
  const double mean = sum / v.size();
  for (float x : v) sum_sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sum_sq / v.size())};
}

TEST(InitializerTest, ValuesDoNotDependOnHowTheRangeIsSplit) {
  for (const v1::Initializer& init : {Uniform(-1, 1, 42), Normal(0.5f, 2.0f, 7)}) {
    const std::vector<float> whole = Fill(init, 0, 1000);
    std::vector<float> pieces;
    for (auto [first, n] : {std::pair<int64_t, int64_t>{0, 1}, {1, 16}, {17, 300}, {317, 683}}) {
      const std::vector<float> part = Fill(init, first, n);
      pieces.insert(pieces.end(), part.begin(), part.end());
    }
    EXPECT_THAT(pieces, ElementsAreArray(whole)) << init.ShortDebugString();
  }
}

TEST(InitializerTest, SeedChangesTheValues) {
  EXPECT_NE(Fill(Uniform(0, 1, 1), 0, 64), Fill(Uniform(0, 1, 2), 0, 64));
  EXPECT_EQ(Fill(Uniform(0, 1, 1), 0, 64), Fill(Uniform(0, 1, 1), 0, 64));
}

TEST(InitializerTest, UniformStaysWithinBoundsWithMeanNearMidpoint) {
  const std::vector<float> v = Fill(Uniform(-0.25f, 0.75f, 123), 0, kSamples);
  for (float x : v) {
    ASSERT_GE(x, -0.25f);
    ASSERT_LT(x, 0.75f);
  }
  const Moments m = ComputeMoments(v);
  // U(a, b): mean (a+b)/2, stddev (b-a)/sqrt(12); the sample mean's stddev is ~0.0009.
  EXPECT_NEAR(m.mean, 0.25, 0.005);
  EXPECT_NEAR(m.stddev, 1.0 / std::sqrt(12.0), 0.005);
}

TEST(InitializerTest, UniformNeverReturnsHigh) {
  // With seed 0 these elements draw a double so close to 1 that rounding it to float
  // gives exactly `high`; the interval must stay half-open.
  const v1::Initializer init = Uniform(0, 1, 0);
  for (int64_t index : {34731482, 43181956, 53635423}) {
    const std::vector<float> v = Fill(init, index, 1);
    EXPECT_LT(v[0], 1.0f) << "element " << index;
    EXPECT_EQ(v[0], std::nextafter(1.0f, 0.0f)) << "element " << index;
  }
}

TEST(InitializerTest, UniformWithEqualBoundsIsConstant) {
  EXPECT_THAT(Fill(Uniform(2, 2, 5), 0, 100), Each(2.0f));
}

TEST(InitializerTest, NormalHasRequestedMeanAndStddev) {
  const std::vector<float> v = Fill(Normal(1.5f, 0.2f, 99), 1'000'000, kSamples);
  const Moments m = ComputeMoments(v);
  // The sample mean's stddev is 0.2/sqrt(1e5) ~ 0.0006.
  EXPECT_NEAR(m.mean, 1.5, 0.003);
  EXPECT_NEAR(m.stddev, 0.2, 0.003);
  for (float x : v) ASSERT_TRUE(std::isfinite(x));
}

TEST(InitializerTest, ConstantFillsTheValue) {
  v1::Initializer init;
  init.set_kind(v1::Initializer::CONSTANT);
  init.set_value(-3.25f);
  EXPECT_TRUE(ValidateInitializer(init).ok());
  EXPECT_THAT(Fill(init, 5, 100), Each(-3.25f));
}

TEST(InitializerTest, ZerosFillsZero) {
  v1::Initializer init;  // ZEROS is the default kind.
  EXPECT_TRUE(ValidateInitializer(init).ok());
  EXPECT_THAT(Fill(init, 0, 100), Each(0.0f));
}

TEST(InitializerTest, ValidateAcceptsWellFormedSpecs) {
  EXPECT_TRUE(ValidateInitializer(Uniform(-1, 1, 0)).ok());
  EXPECT_TRUE(ValidateInitializer(Uniform(2, 2, 0)).ok());
  EXPECT_TRUE(ValidateInitializer(Normal(0, 1, 0)).ok());
  EXPECT_TRUE(ValidateInitializer(Normal(0, 0, 0)).ok());
}

TEST(InitializerTest, ValidateRejectsLowAboveHigh) {
  absl::Status s = ValidateInitializer(Uniform(1, -1, 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("uniform"));
  EXPECT_THAT(s.message(), HasSubstr("low=1"));
}

TEST(InitializerTest, ValidateRejectsNegativeStddev) {
  absl::Status s = ValidateInitializer(Normal(0, -0.5f, 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("stddev=-0.5"));
}

TEST(InitializerTest, ValidateRejectsNaNAndInf) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  v1::Initializer constant;
  constant.set_kind(v1::Initializer::CONSTANT);
  constant.set_value(nan);
  for (const v1::Initializer& init :
       {constant, Uniform(nan, 1, 0), Uniform(0, inf, 0), Normal(nan, 1, 0), Normal(0, nan, 0),
        Normal(0, inf, 0)}) {
    absl::Status s = ValidateInitializer(init);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << init.ShortDebugString();
    EXPECT_THAT(s.message(), HasSubstr("initializer")) << init.ShortDebugString();
  }
}

TEST(InitializerTest, ValidateRejectsUnknownKind) {
  v1::Initializer init;
  init.set_kind(static_cast<v1::Initializer::Kind>(17));
  absl::Status s = ValidateInitializer(init);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("17"));
}

}  // namespace
}  // namespace ps
