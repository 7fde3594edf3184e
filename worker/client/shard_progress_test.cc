#include "worker/client/shard_progress.h"

#include <limits>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "worker/client/request_plan.h"

namespace ps {
namespace {

constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

TEST(ShardProgressTest, StartsAtVersionZeroAndOneSecondHeartbeats) {
  ShardProgress progress(2);
  EXPECT_EQ(progress.next(1), 0);
  EXPECT_EQ(progress.pulled(1), 0);
  EXPECT_EQ(progress.heartbeat_interval(1), absl::Seconds(1));
}

TEST(ShardProgressTest, PullRecordsOnlyTheShardsItHeardFrom) {
  ShardProgress progress(3);
  progress.RecordPulled({5, kNone, 7});
  EXPECT_EQ(progress.pulled(0), 5);
  EXPECT_EQ(progress.pulled(1), 0);
  EXPECT_EQ(progress.pulled(2), 7);
}

TEST(ShardProgressTest, PushMakesTheNextPullWaitForTheVersionAfterThePulledOne) {
  ShardProgress progress(3);
  progress.RecordPulled({5, 6, 7});
  const std::vector<Chunk> chunks = {{0, {}}, {0, {}}, {1, {}}};
  progress.RecordPushed(chunks, {true, false, true});
  EXPECT_EQ(progress.next(0), 6);
  EXPECT_EQ(progress.next(1), 0);  // refused the push
  EXPECT_EQ(progress.next(2), 0);  // no chunk went there
}

TEST(ShardProgressTest, ResetForgetsVersionsButNotHeartbeatIntervals) {
  ShardProgress progress(1);
  progress.RecordPulled({4});
  progress.RecordPushed({{0, {}}}, {true});
  progress.set_heartbeat_interval(0, absl::Milliseconds(250));
  progress.Reset();
  EXPECT_EQ(progress.next(0), 0);
  EXPECT_EQ(progress.pulled(0), 0);
  EXPECT_EQ(progress.heartbeat_interval(0), absl::Milliseconds(250));
}

}  // namespace
}  // namespace ps
