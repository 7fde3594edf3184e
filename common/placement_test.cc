#include "common/placement.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Checks that `ranges` cover [0, n) exactly once, in order, with valid shard ids.
void ExpectExactCover(const std::vector<ShardRange>& ranges, int64_t n, int num_shards) {
  int64_t next = 0;
  for (const ShardRange& r : ranges) {
    EXPECT_EQ(r.begin, next);
    EXPECT_GT(r.end, r.begin);
    EXPECT_GE(r.shard, 0);
    EXPECT_LT(r.shard, num_shards);
    next = r.end;
  }
  EXPECT_EQ(next, n);
}

TEST(PlacementTest, EveryElementOwnedByExactlyOneShard) {
  for (int shards : {1, 2, 3, 4, 7}) {
    for (int64_t n : {int64_t{1}, int64_t{10}, int64_t{16383}, int64_t{16384},
                      int64_t{401408}, int64_t{1000003}}) {
      SCOPED_TRACE("shards=" + std::to_string(shards) + " n=" + std::to_string(n));
      std::vector<ShardRange> ranges = PlaceDense("fc0.w", n, shards);
      ExpectExactCover(ranges, n, shards);
      std::vector<int> owners(n, 0);
      for (const ShardRange& r : ranges)
        for (int64_t i = r.begin; i < r.end; ++i) owners[i]++;
      EXPECT_TRUE(std::all_of(owners.begin(), owners.end(), [](int c) { return c == 1; }));
      // Each shard holds at most one range, so LocalRange agrees with PlaceDense.
      int64_t total = 0;
      for (int s = 0; s < shards; ++s) total += LocalRange("fc0.w", n, shards, s).size();
      EXPECT_EQ(total, n);
    }
  }
}

TEST(PlacementTest, LargeTablesAreSplitEvenlyInCacheLines) {
  const int64_t n = 784 * 512;  // 1.6 MB
  std::vector<ShardRange> ranges = PlaceDense("fc0.w", n, 3);
  ASSERT_EQ(ranges.size(), 3u);
  int64_t lo = n, hi = 0;
  for (const ShardRange& r : ranges) {
    EXPECT_EQ(r.shard, &r - &ranges[0]);
    EXPECT_EQ(r.begin % kAlignElements, 0);
    lo = std::min(lo, r.size());
    hi = std::max(hi, r.size());
  }
  EXPECT_LE(hi - lo, kAlignElements);
}

TEST(PlacementTest, SmallTablesPlacedWholeAndStable) {
  std::vector<ShardRange> a = PlaceDense("fc2.b", 10, 4);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].begin, 0);
  EXPECT_EQ(a[0].end, 10);
  EXPECT_EQ(a[0].shard, static_cast<int>(StableHash("fc2.b") % 4));
  // The same answer on every call (and in every process: the hash is not seeded).
  EXPECT_EQ(PlaceDense("fc2.b", 10, 4)[0].shard, a[0].shard);
  EXPECT_EQ(StableHash("abc"), 0xe16801510db89efdULL);
}

TEST(PlacementTest, ManySmallTablesSpreadOverShards) {
  std::map<int, int> per_shard;
  for (int t = 0; t < 400; ++t) per_shard[PlaceDense("t" + std::to_string(t), 100, 4)[0].shard]++;
  ASSERT_EQ(per_shard.size(), 4u);
  for (const auto& [shard, count] : per_shard) {
    EXPECT_GT(count, 60) << "shard " << shard;
    EXPECT_LT(count, 140) << "shard " << shard;
  }
}

TEST(PlacementTest, ModelBytesBalancedOverTwoShards) {
  // The default MLP 784-512-256-10.
  const std::vector<std::pair<std::string, int64_t>> tables = {
      {"fc0.w", 784 * 512}, {"fc0.b", 512}, {"fc1.w", 512 * 256},
      {"fc1.b", 256},       {"fc2.w", 256 * 10}, {"fc2.b", 10}};
  std::vector<int64_t> bytes(2, 0);
  int64_t total = 0;
  for (const auto& [name, n] : tables) {
    for (const ShardRange& r : PlaceDense(name, n, 2)) bytes[r.shard] += r.size() * 4;
    total += n * 4;
  }
  EXPECT_EQ(bytes[0] + bytes[1], total);
  EXPECT_LT(std::abs(bytes[0] - bytes[1]), total / 50);  // within 2%
}

TEST(PlacementTest, SparseKeysSpreadOverShards) {
  std::vector<int> counts(3, 0);
  for (int64_t k = 0; k < 30000; ++k) counts[ShardForKey(k, 3)]++;
  for (int c : counts) {
    EXPECT_GT(c, 9500);
    EXPECT_LT(c, 10500);
  }
  EXPECT_EQ(ShardForKey(12345, 1), 0);
}

}  // namespace
}  // namespace ps
