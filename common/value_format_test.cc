#include "common/value_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace ps {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Random float bit patterns: every exponent, so subnormals, overflow and specials too.
std::vector<float> RandomFloats(size_t n, bool finite_only) {
  std::mt19937 rng(7);
  std::vector<float> out;
  while (out.size() < n) {
    const float f = FromBits(static_cast<uint32_t>(rng()));
    if (finite_only && !std::isfinite(f)) continue;
    out.push_back(f);
  }
  return out;
}

using Decoder = float (*)(uint16_t);

// h must be the value nearest to f among h and its neighbours of the same sign, ties to
// the even one.
void ExpectNearest(float f, uint16_t h, Decoder decode) {
  const double want = f, got = decode(h);
  for (int d : {-1, 1}) {
    const uint16_t other = static_cast<uint16_t>(h + d);
    if ((other & 0x8000) != (h & 0x8000)) continue;
    const double alt = decode(other);
    if (!std::isfinite(alt)) continue;
    const double e = std::fabs(got - want), ae = std::fabs(alt - want);
    ASSERT_LE(e, ae) << "f=" << f << " h=" << h << " neighbour " << other;
    if (e == ae) {
      ASSERT_EQ(h & 1, 0) << "a tie must go to even: f=" << f << " h=" << h;
    }
  }
}

TEST(ValueFormatTest, EveryBfloat16AndFloat16ValueSurvivesARoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t v = static_cast<uint16_t>(h);
    const float b = Bfloat16ToFloat(v), f = Float16ToFloat(v);
    if (std::isnan(b)) {
      EXPECT_TRUE(std::isnan(Bfloat16ToFloat(FloatToBfloat16(b)))) << h;
    } else {
      EXPECT_EQ(FloatToBfloat16(b), v) << h;
    }
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Float16ToFloat(FloatToFloat16(f)))) << h;
    } else {
      EXPECT_EQ(FloatToFloat16(f), v) << h;
    }
  }
}

