// ParameterStore::Assign (given values before training) and ListRows (sparse rows by page).
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/error_reason.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/shard/parameter_store.h"
#include "server/shard/worker_registry.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::TableSpec Dense(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
  return ::ps::testing::OnesSgdSpec(name, n, mode);
}

v1::TableSpec Sparse(const std::string& name, int width) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(width);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.5f);
  spec.set_consistency(v1::ASYNC);
  return spec;
}

v1::DenseSlice Slice(const std::string& table, int64_t offset, const std::vector<float>& v) {
  v1::DenseSlice s;
  s.set_table(table);
  s.set_offset(offset);
  s.set_length(static_cast<int64_t>(v.size()));
  s.set_values(Encode(v));
  return s;
}

v1::SparseRows Rows(const std::string& table, std::vector<int64_t> keys,
                    const std::vector<float>& v) {
  v1::SparseRows r;
  r.set_table(table);
  for (int64_t k : keys) r.add_keys(k);
  r.set_values(Encode(v));
  return r;
}

class AssignTest : public ::testing::Test {
 protected:
  AssignTest()
      : registry_(absl::Seconds(10), [] { return absl::Now(); }),
        store_(StoreOptions(), &registry_) {
    EXPECT_TRUE(registry_.Register(0, "host", "cpu").ok());
    EXPECT_TRUE(registry_.Register(1, "host", "cpu").ok());
  }

  void MustCreate(const v1::TableSpec& spec) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    ASSERT_TRUE(store_.CreateTable(request, &response).ok()) << spec.name();
  }

  absl::Status Assign(std::vector<v1::DenseSlice> dense, std::vector<v1::SparseRows> sparse = {}) {
    v1::AssignRequest request;
    for (auto& d : dense) *request.add_dense() = std::move(d);
    for (auto& s : sparse) *request.add_sparse() = std::move(s);
    return store_.Assign(request);
  }

  std::vector<float> PullDense(const std::string& table, int64_t n) {
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::DenseSlice* s = request.add_dense();
    s->set_table(table);
    s->set_length(n);
    v1::PullResponse response;
    EXPECT_TRUE(store_.Pull(request, absl::Now() + absl::Seconds(5), &response).ok());
    return response.dense_size() == 1 ? Decode(response.dense(0).values()) : std::vector<float>();
  }

  absl::Status Push(int worker, int64_t step, const std::string& table,
                    const std::vector<float>& grad, int64_t offset = 0) {
    v1::PushRequest request;
    request.set_worker_index(worker);
    request.set_step(step);
    *request.add_dense() = Slice(table, offset, grad);
    v1::PushResponse response;
    return store_.Push(request, &response);
  }

  WorkerRegistry registry_;
  ParameterStore store_;
};

TEST_F(AssignTest, GivenValuesReplaceTheInitialOnesAndTrainingStartsFromThem) {
  MustCreate(Dense("w", 4, v1::ASYNC));
  ASSERT_TRUE(Assign({Slice("w", 0, {2, 4}), Slice("w", 2, {6, 8})}).ok());
  EXPECT_THAT(PullDense("w", 4), ElementsAre(2, 4, 6, 8));
  // Assigned again before any push: still allowed (every worker may give the same file).
  ASSERT_TRUE(Assign({Slice("w", 0, {2, 4, 6, 8})}).ok());
  ASSERT_TRUE(Push(0, 0, "w", {2, 2, 2, 2}).ok());
  EXPECT_THAT(PullDense("w", 4), ElementsAre(1, 3, 5, 7));  // p - 0.5 * g
}

TEST_F(AssignTest, AfterAPushAssignIsFailedPreconditionAndChangesNothing) {
  MustCreate(Dense("w", 2, v1::ASYNC));
  ASSERT_TRUE(Push(0, 0, "w", {2, 2}).ok());
  absl::Status s = Assign({Slice("w", 0, {9, 9})});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "table 'w' has trained (version 1, 1 pushed parts applied or pending): values can "
            "be given only before the first push; the shards keep the trained model (stop them, "
            "or use a new --checkpoint_dir, to start from the file)");
  EXPECT_TRUE(HasReason(s, kReasonTableTrained)) << s;
  EXPECT_THAT(PullDense("w", 2), Each(0.0f));
}

TEST_F(AssignTest, ASyncStepWithOneWorkersGradientHeldIsTraining) {
  MustCreate(Dense("w", 2, v1::SYNC));
  ASSERT_TRUE(Push(0, 0, "w", {2, 2}).ok());  // worker 1 has not pushed: version stays 0
  absl::Status s = Assign({Slice("w", 0, {9, 9})});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("table 'w' has trained (version 0,"));
  EXPECT_THAT(PullDense("w", 2), Each(1.0f));
}

