// The wire's value formats. The per-element functions are written as selects, not
// branches, so that the bulk loops below vectorise (BUILD compiles this file at -O3: GCC's
// -O2 cost model leaves them scalar, 3x slower); with F16C the float16 loops use the
// hardware conversions.
#include "common/value_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define PS_HAVE_F16C 1
#endif

namespace ps {
namespace {

inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t Load16(const char* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

inline void Store16(uint16_t h, char* p) { std::memcpy(p, &h, 2); }

constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kInfinity = 0x7f800000u;
constexpr uint32_t kHalfMaxBits = 0x477fe000u;  // 65504.0f, float16's largest finite value

// The per-element codings, here so that the loops inline them: with -fPIC the exported
// functions below may be interposed, so GCC calls them instead (a tenth of the speed).
inline uint16_t ToBfloat16(float f) {
  const uint32_t u = Bits(f);
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry
  // into the exponent is the right result.
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t a = u & kAbsMask;
  // A finite value that rounds past the largest finite one saturates there.
  rounded =
      a < kInfinity && (rounded & 0x7fffu) == 0x7f80u ? (rounded & 0x8000u) | 0x7f7fu : rounded;
  // A NaN must stay one: its payload may lie only in the dropped bits.
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>(a > kInfinity ? quiet_nan : rounded);
}

inline float FromBfloat16(uint16_t h) { return FromBits(static_cast<uint32_t>(h) << 16); }

inline uint16_t ToFloat16(float f) {
  const uint32_t u = Bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & kAbsMask;
  // Below 2^-14 the result is subnormal: adding 0.5f lines the float's last mantissa
  // bit up with float16's 2^-24, so the FPU's own rounding (to nearest even) does it.
  const uint32_t subnormal = Bits(FromBits(a) + 0.5f) - Bits(0.5f);
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to even.
  const uint32_t normal =
      (a + (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  uint32_t h = a < (113u << 23) ? subnormal : normal;
  h = a >= kHalfMaxBits ? 0x7bffu : h;  // finite but too large: saturate
  h = a == kInfinity ? 0x7c00u : h;
  h = a > kInfinity ? 0x7e00u : h;
  return static_cast<uint16_t>(h | sign);
}

inline float FromFloat16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  // The exponent and mantissa, shifted into a float's place, are the value times 2^-112
  // (subnormals included); the multiply restores it. Float16's infinities and NaNs
  // come out at 2^16 or more and get float32's all-ones exponent.
  const float scaled = FromBits(static_cast<uint32_t>(h & 0x7fffu) << 13) * 0x1p112f;
  const uint32_t special = scaled >= 65536.0f ? kInfinity : 0u;
  return FromBits(Bits(scaled) | special | sign);
}

void EncodeBfloat16(const float* __restrict in, size_t n, char* __restrict out) {
  for (size_t i = 0; i < n; ++i) Store16(ToBfloat16(in[i]), out + 2 * i);
}

void DecodeBfloat16(const char* __restrict in, size_t n, float* __restrict out) {
  for (size_t i = 0; i < n; ++i) out[i] = FromBfloat16(Load16(in + 2 * i));
}

void EncodeFloat16(const float* __restrict in, size_t n, char* __restrict out) {
  size_t i = 0;
#ifdef PS_HAVE_F16C
  const __m256 max = _mm256_set1_ps(65504.0f);
  const __m256 inf = _mm256_set1_ps(INFINITY);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(kAbsMask)));
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    // Finite values saturate; infinities and NaNs go through as they are.
    const __m256 finite = _mm256_cmp_ps(_mm256_and_ps(x, abs_mask), inf, _CMP_LT_OQ);
    const __m256 clamped =
        _mm256_max_ps(_mm256_min_ps(x, max), _mm256_sub_ps(_mm256_setzero_ps(), max));
    const __m256 y = _mm256_blendv_ps(x, clamped, finite);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i),
                     _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#endif
  for (; i < n; ++i) Store16(ToFloat16(in[i]), out + 2 * i);
}

void DecodeFloat16(const char* __restrict in, size_t n, float* __restrict out) {
  size_t i = 0;
#ifdef PS_HAVE_F16C
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) out[i] = FromFloat16(Load16(in + 2 * i));
}

}  // namespace

