#include "server/shard/parameter_store.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/placement.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/shard/worker_registry.h"
#include "server/table/initializer.h"
#include "server/table/optimizer.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr absl::Duration kHeartbeatTimeout = absl::Seconds(10);
// Long enough never to expire in a passing test; the tests that wait for a timeout pass a
// short deadline of their own.
constexpr absl::Duration kLongWait = absl::Seconds(5);

// Dense table specs. Learning rates and values in the exact-value tests are dyadic
// (0.5, 0.25, small integers), so every update is exact in float32 with or without FMA.
v1::TableSpec DenseSpec(const std::string& name, std::vector<int64_t> shape,
                        v1::ConsistencyMode mode, float learning_rate, float initial = 1.0f) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::DENSE);
  for (int64_t d : shape) spec.add_shape(d);
  spec.mutable_initializer()->set_kind(v1::Initializer::CONSTANT);
  spec.mutable_initializer()->set_value(initial);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, learning_rate);
  spec.set_consistency(mode);
  return spec;
}

v1::DenseSlice Slice(const std::string& table, int64_t offset, const std::vector<float>& values) {
  v1::DenseSlice slice;
  slice.set_table(table);
  slice.set_offset(offset);
  slice.set_length(static_cast<int64_t>(values.size()));
  slice.set_values(Encode(values));
  return slice;
}

struct Pulled {
  std::vector<float> values;
  int64_t version = -1;
};

class ParameterStoreTest : public ::testing::Test {
 protected:
  ParameterStoreTest() : registry_(kHeartbeatTimeout, [this] { return now(); }) {
    ResetStore(StoreOptions());
  }

  void ResetStore(const StoreOptions& options) {
    store_ = std::make_unique<ParameterStore>(options, &registry_);
  }

  // The clock is read and moved only on the test's main thread.
  absl::Time now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

  absl::Status Create(const v1::TableSpec& spec, v1::CreateTableResponse* response = nullptr) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse ignored;
    return store_->CreateTable(request, response ? response : &ignored);
  }

  // Creates a table the test needs; failing is a broken test, not a finding.
  void MustCreate(const v1::TableSpec& spec) { ASSERT_TRUE(Create(spec).ok()) << spec.name(); }

  absl::StatusOr<Pulled> Pull(const std::string& table, int64_t offset, int64_t length,
                              int64_t min_version = 0,
                              absl::Duration wait = kLongWait) {
    v1::PullRequest request;
    request.set_worker_index(-1);
    request.set_min_version(min_version);
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table(table);
    slice->set_offset(offset);
    slice->set_length(length);
    v1::PullResponse response;
    absl::Status s = store_->Pull(request, absl::Now() + wait, &response);
    if (!s.ok()) return s;
    if (response.dense_size() != 1) return absl::InternalError("expected one slice");
    const v1::DenseSlice& out = response.dense(0);
    EXPECT_EQ(out.table(), table);
    EXPECT_EQ(out.offset(), offset);
    EXPECT_EQ(out.length(), length);
    return Pulled{Decode(out.values()), out.version()};
  }

  // Pulls a whole table; a failure is reported and yields no values.
  Pulled PullAll(const std::string& table, int64_t n) {
    absl::StatusOr<Pulled> p = Pull(table, 0, n);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : Pulled();
  }

  absl::Status PushSlices(int worker, int64_t step, std::vector<v1::DenseSlice> slices,
                          v1::PushResponse* response = nullptr) {
    v1::PushRequest request;
    request.set_worker_index(worker);
    request.set_step(step);
    for (v1::DenseSlice& s : slices) *request.add_dense() = std::move(s);
    v1::PushResponse ignored;
    return store_->Push(request, response ? response : &ignored);
  }

  absl::Status Push(int worker, int64_t step, const std::string& table, int64_t offset,
                    const std::vector<float>& grad) {
    return PushSlices(worker, step, {Slice(table, offset, grad)});
  }

  void RegisterWorkers(int n) {
    for (int w = 0; w < n; ++w) ASSERT_TRUE(registry_.Register(w, "host", "cpu").ok());
  }

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  WorkerRegistry registry_;
  std::unique_ptr<ParameterStore> store_;
};

// ---------------------------------------------------------------------------------------
// Creating tables

TEST_F(ParameterStoreTest, CreateThenPullReturnsInitialValues) {
  v1::TableSpec spec = DenseSpec("w", {3, 5}, v1::ASYNC, 0.1f);
  spec.mutable_initializer()->set_kind(v1::Initializer::UNIFORM);
  spec.mutable_initializer()->set_low(-1);
  spec.mutable_initializer()->set_high(1);
  spec.mutable_initializer()->set_seed(17);
  v1::CreateTableResponse response;
  ASSERT_TRUE(Create(spec, &response).ok());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.version(), 0);
  EXPECT_EQ(response.elements_on_shard(), 15);

  std::vector<float> expected(15);
  FillInitial(spec.initializer(), 0, 15, expected.data());
  Pulled p = PullAll("w", 15);
  EXPECT_THAT(p.values, ElementsAreArray(expected));
  EXPECT_EQ(p.version, 0);
  // A sub-range reads the same elements.
  absl::StatusOr<Pulled> part = Pull("w", 4, 3);
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_THAT(part->values, ElementsAre(expected[4], expected[5], expected[6]));
}

