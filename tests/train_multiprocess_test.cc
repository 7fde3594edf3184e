// 2 ps_server and 2 ps_worker processes on loopback train a few hundred steps of the
// Fashion-MNIST MLP; the loss must fall and the servers must have applied every step.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.pb.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing {
namespace {

// `same_host`: the workers' --same_host (the servers always offer windows);
// `wire_format`: their --wire_format (over TCP); `extra`: further worker flags. Each
// worker's final loss goes to `last_losses` when given.
void TrainAndCheck(const std::string& mode, int steps, bool same_host,
                   const std::string& wire_format = "float32",
                   const std::vector<std::string>& extra = {},
                   std::vector<double>* last_losses = nullptr) {
  const std::string dir = TempDir("train-" + mode);
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir).ok());
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    std::vector<std::string> args = {
        RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
        absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=" + mode,
        "--device=cpu", absl::StrCat("--max_steps=", steps), "--log_every=50",
        "--optimizer=momentum", "--learning_rate=0.02",
        absl::StrCat("--same_host=", same_host ? "true" : "false"),
        "--wire_format=" + wire_format};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<Process> p = Process::Start(args, absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<int> code = workers[w].Wait(absl::Minutes(3));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0) << workers[w].Log();
    const std::string log = workers[w].Log();
    EXPECT_EQ(DoneField(log, "steps"), steps);
    const double first = DoneField(log, "first_loss"), last = DoneField(log, "last_loss");
    EXPECT_GT(first, 0.6) << log;   // an untrained 10-class model starts near ln(10)
    EXPECT_LT(last, 0.65 * first) << log;
    if (last_losses != nullptr) last_losses->push_back(last);
    // Layer overlap sends every step but the last (nothing is pulled after it) in parts.
    const bool layered = std::find(extra.begin(), extra.end(), "--layer_overlap") != extra.end();
    EXPECT_EQ(DoneField(log, "layered_pushes"), layered ? steps - 1 : 0) << log;
  }
  // Each shard applied the steps: sync exactly one update per step, async one per push.
  std::unique_ptr<PsClient> client = NewGrpcPsClient(servers.addresses());
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  int tables = 0;
  const int64_t value_bytes = wire_format == "float32" ? 4 : 2;
  for (const v1::GetStatusResponse& shard : *status) {
    int64_t elements = 0;
    for (const v1::TableStatus& t : shard.tables()) {
      if (t.elements_on_shard() == 0) continue;
      ++tables;
      elements += t.elements_on_shard();
      if (mode == "sync") {
        EXPECT_EQ(t.version(), steps) << t.spec().name();
      } else {
        EXPECT_EQ(t.version(), 2 * steps) << t.spec().name();
      }
      EXPECT_EQ(t.rejected_pushes(), 0);
    }
    // Gradients crossed process boundaries through the windows, or all over TCP.
    EXPECT_GT(shard.bytes_received(), 0);
    if (same_host) {
      EXPECT_EQ(shard.window_bytes_received(), shard.bytes_received());
      EXPECT_GT(shard.window_bytes_sent(), 0);
    } else {
      EXPECT_EQ(shard.window_bytes_received(), 0);
      EXPECT_EQ(shard.window_bytes_sent(), 0);
      // Every step, each worker pushed all of the shard's elements, in the wire's format.
      EXPECT_EQ(shard.bytes_received(), steps * 2 * elements * value_bytes);
    }
    EXPECT_EQ(shard.workers_size(), 2);
    for (const v1::WorkerStatus& w : shard.workers()) EXPECT_FALSE(w.live());  // both left
  }
  EXPECT_GE(tables, 6);  // fc0.w and fc1.w are split, the rest placed whole
}

TEST(TrainMultiprocessTest, SyncTwoServersTwoWorkersLossFalls) {
  TrainAndCheck("sync", 300, /*same_host=*/true);
}

TEST(TrainMultiprocessTest, SyncOverTcpOnlyLossFalls) {
  TrainAndCheck("sync", 300, /*same_host=*/false);
}

// 16-bit values over TCP: the loss falls as with float32, in half the bytes.
TEST(TrainMultiprocessTest, SyncOverTcpWithABfloat16WireLossFallsInHalfTheBytes) {
  TrainAndCheck("sync", 300, /*same_host=*/false, "bf16");
}

// Layer overlap: each layer's push-pull leaves as backward completes it. Sync steps are
// the same sums and updates either way, so the run is exactly the whole-step run's,
// with the same bytes and one update per step on every table.
TEST(TrainMultiprocessTest, SyncOverTcpWithLayerOverlapTrainsExactlyAsWholeSteps) {
  std::vector<double> whole, layered;
  TrainAndCheck("sync", 200, /*same_host=*/false, "float32", {}, &whole);
  TrainAndCheck("sync", 200, /*same_host=*/false, "float32", {"--layer_overlap"}, &layered);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_EQ(layered, whole);
}

TEST(TrainMultiprocessTest, AsyncTwoServersTwoWorkersLossFalls) {
  TrainAndCheck("async", 300, /*same_host=*/true);
}

}  // namespace
}  // namespace testing
}  // namespace ps
