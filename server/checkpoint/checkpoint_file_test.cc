// The checkpoint file format: the header's layout, a round trip, and DATA_LOSS that
// names the file for a bad magic, a truncated file, trailing bytes, a CRC mismatch and a
// payload that does not parse; the version a checkpoint is named by.
#include "server/checkpoint/checkpoint_file.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_system.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kPath[] = "/ckpt/shard-0-000000000007-1.ckpt";

v1::TableCheckpoint Table(const std::string& name, v1::ConsistencyMode mode, int64_t version,
                          const std::string& params) {
  v1::TableCheckpoint t;
  t.mutable_spec()->set_name(name);
  t.mutable_spec()->set_consistency(mode);
  t.set_version(version);
  t.set_params(params);
  return t;
}

v1::ShardCheckpoint Sample() {
  v1::ShardCheckpoint c;
  c.set_shard_index(1);
  c.set_num_shards(2);
  c.set_created_unix_ms(1234);
  *c.add_tables() = Table("s", v1::SYNC, 7, std::string(16, '\x01'));
  *c.add_tables() = Table("a", v1::ASYNC, 40, std::string(8, '\x02'));
  c.add_workers()->set_worker_index(3);
  return c;
}

std::string Encoded() {
  absl::StatusOr<std::string> bytes = EncodeCheckpointFile(Sample());
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

void ExpectDataLoss(const std::string& bytes, const std::string& what) {
  absl::StatusOr<v1::ShardCheckpoint> got = DecodeCheckpointFile(bytes, kPath);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << what;
  EXPECT_THAT(std::string(got.status().message()), StartsWith(kPath)) << what;
  EXPECT_THAT(got.status().message(), HasSubstr(what));
}

TEST(CheckpointFileTest, Crc32IsZlibs) {
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the standard check value
}

TEST(CheckpointFileTest, HeaderIsMagicLengthAndCrcLittleEndian) {
  const std::string bytes = Encoded();
  ASSERT_GT(bytes.size(), kCheckpointHeaderBytes);
  std::string payload;
  ASSERT_TRUE(Sample().SerializeToString(&payload));
  EXPECT_EQ(bytes.substr(0, 8), "PSCKPT01");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[8 + i]);
  EXPECT_EQ(length, payload.size());
  uint32_t crc = 0;
  for (int i = 3; i >= 0; --i) crc = (crc << 8) | static_cast<unsigned char>(bytes[16 + i]);
  EXPECT_EQ(crc, Crc32(payload));
  EXPECT_EQ(bytes.substr(kCheckpointHeaderBytes), payload);
}

TEST(CheckpointFileTest, DecodeReturnsWhatWasEncoded) {
  absl::StatusOr<v1::ShardCheckpoint> got = DecodeCheckpointFile(Encoded(), kPath);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, Sample()));
  // An empty checkpoint (a shard with no tables yet) is a valid one too.
  absl::StatusOr<std::string> empty = EncodeCheckpointFile(v1::ShardCheckpoint());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), kCheckpointHeaderBytes);
  EXPECT_TRUE(DecodeCheckpointFile(*empty, kPath).ok());
}