TEST(ValueFormatTest, Float16DecodesKnownValues) {
  EXPECT_EQ(Float16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(Float16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(Float16ToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(Float16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Float16ToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(Float16ToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Float16ToFloat(0x7e00)));
  EXPECT_EQ(Bfloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bfloat16ToFloat(0xc040), -3.0f);
}

TEST(ValueFormatTest, RoundsToNearestEven) {
  for (float f : RandomFloats(200000, /*finite_only=*/true)) {
    ExpectNearest(f, FloatToBfloat16(f), Bfloat16ToFloat);
    if (std::fabs(f) < 65504.0f) ExpectNearest(f, FloatToFloat16(f), Float16ToFloat);
  }
  // Exact ties: 1 + 2^-8 lies halfway between bfloat16's 1 and 1 + 2^-7 (odd): to 1.
  EXPECT_EQ(FloatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToFloat16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToFloat16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(ValueFormatTest, SpecialsStaySpecialAndFloat16Saturates) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(FloatToFloat16(inf), 0x7c00);
  EXPECT_EQ(FloatToFloat16(-inf), 0xfc00);
  EXPECT_TRUE(std::isnan(Float16ToFloat(FloatToFloat16(nan))));
  EXPECT_TRUE(std::isnan(Bfloat16ToFloat(FloatToBfloat16(nan))));
  // A NaN whose payload lies only in the bits bfloat16 drops.
  EXPECT_TRUE(std::isnan(Bfloat16ToFloat(FloatToBfloat16(FromBits(0x7f800001u)))));
  EXPECT_EQ(FloatToBfloat16(inf), 0x7f80);
  EXPECT_EQ(FloatToBfloat16(std::numeric_limits<float>::max()), 0x7f7f);
  EXPECT_EQ(FloatToBfloat16(-std::numeric_limits<float>::max()), 0xff7f);
  EXPECT_EQ(FloatToFloat16(1e6f), 0x7bff);
  EXPECT_EQ(FloatToFloat16(-70000.0f), 0xfbff);
  EXPECT_EQ(FloatToFloat16(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToFloat16(1e-9f), 0x0000);  // below half the smallest subnormal
}

TEST(ValueFormatTest, BulkLoopsAgreeWithTheScalarFunctions) {
  // Odd lengths, so the vector loops' tails run too; NaN, infinities and overflow
  // included.
  std::vector<float> in = RandomFloats(10007, /*finite_only=*/false);
  in[3] = std::numeric_limits<float>::infinity();
  in[4] = -std::numeric_limits<float>::infinity();
  in[5] = 1e30f;
  for (v1::ValueFormat format : {v1::BFLOAT16, v1::FLOAT16}) {
    std::vector<char> bytes(in.size() * 2);
    EncodeValues(format, in.data(), in.size(), bytes.data());
    std::vector<float> out(in.size());
    DecodeValues(format, bytes.data(), in.size(), out.data());
    for (size_t i = 0; i < in.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      const uint16_t want = format == v1::BFLOAT16 ? FloatToBfloat16(in[i]) : FloatToFloat16(in[i]);
      const float want_f = format == v1::BFLOAT16 ? Bfloat16ToFloat(want) : Float16ToFloat(want);
      if (std::isnan(in[i])) {
        EXPECT_TRUE(std::isnan(out[i])) << ValueFormatName(format) << " at " << i;
      } else {
        EXPECT_EQ(h, want) << ValueFormatName(format) << " at " << i << ": " << in[i];
        EXPECT_EQ(out[i], want_f) << ValueFormatName(format) << " at " << i;
      }
    }
  }
  std::vector<char> bytes(in.size() * 4);
  EncodeValues(v1::FLOAT32, in.data(), in.size(), bytes.data());
  EXPECT_EQ(std::memcmp(bytes.data(), in.data(), bytes.size()), 0);
}

TEST(ValueFormatTest, ErrorFeedbackKeepsTheSumOfWhatWasSent) {
  // A gradient below bfloat16's resolution next to its neighbours: 1 + 1e-3 rounds to 1
  // every time, so without feedback 1000 pushes lose 1.0 in all; with it, the sum of the
  // sent values stays within one rounding of the true sum.
  constexpr int kPushes = 1000;
  for (v1::ValueFormat format : {v1::BFLOAT16, v1::FLOAT16}) {
    const std::vector<float> grad = {1.001f, -3.0e-4f, 250.3f};
    std::vector<float> residual(grad.size(), 0.0f);
    std::vector<double> sent_with(grad.size(), 0.0), sent_without(grad.size(), 0.0);
    std::vector<char> bytes(grad.size() * 2);
    std::vector<float> decoded(grad.size());
    for (int k = 0; k < kPushes; ++k) {
      EncodeValuesWithFeedback(format, grad.data(), residual.data(), grad.size(), bytes.data());
      DecodeValues(format, bytes.data(), grad.size(), decoded.data());
      for (size_t i = 0; i < grad.size(); ++i) sent_with[i] += decoded[i];
      EncodeValues(format, grad.data(), grad.size(), bytes.data());
      DecodeValues(format, bytes.data(), grad.size(), decoded.data());
      for (size_t i = 0; i < grad.size(); ++i) sent_without[i] += decoded[i];
    }
    for (size_t i = 0; i < grad.size(); ++i) {
      const double truth = static_cast<double>(grad[i]) * kPushes;
      EXPECT_NEAR(sent_with[i], truth, std::fabs(grad[i]) * 0.01 + 1e-6)
          << ValueFormatName(format) << " element " << i;
      EXPECT_NEAR(sent_with[i] + residual[i], truth, std::fabs(truth) * 1e-5)
          << ValueFormatName(format) << " element " << i;
    }
    if (format == v1::BFLOAT16) {
      EXPECT_GT(std::fabs(sent_without[0] - 1001.0), 0.9);  // what feedback saves
    }
  }
}

TEST(ValueFormatTest, NonFiniteGradientsDoNotPoisonTheResidual) {
  std::vector<float> grad = {std::numeric_limits<float>::quiet_NaN(), 1.001f};
  std::vector<float> residual = {0.0f, 0.0f};
  std::vector<char> bytes(4);
  EncodeValuesWithFeedback(v1::BFLOAT16, grad.data(), residual.data(), 2, bytes.data());
  std::vector<float> out(2);
  DecodeValues(v1::BFLOAT16, bytes.data(), 2, out.data());
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(residual[0], 0.0f);
  EXPECT_NE(residual[1], 0.0f);
}

TEST(ValueFormatTest, NamesParseAndUnknownOnesAreRefused) {
  EXPECT_EQ(*ParseValueFormat("bf16"), v1::BFLOAT16);
  EXPECT_EQ(*ParseValueFormat("BFloat16"), v1::BFLOAT16);
  EXPECT_EQ(*ParseValueFormat("fp16"), v1::FLOAT16);
  EXPECT_EQ(*ParseValueFormat("float32"), v1::FLOAT32);
  const absl::StatusOr<v1::ValueFormat> bad = ParseValueFormat("int8");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'int8'"), std::string::npos);
  EXPECT_EQ(ValueBytes(v1::FLOAT32), 4u);
  EXPECT_EQ(ValueBytes(v1::BFLOAT16), 2u);
  EXPECT_EQ(ValueBytes(static_cast<v1::ValueFormat>(9)), 0u);
}

}  // namespace
}  // namespace ps
