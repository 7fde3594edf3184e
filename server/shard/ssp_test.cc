// Stale-synchronous parallel tables in ParameterStore: a pull waits while the slowest live
// worker is more than `staleness_bound` clocks behind, and is released by that worker's
// push, its departure or shutdown; late joiners start at the slowest clock. Also the
// staleness figures that async and SSP tables report.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/shard/parameter_store.h"
#include "server/shard/worker_registry.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Encode;

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Long enough never to expire in a passing test; tests that expect a timeout pass a
// short one of their own.
constexpr absl::Duration kLongWait = absl::Seconds(5);
constexpr absl::Duration kShortWait = absl::Milliseconds(50);

v1::TableSpec DenseSpec(const std::string& name, v1::ConsistencyMode mode, int bound = 0) {
  v1::TableSpec spec = ::ps::testing::OnesSgdSpec(name, 4, mode);
  spec.set_staleness_bound(bound);
  return spec;
}

v1::TableSpec SparseSpec(const std::string& name, v1::ConsistencyMode mode, int bound = 0) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(2);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.5f);
  spec.set_consistency(mode);
  spec.set_staleness_bound(bound);
  return spec;
}

class SspTest : public ::testing::Test {
 protected:
  SspTest()
      : registry_(absl::Seconds(10), [this] { return now_; }),
        store_(StoreOptions(), &registry_) {}
  ~SspTest() override {
    if (puller_.joinable()) puller_.join();
  }

  void SetUp() override {
    Create(DenseSpec("w", v1::SSP, /*bound=*/2));
    Join(0, 0);
    Join(1, 0);
  }

  void Create(const v1::TableSpec& spec) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    ASSERT_TRUE(store_.CreateTable(request, &response).ok()) << spec.name();
  }

  // Registers a worker as the RegisterWorker RPC does.
  void Join(int worker, int64_t clock) {
    ASSERT_TRUE(registry_.Register(worker, "host", "cpu").ok());
    store_.OnWorkerRegistered(worker, clock);
  }

  // Pulls all of dense table `table` as `worker` at `clock`.
  absl::Status PullAt(int worker, int64_t clock, absl::Duration wait = kLongWait,
                      const std::string& table = "w") {
    v1::PullRequest request;
    request.set_worker_index(worker);
    request.set_clock(clock);
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table(table);
    slice->set_offset(0);
    slice->set_length(4);
    v1::PullResponse response;
    return store_.Pull(request, absl::Now() + wait, &response);
  }

  // Pushes a gradient of ones to all of `table` as `worker`, now at `clock`.
  absl::Status PushAt(int worker, int64_t clock, int64_t step = 0,
                      const std::string& table = "w") {
    v1::PushRequest request;
    request.set_worker_index(worker);
    request.set_step(step);
    request.set_clock(clock);
    *request.add_dense() = Ones(table);
    v1::PushResponse response;
    return store_.Push(request, &response);
  }

  static v1::DenseSlice Ones(const std::string& table) {
    v1::DenseSlice slice;
    slice.set_table(table);
    slice.set_offset(0);
    slice.set_length(4);
    slice.set_values(Encode({1, 1, 1, 1}));
    return slice;
  }

  v1::TableStatus StatusOf(const std::string& table) {
    v1::GetStatusResponse status;
    store_.FillStatus(&status);
    for (const v1::TableStatus& t : status.tables()) {
      if (t.spec().name() == table) return t;
    }
    ADD_FAILURE() << "no status for table " << table;
    return v1::TableStatus();
  }

  // Starts a pull by `worker` at `clock` on another thread; Finish() joins it.
  void StartPull(int worker, int64_t clock) {
    puller_ = std::thread([this, worker, clock] {
      pulled_ = PullAt(worker, clock, kLongWait);
      done_.store(true);
    });
  }

  absl::Status Finish() {
    puller_.join();
    return pulled_;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  WorkerRegistry registry_;
  ParameterStore store_;
  std::thread puller_;
  std::atomic<bool> done_{false};
  absl::Status pulled_;
};

// The slowest worker's own pull raises its clock (it may push nothing to this shard):
// that alone answers the faster worker's parked pull, long before its deadline.
TEST_F(SspTest, TheSlowestWorkersPullWakesAPullWaitingForIt) {
  StartPull(1, 4);  // bound 2: waits for worker 0 to reach clock 2
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(done_.load());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(PullAt(0, 2).ok());  // worker 0 at clock 2; its own bound is met
  EXPECT_TRUE(Finish().ok());
  EXPECT_LT(absl::Now() - start, kLongWait / 2);
}

TEST_F(SspTest, PullWithinTheBoundDoesNotWait) {
  // Worker 1 at clock 0: worker 0 may be up to 2 ahead.
  for (int64_t clock = 0; clock <= 2; ++clock) {
    EXPECT_TRUE(PullAt(0, clock, kShortWait).ok()) << clock;
  }
  EXPECT_TRUE(PullAt(1, 0, kShortWait).ok());
  // Tools (worker -1) never wait.
  EXPECT_TRUE(PullAt(-1, 0, kShortWait).ok());
}

