// Same-host transfer windows between this test process (the worker side, through the real
// gRPC client) and ps_server processes: bytes go through the windows, and when a shard is
// stopped and replaced by a new process (which restores its checkpoint) the client
// notices before using a stale window, sends in-band, and takes the new shard's windows
// once it registers again.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/v1/ps.pb.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing {
namespace {

v1::TableSpec Spec(int64_t n) {
  v1::TableSpec spec;
  spec.set_name("w");
  spec.set_kind(v1::DENSE);
  spec.add_shape(n);
  spec.mutable_initializer()->set_kind(v1::Initializer::CONSTANT);
  spec.mutable_initializer()->set_value(1.0f);
  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
  spec.mutable_optimizer()->set_learning_rate(0.5f);
  spec.set_consistency(v1::ASYNC);
  return spec;
}

TEST(SameHostMultiprocessTest, AReplacedShardIsDetectedAndItsNewWindowsUsed) {
  const std::string dir = TempDir("same-host");
  ServerCluster servers;
  const std::vector<std::string> flags = {"--checkpoint_dir=" + dir + "/ckpt"};
  ASSERT_TRUE(servers.Start(2, dir, flags).ok());
  std::unique_ptr<PsClient> client = NewGrpcPsClient(servers.addresses());
  const int64_t n = 100000;  // split over both shards
  ASSERT_TRUE(client->CreateTable(Spec(n)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "test", "cpu").ok());
  EXPECT_EQ(client->same_host_shards(), 2);

  std::vector<float> grad(n, 1.0f), params(n);
  ASSERT_TRUE(client->Push({{"w", n, grad.data()}}, 0, 0).ok());
  ASSERT_TRUE(client->Pull({{"w", n, params.data()}}, 0, 0).ok());
  for (int64_t i = 0; i < n; i += 999) ASSERT_FLOAT_EQ(params[i], 0.5f) << i;
  EXPECT_EQ(client->window_bytes(), 2 * n * 4);

  // Replace shard 1 by a new process on the same port; it restores the table from the
  // checkpoint written when it stopped (a shard restarted empty would refuse to serve:
  // STATE_LOST, docs/checkpoints.md).
  servers.shard(1).Signal(SIGTERM);
  ASSERT_TRUE(servers.shard(1).Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(servers.Restart(1, flags).ok());
  ASSERT_TRUE(client->CreateTable(Spec(n)).ok());
  // Not registered again yet: shard 1's old window is gone with its process, so the
  // client must send shard 1's part in-band; shard 0's part still uses its window.
  const int64_t before = client->window_bytes();
  ASSERT_TRUE(client->Push({{"w", n, grad.data()}}, 0, 0).ok());
  EXPECT_EQ(client->same_host_shards(), 1);
  const int64_t shard0_bytes = client->window_bytes() - before;
  EXPECT_GT(shard0_bytes, 0);
  EXPECT_LT(shard0_bytes, n * 4);
  ASSERT_TRUE(client->Pull({{"w", n, params.data()}}, 0, 0).ok());
  // Both shards applied both pushes (1 - 0.5 - 0.5): the new shard 1 restored the first.
  int zeros = 0;
  for (float p : params) zeros += p == 0.0f ? 1 : 0;
  EXPECT_EQ(zeros, n);

  // Registering again accepts the new process's offer.
  ASSERT_TRUE(client->RegisterWorker(0, "test", "cpu").ok());
  EXPECT_EQ(client->same_host_shards(), 2);
  const int64_t again = client->window_bytes();
  ASSERT_TRUE(client->Pull({{"w", n, params.data()}}, 0, 0).ok());
  EXPECT_EQ(client->window_bytes() - again, n * 4);
}

}  // namespace
}  // namespace testing
}  // namespace ps
