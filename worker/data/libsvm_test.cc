#include "worker/data/libsvm.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(LibSvmTest, ParsesLabelsIdsValuesCommentsAndBlankLines) {
  const std::string text =
      "# a header comment\n"
      "1 3:0.5 7:1\n"
      "\n"
      "-1 2:-2.25\t10:1e-3   # trailing comment\n"
      "+1\r\n"
      "0 0:4 9000000000:1\n";
  absl::StatusOr<SparseDataset> d = ParseLibSvm(text, "mem");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 4);
  EXPECT_EQ(d->labels, (std::vector<float>{1, 0, 1, 0}));
  EXPECT_EQ(d->offsets, (std::vector<int64_t>{0, 2, 4, 4, 6}));
  EXPECT_EQ(d->ids, (std::vector<int64_t>{3, 7, 2, 10, 0, 9000000000LL}));
  EXPECT_EQ(d->values, (std::vector<float>{0.5f, 1.0f, -2.25f, 1e-3f, 4.0f, 1.0f}));
  EXPECT_DOUBLE_EQ(d->PositiveRate(), 0.5);
}

TEST(LibSvmTest, EmptyTextIsAnEmptyDataSet) {
  absl::StatusOr<SparseDataset> d = ParseLibSvm("# nothing\n\n", "mem");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 0);
  EXPECT_EQ(d->offsets, std::vector<int64_t>{0});
}

TEST(LibSvmTest, ErrorsNameFileLineAndToken) {
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {"1 1:1\n2 3:1\n", "data.svm:2: label must be 0, 1, -1 or +1, got '2'"},
      {"1 1:1\nyes 3:1\n", "data.svm:2: label must be 0, 1, -1 or +1, got 'yes'"},
      {"1 1:1\n\n0 3\n", "data.svm:3: expected index:value, got '3'"},
      {"0 x:1\n", "data.svm:1: feature index is not an int64 in 'x:1'"},
      {"0 99999999999999999999:1\n", "feature index is not an int64 in '99999999999999999999:1'"},
      {"0 -4:1\n", "data.svm:1: feature index is negative in '-4:1'"},
      {"0 4:abc\n", "data.svm:1: feature value is not a finite float in '4:abc'"},
      {"0 4:nan\n", "feature value is not a finite float in '4:nan'"},
      {"0 4:\n", "feature value is not a finite float in '4:'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SparseDataset> d = ParseLibSvm(c.text, "data.svm");
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_TRUE(absl::StrContains(d.status().message(), c.want))
        << d.status().message() << " lacks " << c.want;
  }
}

TEST(LibSvmTest, WriteThenReadRoundTripsPlainAndGzipped) {
  SparseDataset data;
  data.Add(1, {5, 1, 123456789012LL}, {1.0f, 0.1f, -3.3333333f});
  data.Add(0, {}, {});
  data.Add(0, {0}, {1e-20f});
  for (const std::string name : {"round.svm", "round.svm.gz"}) {
    const std::string path = TempPath(name);
    ASSERT_TRUE(WriteLibSvm(data, path).ok());
    absl::StatusOr<SparseDataset> back = ReadLibSvm(path);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->labels, data.labels) << name;
    EXPECT_EQ(back->offsets, data.offsets) << name;
    EXPECT_EQ(back->ids, data.ids) << name;
    EXPECT_EQ(back->values, data.values) << name;  // exact: %.9g round-trips floats
  }
  // The .gz file really is compressed.
  std::FILE* f = std::fopen(TempPath("round.svm.gz").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  unsigned char magic[2] = {0, 0};
  ASSERT_EQ(std::fread(magic, 1, 2, f), 2u);
  std::fclose(f);
  EXPECT_EQ(magic[0], 0x1f);
  EXPECT_EQ(magic[1], 0x8b);
}

TEST(LibSvmTest, FormatWritesZeroOneLabels) {
  SparseDataset data;
  data.Add(1, {2}, {1.0f});
  data.Add(0, {3, 4}, {0.5f, 2.0f});
  EXPECT_EQ(FormatLibSvm(data), "1 2:1\n0 3:0.5 4:2\n");
}

TEST(LibSvmTest, ReadReportsMissingFileAndErrorsWithThePath) {
  absl::StatusOr<SparseDataset> d = ReadLibSvm(TempPath("does-not-exist.svm"));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  const std::string path = TempPath("bad.svm.gz");
  gzFile g = gzopen(path.c_str(), "wb");
  ASSERT_NE(g, nullptr);
  const std::string text = "1 1:1\n1 2:oops\n";
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
  d = ReadLibSvm(path);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(d.status().message(), path + ":2: feature value"))
      << d.status().message();
}

TEST(LibSvmTest, WriteToAMissingDirectoryIsUnavailable) {
  SparseDataset data;
  data.Add(1, {1}, {1.0f});
  EXPECT_EQ(WriteLibSvm(data, "/nonexistent-dir/x.svm").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(WriteLibSvm(data, "/nonexistent-dir/x.svm.gz").code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ps
