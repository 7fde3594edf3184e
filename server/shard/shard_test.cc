// The transport-free shard: membership bound to incarnations, windows that outlive the
// calls using them, and exactly-once pushes. No sockets: the test calls the shard.
#include "server/shard/shard.h"

#include <cstring>
#include <thread>

#include "absl/time/clock.h"
#include "common/error_reason.h"
#include "common/value_format.h"
#include "gtest/gtest.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;

constexpr uint64_t kInc0 = 0x1111;
constexpr uint64_t kInc1 = 0x2222;

class ShardTest : public ::testing::Test {
 protected:
  ShardTest() : shard_(ShardOptions()) {}

  void Create(const v1::TableSpec& spec) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    ASSERT_TRUE(shard_.CreateTable(request, &response).ok());
  }

  absl::Status Register(int worker, uint64_t incarnation) {
    v1::RegisterWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation);
    request.set_host("h");
    v1::RegisterWorkerResponse response;
    return shard_.Register(request, &response);
  }

  absl::Status Leave(int worker, uint64_t incarnation) {
    v1::LeaveWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation);
    return shard_.Leave(request);
  }

  static v1::PushRequest DensePush(int worker, int64_t step, const std::string& table,
                                   int64_t offset, const std::vector<float>& grad) {
    v1::PushRequest request;
    request.set_worker_index(worker);
    request.set_step(step);
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_offset(offset);
    d->set_length(static_cast<int64_t>(grad.size()));
    d->set_values(Encode(grad));
    return request;
  }

  static void SetId(v1::PushRequest* request, uint64_t incarnation, int64_t sequence, int part) {
    request->mutable_id()->set_incarnation(incarnation);
    request->mutable_id()->set_sequence(sequence);
    request->mutable_id()->set_part(part);
  }

  std::vector<float> Values(const std::string& table, int64_t n) {
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_length(n);
    v1::PullResponse response;
    EXPECT_TRUE(shard_.Pull(request, absl::Now() + absl::Seconds(5), &response).ok());
    return response.dense_size() == 1 ? Decode(response.dense(0).values()) : std::vector<float>();
  }

  Shard shard_;
};

TEST_F(ShardTest, AWindowLivesAsLongAsTheWaitingPullThatUsesIt) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::SYNC));
  ASSERT_TRUE(Register(0, kInc0).ok());
  ASSERT_TRUE(Register(1, kInc1).ok());
  v1::OpenWindowRequest open;
  open.set_worker_index(0);
  open.set_incarnation(kInc0);
  open.set_bytes(16);
  v1::OpenWindowResponse opened;
  ASSERT_TRUE(shard_.OpenWindow(open, &opened).ok());
  std::weak_ptr<const TransferWindows::Window> window = shard_.windows()->Get(0, kInc0);
  ASSERT_FALSE(window.expired());

  // Worker 0 waits, through its window, for version 1.
  v1::PullRequest pull;
  pull.set_worker_index(0);
  pull.set_incarnation(kInc0);
  pull.set_min_version(1);
  v1::DenseSlice* d = pull.add_dense();
  d->set_table("w");
  d->set_length(4);
  d->set_window_offset(0);
  absl::Status pulled = absl::UnknownError("not run");
  v1::PullResponse pull_response;
  std::thread waiter(
      [&] { pulled = shard_.Pull(pull, absl::Now() + absl::Seconds(20), &pull_response); });
  absl::SleepFor(absl::Milliseconds(200));

  // It leaves meanwhile: the shard forgets the window, but the waiting pull still holds it.
  ASSERT_TRUE(Leave(0, kInc0).ok());
  EXPECT_EQ(shard_.windows()->Get(0, kInc0), nullptr);
  std::shared_ptr<const TransferWindows::Window> still = window.lock();
  ASSERT_NE(still, nullptr) << "the window was freed under a waiting pull";

  // Worker 1 alone now completes step 0: every element 1 - 0.5 * 2 = 0.
  v1::PushResponse pushed;
  ASSERT_TRUE(shard_.Push(DensePush(1, 0, "w", 0, {2, 2, 2, 2}), &pushed).ok());
  waiter.join();
  ASSERT_TRUE(pulled.ok()) << pulled;
  ASSERT_EQ(pull_response.dense_size(), 1);
  EXPECT_EQ(pull_response.dense(0).version(), 1);
  std::vector<float> in_window(4);
  std::memcpy(in_window.data(), still->pull.get(), 16);
  EXPECT_EQ(in_window, std::vector<float>({0, 0, 0, 0}));
  // Nothing but this test holds the window now: nothing can write into it after this.
  still.reset();
  EXPECT_TRUE(window.expired());
}

