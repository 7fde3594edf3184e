#include "worker/client/pull_replies.h"

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/client/request_plan.h"
#include "worker/client/same_host_transport.h"

namespace ps {
namespace {

std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

float* Into(const Piece& p) { return p.tensor->data + p.begin; }

TEST(TakePulledTest, CopiesInBandValuesAndQueuesWindowedOnes) {
  float out[5] = {};
  DenseTensor t{"w", 5, out};
  const Chunk chunk{1, {{&t, 0, 2}, {&t, 2, 3, /*window_offset=*/16}}};
  v1::PullResponse r;
  v1::DenseSlice* in_band = r.add_dense();
  in_band->set_values(Bytes({4, 5}));
  in_band->set_version(9);
  v1::DenseSlice* windowed = r.add_dense();
  windowed->set_window_offset(16);
  windowed->set_version(7);
  std::vector<WindowUse> use(2);
  use[1] = {123, 0, /*pull_address=*/1000};
  PulledParts parts(2);
  std::atomic<int64_t> bytes{0};

  ASSERT_TRUE(TakePulled(chunk, r, nullptr, use, Into, &parts, &bytes).ok());
  EXPECT_EQ(out[0], 4);
  EXPECT_EQ(out[1], 5);
  ASSERT_EQ(parts.reads[1].size(), 1u);
  EXPECT_EQ(parts.reads[1][0].local, reinterpret_cast<char*>(out + 2));
  EXPECT_EQ(parts.reads[1][0].remote, 1016u);
  EXPECT_EQ(parts.reads[1][0].bytes, 12u);
  EXPECT_TRUE(parts.reads[0].empty());
  EXPECT_EQ(parts.version, 7);
  EXPECT_EQ(parts.shard_version[1], 7);
  EXPECT_EQ(parts.shard_version[0], std::numeric_limits<int64_t>::max());
  EXPECT_EQ(bytes.load(), 20);
}

TEST(TakePulledTest, RepliesThatDoNotMatchTheRequestAreInternal) {
  float out[2] = {};
  DenseTensor t{"w", 2, out};
  std::vector<WindowUse> use(1);
  PulledParts parts(1);
  std::atomic<int64_t> bytes{0};

  v1::PullResponse too_few;
  EXPECT_EQ(TakePulled({0, {{&t, 0, 2}}}, too_few, nullptr, use, Into, &parts, &bytes).code(),
            absl::StatusCode::kInternal);

  v1::PullResponse short_values;
  short_values.add_dense()->set_values(Bytes({1}));
  EXPECT_EQ(TakePulled({0, {{&t, 0, 2}}}, short_values, nullptr, use, Into, &parts, &bytes).code(),
            absl::StatusCode::kInternal);

  v1::PullResponse values_for_window;
  values_for_window.add_dense()->set_values(Bytes({1, 2}));
  const absl::Status st = TakePulled({0, {{&t, 0, 2, /*window_offset=*/0}}}, values_for_window,
                                     nullptr, use, Into, &parts, &bytes);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_NE(st.message().find("without its window"), absl::string_view::npos);
}

TEST(SparseRowsTest, RowsGoToTheirKeysAndEveryPosition) {
  const std::vector<int64_t> unique = {10, 20, 30};
  std::vector<float> unique_rows(3 * 2, 0);
  v1::PullResponse r;
  v1::SparseRows* rows = r.add_sparse();
  rows->set_values(Bytes({3, 3, 1, 1}));  // for positions 2 and 0
  rows->set_version(12);
  const absl::StatusOr<int64_t> v = TakeSparseRows({1, {2, 0}}, r, "emb", 2, unique_rows.data());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 12);
  EXPECT_EQ(unique_rows, (std::vector<float>{1, 1, 0, 0, 3, 3}));

  std::vector<float> out(4 * 2, -1);
  ScatterRows({30, 10, 30, 20}, unique, unique_rows, 2, out.data());
  EXPECT_EQ(out, (std::vector<float>{3, 3, 1, 1, 3, 3, 0, 0}));
}

TEST(SparseRowsTest, WrongByteCountIsInternalAndNamesTheShard) {
  std::vector<float> unique_rows(2, 0);
  v1::PullResponse r;
  r.add_sparse()->set_values(Bytes({1}));
  const absl::StatusOr<int64_t> v = TakeSparseRows({4, {0}}, r, "emb", 2, unique_rows.data());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(v.status().message().find("shard 4"), absl::string_view::npos);
}

}  // namespace
}  // namespace ps
