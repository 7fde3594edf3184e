// Reads and writes sparse binary-classification data in LibSVM text format:
//
//   <label> <index>:<value> <index>:<value> ...   # optional trailing comment
//
// one example per line. Labels 1 and +1 mean a positive (click); 0 and -1 a negative.
// Indices are non-negative int64 feature ids (any order; negative ids are kept free for
// model-internal keys such as a bias), values are floats. Blank lines and lines starting
// with '#' are skipped. Files may be gzip-compressed.
//
// Thread-safe: pure functions.
#ifndef PS_WORKER_DATA_LIBSVM_H_
#define PS_WORKER_DATA_LIBSVM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

// Examples in compressed sparse row form: example i has the features
// ids[offsets[i] .. offsets[i+1]) with the matching values.
struct SparseDataset {
  std::vector<float> labels;         // 0 or 1, one per example
  std::vector<int64_t> offsets{0};   // size() + 1 entries, offsets[0] == 0
  std::vector<int64_t> ids;          // feature ids, offsets.back() entries
  std::vector<float> values;         // feature values, same length as ids

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t num_entries() const { return static_cast<int64_t>(ids.size()); }
  // Appends one example.
  void Add(float label, const std::vector<int64_t>& example_ids,
           const std::vector<float>& example_values);
  // Mean label (the click-through rate); 0 for an empty set.
  double PositiveRate() const;
};

// Parses LibSVM text. `name` (a file name) prefixes errors: INVALID_ARGUMENT
// "<name>:<line>: <problem> '<token>'" for a bad label, index, value or token.
absl::StatusOr<SparseDataset> ParseLibSvm(absl::string_view text, const std::string& name);

// Reads and parses a LibSVM file, gunzipping it if compressed. NOT_FOUND if it cannot be
// opened, DATA_LOSS if it cannot be read, INVALID_ARGUMENT as ParseLibSvm.
absl::StatusOr<SparseDataset> ReadLibSvm(const std::string& path);

// Formats `data` as LibSVM text (labels 0/1; values printed so that they read back
// exactly).
std::string FormatLibSvm(const SparseDataset& data);

// Writes `data` to `path`, gzip-compressed when the path ends in ".gz". Returns
// UNAVAILABLE naming the path when it cannot be written.
absl::Status WriteLibSvm(const SparseDataset& data, const std::string& path);

}  // namespace ps

#endif  // PS_WORKER_DATA_LIBSVM_H_