TEST_F(ParameterStoreTest, IdenticalCreateIsOkAndDifferentShapeIsAlreadyExists) {
  const v1::TableSpec spec = DenseSpec("emb", {4}, v1::ASYNC, 0.5f);
  MustCreate(spec);
  ASSERT_TRUE(Push(0, 0, "emb", 0, {2, 2, 2, 2}).ok());

  v1::CreateTableResponse again;
  ASSERT_TRUE(Create(spec, &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.version(), 1);
  EXPECT_EQ(again.elements_on_shard(), 4);

  absl::Status s = Create(DenseSpec("emb", {2, 2}, v1::ASYNC, 0.5f));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("'emb'"));
  EXPECT_THAT(s.message(), HasSubstr("shape"));

  s = Create(DenseSpec("emb", {4}, v1::SYNC, 0.5f));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("consistency"));
  s = Create(DenseSpec("emb", {4}, v1::ASYNC, 0.25f));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("optimizer.learning_rate: 0.5 vs requested 0.25"));
  EXPECT_THAT(s.message(), HasSubstr("The model lives on the shards until they stop"));

  // The table kept its values and version.
  Pulled p = PullAll("emb", 4);
  EXPECT_THAT(p.values, Each(0.0f));
  EXPECT_EQ(p.version, 1);
}

// ---------------------------------------------------------------------------------------
// ASYNC

TEST_F(ParameterStoreTest, AsyncPushAppliesSgdImmediately) {
  MustCreate(DenseSpec("w", {4}, v1::ASYNC, 0.5f, /*initial=*/1.0f));
  v1::PushResponse response;
  ASSERT_TRUE(PushSlices(-1, 0, {Slice("w", 0, {1, 2, -4, 0.5f})}, &response).ok());
  EXPECT_THAT(response.dense_versions(), ElementsAre(1));
  Pulled p = PullAll("w", 4);
  EXPECT_THAT(p.values, ElementsAre(0.5f, 0.0f, 3.0f, 0.75f));  // p - 0.5 * g
  EXPECT_EQ(p.version, 1);

  // Async ignores the step, and a push of part of the range updates only that part.
  v1::PushResponse response2;
  ASSERT_TRUE(PushSlices(3, 99, {Slice("w", 1, {2, -2})}, &response2).ok());
  EXPECT_THAT(response2.dense_versions(), ElementsAre(2));
  p = PullAll("w", 4);
  EXPECT_THAT(p.values, ElementsAre(0.5f, -1.0f, 4.0f, 0.75f));
  EXPECT_EQ(p.version, 2);
}

// An Adam spec with only kind, learning rate and epsilon is PyTorch's Adam (beta1 0.9,
// beta2 0.999), not Adam with zero betas; and it is the same table as the spec with
// every default spelled out.
TEST_F(ParameterStoreTest, AbsentHyperParametersArePyTorchDefaults) {
  v1::TableSpec partial = DenseSpec("w", {2}, v1::ASYNC, 0.1f, /*initial=*/1.0f);
  partial.clear_optimizer();
  partial.mutable_optimizer()->set_kind(v1::OptimizerSpec::ADAM);
  partial.mutable_optimizer()->set_learning_rate(0.1f);
  partial.mutable_optimizer()->set_epsilon(1e-8f);
  MustCreate(partial);
  v1::TableSpec full = partial;
  *full.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.1f);
  v1::CreateTableResponse again;
  ASSERT_TRUE(Create(full, &again).ok());
  EXPECT_FALSE(again.created());
  // Two Adam steps with g = 1 and g = -2 (torch.optim.Adam, betas (0.9, 0.999)).
  ASSERT_TRUE(Push(-1, 0, "w", 0, {1, 1}).ok());
  ASSERT_TRUE(Push(-1, 1, "w", 0, {-2, -2}).ok());
  const float m1 = 0.1f, v1 = 0.001f;                       // after g = 1
  const float m2 = 0.9f * m1 - 0.2f, v2 = 0.999f * v1 + 0.001f * 4;  // after g = -2
  const float p1 = 1.0f - 0.1f * (m1 / 0.1f) / (std::sqrt(v1 / 0.001f) + 1e-8f);
  const float p2 = p1 - 0.1f * (m2 / (1 - 0.81f)) / (std::sqrt(v2 / (1 - 0.999f * 0.999f)) + 1e-8f);
  Pulled p = PullAll("w", 2);
  ASSERT_EQ(p.values.size(), 2u);
  EXPECT_NEAR(p.values[0], p2, 1e-6f);
  v1::GetStatusResponse status;
  store_->FillStatus(&status);
  ASSERT_EQ(status.tables_size(), 1);
  EXPECT_FLOAT_EQ(status.tables(0).spec().optimizer().beta1(), 0.9f);
  EXPECT_FLOAT_EQ(status.tables(0).spec().optimizer().beta2(), 0.999f);
}

TEST_F(ParameterStoreTest, AsyncConcurrentPushesAreAllApplied) {
  constexpr int kThreads = 4, kPushes = 250, kElements = 64;
  MustCreate(DenseSpec("w", {kElements}, v1::ASYNC, 0.001f, /*initial=*/0.0f));
  const std::vector<float> ones(kElements, 1.0f);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPushes; ++i) {
        if (!Push(t, 0, "w", 0, ones).ok()) failures.fetch_add(1);
      }
    });
  }
  // A concurrent reader sees versions that never go back.
  std::thread reader([&] {
    int64_t last = 0;
    for (int i = 0; i < 200; ++i) {
      absl::StatusOr<Pulled> p = Pull("w", 0, kElements);
      if (!p.ok() || p->version < last) failures.fetch_add(1);
      if (p.ok()) last = p->version;
    }
  });
  for (std::thread& t : threads) t.join();
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  Pulled p = PullAll("w", kElements);
  EXPECT_EQ(p.version, kThreads * kPushes);
  EXPECT_THAT(p.values, Each(FloatNear(-1000 * 0.001f, 1e-4f)));
}

// ---------------------------------------------------------------------------------------
// SYNC

