#include "worker/data/click_log.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ClickLogTest, SameSeedSameLogOtherSeedOrStreamDiffers) {
  ClickLogOptions o;
  o.ids_per_field = 1000;
  absl::StatusOr<ClickLogModel> a = ClickLogModel::Create(o);
  absl::StatusOr<ClickLogModel> b = ClickLogModel::Create(o);
  ASSERT_TRUE(a.ok() && b.ok());
  const SparseDataset x = a->Sample(2000, 0), y = b->Sample(2000, 0);
  EXPECT_EQ(x.ids, y.ids);
  EXPECT_EQ(x.labels, y.labels);
  EXPECT_NE(a->Sample(2000, 1).ids, x.ids);  // the test stream is another sample
  o.seed = 2;
  absl::StatusOr<ClickLogModel> c = ClickLogModel::Create(o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->Sample(2000, 0).ids, x.ids);
  EXPECT_NE(c->weight(0), a->weight(0));
}

TEST(ClickLogTest, OneValuePerFieldOnDisjointRanges) {
  ClickLogOptions o;
  o.num_fields = 5;
  o.ids_per_field = 300;
  absl::StatusOr<ClickLogModel> m = ClickLogModel::Create(o);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_features(), 1500);
  const SparseDataset d = m->Sample(1000, 0);
  ASSERT_EQ(d.size(), 1000);
  for (int64_t i = 0; i < d.size(); ++i) {
    ASSERT_EQ(d.offsets[i + 1] - d.offsets[i], 5);
    for (int f = 0; f < 5; ++f) {
      const int64_t id = d.ids[d.offsets[i] + f];
      EXPECT_GE(id, f * 300);
      EXPECT_LT(id, (f + 1) * 300);
      EXPECT_EQ(d.values[d.offsets[i] + f], 1.0f);
    }
    EXPECT_TRUE(d.labels[i] == 0.0f || d.labels[i] == 1.0f);
  }
}

TEST(ClickLogTest, FrequenciesFollowThePowerLaw) {
  ClickLogOptions o;
  o.num_fields = 1;
  o.ids_per_field = 10000;
  o.zipf_exponent = 1.1;
  absl::StatusOr<ClickLogModel> m = ClickLogModel::Create(o);
  ASSERT_TRUE(m.ok());
  const int64_t n = 400000;
  const SparseDataset d = m->Sample(n, 0);
  std::vector<double> count(o.ids_per_field, 0);
  for (int64_t id : d.ids) count[id] += 1;
  // Least-squares slope of log(frequency) on log(rank) over the well-sampled head.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int k = 0;
  for (int r = 0; r < 200; ++r) {
    ASSERT_GT(count[r], 0) << r;
    const double x = std::log(r + 1.0), y = std::log(count[r] / n);
    sx += x, sy += y, sxx += x * x, sxy += x * y;
    ++k;
  }
  const double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
  EXPECT_NEAR(slope, -1.1, 0.05);
  // Head frequencies match the Zipf probabilities (binomial noise is < 1% here).
  for (int r : {0, 1, 9}) {
    EXPECT_NEAR(count[r] / n, m->Probability(r), 0.05 * m->Probability(r)) << r;
  }
  EXPECT_NEAR(m->Probability(0) / m->Probability(9), std::pow(10.0, 1.1), 1e-9);
  // The tail is long: most ids are rare but the top 1% still covers a large share.
  double head = 0;
  for (int r = 0; r < 100; ++r) head += count[r];
  EXPECT_GT(head / n, 0.4);
  EXPECT_LT(head / n, 0.8);
}

TEST(ClickLogTest, TrueModelBeatsTheBaseRateAndLabelsMatchItsProbabilities) {
  ClickLogOptions o;
  absl::StatusOr<ClickLogModel> m = ClickLogModel::Create(o);
  ASSERT_TRUE(m.ok());
  const SparseDataset d = m->Sample(100000, 1);
  absl::StatusOr<double> truth = m->LogLoss(d);
  ASSERT_TRUE(truth.ok()) << truth.status();
  const double base = BaseRateLogLoss(d);
  EXPECT_LT(*truth, 0.97 * base) << "true " << *truth << " base " << base;
  double expected_clicks = 0;
  for (int64_t i = 0; i < d.size(); ++i) expected_clicks += m->ClickProbability(d, i);
  EXPECT_NEAR(d.PositiveRate(), expected_clicks / d.size(), 0.01);
  EXPECT_GT(d.PositiveRate(), 0.1);
  EXPECT_LT(d.PositiveRate(), 0.5);
}

TEST(ClickLogTest, LogLossFromLogitIsStable) {
  EXPECT_NEAR(LogLossFromLogit(0.0, 1.0f), std::log(2.0), 1e-12);
  EXPECT_NEAR(LogLossFromLogit(0.0, 0.0f), std::log(2.0), 1e-12);
  EXPECT_NEAR(LogLossFromLogit(2.0, 1.0f), -std::log(1 / (1 + std::exp(-2.0))), 1e-12);
  EXPECT_NEAR(LogLossFromLogit(2.0, 0.0f), -std::log(1 - 1 / (1 + std::exp(-2.0))), 1e-12);
  EXPECT_NEAR(LogLossFromLogit(1000.0, 0.0f), 1000.0, 1e-9);
  EXPECT_NEAR(LogLossFromLogit(-1000.0, 1.0f), 1000.0, 1e-9);
  EXPECT_NEAR(LogLossFromLogit(1000.0, 1.0f), 0.0, 1e-12);
}

TEST(ClickLogTest, RejectsBadOptionsAndForeignFeatures) {
  ClickLogOptions o;
  o.num_fields = 0;
  EXPECT_EQ(ClickLogModel::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClickLogOptions();
  o.zipf_exponent = 0;
  EXPECT_EQ(ClickLogModel::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClickLogOptions();
  o.weight_stddev = -1;
  EXPECT_EQ(ClickLogModel::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClickLogOptions();
  o.ids_per_field = 10;
  absl::StatusOr<ClickLogModel> m = ClickLogModel::Create(o);
  ASSERT_TRUE(m.ok());
  SparseDataset d;
  d.Add(1, {80}, {1.0f});
  EXPECT_EQ(m->LogLoss(d).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m->LogLoss(SparseDataset()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ps
