// BatchSchedule and GatherRows: the steps of an epoch cover the worker's shard once, in
// batches of the asked size with a short last one; epochs reshuffle it reproducibly.
#include "worker/train/batching.h"

#include <algorithm>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "worker/train/membership.h"

namespace ps {
namespace {

// The examples of every step of the current epoch, in order.
std::vector<int64_t> Epoch(const BatchSchedule& s) {
  std::vector<int64_t> seen;
  for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
    const BatchSchedule::Batch b = s.At(step);
    seen.insert(seen.end(), b.examples, b.examples + b.size);
  }
  return seen;
}

TEST(BatchScheduleTest, StepsCoverTheShardOnceWithAShortLastBatch) {
  BatchSchedule s(/*num_examples=*/100, /*worker=*/1, /*num_workers=*/3, /*batch_size=*/8,
                  /*seed=*/5);
  EXPECT_EQ(s.shard_size(), 33);
  EXPECT_EQ(s.steps_per_epoch(), 5);
  for (int64_t step = 0; step < 4; ++step) EXPECT_EQ(s.At(step).size, 8);
  EXPECT_EQ(s.At(4).size, 1);
  std::vector<int64_t> seen = Epoch(s);
  std::vector<int64_t> shard = ShardIndices(100, 1, 3, 5);
  EXPECT_EQ(seen, shard);  // before the first shuffle: the shard's own order
}

TEST(BatchScheduleTest, EachEpochReshufflesTheSameExamples) {
  BatchSchedule s(64, 0, 2, 4, 1);
  const std::vector<int64_t> before = Epoch(s);
  s.Shuffle();
  const std::vector<int64_t> first = Epoch(s);
  s.Shuffle();
  const std::vector<int64_t> second = Epoch(s);
  EXPECT_NE(first, before);
  EXPECT_NE(second, first);
  EXPECT_EQ(std::multiset<int64_t>(first.begin(), first.end()),
            std::multiset<int64_t>(before.begin(), before.end()));
  EXPECT_EQ(std::multiset<int64_t>(second.begin(), second.end()),
            std::multiset<int64_t>(before.begin(), before.end()));
}

TEST(BatchScheduleTest, TheSameSeedShufflesAlikeAnotherSeedDoesNot) {
  BatchSchedule a(64, 0, 1, 4, 7), b(64, 0, 1, 4, 7), c(64, 0, 1, 4, 8);
  a.Shuffle();
  b.Shuffle();
  c.Shuffle();
  EXPECT_EQ(Epoch(a), Epoch(b));
  EXPECT_NE(Epoch(a), Epoch(c));
}

TEST(BatchScheduleTest, ABatchLargerThanTheShardIsOneStep) {
  BatchSchedule s(10, 0, 1, 64, 1);
  EXPECT_EQ(s.steps_per_epoch(), 1);
  EXPECT_EQ(s.At(0).size, 10);
}

TEST(GatherRowsTest, CopiesTheBatchsFeaturesAndLabelsInOrder) {
  Dataset d;
  d.size = 4;
  d.dim = 2;
  d.features = {0, 1, 10, 11, 20, 21, 30, 31};
  d.labels = {0, 1, 2, 3};
  const std::vector<int64_t> examples = {3, 1};
  std::vector<float> x(4, -1);
  std::vector<int32_t> y(2, -1);
  GatherRows(d, {examples.data(), 2}, x.data(), y.data());
  EXPECT_EQ(x, (std::vector<float>{30, 31, 10, 11}));
  EXPECT_EQ(y, (std::vector<int32_t>{3, 1}));
}

}  // namespace
}  // namespace ps
