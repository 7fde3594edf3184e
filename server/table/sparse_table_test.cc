// Sparse tables through ParameterStore (and SparseTable directly where that is simpler):
// rows created on first touch, exact optimizer updates of the touched rows only, bad
// pushes refused without a trace, the memory bound, and capture/restore.
#include "server/table/sparse_table.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/placement.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/shard/parameter_store.h"
#include "server/shard/worker_registry.h"
#include "server/table/optimizer.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

v1::Initializer Constant(float value) {
  v1::Initializer init;
  init.set_kind(v1::Initializer::CONSTANT);
  init.set_value(value);
  return init;
}

v1::TableSpec SparseSpec(const std::string& name, int64_t width, const v1::Initializer& init,
                         const v1::OptimizerSpec& optimizer,
                         v1::ConsistencyMode mode = v1::ASYNC) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::SPARSE);
  spec.set_row_width(width);
  *spec.mutable_initializer() = init;
  *spec.mutable_optimizer() = optimizer;
  spec.set_consistency(mode);
  return spec;
}

v1::OptimizerSpec Sgd(float lr) { return DefaultOptimizerSpec(v1::OptimizerSpec::SGD, lr); }

// The first `n` keys (counting up from `from`) that shard `shard` of `num_shards` holds.
std::vector<int64_t> KeysOfShard(int shard, int num_shards, int n, int64_t from = 0) {
  std::vector<int64_t> keys;
  for (int64_t k = from; static_cast<int>(keys.size()) < n; ++k) {
    if (ShardForKey(k, num_shards) == shard) keys.push_back(k);
  }
  return keys;
}

struct Rows {
  std::vector<float> values;  // keys.size() * width, in request order
  int64_t version = -1;
};

// One shard's store with its own registry (clock fixed: nothing here expires).
class Shard {
 public:
  explicit Shard(const StoreOptions& options)
      : registry_(absl::Seconds(10), [] { return absl::FromUnixSeconds(1'000'000); }),
        store_(options, &registry_) {}

  ParameterStore& store() { return store_; }

  absl::Status Create(const v1::TableSpec& spec) {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    return store_.CreateTable(request, &response);
  }

  absl::StatusOr<Rows> Pull(const std::string& table, const std::vector<int64_t>& keys) {
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::SparseRows* rows = request.add_sparse();
    rows->set_table(table);
    for (int64_t k : keys) rows->add_keys(k);
    v1::PullResponse response;
    absl::Status s = store_.Pull(request, absl::Now() + absl::Seconds(5), &response);
    if (!s.ok()) return s;
    if (response.sparse_size() != 1) return absl::InternalError("expected one set of rows");
    EXPECT_EQ(response.sparse(0).table(), table);
    return Rows{Decode(response.sparse(0).values()), response.sparse(0).version()};
  }

  // Pulls rows the test needs; a failure is reported and yields no values.
  Rows MustPull(const std::string& table, const std::vector<int64_t>& keys) {
    absl::StatusOr<Rows> r = Pull(table, keys);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : Rows();
  }

