// Fuzzes ParseMnist (worker/data/mnist.h): the input's first two bytes say where the
// image file ends and the label file begins. Any bytes parse into a data set whose sizes
// agree, or are refused with a DATA_LOSS that names a file.
#include <cstdint>
#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "worker/data/mnist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t cut = std::min<size_t>(size - 2, (size_t{data[0]} << 8) | data[1]);
  const absl::string_view images(reinterpret_cast<const char*>(data) + 2, cut);
  const absl::string_view labels(reinterpret_cast<const char*>(data) + 2 + cut, size - 2 - cut);
  const absl::StatusOr<ps::Dataset> d = ps::ParseMnist(images, labels, "images", "labels");
  if (!d.ok()) {
    if (d.status().code() != absl::StatusCode::kDataLoss ||
        !(absl::StartsWith(d.status().message(), "images") ||
          absl::StartsWith(d.status().message(), "labels"))) {
      std::abort();
    }
    return 0;
  }
  if (d->dim <= 0 || static_cast<int64_t>(d->features.size()) != d->size * d->dim ||
      static_cast<int64_t>(d->labels.size()) != d->size) {
    std::abort();
  }
  for (int32_t label : d->labels) {
    if (label < 0 || label >= d->num_classes) std::abort();
  }
  return 0;
}