TEST_F(ParameterStoreTest, SyncStepWaitsForEveryWorkerThenAppliesTheAverage) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  v1::PushResponse response;
  ASSERT_TRUE(PushSlices(0, 0, {Slice("w", 0, {1, 2, 3, 4})}, &response).ok());
  EXPECT_THAT(response.dense_versions(), ElementsAre(0));
  Pulled p = PullAll("w", 4);
  EXPECT_THAT(p.values, Each(1.0f));
  EXPECT_EQ(p.version, 0);

  absl::StatusOr<Pulled> early = Pull("w", 0, 4, /*min_version=*/1, absl::Milliseconds(50));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(early.status().message(), HasSubstr("'w'"));

  std::atomic<bool> done{false};
  absl::StatusOr<Pulled> waited;
  std::thread puller([&] {
    waited = Pull("w", 0, 4, /*min_version=*/1);
    done.store(true);
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(done.load()) << "pull for version 1 returned before the step finished";
  v1::PushResponse last;
  ASSERT_TRUE(PushSlices(1, 0, {Slice("w", 0, {3, 2, -1, 0})}, &last).ok());
  EXPECT_THAT(last.dense_versions(), ElementsAre(1));
  puller.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  // Average gradient {2, 2, 1, 2}; p - 0.5 * avg.
  EXPECT_THAT(waited->values, ElementsAre(0.0f, 0.0f, 0.5f, 0.0f));
  EXPECT_EQ(waited->version, 1);
}

TEST_F(ParameterStoreTest, SyncPushForAnotherStepIsFailedPrecondition) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f));
  absl::Status s = Push(0, 1, "w", 0, {1, 1, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("'w'"));
  EXPECT_THAT(s.message(), HasSubstr("step 1"));
  // The rejected push left no trace: the step still needs both workers.
  ASSERT_TRUE(Push(0, 0, "w", 0, {1, 1, 1, 1}).ok());
  EXPECT_EQ(PullAll("w", 4).version, 0);
  ASSERT_TRUE(Push(1, 0, "w", 0, {1, 1, 1, 1}).ok());
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.5f));
  // Now step 0 is in the past.
  s = Push(0, 0, "w", 0, {1, 1, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("step 0"));
}

TEST_F(ParameterStoreTest, SyncSameRangeTwiceInOneStepIsAlreadyExists) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {8}, v1::SYNC, 0.5f));
  ASSERT_TRUE(Push(0, 0, "w", 0, std::vector<float>(8, 1.0f)).ok());
  absl::Status s = Push(0, 0, "w", 0, std::vector<float>(8, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("'w'"));
  EXPECT_THAT(s.message(), HasSubstr("worker 0"));
  // Partial overlap with an earlier chunk is caught too.
  ASSERT_TRUE(Push(1, 0, "w", 0, {1, 1, 1, 1}).ok());
  s = Push(1, 0, "w", 2, {1, 1, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("[2, 4)"));
  // The duplicate was not counted: worker 0's gradient weighs once in the average.
  ASSERT_TRUE(Push(1, 0, "w", 4, {3, 3, 3, 3}).ok());
  Pulled p = PullAll("w", 8);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, ElementsAre(0.5f, 0.5f, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f));
}

TEST_F(ParameterStoreTest, SyncPushFromUnregisteredWorkerIsFailedPrecondition) {
  RegisterWorkers(1);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f));
  absl::Status s = Push(7, 0, "w", 0, {1, 1, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("'w'"));
  EXPECT_THAT(s.message(), HasSubstr("worker 7"));
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 0);
  EXPECT_THAT(p.values, Each(1.0f));
}

TEST_F(ParameterStoreTest, SyncChunkedPushesCompleteTheStepOnlyWhenEveryRangeIsCovered) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {8}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  const std::vector<float> g0_lo = {0, 1, 2, 3}, g0_hi = {4, 5, 6, 7};
  const std::vector<float> g1_lo = {2, 2, 2, 2}, g1_hi = {2, 2, 2, 2};
  ASSERT_TRUE(Push(0, 0, "w", 0, g0_lo).ok());
  EXPECT_EQ(PullAll("w", 8).version, 0);
  ASSERT_TRUE(Push(1, 0, "w", 4, g1_hi).ok());
  EXPECT_EQ(PullAll("w", 8).version, 0);
  ASSERT_TRUE(Push(1, 0, "w", 0, g1_lo).ok());  // worker 1 complete, worker 0 not yet
  Pulled p = PullAll("w", 8);
  EXPECT_EQ(p.version, 0);
  EXPECT_THAT(p.values, Each(1.0f));
  ASSERT_TRUE(Push(0, 0, "w", 4, g0_hi).ok());
  p = PullAll("w", 8);
  EXPECT_EQ(p.version, 1);
  // avg_i = (i + 2) / 2, p_i = 1 - 0.5 * avg_i.
  std::vector<float> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(1.0f - (i + 2) / 4.0f);
  EXPECT_THAT(p.values, ElementsAreArray(expected));
}

TEST_F(ParameterStoreTest, SyncTwoSlicesOfOneRequestCoverTheRange) {
  RegisterWorkers(1);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  v1::PushResponse response;
  ASSERT_TRUE(
      PushSlices(0, 0, {Slice("w", 2, {4, 4}), Slice("w", 0, {2, 2})}, &response).ok());
  EXPECT_THAT(response.dense_versions(), ElementsAre(1, 1));
  EXPECT_THAT(PullAll("w", 4).values, ElementsAre(0.0f, 0.0f, -1.0f, -1.0f));
}

