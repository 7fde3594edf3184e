#include "worker/model/mlp.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Loss of the model at its current parameters on (x, y), mean over rows.
double MeanLoss(Mlp* m, const std::vector<float>& x, const std::vector<int32_t>& y) {
  auto r = m->Evaluate(x.data(), y.data(), static_cast<int64_t>(y.size()));
  EXPECT_TRUE(r.ok());
  return r->loss_sum / y.size();
}

TEST(MlpTest, GradientMatchesFiniteDifferences) {
  auto backend = kernels::NewCpuBackend();
  auto m = Mlp::Create({5, 7, 4}, 8, backend.get());
  ASSERT_TRUE(m.ok()) << m.status();
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (const DenseTensor& t : (*m)->host_params())
    for (int64_t i = 0; i < t.num_elements; ++i) t.data[i] = normal(rng);
  std::vector<float> x(6 * 5);
  for (float& v : x) v = normal(rng);
  std::vector<int32_t> y = {0, 3, 1, 2, 3, 0};
  ASSERT_TRUE((*m)->TrainStep(x.data(), y.data(), 6).ok());
  ASSERT_TRUE((*m)->DownloadGrads().ok());
  // Copy the analytic gradient before the evaluations below reuse the buffers.
  std::vector<std::vector<float>> grads;
  for (const DenseTensor& g : (*m)->host_grads())
    grads.emplace_back(g.data, g.data + g.num_elements);
  const double h = 1e-3;
  int checked = 0;
  for (size_t t = 0; t < grads.size(); ++t) {
    const DenseTensor& p = (*m)->host_params()[t];
    for (int64_t i = 0; i < p.num_elements; ++i) {
      const float saved = p.data[i];
      p.data[i] = saved + h;
      const double up = MeanLoss(m->get(), x, y);
      p.data[i] = saved - h;
      const double down = MeanLoss(m->get(), x, y);
      p.data[i] = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grads[t][i], numeric, 2e-3 + 2e-2 * std::abs(numeric))
          << p.table << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5 * 7 + 7 + 7 * 4 + 4);
}

TEST(MlpTest, TablesAreNamedShapedAndInitialisedLikePyTorch) {
  auto backend = kernels::NewCpuBackend();
  auto m = Mlp::Create({784, 512, 256, 10}, 64, backend.get());
  ASSERT_TRUE(m.ok());
  v1::OptimizerSpec opt;
  auto specs = (*m)->TableSpecs(opt, v1::SYNC, 9);
  ASSERT_EQ(specs.size(), 6u);
  EXPECT_EQ(specs[0].name(), "fc0.w");
  EXPECT_EQ(specs[0].shape_size(), 2);
  EXPECT_EQ(specs[0].shape(0), 784);
  EXPECT_EQ(specs[0].shape(1), 512);
  EXPECT_EQ(specs[5].name(), "fc2.b");
  EXPECT_NEAR(specs[0].initializer().high(), 1.0 / std::sqrt(784.0), 1e-7);
  EXPECT_EQ(specs[0].consistency(), v1::SYNC);
  EXPECT_EQ((*m)->num_parameters(), 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10);
  EXPECT_DOUBLE_EQ((*m)->TrainFlops(64),
                   2.0 * 64 * (2.0 * 784 * 512 + 3.0 * 512 * 256 + 3.0 * 256 * 10));
}