  absl::Status Push(const std::string& table, const std::vector<int64_t>& keys,
                    const std::vector<float>& grads, int64_t step = 0) {
    v1::PushRequest request;
    request.set_worker_index(0);
    request.set_step(step);
    v1::SparseRows* rows = request.add_sparse();
    rows->set_table(table);
    for (int64_t k : keys) rows->add_keys(k);
    rows->set_values(Encode(grads));
    v1::PushResponse response;
    return store_.Push(request, &response);
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

 private:
  WorkerRegistry registry_;
  ParameterStore store_;
};

StoreOptions ShardOf(int shard, int num_shards) {
  StoreOptions options;
  options.shard_index = shard;
  options.num_shards = num_shards;
  return options;
}

// ---------------------------------------------------------------------------------------
// Lazy creation

// A pull reads a missing key's initial values without creating its row (a pull of unknown
// keys once created 130 MB of rows per request); pushes create rows.
TEST(SparseTableTest, PullReadsInitialValuesAndOnlyPushesCreateRows) {
  Shard shard(ShardOf(0, 1));
  ASSERT_TRUE(shard.Create(SparseSpec("emb", 4, Constant(0.25f), Sgd(0.5f))).ok());
  EXPECT_EQ(shard.StatusOf("emb").elements_on_shard(), 0);

  Rows r = shard.MustPull("emb", {5, -7, int64_t{1} << 40});
  EXPECT_EQ(r.values.size(), 12u);
  EXPECT_THAT(r.values, Each(0.25f));
  EXPECT_EQ(r.version, 0);
  v1::TableStatus status = shard.StatusOf("emb");
  EXPECT_EQ(status.elements_on_shard(), 0);
  EXPECT_EQ(status.version(), 0);
  EXPECT_EQ(status.pulls(), 1);
  EXPECT_EQ(status.spec().kind(), v1::SPARSE);

  // Pushed keys get rows, once each; pulling them again creates nothing.
  ASSERT_TRUE(shard.Push("emb", {5, -7}, {0, 0, 0, 0, 0, 0, 0, 0}).ok());
  EXPECT_EQ(shard.StatusOf("emb").elements_on_shard(), 2);
  shard.MustPull("emb", {-7, 5, 5, 6});
  EXPECT_EQ(shard.StatusOf("emb").elements_on_shard(), 2);
  ASSERT_TRUE(shard.Push("emb", {6, 5}, {0, 0, 0, 0, 0, 0, 0, 0}).ok());
  EXPECT_EQ(shard.StatusOf("emb").elements_on_shard(), 3);
}

TEST(SparseTableTest, ZerosInitializerGivesZeroRows) {
  Shard shard(ShardOf(0, 1));
  v1::Initializer zeros;
  zeros.set_kind(v1::Initializer::ZEROS);
  ASSERT_TRUE(shard.Create(SparseSpec("emb", 8, zeros, Sgd(0.5f))).ok());
  Rows r = shard.MustPull("emb", {0, 1, 123456789});
  EXPECT_EQ(r.values.size(), 24u);
  EXPECT_THAT(r.values, Each(0.0f));
}

TEST(SparseTableTest, RowsAreTheSameOnEveryShardLayout) {
  v1::Initializer uniform;
  uniform.set_kind(v1::Initializer::UNIFORM);
  uniform.set_low(-1.0f);
  uniform.set_high(1.0f);
  uniform.set_seed(42);
  const v1::TableSpec spec = SparseSpec("emb", 8, uniform, Sgd(0.5f));
  Shard whole(ShardOf(0, 1));
  ASSERT_TRUE(whole.Create(spec).ok());
  std::vector<std::unique_ptr<Shard>> thirds;
  for (int s = 0; s < 3; ++s) {
    thirds.push_back(std::make_unique<Shard>(ShardOf(s, 3)));
    ASSERT_TRUE(thirds.back()->Create(spec).ok());
  }

  std::vector<int64_t> keys;
  for (int64_t k = -20; k < 40; ++k) keys.push_back(k * 7919);
  std::vector<std::vector<float>> rows;
  int per_shard[3] = {0, 0, 0};
  for (int64_t key : keys) {
    const int s = ShardForKey(key, 3);
    ++per_shard[s];
    // The right shard of three creates the row the single shard creates, element for element
    // (a zero gradient creates the row and leaves it at its initial values).
    ASSERT_TRUE(thirds[s]->Push("emb", {key}, std::vector<float>(8, 0.0f)).ok());
    ASSERT_TRUE(whole.Push("emb", {key}, std::vector<float>(8, 0.0f)).ok());
    Rows third = thirds[s]->MustPull("emb", {key});
    Rows one = whole.MustPull("emb", {key});
    ASSERT_EQ(one.values.size(), 8u);
    EXPECT_THAT(third.values, ElementsAreArray(one.values)) << "key " << key;
    for (float v : one.values) {
      EXPECT_GE(v, -1.0f);
      EXPECT_LT(v, 1.0f);
    }
    rows.push_back(one.values);
  }
  // Every shard got some keys, and each counts exactly its own.
  for (int s = 0; s < 3; ++s) {
    EXPECT_GT(per_shard[s], 0);
    EXPECT_EQ(thirds[s]->StatusOf("emb").elements_on_shard(), per_shard[s]);
  }
  EXPECT_EQ(whole.StatusOf("emb").elements_on_shard(), static_cast<int64_t>(keys.size()));
  // Seeded per key: different keys get different rows, and a row is not one value repeated.
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_NE(rows[i], rows[i - 1]) << i;
  EXPECT_THAT(rows[0], Not(Each(rows[0][0])));
  // Pulling again returns the stored row, not a fresh draw.
  EXPECT_THAT(whole.MustPull("emb", {keys[3]}).values, ElementsAreArray(rows[3]));
  // Another seed gives other rows.
  v1::TableSpec reseeded = spec;
  reseeded.set_name("emb2");
  reseeded.mutable_initializer()->set_seed(43);
  ASSERT_TRUE(whole.Create(reseeded).ok());
  EXPECT_NE(whole.MustPull("emb2", {keys[0]}).values, rows[0]);
}

// ---------------------------------------------------------------------------------------
// Pushes

TEST(SparseTableTest, SgdPushUpdatesExactlyTheTouchedRows) {
  Shard shard(ShardOf(0, 1));
  ASSERT_TRUE(shard.Create(SparseSpec("emb", 4, Constant(1.0f), Sgd(0.5f))).ok());
  shard.MustPull("emb", {1, 2, 3});

  ASSERT_TRUE(shard.Push("emb", {2}, {2, 4, -2, 0}).ok());
  Rows r = shard.MustPull("emb", {1, 2, 3});
  EXPECT_THAT(r.values, ElementsAre(1, 1, 1, 1,    // untouched
                                    0, -1, 2, 1,   // 1 - 0.5 * g
                                    1, 1, 1, 1));  // untouched
  EXPECT_EQ(r.version, 1);

  // Two rows in one push are one update.
  ASSERT_TRUE(shard.Push("emb", {3, 1}, {1, 1, 1, 1, -4, 0, 0, 2}).ok());
  r = shard.MustPull("emb", {1, 2, 3});
  EXPECT_THAT(r.values, ElementsAre(3, 1, 1, 0, 0, -1, 2, 1, 0.5f, 0.5f, 0.5f, 0.5f));
  EXPECT_EQ(r.version, 2);
  v1::TableStatus status = shard.StatusOf("emb");
  EXPECT_EQ(status.version(), 2);
  EXPECT_EQ(status.pushes(), 2);
  EXPECT_EQ(status.elements_on_shard(), 3);
}

TEST(SparseTableTest, PushToUnseenKeysCreatesThenUpdatesThem) {
  Shard shard(ShardOf(0, 1));
  ASSERT_TRUE(shard.Create(SparseSpec("emb", 4, Constant(1.0f), Sgd(0.5f))).ok());
  ASSERT_TRUE(shard.Push("emb", {77, -3}, {2, 2, 2, 2, 0, 1, -1, 4}).ok());
  EXPECT_EQ(shard.StatusOf("emb").elements_on_shard(), 2);
  Rows r = shard.MustPull("emb", {-3, 77});
  EXPECT_THAT(r.values, ElementsAre(1, 0.5f, 1.5f, -1, 0, 0, 0, 0));
  EXPECT_EQ(r.version, 1);
}

TEST(SparseTableTest, FtrlWithL1MakesRowsOfSmallGradientsExactlyZero) {
  Shard shard(ShardOf(0, 1));
  v1::OptimizerSpec ftrl = DefaultOptimizerSpec(v1::OptimizerSpec::FTRL, 0.1f);
  ftrl.set_l1(0.1f);
  ASSERT_TRUE(shard.Create(SparseSpec("emb", 4, Constant(0.1f), ftrl)).ok());
  // Small gradients leave |z| <= l1; one large one does not.
  ASSERT_TRUE(shard.Push("emb", {1, 2}, {0.05f, -0.05f, 0.01f, 0, 0.02f, 0.03f, -0.04f, 0.05f})
                  .ok());
  ASSERT_TRUE(shard.Push("emb", {3}, {5, 5, 5, 5}).ok());
  Rows r = shard.MustPull("emb", {1, 2, 3, 4});
  ASSERT_EQ(r.values.size(), 16u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(r.values[i], 0.0f) << i;  // exactly zero
  for (int i = 8; i < 12; ++i) {
    EXPECT_NE(r.values[i], 0.0f) << i;
    EXPECT_LT(r.values[i], 0.0f) << i;  // moved against the gradient
  }
  for (int i = 12; i < 16; ++i) EXPECT_EQ(r.values[i], 0.1f) << i;  // never pushed
  EXPECT_EQ(r.version, 2);
}

// ---------------------------------------------------------------------------------------
// Bad input: refused with a precise code, leaving rows and version as they were.

class SparseBadInputTest : public ::testing::Test {
 protected:
  static StoreOptions Options() {
    StoreOptions options = ShardOf(0, 3);
    options.max_sparse_keys = 8;
    return options;
  }

  SparseBadInputTest() : shard_(Options()), mine_(KeysOfShard(0, 3, 9)) {}

  void SetUp() override {
    ASSERT_TRUE(shard_.Create(SparseSpec("e", 4, Constant(1.0f), Sgd(0.5f))).ok());
    ASSERT_TRUE(shard_.Push("e", {mine_[0], mine_[1]}, {2, 2, 2, 2, 4, 4, 4, 4}).ok());
    shard_.MustPull("e", {mine_[2]});  // reads its initial values; creates no row
  }

  // Checks that "e" still holds what SetUp left.
  void ExpectUnchanged() {
    Rows r = shard_.MustPull("e", {mine_[0], mine_[1], mine_[2]});
    EXPECT_THAT(r.values, ElementsAre(0, 0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1));
    EXPECT_EQ(r.version, 1);
    v1::TableStatus status = shard_.StatusOf("e");
    EXPECT_EQ(status.version(), 1);
    EXPECT_EQ(status.pushes(), 1);
    EXPECT_EQ(status.elements_on_shard(), 2);  // the pushed rows only
  }

  // Creates a small dense table that shard 0 of 3 holds whole; returns its name.
  std::string DenseTableOnShard0() {
    std::string name;
    for (int i = 0;; ++i) {
      name = absl::StrCat("d", i);
      if (LocalRange(name, 4, 3, 0).size() == 4) break;
    }
    v1::TableSpec dense;
    dense.set_name(name);
    dense.set_kind(v1::DENSE);
    dense.add_shape(4);
    *dense.mutable_initializer() = Constant(3.0f);
    *dense.mutable_optimizer() = Sgd(0.5f);
    dense.set_consistency(v1::ASYNC);
    EXPECT_TRUE(shard_.Create(dense).ok());
    return name;
  }

  Shard shard_;
  const std::vector<int64_t> mine_;  // keys shard 0 of 3 holds
};

TEST_F(SparseBadInputTest, DuplicateKeysInOnePushAreInvalidArgument) {
  absl::Status s = shard_.Push("e", {mine_[1], mine_[0], mine_[1]}, std::vector<float>(12, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'e'"));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("key ", mine_[1])));
  EXPECT_THAT(s.message(), HasSubstr("twice"));
  ExpectUnchanged();
}

TEST_F(SparseBadInputTest, WrongByteWidthIsInvalidArgument) {
  for (size_t floats : {3u, 5u, 0u}) {
    absl::Status s = shard_.Push("e", {mine_[0]}, std::vector<float>(floats, 1.0f));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << floats;
    EXPECT_THAT(s.message(), HasSubstr("'e'"));
    EXPECT_THAT(s.message(), HasSubstr("width 4"));
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(floats * 4, " bytes")));
  }
  ExpectUnchanged();
}

TEST_F(SparseBadInputTest, TooManyKeysIsResourceExhaustedNamingTheLimit) {
  ASSERT_EQ(mine_.size(), 9u);
  absl::Status s = shard_.Push("e", mine_, std::vector<float>(9 * 4, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("'e'"));
  EXPECT_THAT(s.message(), HasSubstr("9 keys"));
  EXPECT_THAT(s.message(), HasSubstr("limit of 8"));
  absl::StatusOr<Rows> pulled = shard_.Pull("e", mine_);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(pulled.status().message(), HasSubstr("limit of 8"));
  ExpectUnchanged();  // the refused pull created no rows either
  // At the limit is fine.
  const std::vector<int64_t> eight(mine_.begin(), mine_.end() - 1);
  EXPECT_TRUE(shard_.Pull("e", eight).ok());
}

TEST_F(SparseBadInputTest, KeyOfAnotherShardIsInvalidArgument) {
  const int64_t other = KeysOfShard(2, 3, 1)[0];
  absl::Status s = shard_.Push("e", {mine_[0], other}, std::vector<float>(8, 1.0f));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'e'"));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("key ", other, " belongs to shard 2")));
  absl::StatusOr<Rows> pulled = shard_.Pull("e", {other});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pulled.status().message(), HasSubstr("shard 2"));
  ExpectUnchanged();
}

TEST_F(SparseBadInputTest, NonFiniteGradientIsInvalidArgument) {
  for (float bad : {kNaN, std::numeric_limits<float>::infinity()}) {
    absl::Status s = shard_.Push("e", {mine_[0], mine_[3]}, {1, 1, 1, 1, 1, bad, 1, 1});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("'e'"));
    EXPECT_THAT(s.message(), HasSubstr("non-finite"));
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("key ", mine_[3])));
  }
  ExpectUnchanged();  // and mine_[3] was not created
}

