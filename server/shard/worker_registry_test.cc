#include "server/shard/worker_registry.h"

#include <vector>

#include "common/error_reason.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// A registry whose clock reads `now_`, which the test moves by hand.
class WorkerRegistryTest : public ::testing::Test {
 protected:
  WorkerRegistryTest() : registry_(kTimeout, [this] { return now_; }) {}

  void Advance(absl::Duration d) { now_ += d; }

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  WorkerRegistry registry_;
};

TEST_F(WorkerRegistryTest, RegisterMakesWorkerLive) {
  EXPECT_EQ(registry_.heartbeat_timeout(), kTimeout);
  EXPECT_FALSE(registry_.IsLive(0));
  EXPECT_EQ(registry_.num_live(), 0);
  ASSERT_TRUE(registry_.Register(2, "host-b", "cuda:0").ok());
  ASSERT_TRUE(registry_.Register(0, "host-a", "cpu").ok());
  EXPECT_TRUE(registry_.IsLive(0));
  EXPECT_TRUE(registry_.IsLive(2));
  EXPECT_FALSE(registry_.IsLive(1));
  EXPECT_THAT(registry_.LiveWorkers(), ElementsAre(0, 2));
  EXPECT_EQ(registry_.num_live(), 2);
}

TEST_F(WorkerRegistryTest, RegisterRejectsNegativeIndex) {
  absl::Status s = registry_.Register(-1, "host", "cpu");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("-1"));
  EXPECT_THAT(registry_.LiveWorkers(), IsEmpty());
  EXPECT_THAT(registry_.Snapshot(), IsEmpty());
}

TEST_F(WorkerRegistryTest, HostsAndDevicesAreBoundedAndPrintable) {
  absl::Status s = registry_.Register(0, std::string(60 << 20, 'h'), "cpu");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the limit is 253"));
  s = registry_.Register(0, "host\n", "cpu");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("host 'host\\n' has a control or non-ASCII byte"));
  EXPECT_FALSE(registry_.IsLive(0));  // nothing registered
  ASSERT_TRUE(registry_.Register(0, "host-a", "cpu").ok());
  v1::WorkerStats stats;
  stats.set_device(std::string(1000, 'd'));
  EXPECT_EQ(registry_.Heartbeat(0, stats).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerRegistryTest, HeartbeatFromUnknownWorkerIsNotFound) {
  absl::Status s = registry_.Heartbeat(3, v1::WorkerStats());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("worker 3"));
  EXPECT_FALSE(registry_.IsLive(3));
}

TEST_F(WorkerRegistryTest, HeartbeatRecordsStats) {
  ASSERT_TRUE(registry_.Register(1, "host-a", "cpu").ok());
  v1::WorkerStats stats;
  stats.set_clock(7);
  stats.set_epoch(2);
  stats.set_loss(0.5f);
  Advance(absl::Seconds(3));
  EXPECT_TRUE(registry_.Heartbeat(1, stats).ok());
  Advance(absl::Milliseconds(250));
  std::vector<v1::WorkerStatus> snap = registry_.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].worker_index(), 1);
  EXPECT_TRUE(snap[0].live());
  EXPECT_EQ(snap[0].host(), "host-a");
  EXPECT_EQ(snap[0].last_heartbeat_ms_ago(), 250);
  EXPECT_EQ(snap[0].stats().clock(), 7);
  EXPECT_EQ(snap[0].stats().epoch(), 2);
  EXPECT_FLOAT_EQ(snap[0].stats().loss(), 0.5f);
  // The device given at registration fills in when the stats carry none.
  EXPECT_EQ(snap[0].stats().device(), "cpu");
}

