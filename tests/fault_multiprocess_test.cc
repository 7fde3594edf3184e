// Failures during training, with real daemons on loopback.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "worker/ps_client.h"

namespace ps {
namespace testing {
namespace {

double DoneField(const std::string& log, const std::string& key) {
  absl::StatusOr<std::string> v = FindField(log, " done ", key);
  EXPECT_TRUE(v.ok()) << v.status() << "\n" << log;
  double d = -1;
  if (v.ok()) EXPECT_TRUE(absl::SimpleAtod(*v, &d)) << *v;
  return d;
}

// Waits until `process`'s log shows it has logged `marker`.
bool WaitForLog(const Process& process, const std::string& marker, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (process.Log().find(marker) != std::string::npos) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

// A sync job whose worker 1 is SIGKILLed in its first epoch: the servers drop it after
// the heartbeat timeout, worker 0 finishes every epoch alone, and the model still
// reaches 0.85 test accuracy.
TEST(FaultMultiprocessTest, SyncJobSurvivesAWorkerKilledMidTraining) {
  const std::string dir = TempDir("kill-worker");
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir, {"--heartbeat_timeout=2s", "--heartbeat_interval=500ms"}).ok());
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<Process> p = Process::Start(
        {RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
         absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=sync", "--device=cpu",
         "--epochs=5", "--optimizer=momentum", "--learning_rate=0.02", "--log_every=100"},
        absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  ASSERT_TRUE(WaitForLog(workers[1], "epoch 1/5 step 200/", absl::Minutes(2)))
      << workers[1].Log();
  workers[1].Signal(SIGKILL);
  absl::StatusOr<int> killed = workers[1].Wait(absl::Seconds(10));
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(*killed, 128 + SIGKILL);

  absl::StatusOr<int> code = workers[0].Wait(absl::Minutes(4));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << workers[0].Log();
  const std::string log = workers[0].Log();
  EXPECT_EQ(*code, 0) << log;
  EXPECT_EQ(DoneField(log, "steps"), 5 * 469);  // all its epochs, nothing skipped
  EXPECT_GE(DoneField(log, "test_accuracy"), 0.85) << log;

  // Both shards dropped worker 1 and recorded why.
  std::unique_ptr<PsClient> client = NewGrpcPsClient(servers.addresses());
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  for (const v1::GetStatusResponse& shard : *status) {
    ASSERT_EQ(shard.workers_size(), 2);
    EXPECT_FALSE(shard.workers(1).live());
  }
  for (int s = 0; s < 2; ++s) {
    const std::string server_log = servers.shard(s).Log();
    EXPECT_NE(server_log.find("worker 1 dropped: no heartbeat"), std::string::npos) << server_log;
  }
}

}  // namespace
}  // namespace testing
}  // namespace ps