TEST_F(AssignTest, OneTrainedTableRefusesTheWholeRequest) {
  MustCreate(Dense("a", 2, v1::ASYNC));
  MustCreate(Dense("b", 2, v1::ASYNC));
  ASSERT_TRUE(Push(0, 0, "b", {2, 2}).ok());
  EXPECT_EQ(Assign({Slice("a", 0, {5, 5}), Slice("b", 0, {5, 5})}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(PullDense("a", 2), Each(1.0f)) << "a was changed by a refused request";
}

TEST_F(AssignTest, BadSlicesAreInvalidArgumentOrNotFound) {
  MustCreate(Dense("w", 2, v1::ASYNC));
  absl::Status s = Assign({Slice("w", 1, {1, 2})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "table 'w': range [1, 3) is empty or outside the table's 2 elements");
  s = Assign({Slice("w", 0, {1.0f, std::numeric_limits<float>::infinity()})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("table 'w'"));
  v1::DenseSlice short_values = Slice("w", 0, {1, 2});
  short_values.mutable_values()->resize(4);
  s = Assign({short_values});
  EXPECT_EQ(s.message(), "table 'w': slice at 0 carries 4 bytes but its length 2 needs 8");
  EXPECT_EQ(Assign({Slice("nope", 0, {1})}).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(PullDense("w", 2), Each(1.0f));
}

TEST_F(AssignTest, SparseRowsAreCreatedWithTheGivenValuesThenListedByPage) {
  MustCreate(Sparse("emb", 2));
  ASSERT_TRUE(Assign({}, {Rows("emb", {7, 3, 11}, {1, 2, 3, 4, 5, 6})}).ok());
  v1::ListRowsRequest request;
  request.set_table("emb");
  request.set_max_rows(2);
  v1::ListRowsResponse page;
  ASSERT_TRUE(store_.ListRows(request, &page).ok());
  EXPECT_THAT(page.rows().keys(), ElementsAre(7, 3));
  EXPECT_THAT(Decode(page.rows().values()), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(page.next(), 2);
  EXPECT_EQ(page.total_rows(), 3);
  request.set_start(page.next());
  ASSERT_TRUE(store_.ListRows(request, &page).ok());
  EXPECT_THAT(page.rows().keys(), ElementsAre(11));
  EXPECT_THAT(Decode(page.rows().values()), ElementsAre(5, 6));
  EXPECT_EQ(page.next(), 3);
  request.set_start(10);  // past the end: an empty page
  v1::ListRowsResponse past;
  ASSERT_TRUE(store_.ListRows(request, &past).ok());
  EXPECT_EQ(past.rows().keys_size(), 0);
  EXPECT_EQ(past.next(), 3);
}

TEST_F(AssignTest, SparseAssignAfterAPushAndBadListingsAreRefused) {
  MustCreate(Sparse("emb", 1));
  v1::PushRequest push;
  push.set_worker_index(0);
  *push.add_sparse() = Rows("emb", {1}, {2});
  v1::PushResponse response;
  ASSERT_TRUE(store_.Push(push, &response).ok());
  absl::Status s = Assign({}, {Rows("emb", {5}, {9})});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("table 'emb' has trained (version 1,"));
  v1::ListRowsRequest request;
  request.set_table("emb");
  v1::ListRowsResponse page;
  ASSERT_TRUE(store_.ListRows(request, &page).ok());
  EXPECT_THAT(page.rows().keys(), ElementsAre(1)) << "the refused assign created row 5";
  request.set_start(-1);
  EXPECT_EQ(store_.ListRows(request, &page).code(), absl::StatusCode::kInvalidArgument);
  request.set_start(0);
  request.set_table("nope");
  EXPECT_EQ(store_.ListRows(request, &page).code(), absl::StatusCode::kNotFound);
}

TEST_F(AssignTest, APageOfVeryWideRowsHoldsOneRow) {
  const int width = 1 << 20;  // 4 MiB a row: more than a page's 3 MiB
  MustCreate(Sparse("wide", width));
  ASSERT_TRUE(Assign({}, {Rows("wide", {1, 2}, std::vector<float>(2 * width, 0.5f))}).ok());
  v1::ListRowsRequest request;
  request.set_table("wide");
  v1::ListRowsResponse page;
  ASSERT_TRUE(store_.ListRows(request, &page).ok());
  EXPECT_THAT(page.rows().keys(), ElementsAre(1));
  EXPECT_EQ(page.next(), 1);
  EXPECT_EQ(page.total_rows(), 2);
}

}  // namespace
}  // namespace ps