// A push of 100,000 one-element slices, in reverse order: the request's overlap check
// sorts (n log n), so it is checked and applied in well under a second (the pairwise
// check it replaces took 16 s here, and 79 s for 160,000 slices). The bound is a guard
// against quadratic checks coming back, over 10 times the usual time, not a speed figure
// (docs/reliability.md). The sync spans' lookup is tested below.
TEST_F(ParameterStoreTest, AHundredThousandSlicePushIsCheckedInNLogN) {
  constexpr int64_t kSlices = 100'000;
  RegisterWorkers(1);
  MustCreate(DenseSpec("w", {kSlices}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  MustCreate(DenseSpec("a", {kSlices}, v1::ASYNC, 0.5f, /*initial=*/1.0f));
  auto slices = [&](const std::string& table, int64_t overlap_at) {
    std::vector<v1::DenseSlice> out;
    for (int64_t i = kSlices - 1; i >= 0; --i) out.push_back(Slice(table, i, {2}));
    if (overlap_at >= 0) out.push_back(Slice(table, overlap_at, {2}));
    return out;
  };
  // One repeated element among 100,001 slices is found, and nothing is applied.
  absl::Status s = PushSlices(-1, 0, slices("a", 4'321));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("overlapping ranges at 4321 and 4321"));
  EXPECT_EQ(PullAll("a", kSlices).version, 0);

  const absl::Time start = absl::Now();
  ASSERT_TRUE(PushSlices(0, 0, slices("w", -1)).ok());
  const absl::Duration took = absl::Now() - start;
  Pulled p = PullAll("w", kSlices);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.0f));
  EXPECT_LT(took, absl::Seconds(5)) << "quadratic slice checks?";
  // The step is done: the same elements again are a push for a past step.
  EXPECT_EQ(PushSlices(0, 0, slices("w", -1)).code(), absl::StatusCode::kFailedPrecondition);
}

// Within a sync step, a worker's chunk that overlaps one it pushed before is refused
// whichever chunk it meets (the pushed spans are kept sorted).
TEST_F(ParameterStoreTest, SyncChunkOverlappingAnEarlierChunkIsAlreadyExists) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {10}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  ASSERT_TRUE(Push(0, 0, "w", 6, {1, 1}).ok());
  ASSERT_TRUE(Push(0, 0, "w", 0, {1, 1}).ok());
  ASSERT_TRUE(Push(0, 0, "w", 3, {1, 1}).ok());
  for (int64_t offset : {0, 1, 4, 5, 7}) {
    absl::Status s = Push(0, 0, "w", offset, {1, 1});
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << offset;
  }
  EXPECT_TRUE(Push(0, 0, "w", 8, {1, 1}).ok());
  EXPECT_TRUE(Push(0, 0, "w", 2, {1}).ok());
  EXPECT_TRUE(Push(0, 0, "w", 5, {1}).ok());
  EXPECT_EQ(PullAll("w", 10).version, 0);  // worker 1 has pushed nothing yet
}

TEST_F(ParameterStoreTest, SyncStepFinishesWhenAWorkerLeaves) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {2, 4, 6, 8}).ok());
  store_->OnMembershipChange();  // nothing changed: still waiting for worker 1
  EXPECT_EQ(PullAll("w", 4).version, 0);
  ASSERT_TRUE(registry_.Leave(1).ok());
  store_->OnMembershipChange();
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, ElementsAre(0.0f, -1.0f, -2.0f, -3.0f));  // worker 0's alone
  // The next step needs only worker 0.
  ASSERT_TRUE(Push(0, 1, "w", 0, {2, 2, 2, 2}).ok());
  EXPECT_EQ(PullAll("w", 4).version, 2);
}

TEST_F(ParameterStoreTest, SyncPartialPushOfADepartedWorkerDoesNotSkewTheAverage) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {2, 2, 2, 2}).ok());
  ASSERT_TRUE(Push(1, 0, "w", 0, {100, 100}).ok());  // half its range, then it dies
  ASSERT_TRUE(registry_.Leave(1).ok());
  store_->OnMembershipChange();
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.0f));  // worker 0's gradient alone, divided by 1
}

TEST_F(ParameterStoreTest, SyncStepFinishesWhenASilentWorkerExpires) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f));
  Advance(absl::Seconds(6));
  ASSERT_TRUE(registry_.Heartbeat(0, v1::WorkerStats()).ok());
  ASSERT_TRUE(Push(0, 0, "w", 0, {2, 2, 2, 2}).ok());
  Advance(absl::Seconds(4));  // worker 1 silent for exactly the timeout: still live
  EXPECT_TRUE(registry_.ExpireStale().empty());
  store_->OnMembershipChange();
  EXPECT_EQ(PullAll("w", 4).version, 0);
  Advance(absl::Seconds(1));
  EXPECT_THAT(registry_.ExpireStale(), ElementsAre(1));
  store_->OnMembershipChange();
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.0f));

  // Worker 1 comes back: its stale push is refused, and it counts again from step 1.
  ASSERT_TRUE(registry_.Register(1, "host", "cpu").ok());
  EXPECT_EQ(Push(1, 0, "w", 0, {2, 2, 2, 2}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Push(0, 1, "w", 0, {2, 2, 2, 2}).ok());
  EXPECT_EQ(PullAll("w", 4).version, 1);
  ASSERT_TRUE(Push(1, 1, "w", 0, {2, 2, 2, 2}).ok());
  p = PullAll("w", 4);
  EXPECT_EQ(p.version, 2);
  EXPECT_THAT(p.values, Each(-1.0f));
}

