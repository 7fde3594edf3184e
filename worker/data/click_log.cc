#include "worker/data/click_log.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

// SplitMix64: small, fast, and the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (one of the pair; simplicity over speed).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]: log stays finite
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace

double LogLossFromLogit(double z, float label) {
  // -log sigmoid(z) for a click, -log(1 - sigmoid(z)) otherwise, without overflow.
  const double softplus = std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z)));
  return softplus - (label > 0.5f ? z : 0.0);
}

absl::StatusOr<ClickLogModel> ClickLogModel::Create(const ClickLogOptions& options) {
  if (options.num_fields < 1 || options.ids_per_field < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "click log: num_fields=", options.num_fields, " and ids_per_field=",
        options.ids_per_field, " must both be at least 1"));
  }
  if (!(options.zipf_exponent > 0) || !std::isfinite(options.zipf_exponent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("click log: zipf_exponent=", options.zipf_exponent, " must be positive"));
  }
  if (!(options.weight_stddev >= 0) || !std::isfinite(options.weight_stddev)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "click log: weight_stddev=", options.weight_stddev, " must be non-negative"));
  }
  if (!std::isfinite(options.bias)) {
    return absl::InvalidArgumentError(absl::StrCat("click log: bias=", options.bias, " is not finite"));
  }
  ClickLogModel model(options);
  model.cdf_.resize(options.ids_per_field);
  double total = 0;
  for (int64_t r = 0; r < options.ids_per_field; ++r) {
    total += std::pow(static_cast<double>(r + 1), -options.zipf_exponent);
    model.cdf_[r] = total;
  }
  for (double& c : model.cdf_) c /= total;
  const int64_t features = options.num_fields * options.ids_per_field;
  model.weights_.resize(features);
  Rng rng(options.seed);
  for (float& w : model.weights_) w = static_cast<float>(options.weight_stddev * rng.Normal());
  return model;
}

double ClickLogModel::Probability(int64_t rank) const {
  if (rank < 0 || rank >= static_cast<int64_t>(cdf_.size())) return 0;
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

SparseDataset ClickLogModel::Sample(int64_t n, uint64_t stream) const {
  SparseDataset data;
  const int fields = options_.num_fields;
  data.labels.reserve(n);
  data.offsets.reserve(n + 1);
  data.ids.reserve(n * fields);
  data.values.reserve(n * fields);
  // Seeds far apart for each (seed, stream) pair; SplitMix64 decorrelates neighbours.
  Rng rng(Rng(options_.seed ^ 0x5ca1ab1e00000000ull).Next() + 0x632be59bd9b4e019ull * (stream + 1));
  for (int64_t i = 0; i < n; ++i) {
    double logit = options_.bias;
    for (int f = 0; f < fields; ++f) {
      const int64_t rank = std::min<int64_t>(
          std::upper_bound(cdf_.begin(), cdf_.end(), rng.Uniform()) - cdf_.begin(),
          options_.ids_per_field - 1);
      const int64_t id = FeatureId(f, rank);
      data.ids.push_back(id);
      data.values.push_back(1.0f);
      logit += weights_[id];
    }
    const double p = 1.0 / (1.0 + std::exp(-logit));
    data.labels.push_back(rng.Uniform() < p ? 1.0f : 0.0f);
    data.offsets.push_back(static_cast<int64_t>(data.ids.size()));
  }
  return data;
}

double ClickLogModel::ClickProbability(const SparseDataset& data, int64_t i) const {
  double logit = options_.bias;
  for (int64_t j = data.offsets[i]; j < data.offsets[i + 1]; ++j) {
    logit += static_cast<double>(data.values[j]) * weights_[data.ids[j]];
  }
  return 1.0 / (1.0 + std::exp(-logit));
}

absl::StatusOr<double> ClickLogModel::LogLoss(const SparseDataset& data) const {
  if (data.size() == 0) return absl::InvalidArgumentError("click log: log-loss of no examples");
  double sum = 0;
  for (int64_t i = 0; i < data.size(); ++i) {
    double logit = options_.bias;
    for (int64_t j = data.offsets[i]; j < data.offsets[i + 1]; ++j) {
      const int64_t id = data.ids[j];
      if (id < 0 || id >= num_features()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "click log: example ", i, " has feature ", id, " outside the true model's [0, ",
            num_features(), ")"));
      }
      logit += static_cast<double>(data.values[j]) * weights_[id];
    }
    sum += LogLossFromLogit(logit, data.labels[i]);
  }
  return sum / static_cast<double>(data.size());
}

double BaseRateLogLoss(const SparseDataset& data) {
  const double p = data.PositiveRate();
  if (p <= 0 || p >= 1) return 0;
  return -(p * std::log(p) + (1 - p) * std::log(1 - p));
}

}  // namespace ps
