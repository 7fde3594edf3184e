// Membership between real processes: a shard that stops answering delays no other
// shard's heartbeats, and workers started well apart both train.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"
#include "worker/train/membership.h"

namespace ps {
namespace testing {
namespace {

// Live workers as shard `shard` alone reports them.
int LiveOn(const ServerCluster& servers, int shard) {
  std::unique_ptr<PsClient> one = NewGrpcPsClient({servers.addresses()[shard]});
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = one->GetStatus();
  if (!status.ok()) return -1;
  int live = 0;
  for (const v1::WorkerStatus& w : (*status)[0].workers()) live += w.live();
  return live;
}

// Shard 0, and then the last shard, is stopped (SIGSTOP) for three heartbeat timeouts:
// the other shards keep hearing from the worker and keep it. (Heartbeats that went to
// the shards one after another, each waiting out a 10 s deadline, starved them.)
TEST(MembershipMultiprocessTest, AStoppedShardDelaysNoOtherShardsHeartbeats) {
  const std::string dir = TempDir("stopped-shard");
  ServerCluster servers;
  ASSERT_TRUE(
      servers.Start(3, dir, {"--heartbeat_timeout=2s", "--heartbeat_interval=200ms"}).ok());
  ClientOptions options;
  options.control_timeout = absl::Seconds(10);
  std::unique_ptr<PsClient> client = NewGrpcPsClient(servers.addresses(), options);
  ASSERT_TRUE(client->RegisterWorker(0, "test", "cpu").ok());
  for (int s = 0; s < 3; ++s) EXPECT_EQ(client->heartbeat_interval(s), absl::Milliseconds(200));
  HeartbeatThread heartbeat(client.get(), 0, "cpu");
  for (int stopped : {0, 2}) {
    servers.shard(stopped).Signal(SIGSTOP);
    absl::SleepFor(absl::Seconds(6));
    for (int s = 0; s < 3; ++s) {
      if (s == stopped) continue;
      EXPECT_EQ(LiveOn(servers, s), 1) << "shard " << s << " dropped the worker while shard "
                                       << stopped << " was stopped";
    }
    servers.shard(stopped).Signal(SIGCONT);
    absl::SleepFor(absl::Seconds(1));
  }
  heartbeat.Stop();
}

// Two workers started by hand 15 s apart (more than the 10 s heartbeat timeout): the
// first heartbeats while it waits for the second, so both train and finish.
TEST(MembershipMultiprocessTest, WorkersStarted15SecondsApartBothTrain) {
  const std::string dir = TempDir("late-worker");
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir).ok());
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    if (w == 1) absl::SleepFor(absl::Seconds(15));
    absl::StatusOr<Process> p = Process::Start(
        {RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
         absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=sync", "--device=cpu",
         "--epochs=1", "--max_steps=100", "--log_every=50"},
        absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<int> code = workers[w].Wait(absl::Minutes(2));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << workers[w].Log();
    EXPECT_EQ(*code, 0) << workers[w].Log();
    EXPECT_EQ(DoneField(workers[w].Log(), "steps"), 100) << workers[w].Log();
  }
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(servers.shard(s).Log().find("dropped: no heartbeat"), std::string::npos)
        << servers.shard(s).Log();
  }
}

}  // namespace
}  // namespace testing
}  // namespace ps
