#include "common/input_checks.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

TEST(InputChecksTest, TableNamesOfTheUsualShapesPass) {
  for (const char* name : {"fc0.w", "emb", "tower/layer_2:bias", "a-b_c.d"}) {
    EXPECT_TRUE(CheckTableName(name).ok()) << name;
  }
  EXPECT_TRUE(CheckTableName(std::string(kMaxTableNameLength, 'a')).ok());
}

TEST(InputChecksTest, EmptyLongAndControlCharacterNamesAreInvalidArgument) {
  EXPECT_EQ(CheckTableName("").code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = CheckTableName(std::string(1 << 20, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("1048576 characters long; the limit is 128"));
  EXPECT_LT(s.message().size(), 300u);  // the message does not carry the megabyte back

  s = CheckTableName("w\nE1201 forged\x1b[31m");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("has '\\n' at position 1"));
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(s.message().find('\x1b'), std::string::npos);
  EXPECT_EQ(CheckTableName("a b").code(), absl::StatusCode::kInvalidArgument);
}

TEST(InputChecksTest, LabelsArePrintableAndBounded) {
  EXPECT_TRUE(CheckLabel("host", "worker-0.ps.default.svc.cluster.local").ok());
  EXPECT_TRUE(CheckLabel("host", "").ok());
  absl::Status s = CheckLabel("host", std::string(60 << 20, 'h'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("host 'hhhh"));
  EXPECT_THAT(s.message(), HasSubstr("the limit is 253"));
  s = CheckLabel("device", "cuda\r0");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("device 'cuda\\r0' has a control or non-ASCII byte at position 4"));
}

TEST(InputChecksTest, PrintableEscapesAndCuts) {
  EXPECT_EQ(Printable("plain"), "plain");
  EXPECT_EQ(Printable("a\nb\x1b"), "a\\nb\\x1b");
  EXPECT_EQ(Printable("abcdef", 3), "abc... (6 bytes)");
}

}  // namespace
}  // namespace ps
