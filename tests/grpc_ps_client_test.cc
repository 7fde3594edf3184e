// The gRPC client against two real shards on loopback (in this process): tensors cut by
// placement and chunked, errors naming the shard.
#include "worker/client/grpc_ps_client.h"

#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/value_format.h"
#include "gtest/gtest.h"
#include "server/rpc/ps_server.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

class GrpcPsClientTest : public ::testing::Test {
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

  v1::TableSpec Spec(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
    return ::ps::testing::OnesSgdSpec(name, n, mode);
  }

  std::vector<std::unique_ptr<PsServer>> servers_;
  std::vector<std::string> addresses_;
};

TEST_F(GrpcPsClientTest, ChunkedPushAndPullRoundTripLargeTensors) {
  ClientOptions options;
  options.max_chunk_bytes = 4096;  // forces many chunks per shard
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_, options);
  const int64_t big = 100003, small = 10;
  ASSERT_TRUE(client->CreateTable(Spec("big", big, v1::ASYNC)).ok());
  ASSERT_TRUE(client->CreateTable(Spec("small", small, v1::ASYNC)).ok());
  std::vector<float> g_big(big), g_small(small, 2.0f);
  for (int64_t i = 0; i < big; ++i) g_big[i] = static_cast<float>(i % 7);
  ASSERT_TRUE(
      client->Push({{"big", big, g_big.data()}, {"small", small, g_small.data()}}, 0, 0).ok());
  EXPECT_EQ(client->bytes_pushed(), (big + small) * 4);
  std::vector<float> p_big(big), p_small(small);
  absl::StatusOr<int64_t> v =
      client->Pull({{"big", big, p_big.data()}, {"small", small, p_small.data()}}, 0, 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(client->bytes_pulled(), (big + small) * 4);
  for (int64_t i = 0; i < big; ++i) ASSERT_FLOAT_EQ(p_big[i], 1.0f - 0.5f * (i % 7)) << i;
  for (float x : p_small) EXPECT_FLOAT_EQ(x, 0.0f);
  EXPECT_GE(*v, 1);
  // Not registered: the shards made no same-host offer, so every byte went in-band.
  EXPECT_EQ(client->same_host_shards(), 0);
  EXPECT_EQ(client->window_bytes(), 0);
}

// Established TCP connections to `port`, from /proc/net/tcp and tcp6 (gRPC's sockets may
// be IPv6 ones holding IPv4-mapped addresses). Client side: the remote port is the
// server's.
int ConnectionsTo(int port) {
  int n = 0;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const unsigned remote_port = std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16);
      if (remote_port == static_cast<unsigned>(port) && state == "01") ++n;
    }
  }
  return n;
}

// Each lane is a connection of its own, and a call's chunks take turns on them.
TEST_F(GrpcPsClientTest, EveryLaneToAShardIsAConnectionOfItsOwn) {
  for (int lanes : {1, 3}) {
    ServerOptions o;
    o.host = "127.0.0.1";
    auto server = PsServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    const std::string address = (*server)->address();
    const int port = std::stoi(address.substr(address.rfind(':') + 1));
    ClientOptions options;
    options.channels_per_shard = lanes;
    options.max_chunk_bytes = 4096;
    std::unique_ptr<PsClient> client = NewGrpcPsClient({address}, options);
    ASSERT_TRUE(client->CreateTable(Spec("w", 3072, v1::ASYNC)).ok());  // 3 chunks
    std::vector<float> g(3072, 1.0f), p(3072);
    ASSERT_TRUE(client->Push({{"w", 3072, g.data()}}, 0, -1).ok());
    ASSERT_TRUE(client->Pull({{"w", 3072, p.data()}}, 0, -1).ok());
    for (float x : p) ASSERT_EQ(x, 0.5f);
    EXPECT_EQ(ConnectionsTo(port), lanes) << address;
  }
}