TEST_F(SparseBadInputTest, SparseSyncTableIsInvalidArgument) {
  absl::Status s = shard_.Create(SparseSpec("s", 4, Constant(1.0f), Sgd(0.5f), v1::SYNC));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'s'"));
  EXPECT_THAT(s.message(), HasSubstr("SYNC"));
  EXPECT_EQ(shard_.Pull("s", {mine_[0]}).status().code(), absl::StatusCode::kNotFound);
  ExpectUnchanged();
}

TEST_F(SparseBadInputTest, RowsForADenseTableAndRangesForASparseTableAreInvalidArgument) {
  const std::string d = DenseTableOnShard0();

  absl::Status s = shard_.Push(d, {mine_[0]}, {1, 1, 1, 1});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("'", d, "' is dense")));
  EXPECT_EQ(shard_.Pull(d, {mine_[0]}).status().code(), absl::StatusCode::kInvalidArgument);

  v1::PushRequest ranges;
  v1::DenseSlice* slice = ranges.add_dense();
  slice->set_table("e");
  slice->set_offset(0);
  slice->set_length(4);
  slice->set_values(Encode({1, 1, 1, 1}));
  v1::PushResponse response;
  s = shard_.store().Push(ranges, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'e' is sparse"));
  v1::PullRequest pull;
  *pull.add_dense() = *slice;
  pull.mutable_dense(0)->clear_values();
  v1::PullResponse pulled;
  s = shard_.store().Pull(pull, absl::Now() + absl::Seconds(1), &pulled);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'e' is sparse"));
  ExpectUnchanged();
  v1::TableStatus dense = shard_.StatusOf(d);
  EXPECT_EQ(dense.version(), 0);
  EXPECT_EQ(dense.pushes(), 0);
}

