// make_click_log: writes a synthetic click log (worker/data/click_log.h) as LibSVM train and
// test files, and reports the true model's log-loss on each: the Bayes-optimal reference
// a trained model is measured against. Files ending in ".gz" are gzip-compressed.
//
//   make_click_log --train_file=train.svm --test_file=test.svm --summary_file=truth.txt
//
// prints (and writes to --summary_file) one line per file, e.g.
//   click_log test examples=50000 ctr=0.2412 true_logloss=0.443120 base_logloss=0.553817
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/data/click_log.h"
#include "worker/data/libsvm.h"

ABSL_FLAG(std::string, train_file, "", "Where to write the training examples (LibSVM).");
ABSL_FLAG(std::string, test_file, "", "Where to write the held-out examples (LibSVM).");
ABSL_FLAG(std::string, summary_file, "", "Also write the summary lines here.");
ABSL_FLAG(int64_t, train_examples, 200000, "Training examples.");
ABSL_FLAG(int64_t, test_examples, 50000, "Held-out examples.");
ABSL_FLAG(int, fields, 8, "Categorical fields; every example has one value of each.");
ABSL_FLAG(int64_t, ids_per_field, 12500, "Distinct values (feature ids) per field.");
ABSL_FLAG(double, zipf_exponent, 1.1, "Power-law exponent of the value frequencies.");
ABSL_FLAG(double, weight_stddev, 0.5, "Standard deviation of the true feature weights.");
ABSL_FLAG(double, bias, -1.5, "The true model's bias (logit of a featureless example).");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the true model and the samples.");

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "make_click_log: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "make_click_log --train_file=F --test_file=F [--summary_file=F]: writes a synthetic "
      "click log with a known true model.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_train_file).empty() && absl::GetFlag(FLAGS_test_file).empty()) {
    return Fail(absl::InvalidArgumentError("give --train_file and/or --test_file"));
  }
  ps::ClickLogOptions options;
  options.num_fields = absl::GetFlag(FLAGS_fields);
  options.ids_per_field = absl::GetFlag(FLAGS_ids_per_field);
  options.zipf_exponent = absl::GetFlag(FLAGS_zipf_exponent);
  options.weight_stddev = absl::GetFlag(FLAGS_weight_stddev);
  options.bias = absl::GetFlag(FLAGS_bias);
  options.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<ps::ClickLogModel> model = ps::ClickLogModel::Create(options);
  if (!model.ok()) return Fail(model.status());

  std::string summary;
  struct Part {
    const char* name;
    std::string path;
    int64_t examples;
    uint64_t stream;
  };
  const Part parts[] = {{"train", absl::GetFlag(FLAGS_train_file),
                         absl::GetFlag(FLAGS_train_examples), 0},
                        {"test", absl::GetFlag(FLAGS_test_file),
                         absl::GetFlag(FLAGS_test_examples), 1}};
  for (const Part& part : parts) {
    if (part.path.empty()) continue;
    if (part.examples < 1) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--", part.name, "_examples=", part.examples, " must be at least 1")));
    }
    const ps::SparseDataset data = model->Sample(part.examples, part.stream);
    if (absl::Status s = ps::WriteLibSvm(data, part.path); !s.ok()) return Fail(s);
    absl::StatusOr<double> truth = model->LogLoss(data);
    if (!truth.ok()) return Fail(truth.status());
    const std::string line = absl::StrFormat(
        "click_log %s examples=%d ctr=%.4f true_logloss=%.6f base_logloss=%.6f file=%s\n",
        part.name, data.size(), data.PositiveRate(), *truth, ps::BaseRateLogLoss(data),
        part.path);
    std::fputs(line.c_str(), stdout);
    summary += line;
  }
  if (const std::string path = absl::GetFlag(FLAGS_summary_file); !path.empty()) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    const bool ok = f != nullptr && std::fputs(summary.c_str(), f) >= 0;
    if (f == nullptr || std::fclose(f) != 0 || !ok) {
      return Fail(absl::UnavailableError(absl::StrCat("cannot write ", path)));
    }
  }
  return 0;
}
