// The sparse models against an in-memory PsClient: gradients match finite differences,
// every touched row is pushed once, tables are specified as documented, and plain SGD
// through the fake learns a synthetic click log.
#include "worker/model/sparse_model.h"

#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "worker/data/click_log.h"

namespace ps {
namespace {

// Holds tables in maps. Rows and dense tables start at N(0, init_stddev^2) (rows seeded by
// key, so they do not depend on the order of first touch). Pushes are recorded; with
// learning_rate > 0 they are also applied as plain SGD.
class FakePsClient final : public PsClient {
 public:
  explicit FakePsClient(float init_stddev = 0.3f, float learning_rate = 0.0f)
      : init_stddev_(init_stddev), learning_rate_(learning_rate) {}

  int num_shards() const override { return 1; }
  absl::Status CreateTable(const v1::TableSpec& spec) override {
    specs_[spec.name()] = spec;
    return absl::OkStatus();
  }
  absl::Status RegisterWorker(int, const std::string&, const std::string&, int64_t) override {
    return absl::OkStatus();
  }
  absl::Status Heartbeat(int, const v1::WorkerStats&) override { return absl::OkStatus(); }
  absl::Status LeaveWorker(int) override { return absl::OkStatus(); }

  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t, int) override {
    for (const DenseTensor& t : tensors) {
      const std::vector<float>& v = Dense(t.table, t.num_elements);
      std::copy(v.begin(), v.end(), t.data);
    }
    return version_;
  }
  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int) override {
    for (const DenseTensor& t : tensors) {
      pushed_dense_[t.table].assign(t.data, t.data + t.num_elements);
      std::vector<float>& v = Dense(t.table, t.num_elements);
      for (int64_t i = 0; i < t.num_elements; ++i) v[i] -= learning_rate_ * t.data[i];
    }
    last_step_ = step;
    ++version_;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int) override {
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::vector<float>& r = Row(table, keys[i], width);
      std::copy(r.begin(), r.end(), rows + i * width);
    }
    return version_;
  }
  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int) override {
    std::map<int64_t, std::vector<float>>& pushed = pushed_rows_[table];
    pushed.clear();
    for (size_t i = 0; i < keys.size(); ++i) {
      ++push_count_[table][keys[i]];
      std::vector<float>& p = pushed[keys[i]];
      p.assign(grads + i * width, grads + (i + 1) * width);
      std::vector<float>& r = Row(table, keys[i], width);
      for (int c = 0; c < width; ++c) r[c] -= learning_rate_ * p[c];
    }
    last_step_ = step;
    ++version_;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override {
    return std::vector<v1::GetStatusResponse>(1);
  }

  std::vector<float>& Row(const std::string& table, int64_t key, int width) {
    std::vector<float>& r = rows_[table][key];
    if (r.empty()) {
      std::mt19937_64 rng(static_cast<uint64_t>(key) * 7919 + 1);
      std::normal_distribution<float> normal(0.0f, init_stddev_);
      r.resize(width);
      for (float& v : r) v = normal(rng);
    }
    return r;
  }
  std::vector<float>& Dense(const std::string& table, int64_t n) {
    std::vector<float>& v = dense_[table];
    if (v.empty()) {
      std::mt19937_64 rng(std::hash<std::string>()(table));
      std::normal_distribution<float> normal(0.0f, init_stddev_);
      v.resize(n);
      for (float& x : v) x = normal(rng);
    }
    return v;
  }

  std::map<std::string, std::map<int64_t, std::vector<float>>> pushed_rows_;
  std::map<std::string, std::map<int64_t, int>> push_count_;
  std::map<std::string, std::vector<float>> pushed_dense_;
  std::map<std::string, v1::TableSpec> specs_;
  int64_t version_ = 7;
  int64_t last_step_ = -1;

 private:
  const float init_stddev_;
  const float learning_rate_;
  std::map<std::string, std::map<int64_t, std::vector<float>>> rows_;
  std::map<std::string, std::vector<float>> dense_;
};