TEST(MlpTest, BadSizesAreInvalidArgument) {
  auto backend = kernels::NewCpuBackend();
  EXPECT_EQ(Mlp::Create({10}, 8, backend.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mlp::Create({10, 0, 2}, 8, backend.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mlp::Create({10, 2}, 0, backend.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto m = Mlp::Create({3, 2}, 4, backend.get());
  ASSERT_TRUE(m.ok());
  std::vector<float> x(15);
  std::vector<int32_t> y(5);
  EXPECT_EQ((*m)->TrainStep(x.data(), y.data(), 5).status().code(),
            absl::StatusCode::kInvalidArgument);  // batch above max_batch
  y[0] = 7;
  EXPECT_EQ((*m)->TrainStep(x.data(), y.data(), 1).status().code(),
            absl::StatusCode::kInvalidArgument);  // label outside the classes
}

TEST(MlpTest, AccumulatedStepsSumTheirGradientsAndDownloadScales) {
  auto backend = kernels::NewCpuBackend();
  auto m = Mlp::Create({4, 5, 3}, 4, backend.get());
  ASSERT_TRUE(m.ok());
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (const DenseTensor& t : (*m)->host_params())
    for (int64_t i = 0; i < t.num_elements; ++i) t.data[i] = normal(rng);
  std::vector<float> xa(4 * 4), xb(4 * 4);
  for (float& v : xa) v = normal(rng);
  for (float& v : xb) v = normal(rng);
  std::vector<int32_t> ya = {0, 1, 2, 1}, yb = {2, 2, 0, 1};
  auto grads = [&]() {
    std::vector<float> all;
    for (const DenseTensor& g : (*m)->host_grads()) all.insert(all.end(), g.data, g.data + g.num_elements);
    return all;
  };
  ASSERT_TRUE((*m)->TrainStep(xa.data(), ya.data(), 4).ok());
  ASSERT_TRUE((*m)->DownloadGrads().ok());
  const std::vector<float> ga = grads();
  ASSERT_TRUE((*m)->TrainStep(xb.data(), yb.data(), 4).ok());
  ASSERT_TRUE((*m)->DownloadGrads().ok());
  const std::vector<float> gb = grads();
  ASSERT_TRUE((*m)->TrainStep(xa.data(), ya.data(), 4, /*accumulate=*/false).ok());
  ASSERT_TRUE((*m)->TrainStep(xb.data(), yb.data(), 4, /*accumulate=*/true).ok());
  ASSERT_TRUE((*m)->DownloadGrads(0.5f).ok());
  const std::vector<float> mean = grads();
  ASSERT_EQ(mean.size(), ga.size());
  for (size_t i = 0; i < mean.size(); ++i) EXPECT_NEAR(mean[i], 0.5f * (ga[i] + gb[i]), 1e-6) << i;
}

TEST(MlpTest, ParseLayerSizes) {
  EXPECT_EQ(*ParseLayerSizes("512,256"), (std::vector<int>{512, 256}));
  EXPECT_EQ(*ParseLayerSizes(""), std::vector<int>{});
  absl::Status s = ParseLayerSizes("512,x").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'x'"), absl::string_view::npos);
  EXPECT_EQ(ParseLayerSizes("-3").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MlpTest, TrainingALinearlySeparableProblemReachesFullAccuracy) {
  auto backend = kernels::NewCpuBackend();
  auto m = Mlp::Create({2, 16, 2}, 32, backend.get());
  ASSERT_TRUE(m.ok());
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const DenseTensor& t : (*m)->host_params())
    for (int64_t i = 0; i < t.num_elements; ++i) t.data[i] = 0.3f * u(rng);
  std::vector<float> x(32 * 2);
  std::vector<int32_t> y(32);
  for (int i = 0; i < 32; ++i) {
    x[2 * i] = u(rng);
    x[2 * i + 1] = u(rng);
    y[i] = x[2 * i] + x[2 * i + 1] > 0 ? 1 : 0;
  }
  for (int step = 0; step < 300; ++step) {
    ASSERT_TRUE((*m)->TrainStep(x.data(), y.data(), 32).ok());
    ASSERT_TRUE((*m)->DownloadGrads().ok());
    for (size_t t = 0; t < (*m)->host_params().size(); ++t) {
      const DenseTensor& p = (*m)->host_params()[t];
      const DenseTensor& g = (*m)->host_grads()[t];
      for (int64_t i = 0; i < p.num_elements; ++i) p.data[i] -= 0.5f * g.data[i];
    }
  }
  auto r = (*m)->Evaluate(x.data(), y.data(), 32);
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->correct, 31);
}

}  // namespace
}  // namespace ps