TEST_F(ShardTest, AnotherIncarnationCannotLeaveHeartbeatOrOpenWindowsForAWorker) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  ASSERT_TRUE(Register(0, kInc0).ok());
  v1::OpenWindowRequest open;
  open.set_worker_index(0);
  open.set_incarnation(kInc0);
  open.set_bytes(16);
  v1::OpenWindowResponse opened;
  ASSERT_TRUE(shard_.OpenWindow(open, &opened).ok());

  for (uint64_t stranger : {uint64_t{0}, uint64_t{0x9999}}) {
    absl::Status s = Leave(0, stranger);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(HasReason(s, kReasonWorkerReplaced)) << s;
    v1::HeartbeatRequest beat;
    beat.set_worker_index(0);
    beat.set_incarnation(stranger);
    v1::HeartbeatResponse beat_response;
    s = shard_.Heartbeat(beat, &beat_response);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_TRUE(HasReason(s, kReasonWorkerReplaced)) << s;
    open.set_incarnation(stranger);
    s = shard_.OpenWindow(open, &opened);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  }
  // The worker is still live and its window is still there.
  EXPECT_TRUE(shard_.registry()->IsLive(0));
  EXPECT_NE(shard_.windows()->Get(0, kInc0), nullptr);
  v1::GetStatusResponse status;
  shard_.GetStatus(&status);
  EXPECT_EQ(status.window_bytes_held(), 2 * 16);  // push and pull, the shard's dense bytes
  // A windowed push from another incarnation finds no window of its own.
  v1::PushRequest push = DensePush(0, 0, "w", 0, {});
  push.mutable_dense(0)->set_length(4);
  push.mutable_dense(0)->set_window_offset(0);
  SetId(&push, 0x9999, 1, 0);
  v1::PushResponse pushed;
  absl::Status s = shard_.Push(push, &pushed);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(HasReason(s, kReasonWorkerReplaced)) << s;
  EXPECT_EQ(Values("w", 4), std::vector<float>({1, 1, 1, 1}));
  // Its own leave works and frees the window.
  ASSERT_TRUE(Leave(0, kInc0).ok());
  EXPECT_EQ(shard_.windows()->Get(0, kInc0), nullptr);
}

TEST_F(ShardTest, AWindowedCallWithoutAWindowSaysWindowGone) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  ASSERT_TRUE(Register(0, kInc0).ok());
  v1::PushRequest push = DensePush(0, 0, "w", 0, {});
  push.mutable_dense(0)->set_length(4);
  push.mutable_dense(0)->set_window_offset(0);
  SetId(&push, kInc0, 1, 0);
  v1::PushResponse pushed;
  absl::Status s = shard_.Push(push, &pushed);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(HasReason(s, kReasonWindowGone)) << s;
}

// A windowed push applied before a restart, sent again to the restarted shard (its
// ledger restored, its windows gone): a duplicate, answered before the window is looked
// for. Refused as WINDOW_GONE before, it was then resent in-band and applied twice.
TEST_F(ShardTest, ACopyOfAnAppliedWindowedPushIsADuplicateWithoutItsWindow) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  ASSERT_TRUE(Register(0, kInc0).ok());
  v1::PushRequest push = DensePush(0, 0, "w", 0, {1, 1, 1, 1});
  SetId(&push, kInc0, 1, 0);
  v1::PushResponse pushed;
  ASSERT_TRUE(shard_.Push(push, &pushed).ok());
  Shard restarted{ShardOptions()};
  restarted.ledger()->Restore(shard_.ledger()->Capture());
  v1::PushRequest copy = push;
  copy.mutable_dense(0)->clear_values();
  copy.mutable_dense(0)->set_window_offset(0);
  v1::PushResponse answer;
  absl::Status s = restarted.Push(copy, &answer);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(answer.duplicate());
  // A new push with a window it does not have is still refused, and not recorded.
  SetId(&copy, kInc0, 2, 0);
  s = restarted.Push(copy, &answer);
  EXPECT_TRUE(HasReason(s, kReasonWindowGone)) << s;
  copy.mutable_dense(0)->clear_window_offset();
  copy.mutable_dense(0)->set_values(Encode({1, 1, 1, 1}));
  v1::CreateTableRequest create;
  *create.mutable_spec() = ::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC);
  v1::CreateTableResponse created;
  ASSERT_TRUE(restarted.CreateTable(create, &created).ok());
  v1::PushResponse applied;
  EXPECT_TRUE(restarted.Push(copy, &applied).ok());
  EXPECT_FALSE(applied.duplicate());
}