TEST_F(SspTest, PullTooFarAheadTimesOutNamingTheTableAndTheBound) {
  absl::Status s = PullAt(0, 3, kShortWait);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("'w'"));
  EXPECT_THAT(s.message(), HasSubstr("worker 0 at clock 3"));
  EXPECT_THAT(s.message(), HasSubstr("staleness bound 2"));
  EXPECT_THAT(s.message(), HasSubstr("slowest is at 0"));

  // Worker 1 finishes its first clock: worker 0 may now be at 3, not yet at 4.
  ASSERT_TRUE(PushAt(1, 1).ok());
  EXPECT_TRUE(PullAt(0, 3, kShortWait).ok());
  s = PullAt(0, 4, kShortWait);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("slowest is at 1"));
}

TEST_F(SspTest, BlockedPullIsReleasedByTheSlowestWorkersPush) {
  const absl::Time start = absl::Now();
  StartPull(0, 3);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(done_.load()) << "pull at clock 3 returned while worker 1 is at 0";
  ASSERT_TRUE(PushAt(1, 1).ok());
  EXPECT_TRUE(Finish().ok()) << pulled_;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));  // released, not timed out
}

TEST_F(SspTest, PushOfANonSspTableDoesNotAdvanceTheClock) {
  Create(DenseSpec("a", v1::ASYNC));
  ASSERT_TRUE(PushAt(1, 1, 0, "a").ok());
  EXPECT_EQ(PullAt(0, 3, kShortWait).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(PushAt(1, 1).ok());
  EXPECT_TRUE(PullAt(0, 3, kShortWait).ok());
}

TEST_F(SspTest, DepartingWorkerReleasesTheWaiter) {
  const absl::Time start = absl::Now();
  StartPull(0, 5);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(done_.load());
  ASSERT_TRUE(registry_.Leave(1).ok());
  store_.OnMembershipChange();
  EXPECT_TRUE(Finish().ok()) << pulled_;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // Alone, worker 0 never waits.
  EXPECT_TRUE(PullAt(0, 100, kShortWait).ok());
}

TEST_F(SspTest, ExpiredWorkerNoLongerHoldsOthersBack) {
  EXPECT_EQ(PullAt(0, 3, kShortWait).code(), absl::StatusCode::kDeadlineExceeded);
  now_ += absl::Seconds(11);
  ASSERT_TRUE(registry_.Heartbeat(0, v1::WorkerStats()).ok());  // worker 0 stays fresh
  EXPECT_THAT(registry_.ExpireStale(), ElementsAre(1));
  store_.OnMembershipChange();  // as the server's expiry loop does
  EXPECT_TRUE(PullAt(0, 3, kShortWait).ok());
}

TEST_F(SspTest, ShutdownWakesTheWaiterWithUnavailable) {
  StartPull(0, 3);
  absl::SleepFor(absl::Milliseconds(50));
  store_.Shutdown();
  EXPECT_EQ(Finish().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SspTest, LateWorkerStartsAtTheSlowestClockAndDoesNotBlockOthers) {
  for (int64_t clock = 1; clock <= 10; ++clock) {
    ASSERT_TRUE(PullAt(0, clock, kShortWait).ok()) << clock;
    ASSERT_TRUE(PushAt(0, clock).ok());
    ASSERT_TRUE(PullAt(1, clock, kShortWait).ok()) << clock;
    ASSERT_TRUE(PushAt(1, clock).ok());
  }
  Join(2, 0);  // a fresh process: 0 steps done
  // Worker 2 counts as being at 10, so worker 0 may run to 12 and no further.
  EXPECT_TRUE(PullAt(0, 12, kShortWait).ok());
  absl::Status s = PullAt(0, 13, kShortWait);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("slowest is at 10"));
  // Worker 2's own clocks count from there: its first step puts it at 11.
  EXPECT_TRUE(PullAt(2, 0, kShortWait).ok());
  ASSERT_TRUE(PushAt(2, 1).ok());
  EXPECT_EQ(PullAt(0, 13, kShortWait).code(), absl::StatusCode::kDeadlineExceeded);  // 1 at 10
  ASSERT_TRUE(PushAt(1, 11).ok());
  EXPECT_TRUE(PullAt(0, 13, kShortWait).ok());
  // And worker 2 is waited for like anyone: 11 + 2 = 13 is the limit.
  EXPECT_EQ(PullAt(0, 14, kShortWait).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SspTest, RejoiningWorkerWithCompletedStepsIsPlacedAtTheSlowestClock) {
  for (int64_t clock = 1; clock <= 6; ++clock) ASSERT_TRUE(PushAt(0, clock).ok());
  ASSERT_TRUE(registry_.Leave(1).ok());
  store_.OnMembershipChange();
  // Worker 1 restarts having completed 2 steps; it joins at worker 0's clock, 6.
  Join(1, 2);
  EXPECT_TRUE(PullAt(0, 8, kShortWait).ok());
  EXPECT_EQ(PullAt(0, 9, kShortWait).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(PushAt(1, 3).ok());  // 6 + (3 - 2)
  EXPECT_TRUE(PullAt(0, 9, kShortWait).ok());
}

TEST_F(SspTest, PullOfSeveralTablesWaitsForTheTightestBound) {
  Create(DenseSpec("loose", v1::SSP, /*bound=*/5));
  Create(SparseSpec("tight", v1::SSP, /*bound=*/1));
  EXPECT_TRUE(PullAt(0, 5, kShortWait, "loose").ok());
  v1::PullRequest request;
  request.set_worker_index(0);
  request.set_clock(2);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table("loose");
  slice->set_offset(0);
  slice->set_length(4);
  v1::SparseRows* rows = request.add_sparse();
  rows->set_table("tight");
  rows->add_keys(12);
  v1::PullResponse response;
  absl::Status s = store_.Pull(request, absl::Now() + kShortWait, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("'tight'"));
  EXPECT_THAT(s.message(), HasSubstr("staleness bound 1"));

  // A push of the sparse SSP table advances worker 1's clock too.
  v1::PushRequest push;
  push.set_worker_index(1);
  push.set_clock(1);
  v1::SparseRows* grads = push.add_sparse();
  grads->set_table("tight");
  grads->add_keys(12);
  grads->set_values(Encode({1, 1}));
  v1::PushResponse pushed;
  ASSERT_TRUE(store_.Push(push, &pushed).ok());
  v1::PullResponse again;
  ASSERT_TRUE(store_.Pull(request, absl::Now() + kShortWait, &again).ok());
  ASSERT_EQ(again.sparse_size(), 1);
  EXPECT_EQ(again.sparse(0).version(), 1);
  ASSERT_EQ(again.dense_size(), 1);
}

// ---------------------------------------------------------------------------------------
// Staleness figures

TEST_F(SspTest, AsyncStalenessFiguresMeasureTheVersionLag) {
  Create(DenseSpec("a", v1::ASYNC));
  for (int64_t step = 0; step < 3; ++step) ASSERT_TRUE(PushAt(0, 0, step, "a").ok());
  v1::TableStatus status = StatusOf("a");
  EXPECT_EQ(status.version(), 3);
  EXPECT_EQ(status.max_staleness(), 0);
  EXPECT_THAT(status.mean_staleness(), DoubleEq(0.0));
  // Computed from version 0 while the table is at 3.
  ASSERT_TRUE(PushAt(1, 0, /*step=*/0, "a").ok());
  status = StatusOf("a");
  EXPECT_EQ(status.version(), 4);
  EXPECT_EQ(status.max_staleness(), 3);
  EXPECT_THAT(status.mean_staleness(), DoubleEq(0.75));  // (0 + 0 + 0 + 3) / 4
  // Lag 1, and a step from the future counts as 0.
  ASSERT_TRUE(PushAt(0, 0, /*step=*/3, "a").ok());
  ASSERT_TRUE(PushAt(0, 0, /*step=*/99, "a").ok());
  status = StatusOf("a");
  EXPECT_EQ(status.version(), 6);
  EXPECT_EQ(status.max_staleness(), 3);
  EXPECT_THAT(status.mean_staleness(), DoubleEq(4.0 / 6.0));
  EXPECT_EQ(status.pushes(), 6);
}

TEST_F(SspTest, SparseAndSspStalenessFiguresMeasureTheVersionLag) {
  Create(SparseSpec("s", v1::ASYNC));
  for (int64_t step : {0, 1, 2, 0, 1}) {  // lags 0, 0, 0, 3, 3
    v1::PushRequest request;
    request.set_worker_index(0);
    request.set_step(step);
    v1::SparseRows* rows = request.add_sparse();
    rows->set_table("s");
    rows->add_keys(step);
    rows->set_values(Encode({1, 1}));
    v1::PushResponse response;
    ASSERT_TRUE(store_.Push(request, &response).ok());
  }
  v1::TableStatus status = StatusOf("s");
  EXPECT_EQ(status.version(), 5);
  EXPECT_EQ(status.max_staleness(), 3);
  EXPECT_THAT(status.mean_staleness(), DoubleEq(6.0 / 5.0));

  // The SSP table "w" measures the same way.
  ASSERT_TRUE(PushAt(0, 1, /*step=*/0).ok());
  ASSERT_TRUE(PushAt(1, 1, /*step=*/0).ok());  // lag 1
  status = StatusOf("w");
  EXPECT_EQ(status.version(), 2);
  EXPECT_EQ(status.max_staleness(), 1);
  EXPECT_THAT(status.mean_staleness(), DoubleEq(0.5));
}

}  // namespace
}  // namespace ps
