#include "worker/client/same_host_transport.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "common/error_reason.h"
#include "common/same_host.h"
#include "gtest/gtest.h"
#include "worker/client/ps_client.h"
#include "worker/client/request_plan.h"

namespace ps {
namespace {

// Pieces of `t` to `shard`, `lengths` elements each, back to back from element `begin`.
Chunk ChunkOf(int shard, const DenseTensor* t, const std::vector<int64_t>& lengths,
              int64_t begin = 0) {
  Chunk c{shard, {}};
  for (int64_t n : lengths) {
    c.pieces.push_back({t, begin, n});
    begin += n;
  }
  return c;
}

TEST(LayOutInWindowsTest, WindowedShardsGetOffsetsInOrderAndOneRequest) {
  DenseTensor t{"w", 100, nullptr};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {3, 5}), ChunkOf(0, &t, {2}, /*begin=*/8),
                               ChunkOf(1, &t, {4}), ChunkOf(1, &t, {6})};
  std::vector<WindowUse> use(2);
  use[0].pid = 1;  // shard 0 windowed, shard 1 in-band
  LayOutInWindows(use, &chunks);

  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].shard, 0);
  ASSERT_EQ(chunks[0].pieces.size(), 3u);
  EXPECT_EQ(chunks[0].pieces[0].window_offset, 0);
  EXPECT_EQ(chunks[0].pieces[1].window_offset, 3 * 4);
  EXPECT_EQ(chunks[0].pieces[2].window_offset, 8 * 4);
  // The in-band shard keeps its chunks and has no offsets.
  EXPECT_EQ(chunks[1].shard, 1);
  EXPECT_EQ(chunks[2].shard, 1);
  EXPECT_EQ(chunks[1].pieces[0].window_offset, -1);
  EXPECT_EQ(chunks[2].pieces[0].window_offset, -1);
}

TEST(LayOutInWindowsTest, MergedRequestsStayWithinTheRequestLimit) {
  const int64_t half = kWindowRequestBytes / 4 / 2;  // elements in half a request
  DenseTensor t{"w", 4 * half, nullptr};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {half}), ChunkOf(0, &t, {half}), ChunkOf(0, &t, {1})};
  std::vector<WindowUse> use(1);
  use[0].pid = 1;
  LayOutInWindows(use, &chunks);

  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].pieces.size(), 2u);  // exactly kWindowRequestBytes
  ASSERT_EQ(chunks[1].pieces.size(), 1u);
  // Offsets run on across requests: they are places in one window.
  EXPECT_EQ(chunks[1].pieces[0].window_offset, kWindowRequestBytes);
}

// A same-host offer from this very process, whose "windows" are buffers of the test.
class SameHostTransportTest : public ::testing::Test {
 protected:
  SameHostTransportTest() {
    std::memcpy(token_, "0123456789abcdef", sizeof(token_));
    const HostIdentity me = LocalHostIdentity();
    offer_.set_pid(me.pid);
    offer_.set_boot_id(me.boot_id);
    offer_.set_pid_namespace(me.pid_namespace);
    offer_.set_net_namespace(me.net_namespace);
    offer_.set_probe_address(reinterpret_cast<uint64_t>(token_));
    offer_.set_probe_token(std::string(token_, sizeof(token_)));
  }

  // A transport over one shard whose OpenWindow hands out push_ and pull_ (or fails
  // with open_error_ when that is set).
  SameHostTransport Transport(bool enabled = true) {
    return SameHostTransport(
        {"localhost:1"}, enabled,
        [this](int shard, int worker, int64_t bytes) -> absl::StatusOr<OpenedWindows> {
          ++opened_;
          last_open_bytes_ = bytes;
          if (!open_error_.ok()) return open_error_;
          return OpenedWindows{reinterpret_cast<uint64_t>(push_.data()),
                               reinterpret_cast<uint64_t>(pull_.data()),
                               static_cast<int64_t>(push_.size())};
        },
        &window_bytes_);
  }

  char token_[16];
  v1::SameHostOffer offer_;
  std::vector<char> push_ = std::vector<char>(1024, 0);
  std::vector<char> pull_ = std::vector<char>(1024, 0);
  absl::Status open_error_;
  int opened_ = 0;
  int64_t last_open_bytes_ = 0;
  std::atomic<int64_t> window_bytes_{0};
};

TEST_F(SameHostTransportTest, OfferOfThisProcessIsUsable) {
  SameHostTransport transport = Transport();
  EXPECT_EQ(transport.usable_shards(), 0);
  transport.AcceptOffer(0, &offer_);
  EXPECT_EQ(transport.usable_shards(), 1);
  transport.AcceptOffer(0, nullptr);  // a later registration without an offer
  EXPECT_EQ(transport.usable_shards(), 0);
}

TEST_F(SameHostTransportTest, WrongProbeTokenOrOtherHostIsRefused) {
  SameHostTransport transport = Transport();
  v1::SameHostOffer wrong_token = offer_;
  wrong_token.set_probe_token("fedcba9876543210");
  transport.AcceptOffer(0, &wrong_token);
  EXPECT_EQ(transport.usable_shards(), 0);
  v1::SameHostOffer other_boot = offer_;
  other_boot.set_boot_id("00000000-0000-0000-0000-000000000000");
  transport.AcceptOffer(0, &other_boot);
  EXPECT_EQ(transport.usable_shards(), 0);
}