// Six examples with shared features, a feature repeated within an example, values other
// than 1 and an example without features.
SparseDataset SmallData() {
  SparseDataset d;
  d.Add(1, {3, 7, 11}, {1.0f, 0.5f, -1.5f});
  d.Add(0, {3, 8}, {2.0f, 1.0f});
  d.Add(1, {7, 7, 20}, {1.0f, 0.25f, 1.0f});
  d.Add(0, {}, {});
  d.Add(0, {11, 20, 3}, {0.75f, -1.0f, 1.0f});
  d.Add(1, {8}, {-0.5f});
  return d;
}

double MeanLoss(SparseModel* model, PsClient* client, const SparseBatch& batch) {
  absl::StatusOr<double> l = model->Loss(client, batch, -1);
  EXPECT_TRUE(l.ok()) << l.status();
  return *l / batch.size;
}

// Compares every pushed row and dense gradient with central differences of the mean loss.
int CheckGradients(SparseModel* model, FakePsClient* fake, const SparseBatch& batch,
                   const std::vector<DenseTensor>& dense) {
  const double h = 1e-3;
  int checked = 0;
  for (auto& [table, rows] : fake->pushed_rows_) {
    for (auto& [key, grad] : rows) {
      const int width = static_cast<int>(grad.size());
      for (int c = 0; c < width; ++c) {
        float& p = fake->Row(table, key, width)[c];
        const float saved = p;
        p = saved + h;
        const double up = MeanLoss(model, fake, batch);
        p = saved - h;
        const double down = MeanLoss(model, fake, batch);
        p = saved;
        const double numeric = (up - down) / (2 * h);
        EXPECT_NEAR(grad[c], numeric, 2e-3 + 2e-2 * std::abs(numeric))
            << table << "[" << key << "][" << c << "]";
        ++checked;
      }
    }
  }
  for (const DenseTensor& t : dense) {
    const std::vector<float> grad = fake->pushed_dense_[t.table];
    EXPECT_EQ(static_cast<int64_t>(grad.size()), t.num_elements) << t.table;
    for (int64_t i = 0; i < t.num_elements && i < static_cast<int64_t>(grad.size()); ++i) {
      float& p = fake->Dense(t.table, t.num_elements)[i];
      const float saved = p;
      p = saved + h;
      const double up = MeanLoss(model, fake, batch);
      p = saved - h;
      const double down = MeanLoss(model, fake, batch);
      p = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grad[i], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << t.table << "[" << i << "]";
      ++checked;
    }
  }
  return checked;
}

TEST(LogisticRegressionTest, GradientMatchesFiniteDifferences) {
  const SparseDataset data = SmallData();
  std::vector<int64_t> examples(data.size());
  std::iota(examples.begin(), examples.end(), 0);
  const SparseBatch batch{&data, examples.data(), static_cast<int>(examples.size())};
  FakePsClient fake(0.5f);
  LogisticRegression model;
  absl::StatusOr<double> loss = model.TrainStep(&fake, batch, 3);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_NEAR(*loss / batch.size, MeanLoss(&model, &fake, batch), 1e-9);
  EXPECT_EQ(fake.last_step_, 7);  // pushed for the version it pulled
  // Every distinct feature and the bias, each once.
  std::map<int64_t, int> want = {{3, 1}, {7, 1}, {8, 1}, {11, 1}, {20, 1},
                                 {LogisticRegression::kBiasKey, 1}};
  EXPECT_EQ(fake.push_count_["lr.w"], want);
  EXPECT_EQ(CheckGradients(&model, &fake, batch, {}), 6);
}

TEST(LogisticRegressionTest, SubsetBatchTouchesOnlyItsRows) {
  const SparseDataset data = SmallData();
  const std::vector<int64_t> examples = {5, 1};
  const SparseBatch batch{&data, examples.data(), 2};
  FakePsClient fake(0.5f);
  LogisticRegression model;
  ASSERT_TRUE(model.TrainStep(&fake, batch, 0).ok());
  std::map<int64_t, int> want = {{3, 1}, {8, 1}, {LogisticRegression::kBiasKey, 1}};
  EXPECT_EQ(fake.push_count_["lr.w"], want);
  EXPECT_EQ(CheckGradients(&model, &fake, batch, {}), 3);
}