TEST_F(SparseBadInputTest, PushIsAllOrNothingAcrossDenseAndSparseTables) {
  const std::string d = DenseTableOnShard0();
  v1::PushRequest request;
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table(d);
  slice->set_offset(0);
  slice->set_length(4);
  slice->set_values(Encode({1, 1, 1, 1}));
  v1::SparseRows* rows = request.add_sparse();
  rows->set_table("e");
  rows->add_keys(mine_[0]);
  rows->set_values(Encode({1, kNaN, 1, 1}));
  v1::PushResponse response;
  absl::Status s = shard_.store().Push(request, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("non-finite"));
  ExpectUnchanged();
  v1::TableStatus dense = shard_.StatusOf(d);
  EXPECT_EQ(dense.version(), 0);
  EXPECT_EQ(dense.pushes(), 0);
  EXPECT_EQ(dense.elements_on_shard(), 4);
}

// ---------------------------------------------------------------------------------------
// Memory

TEST(SparseTableTest, MillionRowsOfWidth16StayWithin30PercentOfTheirFloats) {
  constexpr int64_t kKeys = 1'000'000, kWidth = 16, kBatch = 125'000;
  Shard shard(ShardOf(0, 1));
  v1::Initializer zeros;
  zeros.set_kind(v1::Initializer::ZEROS);
  ASSERT_TRUE(shard.Create(SparseSpec("big", kWidth, zeros, Sgd(0.1f))).ok());  // no slots
  for (int64_t first = 0; first < kKeys; first += kBatch) {
    std::vector<int64_t> keys;
    keys.reserve(kBatch);
    // Spread-out keys, as hashed ids would be.
    for (int64_t k = first; k < first + kBatch; ++k) keys.push_back(k * 1'000'003 - 7);
    ASSERT_TRUE(shard.Push("big", keys, std::vector<float>(kBatch * kWidth, 0.0f)).ok());
  }
  const v1::TableStatus status = shard.StatusOf("big");
  EXPECT_EQ(status.elements_on_shard(), kKeys);
  const double floats = static_cast<double>(kKeys) * kWidth * 4;
  EXPECT_LE(static_cast<double>(status.bytes_on_shard()), 1.3 * floats)
      << status.bytes_on_shard() / static_cast<double>(kKeys) << " bytes per row";
  EXPECT_GE(static_cast<double>(status.bytes_on_shard()), floats);

  std::vector<SparseTable*> tables = shard.store().SparseTables();
  ASSERT_EQ(tables.size(), 1u);
  absl::MutexLock lock(tables[0]->mu());
  EXPECT_EQ(tables[0]->num_rows(), kKeys);
  EXPECT_LE(static_cast<double>(tables[0]->row_bytes()), 1.3 * floats);
  EXPECT_EQ(tables[0]->row_bytes(), status.bytes_on_shard());  // SGD without momentum
}

