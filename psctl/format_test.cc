#include "psctl/format.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace psctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::ClusterStatusResponse TwoShards() {
  v1::ClusterStatusResponse c;
  c.set_timestamp_ms(1700000000000);  // 2023-11-14 22:13:20 UTC
  v1::ShardStatus* s0 = c.add_shards();
  s0->set_address("10.0.0.1:50051");
  s0->set_reachable(true);
  v1::GetStatusResponse* st = s0->mutable_status();
  st->set_uptime_ms(125000);
  st->set_push_requests(12);
  st->set_pull_requests(13);
  st->set_bytes_received(2048);
  st->set_bytes_sent(3 << 20);
  st->set_window_bytes_received(1024);
  st->set_window_bytes_sent(1 << 20);
  v1::TableStatus* t = st->add_tables();
  t->mutable_spec()->set_name("w1");
  t->mutable_spec()->set_kind(v1::DENSE);
  t->mutable_spec()->add_shape(784);
  t->mutable_spec()->add_shape(512);
  t->mutable_spec()->set_consistency(v1::SSP);
  t->mutable_spec()->set_staleness_bound(3);
  t->set_elements_on_shard(401408);
  t->set_version(7);
  t->set_pushes(14);
  t->set_mean_staleness(0.5);
  t->set_max_staleness(2);
  v1::WorkerStatus* w = st->add_workers();
  w->set_worker_index(0);
  w->set_live(true);
  w->set_host("trainer-0");
  w->set_last_heartbeat_ms_ago(900);
  w->mutable_stats()->set_clock(7);
  w->mutable_stats()->set_loss(0.25f);
  w->mutable_stats()->set_samples_per_sec(1234.4);
  w->mutable_stats()->set_device("cuda:0");
  v1::ShardStatus* s1 = c.add_shards();
  s1->set_address("10.0.0.2:50051");
  s1->set_error("cannot reach 10.0.0.2:50051: UNAVAILABLE: failed to connect to all addresses");
  return c;
}

TEST(FormatTest, BytesAndMillisUseReadableUnits) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3 << 20), "3.0 MiB");
  EXPECT_EQ(FormatMillis(850), "850ms");
  EXPECT_EQ(FormatMillis(12345), "12.3s");
  EXPECT_EQ(FormatMillis(245000), "4m05s");
  EXPECT_EQ(FormatMillis(7380000), "2h03m");
}

TEST(FormatTest, ColumnsAreAlignedToTheWidestCell) {
  EXPECT_EQ(RenderColumns({{"A", "BB"}, {"CCC", "D"}}), "A    BB\nCCC  D\n");
}

TEST(FormatTest, ShardsShowReachableFiguresAndDashesForUnreachable) {
  const std::string out = FormatShards(TwoShards());
  EXPECT_THAT(out, HasSubstr("0      10.0.0.1:50051  yes        2m05s   1       12      13     "
                             "2.0 KiB   3.0 MiB    1.0 MiB"));
  EXPECT_THAT(out, HasSubstr("1      10.0.0.2:50051  no         -"));
}

TEST(FormatTest, HeaderCountsShardsTablesAndLiveWorkers) {
  EXPECT_EQ(FormatHeader(TwoShards()),
            "cluster status at 2023-11-14 22:13:20 UTC: 2 shards (1 reachable), 1 tables, "
            "1 of 1 workers live\n");
}

TEST(FormatTest, TablesShowModeShapeAndStaleness) {
  const std::string out = FormatTables(TwoShards());
  EXPECT_THAT(out, HasSubstr("w1     dense[784x512]  ssp(s=3)  0      401408    7        14"));
  EXPECT_THAT(out, HasSubstr("0.50/2"));
}

TEST(FormatTest, ShardsHoldingNoneOfADenseTableAreLeftOut) {
  v1::ClusterStatusResponse c = TwoShards();
  c.mutable_shards(1)->set_reachable(true);
  v1::TableStatus* empty = c.mutable_shards(1)->mutable_status()->add_tables();
  empty->mutable_spec()->set_name("w1");
  empty->mutable_spec()->set_kind(v1::DENSE);
  const std::string out = FormatTables(c);
  EXPECT_THAT(out, HasSubstr("w1     dense[784x512]  ssp(s=3)  0"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;  // heading and shard 0
}

TEST(FormatTest, WorkersComeFromTheFreshestShard) {
  v1::ClusterStatusResponse c = TwoShards();
  c.mutable_shards(1)->set_reachable(true);
  c.mutable_shards(1)->clear_error();
  v1::WorkerStatus* stale = c.mutable_shards(1)->mutable_status()->add_workers();
  stale->set_worker_index(0);
  stale->set_live(false);
  stale->set_last_heartbeat_ms_ago(20000);
  const std::string out = FormatWorkers(c);
  EXPECT_THAT(out, HasSubstr("0       yes   trainer-0  cuda:0  7      0      0.2500  1234       "
                             "900ms ago"));
  EXPECT_THAT(out, Not(HasSubstr("20.0s ago")));
}

TEST(FormatTest, ShardErrorsNameTheShardAndItsAddress) {
  EXPECT_THAT(ShardErrors(TwoShards()),
              ElementsAre("shard 1: cannot reach 10.0.0.2:50051: UNAVAILABLE: failed to connect "
                          "to all addresses"));
}

TEST(FormatTest, EmptyClusterSaysSo) {
  v1::ClusterStatusResponse c;
  EXPECT_EQ(FormatTables(c), "no tables\n");
  EXPECT_EQ(FormatWorkers(c), "no workers\n");
}

TEST(FormatTest, CheckpointListsEveryWrittenFile) {
  v1::CheckpointResponse r;
  v1::CheckpointResponse::Written* w = r.add_written();
  w->set_shard_index(1);
  w->set_path("/ckpt/shard-1/ckpt-00000007.pb");
  w->set_version(7);
  w->set_bytes(4096);
  EXPECT_EQ(FormatCheckpoint(r),
            "SHARD  VERSION  SIZE     PATH\n1      7        4.0 KiB  /ckpt/shard-1/ckpt-00000007.pb\n");
}

}  // namespace
}  // namespace psctl
}  // namespace ps