TEST(LogisticRegressionTest, RejectsBadBatchesAndNegativeIds) {
  SparseDataset data = SmallData();
  FakePsClient fake;
  LogisticRegression model;
  const std::vector<int64_t> outside = {6};
  EXPECT_EQ(model.TrainStep(&fake, {&data, outside.data(), 1}, 0).status().code(),
            absl::StatusCode::kOutOfRange);
  data.Add(1, {-1}, {1.0f});  // would alias the bias
  const std::vector<int64_t> last = {6};
  EXPECT_EQ(model.TrainStep(&fake, {&data, last.data(), 1}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake.pushed_rows_.empty());  // nothing pushed for a rejected batch
}

TEST(LogisticRegressionTest, TableSpecIsOneZeroInitialisedSparseColumn) {
  LogisticRegression model;
  v1::OptimizerSpec ftrl;
  ftrl.set_kind(v1::OptimizerSpec::FTRL);
  std::vector<v1::TableSpec> specs = model.TableSpecs(ftrl, v1::OptimizerSpec(), v1::SSP, 3, 9);
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].name(), "lr.w");
  EXPECT_EQ(specs[0].kind(), v1::SPARSE);
  EXPECT_EQ(specs[0].row_width(), 1);
  EXPECT_EQ(specs[0].initializer().kind(), v1::Initializer::ZEROS);
  EXPECT_EQ(specs[0].optimizer().kind(), v1::OptimizerSpec::FTRL);
  EXPECT_EQ(specs[0].consistency(), v1::SSP);
  EXPECT_EQ(specs[0].staleness_bound(), 3);
  specs = model.TableSpecs(ftrl, v1::OptimizerSpec(), v1::ASYNC, 3, 9);
  EXPECT_EQ(specs[0].staleness_bound(), 0);
}

TEST(LogisticRegressionTest, SgdThroughTheClientApproachesTheTrueModel) {
  ClickLogOptions o;
  o.num_fields = 4;
  o.ids_per_field = 50;
  o.weight_stddev = 1.0;
  absl::StatusOr<ClickLogModel> truth = ClickLogModel::Create(o);
  ASSERT_TRUE(truth.ok());
  const SparseDataset train = truth->Sample(40000, 0), test = truth->Sample(10000, 1);
  FakePsClient fake(0.0f, 0.5f);
  LogisticRegression model;
  std::vector<int64_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (int64_t first = 0; first < train.size(); first += 32) {
      ASSERT_TRUE(model.TrainStep(&fake, {&train, order.data() + first, 32}, 0).ok());
    }
  }
  std::vector<int64_t> all(test.size());
  std::iota(all.begin(), all.end(), 0);
  const double learned = MeanLoss(&model, &fake, {&test, all.data(), static_cast<int>(test.size())});
  const double best = *truth->LogLoss(test);
  EXPECT_LT(learned, 1.03 * best) << "learned " << learned << " true " << best;
  EXPECT_LT(learned, 0.9 * BaseRateLogLoss(test));
}

TEST(CtrModelTest, GradientMatchesFiniteDifferences) {
  const SparseDataset data = SmallData();
  std::vector<int64_t> examples(data.size());
  std::iota(examples.begin(), examples.end(), 0);
  const SparseBatch batch{&data, examples.data(), static_cast<int>(examples.size())};
  auto backend = kernels::NewCpuBackend();
  absl::StatusOr<std::unique_ptr<CtrModel>> model = CtrModel::Create(3, 4, backend.get());
  ASSERT_TRUE(model.ok()) << model.status();
  FakePsClient fake(0.7f);
  absl::StatusOr<double> loss = (*model)->TrainStep(&fake, batch, 1);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_NEAR(*loss / batch.size, MeanLoss(model->get(), &fake, batch), 1e-6);
  std::map<int64_t, int> want = {{3, 1}, {7, 1}, {8, 1}, {11, 1}, {20, 1}};
  EXPECT_EQ(fake.push_count_["ctr.emb"], want);
  std::vector<float> unused(3 * 4 + 4 + 4 + 1);
  const std::vector<DenseTensor> dense = {{"ctr.fc0.w", 12, unused.data()},
                                          {"ctr.fc0.b", 4, unused.data()},
                                          {"ctr.fc1.w", 4, unused.data()},
                                          {"ctr.fc1.b", 1, unused.data()}};
  EXPECT_EQ(CheckGradients(model->get(), &fake, batch, dense), 5 * 3 + 12 + 4 + 4 + 1);
}