uint16_t FloatToBfloat16(float f) { return ToBfloat16(f); }
float Bfloat16ToFloat(uint16_t h) { return FromBfloat16(h); }
uint16_t FloatToFloat16(float f) { return ToFloat16(f); }
float Float16ToFloat(uint16_t h) { return FromFloat16(h); }

size_t ValueBytes(v1::ValueFormat format) {
  switch (format) {
    case v1::FLOAT32:
      return 4;
    case v1::BFLOAT16:
    case v1::FLOAT16:
      return 2;
    default:
      return 0;
  }
}

const char* ValueFormatName(v1::ValueFormat format) {
  switch (format) {
    case v1::FLOAT32:
      return "float32";
    case v1::BFLOAT16:
      return "bf16";
    case v1::FLOAT16:
      return "fp16";
    default:
      return "unknown";
  }
}

absl::StatusOr<v1::ValueFormat> ParseValueFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "float32" || n == "fp32" || n == "float") return v1::FLOAT32;
  if (n == "bf16" || n == "bfloat16") return v1::BFLOAT16;
  if (n == "fp16" || n == "float16") return v1::FLOAT16;
  return absl::InvalidArgumentError(
      absl::StrCat("value format '", name, "' is none of float32, bf16, fp16"));
}

void EncodeValues(v1::ValueFormat format, const float* in, size_t n, char* out) {
  switch (format) {
    case v1::BFLOAT16:
      EncodeBfloat16(in, n, out);
      return;
    case v1::FLOAT16:
      EncodeFloat16(in, n, out);
      return;
    case v1::FLOAT32:
      std::memcpy(out, in, n * 4);
      return;
    default:  // ValueBytes() is 0: nothing to write (callers refuse such formats first)
      return;
  }
}

void DecodeValues(v1::ValueFormat format, const char* in, size_t n, float* out) {
  switch (format) {
    case v1::BFLOAT16:
      DecodeBfloat16(in, n, out);
      return;
    case v1::FLOAT16:
      DecodeFloat16(in, n, out);
      return;
    case v1::FLOAT32:
      std::memcpy(out, in, n * 4);
      return;
    default:  // nothing was coded: leave `out` as it is (callers refuse such formats first)
      return;
  }
}

void EncodeValuesWithFeedback(v1::ValueFormat format, const float* in, float* residual, size_t n,
                              char* out) {
  if (format != v1::BFLOAT16 && format != v1::FLOAT16) {
    EncodeValues(format, in, n, out);
    return;
  }
  if (format == v1::BFLOAT16) {
    // One pass: bfloat16 reads back with a shift.
    for (size_t i = 0; i < n; ++i) {
      const float want = in[i] + residual[i];
      const uint16_t h = ToBfloat16(want);
      Store16(h, out + 2 * i);
      const float lost = want - FromBfloat16(h);
      // A non-finite gradient is sent as it is (the shard refuses it); its residual
      // must not poison later pushes.
      residual[i] = (Bits(lost) & kAbsMask) < kInfinity ? lost : 0.0f;
    }
    return;
  }
  // Blocks that stay in L1: add the residual, code, read back, keep the difference.
  constexpr size_t kBlock = 1024;
  float want[kBlock], sent[kBlock];
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t m = std::min(kBlock, n - b);
    for (size_t i = 0; i < m; ++i) want[i] = in[b + i] + residual[b + i];
    EncodeValues(format, want, m, out + 2 * b);
    DecodeValues(format, out + 2 * b, m, sent);
    for (size_t i = 0; i < m; ++i) {
      const float lost = want[i] - sent[i];
      residual[b + i] = (Bits(lost) & kAbsMask) < kInfinity ? lost : 0.0f;
    }
  }
}

}  // namespace ps
