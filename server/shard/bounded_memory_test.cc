// What clients can make a shard allocate is bounded by its memory budget: tables, sparse
// rows, sync chunk buffers and same-host windows all reserve first, and a request that
// does not fit is RESOURCE_EXHAUSTED with nothing allocated and nothing changed.
#include <unistd.h>


#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/process_stats_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/shard/shard.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;
using ::testing::Each;
using ::testing::HasSubstr;
using ::ps::testing::RssBytes;

constexpr int64_t kBudget = 64 << 20;

v1::TableSpec SparseSpec(const std::string& name, int width, v1::OptimizerSpec::Kind kind) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(width);
  spec.mutable_initializer()->set_kind(v1::Initializer::UNIFORM);
  spec.mutable_initializer()->set_low(-0.5f);
  spec.mutable_initializer()->set_high(0.5f);
  spec.mutable_initializer()->set_seed(7);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(kind, 0.5f);
  spec.set_consistency(v1::ASYNC);
  return spec;
}

class BoundedMemoryTest : public ::testing::Test {
 protected:
  static ShardOptions Options() {
    ShardOptions options;
    options.memory_budget_bytes = kBudget;
    return options;
  }
  BoundedMemoryTest() : shard_(Options()) {}

  absl::Status Create(const v1::TableSpec& spec) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    return shard_.CreateTable(request, &response);
  }

  v1::GetStatusResponse Status() {
    v1::GetStatusResponse status;
    shard_.GetStatus(&status);
    return status;
  }

  absl::Status PushRows(const std::string& table, int64_t first_key, int64_t keys, int width) {
    v1::PushRequest request;
    request.set_worker_index(-1);
    v1::SparseRows* rows = request.add_sparse();
    rows->set_table(table);
    for (int64_t k = 0; k < keys; ++k) rows->add_keys(first_key + k);
    rows->set_values(Encode(std::vector<float>(keys * width, 1.0f)));
    v1::PushResponse response;
    return shard_.Push(request, &response);
  }

  absl::StatusOr<v1::PullResponse> PullRows(const std::string& table,
                                            const std::vector<int64_t>& keys) {
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::SparseRows* rows = request.add_sparse();
    rows->set_table(table);
    for (int64_t k : keys) rows->add_keys(k);
    v1::PullResponse response;
    absl::Status s = shard_.Pull(request, absl::Now() + absl::Seconds(5), &response);
    if (!s.ok()) return s;
    return response;
  }

  int64_t Rows(const std::string& table) {
    const v1::GetStatusResponse status = Status();
    for (const v1::TableStatus& t : status.tables()) {
      if (t.spec().name() == table) return t.elements_on_shard();
    }
    return -1;
  }

  Shard shard_;
};

// A table twelve times the budget (768 MiB of values and Adam's two slots) is refused before
// anything is allocated: the process's resident memory does not grow, and a table that
// fits is still created afterwards.
TEST_F(BoundedMemoryTest, ATableLargerThanTheBudgetIsResourceExhaustedAndAllocatesNothing) {
  v1::TableSpec big = ::ps::testing::OnesSgdSpec("big", 1 << 26, v1::ASYNC);
  *big.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f);
  const int64_t rss_before = RssBytes();
  absl::Status s = Create(big);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("table 'big' (67108864 elements here) needs 768.0 MiB"));
  EXPECT_THAT(s.message(), HasSubstr("memory budget of 64.0 MiB"));
  EXPECT_THAT(s.message(), HasSubstr("--memory_budget_mb"));
  EXPECT_LT(RssBytes() - rss_before, 8 << 20);
  EXPECT_EQ(Status().memory_used_bytes(), 0);
  EXPECT_EQ(Status().memory_budget_bytes(), kBudget);
  EXPECT_EQ(Status().tables_size(), 0);

  ASSERT_TRUE(Create(::ps::testing::OnesSgdSpec("small", 1 << 20, v1::ASYNC)).ok());
  EXPECT_EQ(Status().memory_used_bytes(), 4 << 20);  // SGD: values only
}