TEST(CtrModelTest, TableSpecsAndArguments) {
  auto backend = kernels::NewCpuBackend();
  EXPECT_EQ(CtrModel::Create(0, 4, backend.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CtrModel::Create(8, 4, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::unique_ptr<CtrModel>> model = CtrModel::Create(8, 32, backend.get());
  ASSERT_TRUE(model.ok());
  v1::OptimizerSpec sparse_opt, dense_opt;
  sparse_opt.set_kind(v1::OptimizerSpec::FTRL);
  dense_opt.set_kind(v1::OptimizerSpec::ADAGRAD);
  const std::vector<v1::TableSpec> specs =
      (*model)->TableSpecs(sparse_opt, dense_opt, v1::ASYNC, 0, 5);
  ASSERT_EQ(specs.size(), 5u);
  EXPECT_EQ(specs[0].name(), "ctr.emb");
  EXPECT_EQ(specs[0].kind(), v1::SPARSE);
  EXPECT_EQ(specs[0].row_width(), 8);
  EXPECT_EQ(specs[0].optimizer().kind(), v1::OptimizerSpec::FTRL);
  EXPECT_EQ(specs[1].name(), "ctr.fc0.w");
  EXPECT_EQ(specs[1].kind(), v1::DENSE);
  EXPECT_EQ(specs[1].shape_size(), 2);
  EXPECT_EQ(specs[1].shape(0), 8);
  EXPECT_EQ(specs[1].shape(1), 32);
  EXPECT_FLOAT_EQ(specs[1].initializer().high(), 1.0f / std::sqrt(8.0f));
  EXPECT_EQ(specs[4].name(), "ctr.fc1.b");
  for (size_t i = 1; i < specs.size(); ++i) {
    EXPECT_EQ(specs[i].optimizer().kind(), v1::OptimizerSpec::ADAGRAD) << specs[i].name();
    EXPECT_EQ(specs[i].consistency(), v1::ASYNC);
  }
}

TEST(CtrModelTest, SgdThroughTheClientLowersTheLoss) {
  ClickLogOptions o;
  o.num_fields = 4;
  o.ids_per_field = 50;
  o.weight_stddev = 1.0;
  absl::StatusOr<ClickLogModel> truth = ClickLogModel::Create(o);
  ASSERT_TRUE(truth.ok());
  const SparseDataset train = truth->Sample(20000, 0), test = truth->Sample(5000, 1);
  auto backend = kernels::NewCpuBackend();
  absl::StatusOr<std::unique_ptr<CtrModel>> model = CtrModel::Create(4, 16, backend.get());
  ASSERT_TRUE(model.ok());
  FakePsClient fake(0.1f, 0.5f);
  std::vector<int64_t> all(test.size());
  std::iota(all.begin(), all.end(), 0);
  const SparseBatch test_batch{&test, all.data(), static_cast<int>(test.size())};
  const double before = MeanLoss(model->get(), &fake, test_batch);
  std::vector<int64_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (int64_t first = 0; first < train.size(); first += 32) {
      ASSERT_TRUE((*model)->TrainStep(&fake, {&train, order.data() + first, 32}, 0).ok());
    }
  }
  const double after = MeanLoss(model->get(), &fake, test_batch);
  EXPECT_LT(after, before);
  EXPECT_LT(after, 0.95 * BaseRateLogLoss(test)) << "before " << before << " after " << after;
}

}  // namespace
}  // namespace ps
