#include "worker/data/mnist.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d != nullptr ? d : "/tmp";
}

void WriteGz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

TEST(MnistTest, LoadsTheRealFashionMnistTestSet) {
  absl::StatusOr<Dataset> d = LoadMnist(kDefaultFashionMnistDir, "t10k");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size, 10000);
  EXPECT_EQ(d->dim, 784);
  ASSERT_EQ(d->features.size(), 10000u * 784u);
  std::vector<int> per_class(10, 0);
  for (int32_t l : d->labels) per_class[l]++;
  for (int c : per_class) EXPECT_EQ(c, 1000);  // the test set is balanced
  double sum = 0;
  for (float v : d->features) sum += v;
  EXPECT_NEAR(sum / d->features.size(), 0.0, 0.05);  // normalised
}

TEST(MnistTest, ReadsASmallHandMadeFile) {
  const std::string dir = TmpDir();
  std::string images = Be32(0x803) + Be32(2) + Be32(1) + Be32(2);
  images += std::string("\x00\xff\x80\x00", 4);
  std::string labels = Be32(0x801) + Be32(2) + std::string("\x07\x02", 2);
  WriteGz(dir + "/tiny-images-idx3-ubyte.gz", images);
  WriteGz(dir + "/tiny-labels-idx1-ubyte.gz", labels);
  absl::StatusOr<Dataset> d = LoadMnist(dir, "tiny");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size, 2);
  EXPECT_EQ(d->dim, 2);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{7, 2}));
  EXPECT_NEAR(d->features[0], (0.0f - 0.2860f) / 0.3530f, 1e-5);
  EXPECT_NEAR(d->features[1], (1.0f - 0.2860f) / 0.3530f, 1e-5);
}

TEST(MnistTest, MissingFileIsNotFound) {
  absl::StatusOr<Dataset> d = LoadMnist("/nonexistent-dir", "train");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("/nonexistent-dir/train-images-idx3-ubyte"),
            absl::string_view::npos);
}

TEST(MnistTest, BadMagicTruncationAndLabelRangeAreDataLoss) {
  const std::string dir = TmpDir();
  WriteGz(dir + "/badmagic-images-idx3-ubyte.gz", Be32(0x999) + Be32(1) + Be32(1) + Be32(1) + "x");
  WriteGz(dir + "/badmagic-labels-idx1-ubyte.gz", Be32(0x801) + Be32(1) + "\x01");
  EXPECT_EQ(LoadMnist(dir, "badmagic").status().code(), absl::StatusCode::kDataLoss);

  WriteGz(dir + "/short-images-idx3-ubyte.gz", Be32(0x803) + Be32(2) + Be32(1) + Be32(1) + "x");
  WriteGz(dir + "/short-labels-idx1-ubyte.gz", Be32(0x801) + Be32(2) + "\x01\x01");
  EXPECT_EQ(LoadMnist(dir, "short").status().code(), absl::StatusCode::kDataLoss);

  WriteGz(dir + "/label-images-idx3-ubyte.gz", Be32(0x803) + Be32(1) + Be32(1) + Be32(1) + "x");
  WriteGz(dir + "/label-labels-idx1-ubyte.gz", Be32(0x801) + Be32(1) + "\x0b");
  absl::Status s = LoadMnist(dir, "label").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("label 11"), absl::string_view::npos) << s;
}

// Image sizes whose pixel count overflows, or is zero, are refused by name (a 65536 x
// 65536 header once read as images of 0 pixels, and 2^32 x 2^32 overflowed an int64).
TEST(MnistTest, ImpossibleImageSizesAreDataLoss) {
  const std::string labels = Be32(0x801) + Be32(0);
  for (const auto& [rows, cols] : std::vector<std::pair<uint32_t, uint32_t>>{
           {65536, 65536}, {0xffffffff, 0xffffffff}, {0, 28}, {4097, 4097}}) {
    const std::string images = Be32(0x803) + Be32(0) + Be32(rows) + Be32(cols);
    absl::Status s = ParseMnist(images, labels, "img", "lbl").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << rows << "x" << cols;
    EXPECT_NE(s.message().find(std::to_string(rows) + "x" + std::to_string(cols) + " pixels"),
              absl::string_view::npos)
        << s;
  }
}

}  // namespace
}  // namespace ps