TEST_F(SameHostTransportTest, DisabledTransportNeverOpensWindows) {
  SameHostTransport transport = Transport(/*enabled=*/false);
  transport.AcceptOffer(0, &offer_);
  EXPECT_EQ(transport.usable_shards(), 0);
  float values[4] = {1, 2, 3, 4};
  DenseTensor t{"w", 4, values};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {4})};
  const std::vector<WindowUse> use = transport.PrepareWindows(&chunks, /*worker=*/0);
  EXPECT_EQ(use[0].pid, 0);
  EXPECT_EQ(chunks[0].pieces[0].window_offset, -1);
  EXPECT_EQ(opened_, 0);
}

TEST_F(SameHostTransportTest, PushWindowGetsTheGradientAndPullWindowIsRead) {
  SameHostTransport transport = Transport();
  transport.AcceptOffer(0, &offer_);
  float grad[4] = {1, 2, 3, 4};
  DenseTensor t{"w", 4, grad};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {1}), ChunkOf(0, &t, {3}, /*begin=*/1)};
  const std::vector<WindowUse> use = transport.PrepareWindows(&chunks, /*worker=*/0);
  ASSERT_EQ(use[0].pid, getpid());
  EXPECT_EQ(opened_, 1);
  EXPECT_EQ(last_open_bytes_, 16);
  ASSERT_EQ(chunks.size(), 1u);  // merged

  ASSERT_TRUE(transport.WriteToPushWindows(chunks, use));
  float pushed[4];
  std::memcpy(pushed, push_.data(), sizeof(pushed));
  EXPECT_EQ(pushed[0], 1);
  EXPECT_EQ(pushed[3], 4);
  EXPECT_EQ(window_bytes_.load(), 16);

  const float served[2] = {7, 8};
  std::memcpy(pull_.data() + 8, served, sizeof(served));
  float got[2] = {0, 0};
  std::vector<std::vector<RemoteCopy>> reads(1);
  reads[0].push_back({reinterpret_cast<char*>(got), use[0].pull_address + 8, sizeof(got)});
  ASSERT_TRUE(transport.ReadPullWindows(use, reads).ok());
  EXPECT_EQ(got[0], 7);
  EXPECT_EQ(got[1], 8);
  EXPECT_EQ(window_bytes_.load(), 24);

  // Windows large enough already are not opened again.
  transport.PrepareWindows(&chunks, /*worker=*/0);
  EXPECT_EQ(opened_, 1);
}

TEST_F(SameHostTransportTest, ToolsAndFailedOpensStayInBand) {
  SameHostTransport transport = Transport();
  transport.AcceptOffer(0, &offer_);
  float grad[4] = {1, 2, 3, 4};
  DenseTensor t{"w", 4, grad};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {4})};
  EXPECT_EQ(transport.PrepareWindows(&chunks, /*worker=*/-1)[0].pid, 0);
  EXPECT_EQ(opened_, 0);

  open_error_ = absl::UnavailableError("OpenWindow to shard 0 (localhost:1): gone");
  EXPECT_EQ(transport.PrepareWindows(&chunks, /*worker=*/0)[0].pid, 0);
  EXPECT_EQ(chunks[0].pieces[0].window_offset, -1);
  EXPECT_EQ(transport.usable_shards(), 0);  // turned off until the next offer
  transport.AcceptOffer(0, &offer_);
  EXPECT_EQ(transport.usable_shards(), 1);
}

TEST_F(SameHostTransportTest, LostWindowIsForgottenAndOpenedAgain) {
  SameHostTransport transport = Transport();
  transport.AcceptOffer(0, &offer_);
  float grad[4] = {1, 2, 3, 4};
  DenseTensor t{"w", 4, grad};
  std::vector<Chunk> chunks = {ChunkOf(0, &t, {4})};
  transport.PrepareWindows(&chunks, /*worker=*/0);
  ASSERT_EQ(opened_, 1);

  EXPECT_FALSE(transport.ForgetLostWindow(0, 0, absl::UnavailableError("connection reset")));
  const absl::Status gone = WithReason(absl::NotFoundError("no window"), kReasonWindowGone);
  EXPECT_TRUE(transport.ForgetLostWindow(0, 0, gone));
  chunks = {ChunkOf(0, &t, {4})};
  transport.PrepareWindows(&chunks, /*worker=*/0);
  EXPECT_EQ(opened_, 2);

  transport.ForgetWorker(0);
  chunks = {ChunkOf(0, &t, {4})};
  transport.PrepareWindows(&chunks, /*worker=*/0);
  EXPECT_EQ(opened_, 3);
  EXPECT_EQ(transport.usable_shards(), 1);
}

TEST_F(SameHostTransportTest, UnreadableWindowTurnsTheShardOff) {
  SameHostTransport transport = Transport();
  transport.AcceptOffer(0, &offer_);
  std::vector<WindowUse> use(1);
  use[0] = {getpid(), 0, /*pull_address=*/8};  // not mapped in this process
  char got[16];
  std::vector<std::vector<RemoteCopy>> reads = {{{got, 8, sizeof(got)}}};
  const absl::Status st = transport.ReadPullWindows(use, reads);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(transport.usable_shards(), 0);
  EXPECT_EQ(window_bytes_.load(), 0);
}

}  // namespace
}  // namespace ps