// Every consistency mode applies a repeated request once and answers it OK.
TEST_F(ShardTest, ARepeatedPushIsAppliedOnceInEveryMode) {
  for (v1::ConsistencyMode mode : {v1::SYNC, v1::ASYNC, v1::SSP}) {
    const std::string name = v1::ConsistencyMode_Name(mode);
    Create(::ps::testing::OnesSgdSpec(name, 4, mode));
  }
  ASSERT_TRUE(Register(0, kInc0).ok());
  int64_t sequence = 0;
  for (v1::ConsistencyMode mode : {v1::SYNC, v1::ASYNC, v1::SSP}) {
    const std::string name = v1::ConsistencyMode_Name(mode);
    v1::PushRequest push = DensePush(0, 0, name, 0, {1, 1, 1, 1});
    SetId(&push, kInc0, ++sequence, 0);
    for (int copy = 0; copy < 3; ++copy) {
      v1::PushResponse response;
      absl::Status s = shard_.Push(push, &response);
      ASSERT_TRUE(s.ok()) << name << " copy " << copy << ": " << s;
      EXPECT_EQ(response.duplicate(), copy > 0) << name;
    }
    EXPECT_EQ(Values(name, 4), std::vector<float>({0.5f, 0.5f, 0.5f, 0.5f})) << name;
  }
  v1::GetStatusResponse status;
  shard_.GetStatus(&status);
  EXPECT_EQ(status.duplicate_pushes(), 6);
  for (const v1::TableStatus& t : status.tables()) EXPECT_EQ(t.version(), 1) << t.spec().name();
}

TEST_F(ShardTest, ARepeatedSparsePushIsAppliedOnce) {
  v1::TableSpec spec = ::ps::testing::OnesSgdSpec("emb", 1, v1::ASYNC);
  spec.clear_shape();
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(2);
  Create(spec);
  ASSERT_TRUE(Register(0, kInc0).ok());
  v1::PushRequest push;
  push.set_worker_index(0);
  v1::SparseRows* rows = push.add_sparse();
  rows->set_table("emb");
  rows->add_keys(5);
  rows->set_values(Encode({2, 4}));
  SetId(&push, kInc0, 1, 0);
  for (int copy = 0; copy < 2; ++copy) {
    v1::PushResponse response;
    ASSERT_TRUE(shard_.Push(push, &response).ok());
    EXPECT_EQ(response.duplicate(), copy > 0);
  }
  v1::PullRequest pull;
  pull.set_worker_index(0);
  v1::SparseRows* want = pull.add_sparse();
  want->set_table("emb");
  want->add_keys(5);
  v1::PullResponse pulled;
  ASSERT_TRUE(shard_.Pull(pull, absl::Now() + absl::Seconds(5), &pulled).ok());
  ASSERT_EQ(pulled.sparse_size(), 1);
  EXPECT_EQ(Decode(pulled.sparse(0).values()), std::vector<float>({0, -1}));
  EXPECT_EQ(pulled.sparse(0).version(), 1);
}

TEST_F(ShardTest, AsyncPushesOfAnUnregisteredWorkerAreExactlyOnceToo) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  v1::PushRequest push = DensePush(3, 0, "w", 0, {1, 1, 1, 1});
  SetId(&push, kInc0, 1, 0);
  for (int copy = 0; copy < 2; ++copy) {
    v1::PushResponse response;
    ASSERT_TRUE(shard_.Push(push, &response).ok());
    EXPECT_EQ(response.duplicate(), copy > 0);
  }
  EXPECT_EQ(Values("w", 4), std::vector<float>({0.5f, 0.5f, 0.5f, 0.5f}));
}