// Pulling keys that have no row reads their initial values and creates nothing; the row a
// push creates later starts from those same values.
TEST_F(BoundedMemoryTest, PullingUnknownSparseKeysCreatesNoRows) {
  ASSERT_TRUE(Create(SparseSpec("emb", 8, v1::OptimizerSpec::SGD)).ok());
  std::vector<int64_t> keys;
  for (int64_t k = 0; k < 100'000; ++k) keys.push_back(k * 7919);
  const int64_t used_before = Status().memory_used_bytes();
  absl::StatusOr<v1::PullResponse> pulled = PullRows("emb", keys);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(Rows("emb"), 0);
  EXPECT_EQ(Status().memory_used_bytes(), used_before);

  const std::vector<float> initial = Decode(pulled->sparse(0).values());
  ASSERT_EQ(initial.size(), 800'000u);
  ASSERT_TRUE(PushRows("emb", 7919 * 3, 1, 8).ok());  // creates key 3*7919's row
  EXPECT_EQ(Rows("emb"), 1);
  absl::StatusOr<v1::PullResponse> again = PullRows("emb", {7919 * 3});
  ASSERT_TRUE(again.ok());
  const std::vector<float> row = Decode(again->sparse(0).values());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(row[i], initial[3 * 8 + i] - 0.5f) << i;
}

// A push that would create more rows than the budget holds is refused whole, and the table
// keeps serving: the pull after it neither crashes nor sees a half-made row.
TEST_F(BoundedMemoryTest, APushOfTooManyNewRowsChangesNothingAndTheTableKeepsServing) {
  ASSERT_TRUE(Create(SparseSpec("emb", 64, v1::OptimizerSpec::ADAM)).ok());
  ASSERT_TRUE(PushRows("emb", 0, 1000, 64).ok());
  const v1::GetStatusResponse before = Status();
  // 100,000 rows of 64 floats with two Adam slots: about 75 MiB, over the budget.
  absl::Status s = PushRows("emb", 1'000'000, 100'000, 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("table 'emb': 100000 new rows needs"));
  EXPECT_EQ(Rows("emb"), 1000);
  EXPECT_EQ(Status().memory_used_bytes(), before.memory_used_bytes());
  EXPECT_EQ(Status().tables(0).version(), before.tables(0).version());
  absl::StatusOr<v1::PullResponse> pulled = PullRows("emb", {0, 999, 1'000'000});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->sparse(0).values().size(), 3u * 64 * 4);
  ASSERT_TRUE(PushRows("emb", 1000, 10, 64).ok());  // what fits still goes in
  EXPECT_EQ(Rows("emb"), 1010);
}

// A sync worker's chunk buffer (a part of the range, not all of it) counts too: a chunk
// that does not fit is refused and the step is untouched; a whole-range push needs no
// buffer and goes through.
TEST_F(BoundedMemoryTest, ASyncChunkBufferBeyondTheBudgetIsRefusedAndTheStepUntouched) {
  // 10M elements: 40 MiB of values and 40 MiB of step sum would not fit; 6M (48 MiB) does,
  // leaving no room for a 24 MiB chunk buffer.
  ASSERT_TRUE(Create(::ps::testing::OnesSgdSpec("w", 6 << 20, v1::SYNC)).ok());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  reg.set_host("h");
  v1::RegisterWorkerResponse reg_response;
  ASSERT_TRUE(shard_.Register(reg, &reg_response).ok());
  auto push = [&](int64_t offset, int64_t n) {
    v1::PushRequest request;
    request.set_worker_index(0);
    v1::DenseSlice* d = request.add_dense();
    d->set_table("w");
    d->set_offset(offset);
    d->set_length(n);
    d->set_values(Encode(std::vector<float>(n, 2.0f)));
    v1::PushResponse response;
    return shard_.Push(request, &response);
  };
  absl::Status s = push(0, 1 << 20);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("worker 0's chunked gradient needs 24.0 MiB"));
  EXPECT_EQ(Status().tables(0).version(), 0);
  ASSERT_TRUE(push(0, 6 << 20).ok());  // the whole range at once: no buffer needed
  EXPECT_EQ(Status().tables(0).version(), 1);
}

// One request with chunks of two sync tables, of which only the first chunk buffer fits:
// refused whole, and the first table's new buffer is given back too.
TEST_F(BoundedMemoryTest, ARefusedPushOfSeveralTablesGivesBackTheBuffersItMade) {
  ASSERT_TRUE(Create(::ps::testing::OnesSgdSpec("a", 3 << 20, v1::SYNC)).ok());  // 24 MiB
  ASSERT_TRUE(Create(::ps::testing::OnesSgdSpec("b", 3 << 20, v1::SYNC)).ok());  // 24 MiB
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  reg.set_host("h");
  v1::RegisterWorkerResponse reg_response;
  ASSERT_TRUE(shard_.Register(reg, &reg_response).ok());
  const int64_t used = Status().memory_used_bytes();
  ASSERT_EQ(used, 48 << 20);
  v1::PushRequest request;
  request.set_worker_index(0);
  for (const char* table : {"a", "b"}) {  // each needs a 12 MiB buffer; 16 MiB are left
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_length(1 << 20);
    d->set_values(Encode(std::vector<float>(1 << 20, 2.0f)));
  }
  v1::PushResponse response;
  absl::Status s = shard_.Push(request, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("table 'b': worker 0's chunked gradient"));
  EXPECT_EQ(Status().memory_used_bytes(), used);
  // The first table alone still fits, as if nothing had happened.
  request.mutable_dense()->RemoveLast();
  EXPECT_TRUE(shard_.Push(request, &response).ok());
  EXPECT_EQ(Status().memory_used_bytes(), used + (12 << 20));
}

TEST_F(BoundedMemoryTest, TransferWindowsBeyondTheBudgetAreResourceExhausted) {
  ASSERT_TRUE(Create(::ps::testing::OnesSgdSpec("w", 6 << 20, v1::ASYNC)).ok());  // 24 MiB
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  reg.set_host("h");
  reg.set_incarnation(5);
  v1::RegisterWorkerResponse reg_response;
  ASSERT_TRUE(shard_.Register(reg, &reg_response).ok());
  v1::OpenWindowRequest open;
  open.set_worker_index(0);
  open.set_incarnation(5);
  open.set_bytes(1 << 20);
  v1::OpenWindowResponse response;
  // Windows are as large as the dense tables: 2 x 24 MiB on top of 24 MiB is over 64 MiB.
  absl::Status s = shard_.OpenWindow(open, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("worker 0's same-host transfer windows needs 48.0 MiB"));
  EXPECT_EQ(Status().window_bytes_held(), 0);
  EXPECT_EQ(Status().memory_used_bytes(), 24 << 20);
}

}  // namespace
}  // namespace ps
