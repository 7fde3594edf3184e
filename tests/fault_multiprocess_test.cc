// Failures during training, with real daemons on loopback.
#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing {
namespace {

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

// The version a restarted shard restored, from its "restored N tables at version V from"
// line (reading it with GetStatus would race with the workers' next steps); -1 if absent.
int64_t RestoredVersion(const std::string& log) {
  const std::string marker = " tables at version ";
  const size_t restored = log.rfind("restored ");  // the log spans every restart
  if (restored == std::string::npos) return -1;
  const size_t at = log.find(marker, restored);
  if (at == std::string::npos) return -1;
  const size_t begin = at + marker.size();
  int64_t version = -1;
  if (!absl::SimpleAtoi(log.substr(begin, log.find(' ', begin) - begin), &version)) return -1;
  return version;
}

int64_t ShardVersion(const std::string& address, const std::string& table) {
  std::unique_ptr<PsClient> client = NewGrpcPsClient({address});
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
  if (!status.ok()) return -1;
  for (const v1::TableStatus& t : (*status)[0].tables()) {
    if (t.spec().name() == table) return t.version();
  }
  return -1;
}

// The newest version among `dir`'s checkpoint files of `shard` (shard-<i>-<version>-<ms>.ckpt,
// docs/checkpoints.md): what a restart of that shard restores; -1 if there is none. A
// checkpoint being written is still a temporary file, which restores never read.
int64_t NewestCheckpointVersion(const std::string& dir, int shard) {
  const std::string prefix = absl::StrCat("shard-", shard, "-");
  int64_t newest = -1;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0 || name.size() < 5 ||
        name.compare(name.size() - 5, 5, ".ckpt") != 0) {
      continue;
    }
    const size_t begin = prefix.size();
    int64_t version = -1;
    if (absl::SimpleAtoi(name.substr(begin, name.find('-', begin) - begin), &version)) {
      newest = std::max(newest, version);
    }
  }
  closedir(d);
  return newest;
}

// A sync job whose shard 1 is SIGKILLed in its second epoch and restarted on the same
// port: the shard restores its newest checkpoint (every 50 steps), the workers rejoin at
// the restored version, and the job finishes every epoch at 0.85 test accuracy. What the
// shard lost is exactly the steps since the newest checkpoint file it had completed (renamed
// into place) when it was killed (docs/checkpoints.md).
TEST(FaultMultiprocessTest, SyncJobSurvivesAShardKilledAndRestarted) {
  const std::string dir = TempDir("kill-server");
  const std::vector<std::string> flags = {"--checkpoint_dir=" + dir + "/ckpt",
                                          "--checkpoint_every_steps=50",
                                          "--heartbeat_timeout=3s"};
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir, flags).ok());
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<Process> p = Process::Start(
        {RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
         absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=sync", "--device=cpu",
         "--epochs=4", "--optimizer=momentum", "--learning_rate=0.02", "--log_every=100"},
        absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  ASSERT_TRUE(WaitForLog(workers[0], "epoch 2/4 step ", absl::Minutes(2)))
      << workers[0].Log();
  // fc0.w is split over both shards, so shard 1 holds part of it.
  const int64_t before = ShardVersion(servers.addresses()[1], "fc0.w");
  servers.shard(1).Signal(SIGKILL);
  absl::StatusOr<int> killed = servers.shard(1).Wait(absl::Seconds(10));
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(*killed, 128 + SIGKILL);
  ASSERT_GT(before, 469);
  const int64_t newest_written = NewestCheckpointVersion(dir + "/ckpt", 1);
  // Shard 1 may have completed a few more steps between `before` and the kill; in sync mode
  // it is never more than one step ahead of shard 0, which keeps running.
  const int64_t after_kill = ShardVersion(servers.addresses()[0], "fc0.w");
  ASSERT_GE(after_kill, before - 1);
  absl::SleepFor(absl::Seconds(1));
  absl::Status restarted = servers.Restart(1, flags);
  ASSERT_TRUE(restarted.ok()) << restarted << "\n" << servers.shard(1).Log();
  const int64_t restored = RestoredVersion(servers.shard(1).Log());
  EXPECT_EQ(restored, newest_written) << "before " << before;
  EXPECT_EQ(restored % 50, 0);
  EXPECT_GT(restored, 0);

  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<int> code = workers[w].Wait(absl::Minutes(4));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << workers[w].Log();
    EXPECT_EQ(*code, 0) << workers[w].Log();
    EXPECT_EQ(DoneField(workers[w].Log(), "steps"), 4 * 469);
  }
  EXPECT_GE(DoneField(workers[0].Log(), "test_accuracy"), 0.85) << workers[0].Log();
  const std::string log = servers.shard(1).Log();
  EXPECT_NE(log.find(absl::StrCat("at version ", restored, " from ")), std::string::npos) << log;
  // Shard 1 is behind shard 0 by the steps it lost (those after `restored` up to the kill,
  // which came at a version in [before, after_kill + 1]), and both kept training.
  const int64_t v0 = ShardVersion(servers.addresses()[0], "fc0.w");
  const int64_t v1 = ShardVersion(servers.addresses()[1], "fc0.w");
  EXPECT_GE(v0 - v1, std::max<int64_t>(0, before - restored - 1)) << "after_kill " << after_kill;
  EXPECT_LE(v0 - v1, after_kill + 1 - restored + 1) << "before " << before;
  EXPECT_GT(v1, restored);
}

}  // namespace
}  // namespace testing
}  // namespace ps
