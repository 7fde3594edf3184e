#include "worker/client/requests.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/client/request_plan.h"

namespace ps {
namespace {

TEST(RequestsTest, DensePullNamesSlicesAndWindowPlaces) {
  float values[6] = {};
  DenseTensor t{"w", 6, values};
  Chunk chunk{1, {{&t, 0, 2}, {&t, 2, 4, /*window_offset=*/8}}};
  const v1::PullRequest r = DensePullRequest(chunk, {3, 99, 7}, /*min_version=*/5);
  EXPECT_EQ(r.worker_index(), 3);
  EXPECT_EQ(r.incarnation(), 99u);
  EXPECT_EQ(r.clock(), 7);
  EXPECT_EQ(r.min_version(), 5);
  ASSERT_EQ(r.dense_size(), 2);
  EXPECT_EQ(r.dense(0).table(), "w");
  EXPECT_EQ(r.dense(0).length(), 2);
  EXPECT_FALSE(r.dense(0).has_window_offset());
  EXPECT_EQ(r.dense(1).offset(), 2);
  EXPECT_EQ(r.dense(1).window_offset(), 8);
  EXPECT_TRUE(r.dense(1).values().empty());
}

TEST(RequestsTest, DensePushCarriesInBandValuesAndItsId) {
  float values[3] = {1.5f, 2.5f, 3.5f};
  DenseTensor t{"w", 3, values};
  Chunk chunk{0, {{&t, 1, 2}, {&t, 0, 1, /*window_offset=*/0}}};
  const v1::PushRequest r =
      DensePushRequest(chunk, {2, 42, 9}, /*step=*/11, /*sequence=*/6, /*part=*/1);
  EXPECT_EQ(r.step(), 11);
  EXPECT_EQ(r.clock(), 9);
  EXPECT_EQ(r.id().incarnation(), 42u);
  EXPECT_EQ(r.id().sequence(), 6);
  EXPECT_EQ(r.id().part(), 1);
  ASSERT_EQ(r.dense_size(), 2);
  ASSERT_EQ(r.dense(0).values().size(), 8u);
  float sent[2];
  std::memcpy(sent, r.dense(0).values().data(), sizeof(sent));
  EXPECT_EQ(sent[0], 2.5f);
  EXPECT_EQ(sent[1], 3.5f);
  EXPECT_TRUE(r.dense(1).values().empty());  // in the push window
  EXPECT_EQ(r.dense(1).window_offset(), 0);
}

TEST(RequestsTest, AWirePushPointsAtTheTensorInsteadOfCopyingIt) {
  float values[3] = {1.5f, 2.5f, 3.5f};
  DenseTensor t{"w", 3, values};
  Chunk chunk{0, {{&t, 1, 2}, {&t, 0, 1, /*window_offset=*/0}}};
  const wire::PushRequest r = WireDensePushRequest(chunk, {2, 42, 9}, 11, 6, 1);
  EXPECT_EQ(r.message.step(), 11);
  EXPECT_EQ(r.message.id().sequence(), 6);
  ASSERT_EQ(r.message.dense_size(), 2);
  EXPECT_TRUE(r.message.dense(0).values().empty());
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[0].data(), reinterpret_cast<const char*>(values + 1));
  EXPECT_EQ(r.values[0].size(), 8u);
  EXPECT_TRUE(r.values[1].empty());  // in the push window
  // On the wire it is the same message DensePushRequest builds.
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(wire::Encode(r).Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  v1::PushRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.SerializeAsString(),
            DensePushRequest(chunk, {2, 42, 9}, 11, 6, 1).SerializeAsString());
}

TEST(RequestsTest, ToolsPushesCarryNoId) {
  float values[1] = {1};
  DenseTensor t{"w", 1, values};
  const v1::PushRequest r = DensePushRequest({0, {{&t, 0, 1}}}, {-1, 42, 0}, 0, 6, 0);
  EXPECT_FALSE(r.has_id());
}

TEST(RequestsTest, SparseRequestsCarryTheChunksKeysAndRows) {
  const std::vector<int64_t> unique = {10, 20, 30};
  const std::vector<float> summed = {1, 1, 2, 2, 3, 3};  // width 2
  const SparseChunk chunk{1, {2, 0}};
  const v1::PullRequest pull = SparsePullRequest("emb", chunk, unique, {0, 5, 1});
  ASSERT_EQ(pull.sparse_size(), 1);
  EXPECT_EQ(pull.sparse(0).table(), "emb");
  ASSERT_EQ(pull.sparse(0).keys_size(), 2);
  EXPECT_EQ(pull.sparse(0).keys(0), 30);
  EXPECT_EQ(pull.sparse(0).keys(1), 10);

  const v1::PushRequest push =
      SparsePushRequest("emb", chunk, unique, summed, 2, {0, 5, 1}, /*step=*/4, 8, 3);
  ASSERT_EQ(push.sparse_size(), 1);
  ASSERT_EQ(push.sparse(0).values().size(), 16u);
  float rows[4];
  std::memcpy(rows, push.sparse(0).values().data(), sizeof(rows));
  EXPECT_EQ(rows[0], 3);
  EXPECT_EQ(rows[2], 1);
  EXPECT_EQ(push.step(), 4);
  EXPECT_EQ(push.id().part(), 3);
}

TEST(RequestsTest, PushPullPairsNeedTheSameTablesAndSizes) {
  DenseTensor a{"a", 4, nullptr}, b{"b", 4, nullptr}, a5{"a", 5, nullptr};
  EXPECT_TRUE(PushPullPairs({a, b}, {a, b}));
  EXPECT_FALSE(PushPullPairs({a, b}, {b, a}));
  EXPECT_FALSE(PushPullPairs({a}, {a5}));
  EXPECT_FALSE(PushPullPairs({a}, {a, b}));
}

}  // namespace
}  // namespace ps
