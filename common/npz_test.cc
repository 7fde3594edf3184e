#include "common/npz.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

NpyArray Floats(const std::string& name, std::vector<int64_t> shape, float first) {
  NpyArray a{name, "<f4", std::move(shape), ""};
  std::vector<float> v(a.elements());
  for (size_t i = 0; i < v.size(); ++i) v[i] = first + static_cast<float>(i);
  a.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  return a;
}

TEST(NpyHeaderTest, MatchesWhatNumpyWrites) {
  // numpy 1.24: np.save(f, np.zeros((784, 256), np.float32)) starts with these 128 bytes.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (784, 256), }";
  const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict +
                               std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  EXPECT_EQ(NpyHeader("<f4", {784, 256}), expected);
  EXPECT_NE(NpyHeader("<i8", {10}).find("'shape': (10,), }"), std::string::npos);
  EXPECT_NE(NpyHeader("<f4", {}).find("'shape': (), }"), std::string::npos);
  EXPECT_EQ(NpyHeader("<i8", {10}).size() % 64, 0u);
}

TEST(NpzTest, WritesAndReadsArraysAndMembers) {
  const std::string path = TempPath("round_trip.npz");
  NpyArray keys{"emb/keys", "<i8", {3}, ""};
  const int64_t k[] = {7, -2, int64_t{1} << 40};
  keys.data.assign(reinterpret_cast<const char*>(k), sizeof(k));
  ASSERT_TRUE(WriteNpz(path, {Floats("fc0.w", {3, 2}, 0.5f), keys, Floats("scalar", {}, 9.0f)},
                       {{"ps_tables.json", "{\"tables\": []}"}})
                  .ok());
  std::vector<NpzMember> extra;
  absl::StatusOr<std::vector<NpyArray>> got = ReadNpz(path, &extra);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].name, "fc0.w");
  EXPECT_EQ((*got)[0].dtype, "<f4");
  EXPECT_EQ((*got)[0].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ((*got)[0].data, Floats("fc0.w", {3, 2}, 0.5f).data);
  EXPECT_EQ((*got)[1].name, "emb/keys");
  EXPECT_EQ((*got)[1].data, keys.data);
  EXPECT_EQ((*got)[2].shape, std::vector<int64_t>{});
  EXPECT_EQ((*got)[2].elements(), 1);
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_EQ(extra[0].name, "ps_tables.json");
  EXPECT_EQ(extra[0].data, "{\"tables\": []}");
}

TEST(NpzTest, RefusesArraysThatDoNotFitTheirShapeAndRepeatedNames) {
  const std::string path = TempPath("refused.npz");
  NpyArray bad = Floats("a", {2, 2}, 0);
  bad.shape = {3, 2};
  absl::Status s = WriteNpz(path, {bad});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "array 'a': 16 bytes do not fit dtype <f4 and its shape");
  s = WriteNpz(path, {Floats("a", {1}, 0), Floats("a", {1}, 0)});
  EXPECT_EQ(s.message(), "array name 'a' is empty or repeated");
  EXPECT_FALSE(std::ifstream(path).good()) << "a refused write left a file";
}

TEST(NpzTest, ARefusedWriteLeavesTheOldFile) {
  const std::string path = TempPath("kept.npz");
  ASSERT_TRUE(WriteNpz(path, {Floats("a", {2}, 1)}).ok());
  EXPECT_FALSE(WriteNpz(path, {Floats("a", {2}, 1), Floats("a", {2}, 1)}).ok());
  absl::StatusOr<std::vector<NpyArray>> got = ReadNpz(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->at(0).data, Floats("a", {2}, 1).data);

  absl::Status s = WriteNpz("/nonexistent-dir/x.npz", {Floats("a", {2}, 1)});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/x.npz"), absl::string_view::npos) << s;
}

TEST(NpzTest, ReadNamesTheFileThatIsNotAnArchive) {
  const std::string path = TempPath("not_a_zip.npz");
  std::ofstream(path) << "hello";
  absl::StatusOr<std::vector<NpyArray>> got = ReadNpz(path);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message().rfind(absl::StrCat("cannot read ", path, ": "), 0), 0u)
      << got.status();
  got = ReadNpz(TempPath("missing.npz"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseNpyTest, NamesWhatIsWrong) {
  NpyArray a;
  const std::string good = NpyHeader("<f4", {2}) + std::string(8, '\0');
  ASSERT_TRUE(ParseNpy(good, "m", &a).ok());
  EXPECT_EQ(a.shape, std::vector<int64_t>{2});
  struct Case {
    std::string bytes;
    std::string why;
  } cases[] = {
      {"PK\x03\x04 not npy", "it does not start with numpy's magic bytes"},
      {NpyHeader("<f4", {3}) + std::string(8, '\0'),
       "its shape needs 12 bytes of data, it holds 8"},
      {NpyHeader(">f4", {2}) + std::string(8, '\0'),
       "its dtype '>f4' is not one of <f4, <f8, <i4, <i8, <u8, |u1 (little-endian)"},
      {good.substr(0, 20), "it ends inside its header"},
  };
  for (const Case& c : cases) {
    absl::Status s = ParseNpy(c.bytes, "m", &a);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "m is not a readable .npy array: " + c.why);
  }
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_EQ(ParseNpy(fortran, "m", &a).message(),
            "m is not a readable .npy array: it is in Fortran order (save it with "
            "np.ascontiguousarray)");
  std::string v9 = good;
  v9[6] = 9;
  EXPECT_EQ(ParseNpy(v9, "m", &a).message(),
            "m is not a readable .npy array: NPY version 9 is unknown");
}

TEST(NpyHeaderTest, LongHeadersUseVersionTwo) {
  std::vector<int64_t> shape(30000, 1);  // "1, " x 30000: past 64 KiB
  const std::string h = NpyHeader("<f4", shape);
  EXPECT_EQ(h[6], 2);
  EXPECT_EQ(h.size() % 64, 0u);
  NpyArray a;
  ASSERT_TRUE(ParseNpy(h + std::string(4, '\0'), "m", &a).ok());
  EXPECT_EQ(a.shape.size(), 30000u);
}

}  // namespace
}  // namespace ps
