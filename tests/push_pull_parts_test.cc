// A push-pull sent in parts (PsClient::StartPushPull, the worker's layer overlap) over
// TCP against two real shards in this process: a sync table's step completes as soon as
// every worker has covered that table, before the push's later parts are even sent; the
// parts are one push, each applied once however they interleave; a refused part fails
// the whole push-pull and lets the worker's next push go.
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/rpc/ps_server.h"
#include "server/table/spec_testing.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

class PushPullPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int s = 0; s < 2; ++s) {
      ServerOptions o;
      o.host = "127.0.0.1";
      o.shard_index = s;
      o.num_shards = 2;
      auto server = PsServer::Start(o);
      ASSERT_TRUE(server.ok()) << server.status();
      addresses_.push_back((*server)->address());
      servers_.push_back(*std::move(server));
    }
  }

  // Over TCP in small chunks, so every part is several requests per shard.
  std::unique_ptr<PsClient> TcpClient(absl::Duration rpc_timeout = absl::Seconds(60)) {
    ClientOptions o;
    o.same_host = false;
    o.max_chunk_bytes = 8192;
    o.rpc_timeout = rpc_timeout;
    return NewGrpcPsClient(addresses_, o);
  }

  // Each table's version on every shard that holds part of it.
  std::map<std::string, std::vector<int64_t>> Versions(PsClient* client) {
    std::map<std::string, std::vector<int64_t>> versions;
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
    EXPECT_TRUE(status.ok()) << status.status();
    if (!status.ok()) return versions;
    for (const v1::GetStatusResponse& shard : *status) {
      for (const v1::TableStatus& t : shard.tables()) {
        if (t.elements_on_shard() > 0) versions[t.spec().name()].push_back(t.version());
      }
    }
    return versions;
  }

  std::vector<std::unique_ptr<PsServer>> servers_;
  std::vector<std::string> addresses_;
};

TEST_F(PushPullPartsTest, SyncTableStepsAsSoonAsItsPartIsInAndFinishTakesTheRest) {
  std::unique_ptr<PsClient> a = TcpClient(), b = TcpClient(), tool = TcpClient(absl::Seconds(10));
  const int64_t n = 30011, m = 5;  // "w" split across both shards, "v" on one
  ASSERT_TRUE(a->CreateTable(::ps::testing::OnesSgdSpec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(a->CreateTable(::ps::testing::OnesSgdSpec("v", m, v1::SYNC)).ok());
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(b->RegisterWorker(1, "h", "cpu").ok());
  std::vector<float> pw(n), pv(m), qw(n), qv(m);
  ASSERT_TRUE(a->Pull({{"w", n, pw.data()}, {"v", m, pv.data()}}, PsClient::kPerShard, 0).ok());
  ASSERT_TRUE(b->Pull({{"w", n, qw.data()}, {"v", m, qv.data()}}, PsClient::kPerShard, 1).ok());

  // Step 0: worker 1 pushes whole; worker 0 in parts, "v" first.
  std::vector<float> gw0(n, 1.0f), gv0(m, 2.0f), gw1(n, 5.0f), gv1(m, 6.0f);
  ASSERT_TRUE(b->Push({{"w", n, gw1.data()}, {"v", m, gv1.data()}}, PsClient::kPerShard, 1).ok());
  std::unique_ptr<PsClient::PushPullParts> parts = a->StartPushPull(0);
  parts->Send({{"v", m, gv0.data()}}, {{"v", m, pv.data()}});
  // "v" completes its step with worker 0's first part alone ...
  std::vector<float> seen(m);
  absl::StatusOr<int64_t> v = tool->Pull({{"v", m, seen.data()}}, 1, -1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1);
  for (float x : seen) EXPECT_FLOAT_EQ(x, 1.0f - 0.5f * (2.0f + 6.0f) / 2);
  // ... while "w" still waits for worker 0's part of it.
  std::unique_ptr<PsClient> impatient = TcpClient(absl::Milliseconds(300));
  std::vector<float> early(n);
  absl::StatusOr<int64_t> w = impatient->Pull({{"w", n, early.data()}}, 1, -1);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDeadlineExceeded) << w.status();
  EXPECT_EQ(Versions(tool.get())["w"], (std::vector<int64_t>{0, 0}));

  parts->Send({{"w", n, gw0.data()}}, {{"w", n, pw.data()}});
  PsClient::PushPullResult r = parts->Finish();
  ASSERT_TRUE(r.push.ok()) << r.push;
  ASSERT_TRUE(r.pull.ok()) << r.pull.status();
  EXPECT_EQ(*r.pull, 1);
  for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(pw[i], 1.0f - 0.5f * 3.0f) << i;
  for (float x : pv) EXPECT_FLOAT_EQ(x, 1.0f - 0.5f * 4.0f);
  ASSERT_TRUE(b->Pull({{"w", n, qw.data()}, {"v", m, qv.data()}}, PsClient::kPerShard, 1).ok());

  // Step 1 the other way round (worker 0 whole, worker 1 in parts, "w" first): the
  // versions the parts recorded are those the next steps name.
  ASSERT_TRUE(a->Push({{"w", n, gw0.data()}, {"v", m, gv0.data()}}, PsClient::kPerShard, 0).ok());
  parts = b->StartPushPull(1);
  parts->Send({{"w", n, gw1.data()}}, {{"w", n, qw.data()}});
  parts->Send({{"v", m, gv1.data()}}, {{"v", m, qv.data()}});
  r = parts->Finish();
  parts.reset();
  ASSERT_TRUE(r.push.ok()) << r.push;
  ASSERT_TRUE(r.pull.ok()) << r.pull.status();
  EXPECT_EQ(*r.pull, 2);
  for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(qw[i], 1.0f - 2 * 0.5f * 3.0f) << i;
  for (float x : qv) EXPECT_FLOAT_EQ(x, 1.0f - 2 * 0.5f * 4.0f);
  ASSERT_TRUE(a->Pull({{"w", n, pw.data()}, {"v", m, pv.data()}}, PsClient::kPerShard, 0).ok());
  EXPECT_EQ(pw, qw);
  EXPECT_EQ(pv, qv);
  EXPECT_EQ(Versions(tool.get()),
            (std::map<std::string, std::vector<int64_t>>{{"v", {2}}, {"w", {2, 2}}}));
}

// Eight parts of one push, every one several requests per shard, all in flight at once:
// each element is updated exactly once and each table once (one push, async). Were they
// pushes of their own, the shards' ledger would take a part of an older one arriving
// after a newer one for a copy and drop it.
TEST_F(PushPullPartsTest, PartsInterleavingOnTheWireAreOnePushAppliedOnce) {
  std::unique_ptr<PsClient> client = TcpClient();
  const int kTables = 8;
  const int64_t n = 20000;
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  std::vector<std::vector<float>> grads(kTables), params(kTables, std::vector<float>(n));
  for (int t = 0; t < kTables; ++t) {
    const std::string name = absl::StrCat("t", t);
    ASSERT_TRUE(client->CreateTable(::ps::testing::OnesSgdSpec(name, n, v1::ASYNC)).ok());
    for (int64_t i = 0; i < n; ++i) grads[t].push_back(static_cast<float>((i + t) % 5));
  }
  for (int round = 1; round <= 2; ++round) {
    std::unique_ptr<PsClient::PushPullParts> parts = client->StartPushPull(0, /*min_version=*/0);
    for (int t = 0; t < kTables; ++t) {
      const std::string name = absl::StrCat("t", t);
      parts->Send({{name, n, grads[t].data()}}, {{name, n, params[t].data()}});
    }
    PsClient::PushPullResult r = parts->Finish();
    ASSERT_TRUE(r.push.ok()) << r.push;
    ASSERT_TRUE(r.pull.ok()) << r.pull.status();
    EXPECT_EQ(*r.pull, round);
    for (int t = 0; t < kTables; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_FLOAT_EQ(params[t][i], 1.0f - round * 0.5f * ((i + t) % 5)) << t << " " << i;
      }
    }
  }
  for (const auto& [name, versions] : Versions(client.get())) {
    EXPECT_EQ(versions, (std::vector<int64_t>{2, 2})) << name;
  }
}

