// Start-up that explains itself (real daemons on loopback): a worker started 90 s before
// its shards waits for them, saying so, and trains once they are up; a worker with no
// shard at all gives up after --connect_timeout naming the address and the cause; a
// worker whose --servers disagrees with the shards (one missing, or out of order) is
// refused at once, told what is wrong; a shard that cannot write its --checkpoint_dir
// refuses to start; a worker run again after its job finished says that nothing is left.
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> WorkerArgs(const std::string& servers,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {RunfilePath("worker/ps_worker"), "--servers=" + servers,
                                   "--worker_index=0", "--num_workers=1", "--device=cpu",
                                   "--max_steps=150", "--log_every=50"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The worker's exit code and how long it ran.
struct Exit {
  int code = -1;
  absl::Duration took;
  std::string log;
};

Exit RunWorker(const std::string& servers, const std::vector<std::string>& extra,
               const std::string& log_path) {
  const absl::Time start = absl::Now();
  absl::StatusOr<Process> p = Process::Start(WorkerArgs(servers, extra), log_path);
  EXPECT_TRUE(p.ok()) << p.status();
  Exit e;
  if (!p.ok()) return e;
  absl::StatusOr<int> code = p->Wait(absl::Minutes(2));
  EXPECT_TRUE(code.ok()) << code.status();
  e.code = code.ok() ? *code : -1;
  e.took = absl::Now() - start;
  e.log = p->Log();
  return e;
}

TEST(StartupTest, WorkerStartedBeforeItsShardsWaitsAndTrains) {
  const std::string dir = TempDir("early-worker");
  std::vector<PortReservation> ports;
  std::vector<std::string> addresses;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<PortReservation> r = PortReservation::Reserve();
    ASSERT_TRUE(r.ok()) << r.status();
    addresses.push_back(absl::StrCat("127.0.0.1:", r->port()));
    ports.push_back(*std::move(r));
  }
  const std::string servers = absl::StrJoin(addresses, ",");
  absl::StatusOr<Process> worker =
      Process::Start(WorkerArgs(servers, {"--connect_timeout=4m"}), dir + "/worker.log");
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::SleepFor(absl::Seconds(90));
  ASSERT_TRUE(worker->Wait(absl::ZeroDuration()).status().code() ==
              absl::StatusCode::kDeadlineExceeded)
      << "the worker stopped before its shards started:\n"
      << worker->Log();
  EXPECT_THAT(worker->Log(),
              HasSubstr("connecting to 2 shards: " + absl::StrJoin(addresses, ", ")));
  EXPECT_THAT(worker->Log(), HasSubstr("waiting for shard 0 (" + addresses[0] + ") for 1m"));
  EXPECT_THAT(worker->Log(), HasSubstr("connection refused: nothing listens on port"));

  std::vector<Process> shards;
  const absl::Time shards_start = absl::Now();
  for (int i = 0; i < 2; ++i) {
    ports[i].Release();
    absl::StatusOr<Process> s = Process::Start(
        {RunfilePath("server/ps_server"), absl::StrCat("--port=", ports[i].port()),
         absl::StrCat("--shard_index=", i), "--servers=" + servers},
        absl::StrCat(dir, "/shard-", i, ".log"));
    ASSERT_TRUE(s.ok()) << s.status();
    shards.push_back(*std::move(s));
  }
  // The worker's retries stay frequent after 90 s (gRPC's own backoff would have grown to
  // about a minute): it finds the shards within seconds of their start.
  while (!absl::StrContains(worker->Log(), "all 2 shards answered after 1m")) {
    ASSERT_LT(absl::Now() - shards_start, absl::Seconds(10))
        << "the shards have been up for 10 s and the worker still waits:\n" << worker->Log();
    absl::SleepFor(absl::Milliseconds(100));
  }
  absl::StatusOr<int> code = worker->Wait(absl::Minutes(2));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << worker->Log();
  EXPECT_EQ(DoneField(worker->Log(), "steps"), 150);
  EXPECT_LT(DoneField(worker->Log(), "last_loss"), 0.65 * DoneField(worker->Log(), "first_loss"));
}

TEST(StartupTest, NoShardAtAllFailsAfterTheConnectTimeoutNamingTheCause) {
  absl::StatusOr<PortReservation> r = PortReservation::Reserve();  // bound, not listening
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string address = absl::StrCat("127.0.0.1:", r->port());
  Exit e = RunWorker(address, {"--connect_timeout=7s"}, TempDir("no-shard") + "/worker.log");
  EXPECT_EQ(e.code, 1) << e.log;
  EXPECT_GE(e.took, absl::Seconds(7));
  EXPECT_LT(e.took, absl::Seconds(40));
  EXPECT_THAT(e.log, HasSubstr(absl::StrCat("UNAVAILABLE: shard 0 (", address,
                                            ") did not answer within 7s (--connect_timeout): "
                                            "connection refused: nothing listens on port ",
                                            r->port(), " of 127.0.0.1; is ps_server running")));
  EXPECT_THAT(e.log, HasSubstr(absl::StrCat("waiting for shard 0 (", address, ") for 5s of 7s")));

  e = RunWorker("nosuch.invalid:50051", {"--connect_timeout=2s", "--plaintext"},
                TempDir("no-shard-dns") + "/worker.log");
  EXPECT_EQ(e.code, 1) << e.log;
  EXPECT_THAT(e.log, HasSubstr("DNS: the name nosuch.invalid does not resolve"));
}

TEST(StartupTest, ServersListThatDisagreesWithTheShardsIsRefusedAtOnce) {
  ServerCluster cluster;
  ASSERT_TRUE(cluster.Start(2, TempDir("mismatch"), {"--metrics_port=0"}).ok());
  const std::vector<std::string> a = cluster.addresses();
  // --connect_timeout is long: the refusals must not wait for it.
  Exit e = RunWorker(a[0], {"--connect_timeout=2m"}, TempDir("mismatch-one") + "/worker.log");
  EXPECT_EQ(e.code, 1) << e.log;
  EXPECT_LT(e.took, absl::Seconds(20)) << e.log;
  EXPECT_THAT(e.log, HasSubstr(absl::StrCat("INVALID_ARGUMENT: --servers lists 1 shard (", a[0],
                                            ") but ", a[0], " says the job has 2")));

  e = RunWorker(a[1] + "," + a[0], {"--connect_timeout=2m"},
                TempDir("mismatch-order") + "/worker.log");
  EXPECT_EQ(e.code, 1) << e.log;
  EXPECT_LT(e.took, absl::Seconds(20)) << e.log;
  EXPECT_THAT(e.log, HasSubstr(absl::StrCat("--servers lists ", a[1],
                                            " as shard 0 but it is shard 1 of 2: list the shards "
                                            "in shard order")));
  // The shards are unharmed: a worker with the right list trains.
  e = RunWorker(cluster.servers_flag(), {"--max_steps=20"}, TempDir("mismatch-ok") + "/w.log");
  EXPECT_EQ(e.code, 0) << e.log;
  EXPECT_EQ(DoneField(e.log, "steps"), 20);

  // The model lives on the shards: the same worker again has nothing left to do, and says
  // so and what to do instead.
  e = RunWorker(cluster.servers_flag(), {"--max_steps=20"}, TempDir("rerun") + "/w.log");
  EXPECT_EQ(e.code, 0) << e.log;
  EXPECT_EQ(DoneField(e.log, "steps"), 0);
  EXPECT_THAT(e.log, HasSubstr("worker 0: the shards record all 20 steps of this run as done"));
  EXPECT_THAT(e.log, HasSubstr("For a new model, stop the shards"));
}

TEST(StartupTest, ShardRefusesACheckpointDirectoryItCannotUse) {
  const std::string dir = TempDir("bad-checkpoint-dir");
  // A directory whose parent is a file cannot be created.
  std::ofstream(dir + "/file") << "not a directory\n";
  absl::StatusOr<Process> s = Process::Start(
      {RunfilePath("server/ps_server"), "--port=0", "--num_shards=1",
       "--checkpoint_dir=" + dir + "/file/checkpoints"},
      dir + "/shard.log");
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<int> code = s->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1) << s->Log();
  EXPECT_THAT(s->Log(), HasSubstr("--checkpoint_dir=" + dir +
                                  "/file/checkpoints cannot hold checkpoints"));
}

}  // namespace
}  // namespace testing
}  // namespace ps
