// Reads MNIST-format data sets (IDX files, gzipped or not), such as Debian's
// dataset-fashion-mnist in /usr/share/datasets/fashion-mnist.
//
// Thread-safe: pure functions.
#ifndef PS_WORKER_DATA_MNIST_H_
#define PS_WORKER_DATA_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

// Images as rows of `dim` floats, normalised to zero mean and unit variance over the
// Fashion-MNIST training set, and their labels.
struct Dataset {
  int64_t size = 0;
  int dim = 0;
  int num_classes = 10;
  std::vector<float> features;  // size * dim
  std::vector<int32_t> labels;  // size
};

inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Loads `<dir>/<prefix>-images-idx3-ubyte[.gz]` and `<dir>/<prefix>-labels-idx1-ubyte[.gz]`
// with prefix "train" or "t10k". NOT_FOUND names a missing file; DATA_LOSS names a
// malformed one (bad magic number, truncated, counts that disagree, label out of range).
absl::StatusOr<Dataset> LoadMnist(const std::string& dir, const std::string& prefix);

// The largest image ParseMnist accepts, in pixels (Fashion-MNIST's are 784).
inline constexpr uint64_t kMaxImagePixels = uint64_t{1} << 24;

// Parses an IDX3 image file's and an IDX1 label file's bytes; the names prefix errors.
// DATA_LOSS as LoadMnist, and for images of no pixels or more than kMaxImagePixels.
absl::StatusOr<Dataset> ParseMnist(absl::string_view images, absl::string_view labels,
                                   absl::string_view images_name,
                                   absl::string_view labels_name);

// Reads a whole file, gunzipping it if it is gzip-compressed.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path);

}  // namespace ps

#endif  // PS_WORKER_DATA_MNIST_H_
