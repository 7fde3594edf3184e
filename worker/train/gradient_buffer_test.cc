// GradientBuffer: each limit alone makes a push, the epoch's end always does, and the
// buffer's scale is 1 for a sum and 1/steps for a mean.
#include "worker/train/gradient_buffer.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(GradientBufferTest, UnbufferedPushesEveryStep) {
  GradientBuffer b(GradientBufferLimits(), 400, kStart);
  EXPECT_FALSE(b.accumulating());
  EXPECT_TRUE(b.NextStepFills());
  b.Add();
  EXPECT_TRUE(b.Full(false, kStart));
  EXPECT_EQ(b.scale(), 1.0f);
}

TEST(GradientBufferTest, TheStepLimitPushesEveryFourthStep) {
  GradientBufferLimits limits;
  limits.steps = 4;
  GradientBuffer b(limits, 400, kStart);
  for (int round = 0; round < 2; ++round) {
    for (int i = 1; i <= 3; ++i) {
      EXPECT_EQ(b.accumulating(), i > 1);
      EXPECT_FALSE(b.NextStepFills()) << i;
      b.Add();
      EXPECT_FALSE(b.Full(false, kStart)) << i;
    }
    EXPECT_TRUE(b.accumulating());
    EXPECT_TRUE(b.NextStepFills());
    b.Add();
    EXPECT_TRUE(b.Full(false, kStart));
    b.Flushed(kStart);
    EXPECT_EQ(b.buffered(), 0);
    EXPECT_FALSE(b.accumulating());
  }
}

TEST(GradientBufferTest, TheByteLimitPushesOnceTheBufferedStepsReachIt) {
  GradientBufferLimits limits;
  limits.steps = 1000;
  limits.bytes = 3 * 400;
  GradientBuffer b(limits, 400, kStart);
  b.Add();
  b.Add();
  EXPECT_FALSE(b.Full(false, kStart));
  b.Add();
  EXPECT_TRUE(b.Full(false, kStart));
}

TEST(GradientBufferTest, TheTimeLimitCountsFromTheLastPush) {
  GradientBufferLimits limits;
  limits.steps = 1000;
  limits.time = absl::Seconds(2);
  GradientBuffer b(limits, 400, kStart);
  b.Add();
  EXPECT_FALSE(b.Full(false, kStart + absl::Seconds(1)));
  EXPECT_TRUE(b.Full(false, kStart + absl::Seconds(2)));
  b.Flushed(kStart + absl::Seconds(3));
  b.Add();
  EXPECT_FALSE(b.Full(false, kStart + absl::Seconds(4)));
  EXPECT_TRUE(b.Full(false, kStart + absl::Seconds(5)));
}

TEST(GradientBufferTest, TheLastStepOfAnEpochAlwaysPushes) {
  GradientBufferLimits limits;
  limits.steps = 1000;
  GradientBuffer b(limits, 400, kStart);
  b.Add();
  EXPECT_FALSE(b.Full(false, kStart));
  EXPECT_TRUE(b.Full(true, kStart));
}

TEST(GradientBufferTest, AMeanScalesTheSumByTheBufferedSteps) {
  GradientBufferLimits limits;
  limits.steps = 4;
  limits.mean = true;
  GradientBuffer b(limits, 400, kStart);
  b.Add();
  b.Add();
  EXPECT_EQ(b.scale(), 0.5f);
  limits.mean = false;
  GradientBuffer sum(limits, 400, kStart);
  sum.Add();
  sum.Add();
  EXPECT_EQ(sum.scale(), 1.0f);
}

}  // namespace
}  // namespace ps