// Two threads push for one worker at once, each push many chunks held back by the credit:
// every part of every push is applied (a shard takes a push older than the newest it has
// seen from a worker for a copy, so the client sends a worker's pushes one at a time).
TEST_F(GrpcPsClientTest, AWorkersConcurrentPushesAreAllApplied) {
  ClientOptions options;
  options.max_chunk_bytes = 4096;
  options.max_calls_in_flight_per_shard = 1;
  options.same_host = false;
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_, options);
  const int64_t n = 8192;  // 8 chunks over 2 shards
  ASSERT_TRUE(client->CreateTable(Spec("w", n, v1::ASYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  constexpr int kPushes = 20;
  std::vector<std::vector<float>> grads(2, std::vector<float>(n, 1.0f));
  std::vector<std::thread> threads;
  std::vector<absl::Status> failures(2);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPushes; ++k) {
        absl::Status s = client->Push({{"w", n, grads[t].data()}}, 0, 0);
        if (!s.ok()) failures[t] = s;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const absl::Status& s : failures) EXPECT_TRUE(s.ok()) << s;
  std::vector<float> p(n);
  ASSERT_TRUE(client->Pull({{"w", n, p.data()}}, 0, 0).ok());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 1.0f - 0.5f * 2 * kPushes) << i;
}

// Per-table wire formats: bf16 and fp16 tables move half the bytes both ways, and what
// arrives is what the formats' rounding makes of the float32 values; a float32 table is
// exact. The second push carries the first one's rounding residual (error feedback).
TEST_F(GrpcPsClientTest, SixteenBitWireFormatsHalveTheBytesBothWays) {
  ClientOptions options;
  options.max_chunk_bytes = 4096;  // many chunks, each coded on its own
  options.wire_formats = *ParseWireFormats("big=bf16,mid=fp16");
  options.same_host = false;  // windows carry float32
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_, options);
  const int64_t big = 30001, mid = 5003, exact = 7;
  for (auto [name, n] : {std::pair{"big", big}, {"mid", mid}, {"exact", exact}}) {
    ASSERT_TRUE(client->CreateTable(Spec(name, n, v1::ASYNC)).ok());
  }
  std::vector<float> g_big(big), g_mid(mid), g_exact(exact, 0.0123f);
  for (int64_t i = 0; i < big; ++i) g_big[i] = 0.001f * static_cast<float>(i % 101);
  for (int64_t i = 0; i < mid; ++i) g_mid[i] = -0.01f * static_cast<float>(i % 13) + 0.3f;
  const std::vector<DenseTensor> grads = {
      {"big", big, g_big.data()}, {"mid", mid, g_mid.data()}, {"exact", exact, g_exact.data()}};
  ASSERT_TRUE(client->Push(grads, 0, -1).ok());
  EXPECT_EQ(client->bytes_pushed(), (big + mid) * 2 + exact * 4);
  std::vector<float> p_big(big), p_mid(mid), p_exact(exact);
  const std::vector<DenseTensor> params = {
      {"big", big, p_big.data()}, {"mid", mid, p_mid.data()}, {"exact", exact, p_exact.data()}};
  absl::StatusOr<int64_t> v = client->Pull(params, 0, -1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(client->bytes_pulled(), (big + mid) * 2 + exact * 4);
  // The shard applied the rounded gradient in float32; the pull rounded the result.
  for (int64_t i = 0; i < big; ++i) {
    const float on_shard = 1.0f - 0.5f * Bfloat16ToFloat(FloatToBfloat16(g_big[i]));
    ASSERT_EQ(p_big[i], Bfloat16ToFloat(FloatToBfloat16(on_shard))) << i;
  }
  for (int64_t i = 0; i < mid; ++i) {
    const float on_shard = 1.0f - 0.5f * Float16ToFloat(FloatToFloat16(g_mid[i]));
    ASSERT_EQ(p_mid[i], Float16ToFloat(FloatToFloat16(on_shard))) << i;
  }
  for (float x : p_exact) EXPECT_EQ(x, 1.0f - 0.5f * 0.0123f);
  // A push-pull (the combined call: a registered worker): the same formats, and the
  // second gradient carries the first one's rounding residual. A float32 reader sees the
  // shard's values exactly: 1 - 0.5 q1 - 0.5 q2, q2 the coding of g + (g - q1).
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  PsClient::PushPullResult r = client->PushPull(grads, params, 0, 0);
  ASSERT_TRUE(r.push.ok()) << r.push;
  ASSERT_TRUE(r.pull.ok()) << r.pull.status();
  EXPECT_EQ(client->bytes_pushed(), 2 * ((big + mid) * 2 + exact * 4));
  EXPECT_EQ(client->bytes_pulled(), 2 * ((big + mid) * 2 + exact * 4));
  ClientOptions float32;
  float32.same_host = false;
  std::unique_ptr<PsClient> reader = NewGrpcPsClient(addresses_, float32);
  ASSERT_TRUE(reader->Pull(params, 0, -1).ok());
  auto twice = [](float g, auto code) {
    const float q1 = code(g), q2 = code(g + (g - q1));
    const float p1 = 1.0f - 0.5f * q1;
    return p1 - 0.5f * q2;
  };
  const auto bf16 = [](float x) { return Bfloat16ToFloat(FloatToBfloat16(x)); };
  const auto fp16 = [](float x) { return Float16ToFloat(FloatToFloat16(x)); };
  for (int64_t i = 0; i < big; ++i) ASSERT_EQ(p_big[i], twice(g_big[i], bf16)) << i;
  for (int64_t i = 0; i < mid; ++i) ASSERT_EQ(p_mid[i], twice(g_mid[i], fp16)) << i;
  for (float x : p_exact) EXPECT_EQ(x, (1.0f - 0.5f * 0.0123f) - 0.5f * 0.0123f);
  // What feedback buys: g = 0.001 * 37 is not a bfloat16; without its residual the
  // second push would repeat the first one's rounding error instead of correcting it.
  EXPECT_NE(twice(g_big[37], bf16), 1.0f - 0.5f * bf16(g_big[37]) - 0.5f * bf16(g_big[37]));
}