TEST_F(WorkerRegistryTest, LeaveRemovesWorkerFromLiveSet) {
  ASSERT_TRUE(registry_.Register(0, "h0", "cpu").ok());
  ASSERT_TRUE(registry_.Register(1, "h1", "cpu").ok());
  EXPECT_TRUE(registry_.Leave(0).ok());
  EXPECT_FALSE(registry_.IsLive(0));
  EXPECT_THAT(registry_.LiveWorkers(), ElementsAre(1));
  // Leaving twice, or heartbeating after leaving, is NOT_FOUND.
  EXPECT_EQ(registry_.Leave(0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_.Leave(5).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_.Heartbeat(0, v1::WorkerStats()).code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerRegistryTest, ExpireStaleDropsOnlyTheSilentWorkerAfterTheTimeout) {
  ASSERT_TRUE(registry_.Register(0, "h0", "cpu").ok());
  ASSERT_TRUE(registry_.Register(1, "h1", "cpu").ok());
  // Worker 0 keeps heartbeating; worker 1 falls silent at t = 0.
  for (int i = 0; i < 4; ++i) {
    Advance(absl::Seconds(2.5));
    ASSERT_TRUE(registry_.Heartbeat(0, v1::WorkerStats()).ok());
    EXPECT_THAT(registry_.ExpireStale(), IsEmpty()) << "at " << (i + 1) * 2.5 << "s";
  }
  // Exactly the timeout since worker 1's last heartbeat: not yet stale.
  EXPECT_THAT(registry_.ExpireStale(), IsEmpty());
  EXPECT_TRUE(registry_.IsLive(1));
  Advance(absl::Milliseconds(1));
  EXPECT_THAT(registry_.ExpireStale(), ElementsAre(1));
  EXPECT_FALSE(registry_.IsLive(1));
  EXPECT_TRUE(registry_.IsLive(0));
  EXPECT_THAT(registry_.LiveWorkers(), ElementsAre(0));
  // A dropped worker is reported once, and must register again before heartbeating.
  EXPECT_THAT(registry_.ExpireStale(), IsEmpty());
  EXPECT_EQ(registry_.Heartbeat(1, v1::WorkerStats()).code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerRegistryTest, ReRegisterAfterDropMakesWorkerLiveAgain) {
  ASSERT_TRUE(registry_.Register(4, "old-host", "cpu").ok());
  Advance(kTimeout + absl::Seconds(1));
  EXPECT_THAT(registry_.ExpireStale(), ElementsAre(4));
  EXPECT_FALSE(registry_.IsLive(4));
  ASSERT_TRUE(registry_.Register(4, "new-host", "cuda:1").ok());
  EXPECT_TRUE(registry_.IsLive(4));
  EXPECT_TRUE(registry_.Heartbeat(4, v1::WorkerStats()).ok());
  // The fresh registration counts as a heartbeat: not stale until a full timeout later.
  Advance(kTimeout);
  EXPECT_THAT(registry_.ExpireStale(), IsEmpty());
  std::vector<v1::WorkerStatus> snap = registry_.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].host(), "new-host");
  EXPECT_EQ(snap[0].stats().device(), "cuda:1");
}

TEST_F(WorkerRegistryTest, SnapshotListsLiveAndDepartedWorkers) {
  ASSERT_TRUE(registry_.Register(3, "h3", "cpu").ok());
  ASSERT_TRUE(registry_.Register(1, "h1", "cuda:0").ok());
  Advance(absl::Seconds(2));
  ASSERT_TRUE(registry_.Leave(3).ok());
  std::vector<v1::WorkerStatus> snap = registry_.Snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].worker_index(), 1);
  EXPECT_TRUE(snap[0].live());
  EXPECT_EQ(snap[0].host(), "h1");
  EXPECT_EQ(snap[0].stats().device(), "cuda:0");
  EXPECT_EQ(snap[0].last_heartbeat_ms_ago(), 2000);
  EXPECT_EQ(snap[1].worker_index(), 3);
  EXPECT_FALSE(snap[1].live());
  EXPECT_EQ(snap[1].host(), "h3");
  EXPECT_EQ(snap[1].last_heartbeat_ms_ago(), 2000);
}

// A restarted shard knows workers from its checkpoint's history (incarnation unknown):
// their calls are from an unknown worker that must register, not from a replaced one.
TEST_F(WorkerRegistryTest, OnlyALiveRegistrationBindsAnIncarnation) {
  v1::WorkerStatus saved;
  saved.set_worker_index(3);
  saved.set_host("h");
  registry_.RestoreHistory({saved});
  absl::Status s = registry_.CheckIncarnation(3, 0x77);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasReason(s, kReasonUnknownWorker)) << s;
  ASSERT_TRUE(registry_.Register(3, "h", "cpu", 0x77).ok());
  EXPECT_TRUE(registry_.CheckIncarnation(3, 0x77).ok());
  s = registry_.CheckIncarnation(3, 0x88);
  EXPECT_TRUE(HasReason(s, kReasonWorkerReplaced)) << s;
  // Dropped for silence: unknown again, whoever asks.
  now_ += kTimeout + absl::Seconds(1);
  registry_.ExpireStale();
  EXPECT_TRUE(HasReason(registry_.CheckIncarnation(3, 0x88), kReasonUnknownWorker));
}

}  // namespace
}  // namespace ps
