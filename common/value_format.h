// Coding float32 tensor values as the wire formats of proto/v1/ps.proto's ValueFormat
// (docs/wire.md): float32 as it is, bfloat16 and float16 in 2 bytes per element. The
// loops vectorise (F16C where the target has it); bytes are little-endian and need no
// alignment.
//
// Rounding is to nearest, ties to even, in both 16-bit formats. NaN and infinity stay NaN
// and infinity, so a shard's finiteness check still refuses them; finite values never
// turn infinite: beyond the format's range they saturate at its largest finite value
// (+-65504 in float16; bfloat16 has float32's range, so only the top half ulp of it).
//
// Thread-safe: pure functions.
#ifndef PS_COMMON_VALUE_FORMAT_H_
#define PS_COMMON_VALUE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/v1/ps.pb.h"

namespace ps {

// Bytes per element in `format` (4 or 2); 0 for a value outside the enum.
size_t ValueBytes(v1::ValueFormat format);
// "float32", "bf16", "fp16".
const char* ValueFormatName(v1::ValueFormat format);
// Accepts the names above and "float", "bfloat16", "float16", "fp32".
absl::StatusOr<v1::ValueFormat> ParseValueFormat(absl::string_view name);

// Writes n values in `format` (n * ValueBytes(format) bytes) to `out`.
void EncodeValues(v1::ValueFormat format, const float* in, size_t n, char* out);
// The same, with error feedback: codes in[i] + residual[i] and leaves in residual[i] what
// rounding lost, so that the error of one push is added to the next (1-bit SGD's and
// EF-SGD's scheme; it keeps the sum of the sent gradients within one rounding of the sum
// of the true ones).
void EncodeValuesWithFeedback(v1::ValueFormat format, const float* in, float* residual, size_t n,
                              char* out);
// Reads n values in `format` from `in` into `out`.
void DecodeValues(v1::ValueFormat format, const char* in, size_t n, float* out);

// Single values, for tests and scalar tails.
uint16_t FloatToBfloat16(float f);
float Bfloat16ToFloat(uint16_t h);
uint16_t FloatToFloat16(float f);
float Float16ToFloat(uint16_t h);

}  // namespace ps

#endif  // PS_COMMON_VALUE_FORMAT_H_