TEST_F(ShardTest, APushFromAnotherIncarnationOfARegisteredWorkerIsRefused) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  ASSERT_TRUE(Register(3, kInc1).ok());
  v1::PushRequest push = DensePush(3, 0, "w", 0, {1, 1, 1, 1});
  SetId(&push, kInc0, 1, 0);
  v1::PushResponse response;
  absl::Status s = shard_.Push(push, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(HasReason(s, kReasonWorkerReplaced)) << s;
  EXPECT_EQ(Values("w", 4), std::vector<float>({1, 1, 1, 1}));
}

TEST_F(ShardTest, APullCodesItsReplyInTheFormatEachSliceAsksFor) {
  Create(::ps::testing::OnesSgdSpec("w", 6, v1::ASYNC));
  v1::PushResponse pushed;
  // 1 - 0.5 * 0.0123 = 0.99385, which neither 16-bit format holds exactly.
  ASSERT_TRUE(shard_.Push(DensePush(-1, 0, "w", 0, std::vector<float>(6, 0.0123f)), &pushed).ok());
  const float exact = 1.0f - 0.5f * 0.0123f;
  v1::PullRequest request;
  for (v1::ValueFormat f : {v1::FLOAT32, v1::BFLOAT16, v1::FLOAT16}) {
    v1::DenseSlice* d = request.add_dense();
    d->set_table("w");
    d->set_offset(2 * static_cast<int>(f));
    d->set_length(2);
    d->set_format(f);
  }
  v1::PullResponse response;
  ASSERT_TRUE(shard_.Pull(request, absl::Now() + absl::Seconds(5), &response).ok());
  ASSERT_EQ(response.dense_size(), 3);
  EXPECT_EQ(Decode(response.dense(0).values()), std::vector<float>(2, exact));
  for (int i : {1, 2}) {
    const v1::DenseSlice& d = response.dense(i);
    ASSERT_EQ(d.values().size(), 4u) << i;
    EXPECT_EQ(d.format(), i == 1 ? v1::BFLOAT16 : v1::FLOAT16);
    float got[2];
    DecodeValues(d.format(), d.values().data(), 2, got);
    const float want =
        i == 1 ? Bfloat16ToFloat(FloatToBfloat16(exact)) : Float16ToFloat(FloatToFloat16(exact));
    EXPECT_EQ(got[0], want) << i;
    EXPECT_EQ(got[1], want) << i;
  }
}

TEST_F(ShardTest, UnknownFormatsAnd16BitValuesInTheMessageAreRefusedAndChangeNothing) {
  Create(::ps::testing::OnesSgdSpec("w", 4, v1::ASYNC));
  v1::PullRequest pull;
  v1::DenseSlice* d = pull.add_dense();
  d->set_table("w");
  d->set_length(4);
  d->set_format(static_cast<v1::ValueFormat>(5));
  v1::PullResponse pulled;
  absl::Status s = shard_.Pull(pull, absl::Now() + absl::Seconds(5), &pulled);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("table 'w' slice at 0 asks for value format 5"), std::string::npos)
      << s;
  // 16-bit values reach a shard only through the wire decoder, which widens them.
  v1::PushRequest push = DensePush(-1, 0, "w", 0, {1, 1});
  push.mutable_dense(0)->set_length(4);
  push.mutable_dense(0)->set_format(v1::BFLOAT16);
  v1::PushResponse pushed;
  s = shard_.Push(push, &pushed);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("carries bf16 values, which only the wire decoder reads"),
            std::string::npos)
      << s;
  pull.mutable_dense(0)->set_format(v1::FLOAT32);
  ASSERT_TRUE(shard_.Pull(pull, absl::Now() + absl::Seconds(5), &pulled).ok());
  EXPECT_EQ(Decode(pulled.dense(0).values()), std::vector<float>(4, 1.0f));
}

}  // namespace
}  // namespace ps