// ---------------------------------------------------------------------------------------
// Capture and restore

TEST(SparseTableTest, CaptureThenRestoreKeepsRowsSlotsAndVersion) {
  v1::Initializer uniform;
  uniform.set_kind(v1::Initializer::UNIFORM);
  uniform.set_low(-0.5f);
  uniform.set_high(0.5f);
  uniform.set_seed(7);
  const v1::TableSpec spec =
      SparseSpec("emb", 3, uniform, DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f));
  absl::StatusOr<std::unique_ptr<SparseTable>> made = SparseTable::Create(spec, 1, 2);
  ASSERT_TRUE(made.ok()) << made.status();
  SparseTable& table = **made;
  const std::vector<int64_t> keys = KeysOfShard(1, 2, 6);

  v1::SparseRows first;
  first.set_table("emb");
  for (int i = 0; i < 4; ++i) first.add_keys(keys[i]);
  first.set_values(Encode({1, 2, 3, -1, -2, -3, 0.5f, 0, 4, 1, 1, 1}));
  v1::SparseRows second;
  second.set_table("emb");
  second.add_keys(keys[4]);
  second.add_keys(keys[0]);
  second.set_values(Encode({2, 2, 2, -1, 0, 1}));
  v1::TableCheckpoint saved;
  {
    absl::MutexLock lock(table.mu());
    ASSERT_TRUE(table.CheckRows(first, true, 100).ok());
    ASSERT_TRUE(table.CheckRows(second, true, 100).ok());
    ASSERT_TRUE(table.PrepareRows(first).ok());
    table.Push(PushKey{0, 0, 1}, 0, first);
    ASSERT_TRUE(table.PrepareRows(second).ok());
    table.Push(PushKey{0, 0, 2}, 1, second);
    std::string ignored;
    v1::SparseRows read_only;
    read_only.add_keys(keys[5]);  // pulled, never pushed: no row, not in the checkpoint
    table.Read(read_only, &ignored);
    saved = table.Capture();
  }
  EXPECT_EQ(saved.version(), 2);
  EXPECT_EQ(saved.keys_size(), 5);
  ASSERT_EQ(saved.slots_size(), 2);  // Adam's m and v
  EXPECT_EQ(saved.params().size(), 5u * 3 * 4);
  EXPECT_EQ(saved.slots(0).size(), 5u * 3 * 4);
  EXPECT_EQ(saved.slots(1).size(), 5u * 3 * 4);
  // Adam's second moment is non-zero for every pushed element with a non-zero gradient.
  EXPECT_THAT(Decode(saved.slots(1)), Not(Each(0.0f)));

  absl::StatusOr<std::unique_ptr<SparseTable>> restored = SparseTable::Restore(saved, 1, 2);
  ASSERT_TRUE(restored.ok()) << restored.status();
  {
    absl::MutexLock lock((*restored)->mu());
    EXPECT_EQ((*restored)->version(), 2);
    EXPECT_EQ((*restored)->num_rows(), 5);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*restored)->Capture(), saved));
  }
  // The restored table continues exactly as the original does.
  v1::SparseRows third;
  third.set_table("emb");
  third.add_keys(keys[0]);
  third.add_keys(keys[5]);
  third.set_values(Encode({0.25f, -0.5f, 1, 3, 2, 1}));
  std::string after_original, after_restored;
  {
    absl::MutexLock lock(table.mu());
    ASSERT_TRUE(table.PrepareRows(third).ok());
    table.Push(PushKey{0, 0, 3}, 2, third);
    table.Read(third, &after_original);
  }
  {
    absl::MutexLock lock((*restored)->mu());
    ASSERT_TRUE((*restored)->PrepareRows(third).ok());
    (*restored)->Push(PushKey{0, 0, 3}, 2, third);
    (*restored)->Read(third, &after_restored);
    EXPECT_EQ((*restored)->version(), 3);
  }
  EXPECT_THAT(Decode(after_restored), ElementsAreArray(Decode(after_original)));

  // A checkpoint whose sizes do not fit is DATA_LOSS.
  v1::TableCheckpoint torn = saved;
  torn.mutable_params()->resize(saved.params().size() - 4);
  EXPECT_EQ(SparseTable::Restore(torn, 1, 2).status().code(), absl::StatusCode::kDataLoss);
  v1::TableCheckpoint slotless = saved;
  slotless.clear_slots();
  EXPECT_EQ(SparseTable::Restore(slotless, 1, 2).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ps