TEST_F(ParameterStoreTest, SyncBackupWorkerLetsTheStepProceedWithoutTheSlowest) {
  RegisterWorkers(3);
  v1::TableSpec spec = DenseSpec("w", {4}, v1::SYNC, 0.5f, /*initial=*/1.0f);
  spec.set_backup_workers(1);
  MustCreate(spec);
  ASSERT_TRUE(Push(2, 0, "w", 0, {1, 1, 1, 1}).ok());
  EXPECT_EQ(PullAll("w", 4).version, 0);
  ASSERT_TRUE(Push(0, 0, "w", 0, {3, 3, 3, 3}).ok());
  Pulled p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.0f));  // 1 - 0.5 * (1 + 3) / 2
  absl::Status late = Push(1, 0, "w", 0, {8, 8, 8, 8});
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("step 0"));
  p = PullAll("w", 4);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(0.0f));
}

// ---------------------------------------------------------------------------------------
// Bad input: each is refused with a precise code and leaves no trace.

class BadInputTest : public ParameterStoreTest {
 protected:
  void SetUp() override {
    MustCreate(DenseSpec("a", {4}, v1::ASYNC, 0.5f, /*initial=*/1.0f));
    ASSERT_TRUE(Push(0, 0, "a", 0, {2, 2, 2, 2}).ok());  // values 0, version 1
  }

  // Checks that table "a" still holds what SetUp left.
  void ExpectAUnchanged() {
    Pulled p = PullAll("a", 4);
    EXPECT_THAT(p.values, Each(0.0f));
    EXPECT_EQ(p.version, 1);
  }
};

TEST_F(BadInputTest, UnknownTableIsNotFound) {
  absl::Status s = Push(0, 0, "nope", 0, {1});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'nope'"));
  EXPECT_THAT(s.message(), HasSubstr("does not exist"));
  absl::StatusOr<Pulled> p = Pull("nope", 0, 1);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(p.status().message(), HasSubstr("'nope'"));
  ExpectAUnchanged();
}

TEST_F(BadInputTest, WrongByteLengthIsInvalidArgument) {
  v1::DenseSlice slice = Slice("a", 0, {1, 1, 1, 1});
  slice.mutable_values()->resize(12);
  absl::Status s = PushSlices(0, 0, {slice});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'a'"));
  EXPECT_THAT(s.message(), HasSubstr("12 bytes"));
  EXPECT_THAT(s.message(), HasSubstr("needs 16"));
  ExpectAUnchanged();
}

TEST_F(BadInputTest, RangeOutsideTheTableIsInvalidArgument) {
  for (auto [offset, length] : {std::pair<int64_t, int64_t>{2, 4}, {-1, 2}, {4, 1}, {0, 0}}) {
    v1::DenseSlice slice;
    slice.set_table("a");
    slice.set_offset(offset);
    slice.set_length(length);
    slice.set_values(Encode(std::vector<float>(length, 1.0f)));
    absl::Status s = PushSlices(0, 0, {slice});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << offset << "+" << length;
    EXPECT_THAT(s.message(), HasSubstr("'a'"));
    EXPECT_THAT(s.message(), HasSubstr("outside the table"));
    absl::StatusOr<Pulled> p = Pull("a", offset, length);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << offset << "+" << length;
  }
  ExpectAUnchanged();
}

TEST_F(BadInputTest, NonFiniteGradientIsInvalidArgument) {
  for (float bad : {kNaN, kInf, -kInf}) {
    absl::Status s = Push(0, 0, "a", 0, {1, 1, bad, 1});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("'a'"));
    EXPECT_THAT(s.message(), HasSubstr("non-finite"));
    EXPECT_THAT(s.message(), HasSubstr("element 2"));
  }
  ExpectAUnchanged();
}

TEST_F(BadInputTest, PushIsAllOrNothingAcrossTables) {
  MustCreate(DenseSpec("b", {2}, v1::ASYNC, 0.5f, /*initial=*/5.0f));
  absl::Status s = PushSlices(0, 0, {Slice("a", 0, {1, 1, 1, 1}), Slice("b", 0, {1, kNaN})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'b'"));
  EXPECT_THAT(s.message(), HasSubstr("non-finite"));
  ExpectAUnchanged();
  Pulled b = PullAll("b", 2);
  EXPECT_THAT(b.values, Each(5.0f));
  EXPECT_EQ(b.version, 0);
}

TEST_F(BadInputTest, PushIsAllOrNothingWhenALaterSliceFailsItsStepCheck) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("s", {2}, v1::SYNC, 0.5f, /*initial=*/5.0f));
  absl::Status s = PushSlices(0, 3, {Slice("a", 0, {1, 1, 1, 1}), Slice("s", 0, {1, 1})});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("'s'"));
  EXPECT_THAT(s.message(), HasSubstr("step 3"));
  ExpectAUnchanged();
  v1::GetStatusResponse status;
  store_->FillStatus(&status);
  ASSERT_EQ(status.tables_size(), 2);
  EXPECT_EQ(status.tables(0).spec().name(), "a");
  EXPECT_EQ(status.tables(0).pushes(), 1);
  EXPECT_EQ(status.tables(1).spec().name(), "s");
  EXPECT_EQ(status.tables(1).pushes(), 0);
  EXPECT_EQ(status.tables(1).rejected_pushes(), 1);
}