// One worker moves its bytes through same-host windows, the other in the messages; the
// sync step is the same average either way.
TEST_F(GrpcPsClientTest, SameHostWindowsCarryTheBytesWithTheSameResults) {
  ClientOptions windowed;
  windowed.max_chunk_bytes = 4096;
  ClientOptions in_band = windowed;
  in_band.same_host = false;
  std::unique_ptr<PsClient> a = NewGrpcPsClient(addresses_, windowed);
  std::unique_ptr<PsClient> b = NewGrpcPsClient(addresses_, in_band);
  const int64_t n = 50001, m = 7;
  ASSERT_TRUE(a->CreateTable(Spec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(a->CreateTable(Spec("v", m, v1::SYNC)).ok());
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(b->RegisterWorker(1, "h", "cpu").ok());
  EXPECT_EQ(a->same_host_shards(), 2);
  EXPECT_EQ(b->same_host_shards(), 0);

  for (int step = 0; step < 3; ++step) {
    std::vector<float> ga(n), gb(n), va(m, 1.0f), vb(m, 3.0f);
    for (int64_t i = 0; i < n; ++i) {
      ga[i] = static_cast<float>(i % 5);
      gb[i] = static_cast<float>(step);
    }
    ASSERT_TRUE(a->Push({{"w", n, ga.data()}, {"v", m, va.data()}}, PsClient::kPerShard, 0).ok());
    ASSERT_TRUE(b->Push({{"w", n, gb.data()}, {"v", m, vb.data()}}, PsClient::kPerShard, 1).ok());
    std::vector<float> pa(n), pb(n), qa(m), qb(m);
    ASSERT_TRUE(a->Pull({{"w", n, pa.data()}, {"v", m, qa.data()}}, PsClient::kPerShard, 0).ok());
    ASSERT_TRUE(b->Pull({{"w", n, pb.data()}, {"v", m, qb.data()}}, PsClient::kPerShard, 1).ok());
    ASSERT_EQ(pa, pb);
    ASSERT_EQ(qa, qb);
    // SGD lr 0.5 on the mean of the two gradients, from all ones, step by step.
    for (int64_t i = 0; i < n; i += 997) {
      float expect = 1.0f;
      for (int t = 0; t <= step; ++t) expect -= 0.5f * (static_cast<float>(i % 5) + t) / 2.0f;
      ASSERT_FLOAT_EQ(pa[i], expect) << "step " << step << " element " << i;
    }
    for (float x : qa) ASSERT_FLOAT_EQ(x, 1.0f - (step + 1) * 0.5f * 2.0f);
  }
  EXPECT_EQ(a->window_bytes(), a->bytes_pushed() + a->bytes_pulled());
  EXPECT_EQ(a->bytes_pushed(), 3 * (n + m) * 4);
  EXPECT_EQ(b->window_bytes(), 0);
  EXPECT_EQ(b->bytes_pushed(), 3 * (n + m) * 4);
}

TEST_F(GrpcPsClientTest, SyncStepAcrossTwoShardsWithTwoWorkers) {
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_);
  const int64_t n = 50000;  // split across both shards
  ASSERT_TRUE(client->CreateTable(Spec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(client->RegisterWorker(1, "h", "cpu").ok());
  std::vector<float> g0(n, 1.0f), g1(n, 3.0f), p(n);
  ASSERT_TRUE(client->Push({{"w", n, g0.data()}}, 0, 0).ok());
  ASSERT_TRUE(client->Push({{"w", n, g1.data()}}, 0, 1).ok());
  absl::StatusOr<int64_t> v = client->Pull({{"w", n, p.data()}}, 1, 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1);
  for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(p[i], 1.0f - 0.5f * 2.0f) << i;
}

// PushPull over same-host windows (one call per shard) and over TCP (Push then Pull)
// gives the same sync steps as Push followed by Pull.
TEST_F(GrpcPsClientTest, PushPullMatchesPushThenPull) {
  ClientOptions in_band;
  in_band.same_host = false;
  in_band.max_chunk_bytes = 4096;  // several push-pull requests per shard
  std::unique_ptr<PsClient> a = NewGrpcPsClient(addresses_);
  std::unique_ptr<PsClient> b = NewGrpcPsClient(addresses_, in_band);
  const int64_t n = 30011, m = 5;
  ASSERT_TRUE(a->CreateTable(Spec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(a->CreateTable(Spec("v", m, v1::SYNC)).ok());
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(b->RegisterWorker(1, "h", "cpu").ok());
  std::vector<float> pa(n), pb(n), qa(m), qb(m);
  ASSERT_TRUE(a->Pull({{"w", n, pa.data()}, {"v", m, qa.data()}}, PsClient::kPerShard, 0).ok());
  ASSERT_TRUE(b->Pull({{"w", n, pb.data()}, {"v", m, qb.data()}}, PsClient::kPerShard, 1).ok());
  for (int step = 0; step < 3; ++step) {
    std::vector<float> ga(n, 1.0f), gb(n, 3.0f), ha(m, 2.0f), hb(m, 2.0f);
    ga[step] = 5.0f;
    // Worker 1 pushes first (its pull would wait for worker 0's push of the step).
    ASSERT_TRUE(b->Push({{"w", n, gb.data()}, {"v", m, hb.data()}}, PsClient::kPerShard, 1).ok());
    const int64_t windowed = a->window_bytes();
    PsClient::PushPullResult r = a->PushPull({{"w", n, ga.data()}, {"v", m, ha.data()}},
                                             {{"w", n, pa.data()}, {"v", m, qa.data()}}, 0);
    ASSERT_TRUE(r.push.ok()) << r.push;
    ASSERT_TRUE(r.pull.ok()) << r.pull.status();
    EXPECT_EQ(*r.pull, step + 1);
    EXPECT_EQ(a->window_bytes() - windowed, 2 * (n + m) * 4);  // both ways through windows
    ASSERT_TRUE(b->Pull({{"w", n, pb.data()}, {"v", m, qb.data()}}, PsClient::kPerShard, 1).ok());
    ASSERT_EQ(pa, pb);
    ASSERT_EQ(qa, qb);
    EXPECT_FLOAT_EQ(pa[n - 1], 1.0f - (step + 1) * 0.5f * 2.0f);
    EXPECT_FLOAT_EQ(qa[0], 1.0f - (step + 1) * 0.5f * 2.0f);
  }
  // The TCP client's PushPull: in-band chunks, each a push and a pull that waits for
  // worker 0's push.
  std::vector<float> g(n, 1.0f), h(m, 1.0f);
  ASSERT_TRUE(a->Push({{"w", n, g.data()}, {"v", m, h.data()}}, PsClient::kPerShard, 0).ok());
  PsClient::PushPullResult r = b->PushPull({{"w", n, g.data()}, {"v", m, h.data()}},
                                           {{"w", n, pb.data()}, {"v", m, qb.data()}}, 1);
  ASSERT_TRUE(r.push.ok()) << r.push;
  ASSERT_TRUE(r.pull.ok()) << r.pull.status();
  EXPECT_EQ(*r.pull, 4);
  EXPECT_EQ(b->window_bytes(), 0);
  EXPECT_FLOAT_EQ(qb[0], 1.0f - 3 * 0.5f * 2.0f - 0.5f * 1.0f);
}

// Async: the pull of a PushPull returns the newest values, its own push included.
TEST_F(GrpcPsClientTest, AsyncPushPullReturnsTheValuesAfterThePush) {
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_);
  const int64_t n = 40000;
  ASSERT_TRUE(client->CreateTable(Spec("a", n, v1::ASYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> g(n), p(n);
  for (int64_t i = 0; i < n; ++i) g[i] = static_cast<float>(i % 3);
  for (int step = 1; step <= 2; ++step) {
    PsClient::PushPullResult r = client->PushPull({{"a", n, g.data()}}, {{"a", n, p.data()}}, 0,
                                                  /*min_version=*/0);
    ASSERT_TRUE(r.push.ok()) << r.push;
    ASSERT_TRUE(r.pull.ok()) << r.pull.status();
    EXPECT_EQ(*r.pull, step);  // each shard's part applied one update per push
    for (int64_t i = 0; i < n; i += 101) {
      ASSERT_FLOAT_EQ(p[i], 1.0f - step * 0.5f * (i % 3)) << i;
    }
  }
  EXPECT_EQ(client->window_bytes(), 2 * 2 * n * 4);
}

// Another process with the same worker index registers and leaves: that frees only its
// own windows (none), never the first client's, which keeps using them.
TEST_F(GrpcPsClientTest, AnotherProcessWithTheSameIndexCannotFreeAClientsWindows) {
  std::unique_ptr<PsClient> a = NewGrpcPsClient(addresses_);
  std::unique_ptr<PsClient> b = NewGrpcPsClient(addresses_);
  const int64_t n = 20000;
  ASSERT_TRUE(a->CreateTable(Spec("t", n, v1::ASYNC)).ok());
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> p(n);
  ASSERT_TRUE(a->Pull({{"t", n, p.data()}}, 0, 0).ok());
  ASSERT_EQ(a->window_bytes(), n * 4);
  ASSERT_TRUE(b->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(b->LeaveWorker(0).ok());
  for (auto& server : servers_) {
    EXPECT_NE(server->shard()->windows()->Get(0, a->incarnation()), nullptr);
  }
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  ASSERT_TRUE(a->Pull({{"t", n, p.data()}}, 0, 0).ok());
  EXPECT_EQ(a->window_bytes(), 2 * n * 4);  // through the same windows
  for (int64_t i = 0; i < n; i += 997) ASSERT_FLOAT_EQ(p[i], 1.0f) << i;
}

// A shard that no longer holds a client's window (reason WINDOW_GONE): the client's next
// pull is refused for its window, repeated in-band, and the pull after that opens new
// windows.
TEST_F(GrpcPsClientTest, AWindowFreedUnderAClientIsForgottenAndReopened) {
  std::unique_ptr<PsClient> a = NewGrpcPsClient(addresses_);
  const int64_t n = 20000;
  ASSERT_TRUE(a->CreateTable(Spec("t", n, v1::ASYNC)).ok());
  ASSERT_TRUE(a->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> p(n);
  ASSERT_TRUE(a->Pull({{"t", n, p.data()}}, 0, 0).ok());
  ASSERT_EQ(a->window_bytes(), n * 4);
  for (auto& server : servers_) server->shard()->windows()->Close(0, a->incarnation());
  absl::StatusOr<int64_t> v = a->Pull({{"t", n, p.data()}}, 0, 0);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(a->window_bytes(), n * 4);  // this one went in-band
  for (int64_t i = 0; i < n; i += 997) ASSERT_FLOAT_EQ(p[i], 1.0f) << i;
  ASSERT_TRUE(a->Pull({{"t", n, p.data()}}, 0, 0).ok());
  EXPECT_EQ(a->window_bytes(), 2 * n * 4);  // new windows
}

// Over TCP a shard's push-pull spans several chunk requests whose pulls wait for the
// step. When the shard refuses one chunk (here: over its --max_request_bytes), the others
// are cancelled at once instead of waiting out the call deadline, and the refusal is
// what the caller sees.
TEST_F(GrpcPsClientTest, AChunkRefusedInAPushPullFailsTheCallAtOnce) {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.max_request_bytes = 6000;
  auto server = PsServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  ClientOptions options;
  options.same_host = false;
  options.max_chunk_bytes = 8192;  // full chunks are refused, the last 4000 bytes are not
  options.rpc_timeout = absl::Seconds(60);
  std::unique_ptr<PsClient> client = NewGrpcPsClient({(*server)->address()}, options);
  const int64_t n = 3048;  // 8192 + 4000 bytes
  ASSERT_TRUE(client->CreateTable(Spec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> g(n, 1.0f), p(n);
  const absl::Time start = absl::Now();
  PsClient::PushPullResult r = client->PushPull({{"w", n, g.data()}}, {{"w", n, p.data()}}, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(r.push.code(), absl::StatusCode::kResourceExhausted) << r.push;
  EXPECT_FALSE(r.pull.ok());
}

// A push-pull whose first chunk the shard refuses (a non-finite gradient) cancels its
// sibling chunks while they are still being sent (64 MiB in 1 MiB requests). The client
// refers to the tensors instead of copying them (docs/wire.md), so it waits until gRPC lets
// go of them: it must still return, with the refusal, and not wait for a cancelled
// stream's unsent bytes.
TEST_F(GrpcPsClientTest, APushPullCancelledMidSendReturns) {
  ClientOptions options;
  options.same_host = false;
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_, options);
  const int64_t n = 16 << 20;  // 64 MiB
  ASSERT_TRUE(client->CreateTable(Spec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(client->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> g(n, 1.0f), p(n);
  g[3] = std::numeric_limits<float>::quiet_NaN();
  const absl::Time start = absl::Now();
  PsClient::PushPullResult r = client->PushPull({{"w", n, g.data()}}, {{"w", n, p.data()}}, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(r.push.code(), absl::StatusCode::kInvalidArgument) << r.push;
  EXPECT_FALSE(r.pull.ok());
}

TEST_F(GrpcPsClientTest, ErrorsKeepTheirCodeAndNameTheShard) {
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_);
  std::vector<float> p(10);
  absl::StatusOr<int64_t> v = client->Pull({{"missing", 10, p.data()}}, 0, 0);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(v.status().message().find("shard"), absl::string_view::npos) << v.status();
  EXPECT_NE(v.status().message().find("'missing'"), absl::string_view::npos) << v.status();
}

TEST_F(GrpcPsClientTest, UnreachableServerIsUnavailable) {
  ClientOptions options;
  options.connect_timeout = absl::Milliseconds(300);
  servers_[1]->Shutdown();
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses_, options);
  absl::Status s = client->CreateTable(Spec("t", 10, v1::ASYNC));
  EXPECT_TRUE(s.code() == absl::StatusCode::kUnavailable ||
              s.code() == absl::StatusCode::kDeadlineExceeded)
      << s;
  EXPECT_NE(s.message().find(addresses_[1]), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace ps
