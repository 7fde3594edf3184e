// Fuzzes ParseLibSvm (worker/data/libsvm.h): any text parses into a well-formed data set
// that FormatLibSvm writes back to the same examples, or is refused with an
// INVALID_ARGUMENT that names the input.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "worker/data/libsvm.h"

namespace {

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<ps::SparseDataset> parsed = ps::ParseLibSvm(text, "fuzz.svm");
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StartsWith(parsed.status().message(), "fuzz.svm:")) {
      std::abort();
    }
    return 0;
  }
  const ps::SparseDataset& d = *parsed;
  if (d.offsets.size() != d.labels.size() + 1 || d.offsets.front() != 0) std::abort();
  for (size_t i = 1; i < d.offsets.size(); ++i) {
    if (d.offsets[i] < d.offsets[i - 1]) std::abort();
  }
  if (d.offsets.back() != d.num_entries() || d.values.size() != d.ids.size()) std::abort();
  for (float label : d.labels) {
    if (label != 0.0f && label != 1.0f) std::abort();
  }
  const absl::StatusOr<ps::SparseDataset> again =
      ps::ParseLibSvm(ps::FormatLibSvm(d), "formatted.svm");
  if (!again.ok() || again->labels != d.labels || again->offsets != d.offsets ||
      again->ids != d.ids || !SameFloats(again->values, d.values)) {
    std::abort();
  }
  return 0;
}
