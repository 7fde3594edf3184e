// A synthetic click log with a known true model, for testing and demonstrating sparse
// training: the loss a trained model reaches can be compared with the Bayes-optimal one.
//
// There are `num_fields` categorical fields (think ad id, site, user segment), each with
// `ids_per_field` values on a disjoint range of feature ids: value r (0 = most frequent)
// of field f is feature f * ids_per_field + r. Every example has exactly one active value
// per field (feature value 1.0), drawn with Zipf probability proportional to
// (r + 1)^-zipf_exponent, as feature frequencies in real logs follow a power law. Each
// feature has a true weight w*[id] ~ N(0, weight_stddev^2), and
//
//   click ~ Bernoulli(sigmoid(bias + sum of w*[id] over the active features)).
//
// Everything is a pure function of the options and the stream number, bit for bit on
// every platform (own generator, no std:: distributions).
//
// Thread safety: a ClickLogModel is immutable after Create(); its methods may be called
// concurrently.
#ifndef PS_WORKER_DATA_CLICK_LOG_H_
#define PS_WORKER_DATA_CLICK_LOG_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/data/libsvm.h"

namespace ps {

struct ClickLogOptions {
  int num_fields = 8;
  int64_t ids_per_field = 12500;
  double zipf_exponent = 1.1;
  double weight_stddev = 0.5;
  double bias = -1.5;
  uint64_t seed = 1;
};

class ClickLogModel {
 public:
  // INVALID_ARGUMENT names an option out of range (fields or ids < 1, exponent <= 0,
  // negative stddev, non-finite bias).
  static absl::StatusOr<ClickLogModel> Create(const ClickLogOptions& options);

  const ClickLogOptions& options() const { return options_; }
  int64_t num_features() const { return static_cast<int64_t>(weights_.size()); }
  // The feature id of value `rank` of `field`.
  int64_t FeatureId(int field, int64_t rank) const {
    return field * options_.ids_per_field + rank;
  }
  // Zipf probability of value `rank` within its field.
  double Probability(int64_t rank) const;
  float weight(int64_t id) const { return weights_[id]; }
  double bias() const { return options_.bias; }

  // Draws `n` examples. Different `stream`s (e.g. 0 for training, 1 for test) give
  // independent samples of the same distribution.
  SparseDataset Sample(int64_t n, uint64_t stream) const;

  // The true model's click probability for example `i` of `data`, whose feature ids
  // must lie in [0, num_features()) (LogLoss checks them).
  double ClickProbability(const SparseDataset& data, int64_t i) const;
  // Mean log-loss of the true model's probabilities on `data`: the Bayes-optimal loss a
  // trained model can approach. INVALID_ARGUMENT names a feature id outside the model.
  absl::StatusOr<double> LogLoss(const SparseDataset& data) const;

 private:
  explicit ClickLogModel(const ClickLogOptions& options) : options_(options) {}

  ClickLogOptions options_;
  std::vector<double> cdf_;     // cumulative Zipf probabilities over ranks
  std::vector<float> weights_;  // w*[id]
};

// Mean log-loss of predicting `data`'s own click-through rate for every example: the
// loss of the best constant model, which a useful model beats.
double BaseRateLogLoss(const SparseDataset& data);

// Numerically stable log-loss of a logit `z` against a 0/1 label.
double LogLossFromLogit(double z, float label);

}  // namespace ps

#endif  // PS_WORKER_DATA_CLICK_LOG_H_