TEST(CheckpointFileTest, DamagedFilesAreDataLossNamingTheFile) {
  const std::string good = Encoded();
  ExpectDataLoss("", "bad magic");
  ExpectDataLoss("not a checkpoint at all", "bad magic");
  ExpectDataLoss(good.substr(0, 12), "truncated");
  ExpectDataLoss(good.substr(0, good.size() - 1), "truncated");
  ExpectDataLoss(good + "x", "1 bytes after the payload");
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x10;
  ExpectDataLoss(flipped, "CRC-32");
  // A CRC that matches bytes that are not a ShardCheckpoint.
  const std::string junk = "\xff\xff\xff";
  std::string header = good.substr(0, kCheckpointHeaderBytes);
  header[8] = 3;
  for (int i = 9; i < 16; ++i) header[i] = 0;
  const uint32_t crc = Crc32(junk);
  for (int i = 0; i < 4; ++i) header[16 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  ExpectDataLoss(header + junk, "does not parse");
}

// A shard with a dense table (two slots, a sync step in progress with one whole and one
// partial gradient), a sparse table and the ledger and live workers, written with small
// records: every array is cut into pieces, and the file reads back exactly.
v1::ShardCheckpoint Big() {
  v1::ShardCheckpoint c = Sample();
  c.clear_tables();
  v1::TableCheckpoint d = Table("dense", v1::SYNC, 9, std::string(1000 * 4, '\x03'));
  d.mutable_spec()->set_kind(v1::DENSE);
  for (int i = 0; i < 2; ++i) d.add_slots(std::string(1000 * 4, static_cast<char>('a' + i)));
  for (int i = 0; i < 1000 * 4; ++i) (*d.mutable_params())[i] = static_cast<char>(i * 7);
  d.set_step_sum(std::string(1000 * 4, '\x05'));
  v1::SyncContribution* whole = d.add_step_contributions();
  whole->set_worker_index(0);
  whole->add_span_bounds(0);
  whole->add_span_bounds(1000);
  v1::SyncContribution* part = d.add_step_contributions();
  part->set_worker_index(1);
  part->add_span_bounds(100);
  part->add_span_bounds(300);
  part->set_partial(std::string(1000 * 4, '\x06'));
  *c.add_tables() = d;
  v1::TableCheckpoint sp = Table("rows", v1::ASYNC, 4, std::string(300 * 4 * 4, '\x07'));
  sp.mutable_spec()->set_kind(v1::SPARSE);
  sp.mutable_spec()->set_row_width(4);
  sp.add_slots(std::string(300 * 4 * 4, '\x08'));
  for (int k = 0; k < 300; ++k) sp.add_keys(k * 13);
  *c.add_tables() = sp;
  *c.add_tables() = Table("empty", v1::ASYNC, 1, "");
  v1::PushLedgerEntry* pushed = c.add_pushes();
  pushed->set_worker_index(1);
  pushed->set_incarnation(99);
  pushed->set_sequence(5);
  pushed->add_parts(0);
  c.add_live_workers()->set_worker_index(1);
  return c;
}

TEST(CheckpointFileTest, ARecordFileCutsTablesIntoPiecesAndReadsBackTheSame) {
  const v1::ShardCheckpoint big = Big();
  absl::StatusOr<std::string> bytes = EncodeCheckpointFile(big, /*max_record_bytes=*/2048);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->substr(0, 8), "PSCKPT02");
  absl::StatusOr<v1::ShardCheckpoint> got = DecodeCheckpointFile(*bytes, kPath);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, big));
  // The same shard fits one record at the default size: the single-record format.
  absl::StatusOr<std::string> one = EncodeCheckpointFile(big);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->substr(0, 8), "PSCKPT01");
  absl::StatusOr<v1::ShardCheckpoint> again = DecodeCheckpointFile(*one, kPath);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*again, big));
  // An element too large for any record is refused, not written short.
  EXPECT_EQ(EncodeCheckpointFile(big, 64).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(CheckpointFileTest, DamagedRecordFilesAreDataLossNamingTheFile) {
  absl::StatusOr<std::string> encoded = EncodeCheckpointFile(Big(), 2048);
  ASSERT_TRUE(encoded.ok());
  const std::string good = *encoded;
  ExpectDataLoss(good.substr(0, good.size() - 5), "truncated");
  ExpectDataLoss(good.substr(0, 14), "truncated");
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  ExpectDataLoss(flipped, "CRC-32");
  // Without one of its middle pieces a table does not add up.
  std::vector<size_t> starts;
  for (size_t at = 8; at < good.size();) {
    starts.push_back(at);
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= uint64_t{static_cast<unsigned char>(good[at + i])} << (8 * i);
    at += 12 + length;
  }
  ASSERT_GT(starts.size(), 6u);
  const std::string missing = good.substr(0, starts[3]) + good.substr(starts[4]);
  ExpectDataLoss(missing, "does not continue it");
  // Cut at a record boundary: the last table is missing, and the header says so.
  ExpectDataLoss(good.substr(0, starts.back()), "2 of its 3 tables");
}

TEST(CheckpointFileTest, ReadCheckpointFileReadsThroughTheFileSystem) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr) << "run under bazel test";
  const std::string path = absl::StrCat(tmp, "/read.ckpt");
  ASSERT_TRUE(DefaultFileSystem()->WriteFile(path, Encoded()).ok());
  absl::StatusOr<v1::ShardCheckpoint> got = ReadCheckpointFile(path, DefaultFileSystem());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->shard_index(), 1);
  absl::StatusOr<v1::ShardCheckpoint> absent = ReadCheckpointFile(path + ".absent");
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(absent.status().message(), HasSubstr(path + ".absent"));
}

TEST(CheckpointFileTest, VersionIsTheSyncTablesElseTheNewest) {
  v1::ShardCheckpoint c = Sample();
  EXPECT_EQ(CheckpointVersion(c), 7);  // the sync table's, not the async table's 40
  // A sync table holding nothing here does not name the checkpoint.
  c.mutable_tables(0)->clear_params();
  EXPECT_EQ(CheckpointVersion(c), 40);
  EXPECT_EQ(CheckpointVersion(v1::ShardCheckpoint()), 0);
}

}  // namespace
}  // namespace ps
