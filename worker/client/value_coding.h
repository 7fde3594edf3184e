// How a client codes dense values in-band (docs/wire.md): float32, or a 16-bit format
// (common/value_format.h) for the whole job or per table, in both directions: a push's
// gradient is coded by the worker and widened by the shard; a pull asks the shard to code
// its reply. 16-bit gradients carry error feedback: what rounding lost in one push is
// added to the next, per element. Same-host windows always carry float32.
//
// Thread safety: WireFormats is a value; GradientCoder may be used from any thread.
#ifndef PS_WORKER_CLIENT_VALUE_CODING_H_
#define PS_WORKER_CLIENT_VALUE_CODING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "proto/v1/ps.pb.h"

namespace ps {

struct WireFormats {
  v1::ValueFormat all = v1::FLOAT32;  // tables not named in `tables`
  absl::flat_hash_map<std::string, v1::ValueFormat> tables;
  // 16-bit gradients add what earlier pushes lost to rounding.
  bool error_feedback = true;

  v1::ValueFormat Of(const std::string& table) const;
  // "bf16" (every table), or "fc1_w=bf16,*=fp16" (per table; * for the others).
  std::string ToString() const;
};

// Parses --wire_format: a format name (float32, bf16, fp16) for every table, or
// comma-separated table=format pairs with * for the tables not named. INVALID_ARGUMENT
// naming the bad part.
absl::StatusOr<WireFormats> ParseWireFormats(absl::string_view spec);

// Codes the in-band gradients of pushes and keeps their rounding residuals.
class GradientCoder {
 public:
  explicit GradientCoder(WireFormats formats) : formats_(std::move(formats)) {}
  GradientCoder(const GradientCoder&) = delete;
  GradientCoder& operator=(const GradientCoder&) = delete;

  const WireFormats& formats() const { return formats_; }
  // Codes elements [begin, begin + length) of `table`'s gradient `tensor` (num_elements
  // floats) as `format` into `out` (length * ValueBytes(format) bytes).
  void Encode(const std::string& table, const float* tensor, int64_t num_elements, int64_t begin,
              int64_t length, v1::ValueFormat format, char* out);
  // The residual of `table` (empty before its first 16-bit push), for tests.
  std::vector<float> Residual(const std::string& table) const;

 private:
  const WireFormats formats_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<float>> residual_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_VALUE_CODING_H_