// A part the shard refuses (a NaN) fails the push-pull with the shard's code, naming the
// table; the other part was taken (async: each request is applied on its own). The
// worker's pushes wait while parts are being sent, and go on once they are finished, or
// dropped unfinished.
TEST_F(PushPullPartsTest, ARefusedPartFailsTheFinishAndTheNextPushGoes) {
  std::unique_ptr<PsClient> client = TcpClient();
  const int64_t n = 30011, m = 5;
  ASSERT_TRUE(client->CreateTable(::ps::testing::OnesSgdSpec("w", n, v1::ASYNC)).ok());
  ASSERT_TRUE(client->CreateTable(::ps::testing::OnesSgdSpec("v", m, v1::ASYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> gw(n, 1.0f), gv(m, 1.0f), pw(n), pv(m);
  gw[n - 7] = std::numeric_limits<float>::quiet_NaN();
  std::unique_ptr<PsClient::PushPullParts> parts = client->StartPushPull(0, 0);
  parts->Send({{"v", m, gv.data()}}, {{"v", m, pv.data()}});
  parts->Send({{"w", n, gw.data()}}, {{"w", n, pw.data()}});
  const absl::Time start = absl::Now();
  PsClient::PushPullResult r = parts->Finish();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(r.push.code(), absl::StatusCode::kInvalidArgument) << r.push;
  EXPECT_NE(r.push.message().find("'w'"), std::string::npos) << r.push;
  EXPECT_EQ(r.pull.status().code(), absl::StatusCode::kUnavailable) << r.pull.status();
  parts.reset();

  // Unfinished parts, dropped: the next push still goes, and is applied.
  gw[n - 7] = 1.0f;
  parts = client->StartPushPull(0, 0);
  parts->Send({{"v", m, gv.data()}}, {{"v", m, pv.data()}});
  parts.reset();
  ASSERT_TRUE(client->Push({{"w", n, gw.data()}}, PsClient::kPerShard, 0).ok());
  ASSERT_TRUE(client->Pull({{"w", n, pw.data()}, {"v", m, pv.data()}}, 0, 0).ok());
  EXPECT_FLOAT_EQ(pw[n - 7], 0.5f);  // the refused request changed nothing; this push took
  for (float x : pv) EXPECT_FLOAT_EQ(x, 0.0f);  // "v" took both of its parts
}

}  // namespace
}  // namespace ps