TEST_F(BadInputTest, OverlappingSlicesInOneRequestAreInvalidArgument) {
  absl::Status s = PushSlices(0, 0, {Slice("a", 0, {1, 1, 1}), Slice("a", 2, {1, 1})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'a'"));
  EXPECT_THAT(s.message(), HasSubstr("overlapping"));
  ExpectAUnchanged();
}

TEST_F(BadInputTest, EmptyPushIsInvalidArgument) {
  EXPECT_EQ(PushSlices(0, 0, {}).code(), absl::StatusCode::kInvalidArgument);
  ExpectAUnchanged();
}

TEST_F(BadInputTest, InvalidOptimizerSettingIsInvalidArgumentAndCreatesNothing) {
  absl::Status s = Create(DenseSpec("bad_lr", {4}, v1::ASYNC, -1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'bad_lr'"));
  EXPECT_THAT(s.message(), HasSubstr("learning_rate"));
  EXPECT_EQ(Pull("bad_lr", 0, 4).status().code(), absl::StatusCode::kNotFound);

  v1::TableSpec adam = DenseSpec("bad_beta", {4}, v1::ASYNC, 0.1f);
  *adam.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.1f);
  adam.mutable_optimizer()->set_beta2(1.5f);
  s = Create(adam);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'bad_beta'"));
  EXPECT_THAT(s.message(), HasSubstr("beta2"));
  EXPECT_EQ(Pull("bad_beta", 0, 4).status().code(), absl::StatusCode::kNotFound);

  // A bad spec under an existing name is still ALREADY_EXISTS and harms nothing.
  EXPECT_EQ(Create(DenseSpec("a", {4}, v1::ASYNC, -1.0f)).code(),
            absl::StatusCode::kAlreadyExists);
  ExpectAUnchanged();
}

TEST_F(BadInputTest, BadShapeIsInvalidArgument) {
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{}, {0}, {4, 0}, {-3}, {int64_t{1} << 20, int64_t{1} << 20}}) {
    absl::Status s = Create(DenseSpec("bad_shape", shape, v1::ASYNC, 0.1f));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << shape.size();
    EXPECT_THAT(s.message(), HasSubstr("'bad_shape'"));
    EXPECT_THAT(s.message(), HasSubstr("shape"));
  }
  EXPECT_EQ(Pull("bad_shape", 0, 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BadInputTest, AShapeOfAMillionOnesIsInvalidArgument) {
  absl::Status s = Create(DenseSpec("ones", std::vector<int64_t>(1'000'000, 1), v1::ASYNC, 0.1f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'ones': shape has 1000000 dimensions; the limit is 8"));
  EXPECT_TRUE(Create(DenseSpec("eight", std::vector<int64_t>(8, 2), v1::ASYNC, 0.1f)).ok());
}

// Names are bounded and printable: a megabyte name and one that would forge a log line
// are refused, and nothing is created.
TEST_F(BadInputTest, LongOrControlCharacterTableNamesAreInvalidArgument) {
  absl::Status s = Create(DenseSpec(std::string(1 << 20, 'n'), {4}, v1::ASYNC, 0.1f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("1048576 characters long; the limit is 128"));
  s = Create(DenseSpec("w\nE1201 12:00:00 forged] \x1b[31mFATAL", {4}, v1::ASYNC, 0.1f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("has '\\n' at position 1"));
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  // An unknown name is quoted escaped in the error, not as sent.
  s = Push(0, 0, "no\x1b[2Jpe", 0, {1});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'no\\x1b[2Jpe'"));
  ExpectAUnchanged();
}

TEST_F(BadInputTest, AHugeLearningRateIsInvalidArgument) {
  absl::Status s = Create(DenseSpec("fast", {4}, v1::ASYNC, 1e30f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("learning_rate=1e+30 outside (0, 1000]"));
  EXPECT_TRUE(Create(DenseSpec("fast", {4}, v1::ASYNC, 1000.0f)).ok());
}

// A small table lies wholly on one shard of two; the other holds none of it and must
// still checkpoint and restore it (UBSan caught a memcpy from a null pointer there when a
// shard restarted, under --config=asan).
TEST_F(ParameterStoreTest, AShardHoldingNoneOfATableRestoresIt) {
  for (int shard = 0; shard < 2; ++shard) {
    StoreOptions options;
    options.shard_index = shard;
    options.num_shards = 2;
    ResetStore(options);
    v1::TableSpec spec = DenseSpec("b", {4}, v1::SYNC, 0.5f);
    *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f);
    MustCreate(spec);
    v1::TableCheckpoint saved;
    int64_t elements = -1;
    {
      DenseTable* t = store_->Tables()[0];
      absl::MutexLock lock(t->mu());
      saved = t->Capture();
      elements = t->local_size();
    }
    ResetStore(options);
    ASSERT_TRUE(store_->RestoreTable(&saved).ok()) << "shard " << shard;
    EXPECT_EQ(store_->Tables()[0]->local_size(), elements);
  }
}

TEST_F(ParameterStoreTest, TablesBeyondTheShardsLimitAreResourceExhausted) {
  StoreOptions options;
  options.max_tables = 3;
  ResetStore(options);
  for (int i = 0; i < 3; ++i) MustCreate(DenseSpec(absl::StrCat("t", i), {4}, v1::ASYNC, 0.1f));
  absl::Status s = Create(DenseSpec("t3", {4}, v1::ASYNC, 0.1f));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("holds 3 tables, its limit (--max_tables); table 't3' not created"));
  EXPECT_EQ(Pull("t3", 0, 1).status().code(), absl::StatusCode::kNotFound);
  // Creating one that exists is still fine at the limit.
  EXPECT_TRUE(Create(DenseSpec("t0", {4}, v1::ASYNC, 0.1f)).ok());
}

TEST_F(BadInputTest, UnsupportedKindsAndModesAreRefused) {
  // A sparse spec with a dense shape and no row width.
  v1::TableSpec sparse = DenseSpec("rows", {4}, v1::ASYNC, 0.1f);
  sparse.set_kind(v1::SPARSE);
  absl::Status s = Create(sparse);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'rows'"));
  EXPECT_THAT(s.message(), HasSubstr("row_width"));
  sparse.clear_shape();
  sparse.set_row_width(4);
  sparse.set_consistency(v1::SYNC);
  s = Create(sparse);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ASYNC and SSP"));
  v1::TableSpec no_kind = DenseSpec("nokind", {4}, v1::ASYNC, 0.1f);
  no_kind.set_kind(v1::TABLE_KIND_UNSPECIFIED);
  EXPECT_EQ(Create(no_kind).code(), absl::StatusCode::kInvalidArgument);

  s = Create(DenseSpec("unset", {4}, v1::CONSISTENCY_UNSPECIFIED, 0.1f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'unset'"));
  EXPECT_THAT(s.message(), HasSubstr("CONSISTENCY_UNSPECIFIED"));

  v1::TableSpec unnamed = DenseSpec("", {4}, v1::ASYNC, 0.1f);
  EXPECT_EQ(Create(unnamed).code(), absl::StatusCode::kInvalidArgument);

  // Rows pushed by key to a dense table.
  v1::PushRequest sparse_push;
  sparse_push.add_sparse()->set_table("a");
  v1::PushResponse push_response;
  s = store_->Push(sparse_push, &push_response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("dense"));
  ExpectAUnchanged();
}

TEST_F(ParameterStoreTest, RangeHeldByAnotherShardIsInvalidArgument) {
  StoreOptions options;
  options.shard_index = 0;
  options.num_shards = 2;
  ResetStore(options);
  constexpr int64_t kElements = 2 * kSplitBytes / 4;  // large enough to be split
  const std::vector<ShardRange> ranges = PlaceDense("big", kElements, 2);
  ASSERT_EQ(ranges.size(), 2u);
  const ShardRange mine = ranges[0].shard == 0 ? ranges[0] : ranges[1];
  const ShardRange other = ranges[0].shard == 0 ? ranges[1] : ranges[0];
  v1::CreateTableResponse response;
  ASSERT_TRUE(Create(DenseSpec("big", {kElements}, v1::ASYNC, 0.5f), &response).ok());
  EXPECT_EQ(response.elements_on_shard(), mine.size());

  absl::Status s = Push(0, 0, "big", other.begin, std::vector<float>(16, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'big'"));
  EXPECT_THAT(s.message(), HasSubstr("not held by this shard"));
  // A range straddling the boundary is refused too.
  s = Push(0, 0, "big", mine.end - 8, std::vector<float>(16, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Pull("big", other.begin, 16).status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<Pulled> p = Pull("big", mine.begin, mine.size());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version, 0);
  EXPECT_THAT(p->values, Each(1.0f));
}

TEST_F(ParameterStoreTest, OversizedRequestIsResourceExhausted) {
  StoreOptions options;
  options.max_request_bytes = 64;
  ResetStore(options);
  MustCreate(DenseSpec("w", {32}, v1::ASYNC, 0.5f, /*initial=*/1.0f));
  absl::Status s = Push(0, 0, "w", 0, std::vector<float>(32, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("128 bytes"));
  EXPECT_THAT(s.message(), HasSubstr("limit of 64"));
  absl::StatusOr<Pulled> big = Pull("w", 0, 32);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("limit of 64"));
  // At the limit is fine, and the refused push changed nothing.
  absl::StatusOr<Pulled> p = Pull("w", 16, 16);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version, 0);
  EXPECT_THAT(p->values, Each(1.0f));
  ASSERT_TRUE(Push(0, 0, "w", 16, std::vector<float>(16, 1.0f)).ok());
  p = Pull("w", 16, 16);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version, 1);
  EXPECT_THAT(p->values, Each(0.5f));
}

// ---------------------------------------------------------------------------------------
// Shutdown

TEST_F(ParameterStoreTest, ShutdownWakesWaitingPullsWithUnavailable) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {4}, v1::SYNC, 0.5f));
  absl::StatusOr<Pulled> waited;
  absl::Duration took;
  std::thread puller([&] {
    const absl::Time start = absl::Now();
    waited = Pull("w", 0, 4, /*min_version=*/1, kLongWait);
    took = absl::Now() - start;
  });
  absl::SleepFor(absl::Milliseconds(50));
  store_->Shutdown();
  puller.join();
  EXPECT_EQ(waited.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(took, absl::Seconds(1));
  // Later pulls fail at once, even for versions already reached.
  EXPECT_EQ(Pull("w", 0, 4).status().code(), absl::StatusCode::kUnavailable);
}

// ---------------------------------------------------------------------------------------
// Numeric safety: an update that would leave a value or optimizer state non-finite is
// refused (INVALID_ARGUMENT naming the table and the first bad element) and nothing
// changes. Pushing 3e38 twice used to make SGD parameters -inf and Adam's NaN.

TEST_F(ParameterStoreTest, AsyncSgdUpdateThatOverflowsIsRefusedAndChangesNothing) {
  MustCreate(DenseSpec("w", {4}, v1::ASYNC, 1.0f, /*initial=*/0.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {1, 3e38f, 1, 1}).ok());  // -3e38 is finite
  absl::Status s = Push(0, 1, "w", 0, {1, 3e38f, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'w'"));
  EXPECT_THAT(s.message(), HasSubstr("element 1 (the parameter) -inf"));
  Pulled p = PullAll("w", 4);
  EXPECT_THAT(p.values, ElementsAre(-1.0f, -3e38f, -1.0f, -1.0f));
  EXPECT_EQ(p.version, 1);
  ASSERT_TRUE(Push(0, 1, "w", 0, {1, -1e38f, 1, 1}).ok());  // a sane push still goes through
  EXPECT_EQ(PullAll("w", 4).version, 2);
}

TEST_F(ParameterStoreTest, WithoutTheFiniteCheckAnOverflowingUpdateIsApplied) {
  StoreOptions options;
  options.check_finite_updates = false;  // --check_finite_updates=false
  ResetStore(options);
  MustCreate(DenseSpec("w", {1}, v1::ASYNC, 1.0f, /*initial=*/0.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {3e38f}).ok());
  ASSERT_TRUE(Push(0, 1, "w", 0, {3e38f}).ok());
  EXPECT_THAT(PullAll("w", 1).values, ElementsAre(-kInf));
}

TEST_F(ParameterStoreTest, AsyncAdamUpdateWhoseStateOverflowsIsRefused) {
  v1::TableSpec spec = DenseSpec("w", {3}, v1::SSP, 0.01f, /*initial=*/0.5f);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f);
  MustCreate(spec);
  // (1 - beta2) * g^2 overflows in v (slot 1) for g = 3e38, whatever the parameter does.
  absl::Status s = Push(0, 0, "w", 0, {0.1f, 0.1f, 3e38f});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'w'"));
  EXPECT_THAT(s.message(), HasSubstr("element 2 (optimizer slot 1) inf"));
  Pulled p = PullAll("w", 3);
  EXPECT_THAT(p.values, Each(0.5f));
  EXPECT_EQ(p.version, 0);
}

TEST_F(ParameterStoreTest, SyncPushThatWouldOverflowTheStepIsRefusedAndTheStepGoesOn) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {2}, v1::SYNC, 1.0f, /*initial=*/0.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {3e38f, 1}).ok());
  // 3e38 + 3e38 overflows the step's sum: refused, worker 0's gradient stays.
  absl::Status s = Push(1, 0, "w", 0, {3e38f, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'w'"));
  EXPECT_THAT(s.message(), HasSubstr("the sum of step 0's gradients"));
  EXPECT_THAT(s.message(), HasSubstr("element 0"));
  EXPECT_EQ(PullAll("w", 2).version, 0);
  ASSERT_TRUE(Push(1, 0, "w", 0, {1e37f, 3}).ok());
  Pulled p = PullAll("w", 2);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, ElementsAre(-((3e38f + 1e37f) * 0.5f), -2.0f));
}

// With three workers the overflowing sum comes before the step is complete: the push that
// would make it is refused there, not the third worker's that completes the step.
TEST_F(ParameterStoreTest, SyncSumOverflowIsRefusedWhenItHappensNotAtTheStepsEnd) {
  RegisterWorkers(3);
  MustCreate(DenseSpec("w", {1}, v1::SYNC, 1.0f, /*initial=*/0.0f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {3e38f}).ok());
  absl::Status s = Push(1, 0, "w", 0, {3e38f});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the sum of step 0's gradients"));
  ASSERT_TRUE(Push(1, 0, "w", 0, {0}).ok());
  ASSERT_TRUE(Push(2, 0, "w", 0, {0}).ok());
  Pulled p = PullAll("w", 1);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, ElementsAre(-(3e38f * (1.0f / 3.0f))));
}

// A step finished by a departure (no push's check saw it) whose update would be
// non-finite is skipped: the version moves on, the values stay.
TEST_F(ParameterStoreTest, ASyncStepFinishedByADepartureIsSkippedIfItsUpdateIsNotFinite) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {1}, v1::SYNC, 1.0f, /*initial=*/-3e38f));
  ASSERT_TRUE(Push(0, 0, "w", 0, {1e38f}).ok());
  ASSERT_TRUE(registry_.Leave(1).ok());
  store_->OnMembershipChange();
  Pulled p = PullAll("w", 1);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, ElementsAre(-3e38f));
}

TEST_F(ParameterStoreTest, SyncStepWhoseUpdateOverflowsIsRefusedToThePushThatCompletesIt) {
  RegisterWorkers(2);
  MustCreate(DenseSpec("w", {2}, v1::SYNC, 1.0f, /*initial=*/-3e38f));
  // The sum 2e38 and the mean 1e38 are finite; -3e38 - 1e38 is not. Worker 1's
  // half-range chunk does not complete its gradient; the other half does, and is refused.
  ASSERT_TRUE(Push(0, 0, "w", 0, {1e38f, 0}).ok());
  ASSERT_TRUE(Push(1, 0, "w", 1, {0}).ok());
  absl::Status s = Push(1, 0, "w", 0, {1e38f});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("step 0's update (this push completes it)"));
  EXPECT_THAT(s.message(), HasSubstr("element 0 (the parameter) -inf"));
  Pulled p = PullAll("w", 2);
  EXPECT_EQ(p.version, 0);
  EXPECT_THAT(p.values, Each(-3e38f));
  ASSERT_TRUE(Push(1, 0, "w", 0, {-1e38f}).ok());  // the mean is now 0
  p = PullAll("w", 2);
  EXPECT_EQ(p.version, 1);
  EXPECT_THAT(p.values, Each(-3e38f));
}

TEST_F(ParameterStoreTest, SparseUpdateThatOverflowsIsRefusedAndCreatesNoRow) {
  v1::TableSpec spec;
  spec.set_name("rows");
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(2);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAGRAD, 0.1f);
  spec.set_consistency(v1::ASYNC);
  MustCreate(spec);
  v1::PushRequest request;
  request.set_worker_index(0);
  v1::SparseRows* rows = request.add_sparse();
  rows->set_table("rows");
  rows->add_keys(5);
  rows->add_keys(9);
  rows->set_values(Encode({1, 1, 1, 3e38f}));  // AdaGrad's sum of squares overflows
  v1::PushResponse response;
  absl::Status s = store_->Push(request, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'rows'"));
  EXPECT_THAT(s.message(), HasSubstr("element 1 of key 9's row (optimizer slot 0) inf"));
  std::vector<SparseTable*> sparse = store_->SparseTables();
  ASSERT_EQ(sparse.size(), 1u);
  absl::MutexLock lock(sparse[0]->mu());
  EXPECT_EQ(sparse[0]->num_rows(), 0);
  EXPECT_EQ(sparse[0]->version(), 0);
}

}  // namespace
}  // namespace ps
