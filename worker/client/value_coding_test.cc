#include "worker/client/value_coding.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/value_format.h"

namespace ps {
namespace {

TEST(WireFormatsTest, OneFormatForEveryTable) {
  absl::StatusOr<WireFormats> f = ParseWireFormats("bf16");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Of("layer0/w"), v1::BFLOAT16);
  EXPECT_EQ(f->ToString(), "bf16");
  EXPECT_EQ(ParseWireFormats("float32")->Of("x"), v1::FLOAT32);
}

TEST(WireFormatsTest, PerTableWithADefault) {
  absl::StatusOr<WireFormats> f = ParseWireFormats("layer0/w=fp16, layer1/w=bf16,*=float32");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Of("layer0/w"), v1::FLOAT16);
  EXPECT_EQ(f->Of("layer1/w"), v1::BFLOAT16);
  EXPECT_EQ(f->Of("layer0/b"), v1::FLOAT32);
  EXPECT_EQ(f->ToString(), "layer0/w=fp16,layer1/w=bf16,*=float32");
  EXPECT_EQ(ParseWireFormats("a=bf16")->Of("b"), v1::FLOAT32);  // no *: float32
}

TEST(WireFormatsTest, BadSpecsNameWhatIsWrong) {
  for (const char* spec : {"int8", "a=int8", "=bf16", "a=bf16,a=fp16"}) {
    absl::StatusOr<WireFormats> f = ParseWireFormats(spec);
    ASSERT_FALSE(f.ok()) << spec;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_NE(f.status().message().find("--wire_format"), std::string::npos) << f.status();
  }
  EXPECT_NE(ParseWireFormats("a=bf16,a=fp16").status().message().find("'a' is named twice"),
            std::string::npos);
  EXPECT_NE(ParseWireFormats("a=int8").status().message().find("'a=int8'"), std::string::npos);
}

TEST(GradientCoderTest, KeepsEachTablesResidualAtItsElements) {
  GradientCoder coder(*ParseWireFormats("bf16"));
  std::vector<float> grad = {1.001f, 2.0f, 1.001f, 3.0f};
  std::vector<char> out(4);
  // Elements [2, 4) only: the residual of elements 0 and 1 stays zero.
  coder.Encode("t", grad.data(), 4, 2, 2, v1::BFLOAT16, out.data());
  std::vector<float> r = coder.Residual("t");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], 0.0f);
  EXPECT_EQ(r[1], 0.0f);
  EXPECT_FLOAT_EQ(r[2], 1.001f - Bfloat16ToFloat(FloatToBfloat16(1.001f)));
  EXPECT_EQ(r[3], 0.0f);  // 3 is exact
  // The next push of element 2 sends the residual along.
  coder.Encode("t", grad.data(), 4, 2, 1, v1::BFLOAT16, out.data());
  uint16_t h;
  std::memcpy(&h, out.data(), 2);
  EXPECT_EQ(h, FloatToBfloat16(1.001f + r[2]));
  EXPECT_TRUE(coder.Residual("other").empty());
}

TEST(GradientCoderTest, WithoutFeedbackCodesAsItIs) {
  WireFormats formats = *ParseWireFormats("fp16");
  formats.error_feedback = false;
  GradientCoder coder(formats);
  std::vector<float> grad = {1.0001f};
  std::vector<char> out(2);
  coder.Encode("t", grad.data(), 1, 0, 1, v1::FLOAT16, out.data());
  uint16_t h;
  std::memcpy(&h, out.data(), 2);
  EXPECT_EQ(h, FloatToFloat16(1.0001f));
  EXPECT_TRUE(coder.Residual("t").empty());
}

}  // namespace
}  // namespace ps
