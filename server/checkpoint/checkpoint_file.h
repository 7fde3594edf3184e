// The checkpoint file formats (docs/checkpoints.md). Both start with an 8-byte magic and
// hold records of a length (8 bytes) and a CRC-32 (zlib's, 4 bytes), both little-endian,
// then that many payload bytes; the CRCs make a torn or corrupted file detectable, so a
// restore can skip it for an older one.
// - "PSCKPT01": one record, a serialized v1::ShardCheckpoint. Written when that fits in
//   `max_record_bytes`.
// - "PSCKPT02": a ShardCheckpoint without its tables, then each table as one or more
//   TableCheckpoint pieces of at most `max_record_bytes` each (an element range of every
//   array of a dense table, a row range of a sparse one). A protobuf message holds at
//   most 2 GiB; this holds shards of any size.
//
// Encoding and decoding are pure functions of their arguments; ReadCheckpointFile reads
// through the FileSystem it is given. All are thread-safe.
#ifndef PS_SERVER_CHECKPOINT_CHECKPOINT_FILE_H_
#define PS_SERVER_CHECKPOINT_CHECKPOINT_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_system.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"

namespace ps {

// Bytes before the payload: magic, length, CRC-32.
inline constexpr size_t kCheckpointHeaderBytes = 8 + 8 + 4;

// zlib's CRC-32 of `data`, of any length (zlib takes at most 4 GiB per call).
uint32_t Crc32(absl::string_view data);

// Largest record written: 1 GiB, well inside protobuf's 2 GiB per message.
inline constexpr int64_t kMaxCheckpointRecordBytes = int64_t{1} << 30;

// The file's bytes for `checkpoint`: PSCKPT01 when it fits one record, else PSCKPT02.
// RESOURCE_EXHAUSTED only when a single element or row, or the tables-less part, does not
// fit a record.
absl::StatusOr<std::string> EncodeCheckpointFile(
    const v1::ShardCheckpoint& checkpoint, int64_t max_record_bytes = kMaxCheckpointRecordBytes);

// Verifies and parses a file's `bytes`, of either format. DATA_LOSS, with a message that
// starts with `path` and says what is wrong (bad magic, truncated, trailing bytes, a
// CRC-32 mismatch, a payload that does not parse, pieces that do not add up).
absl::StatusOr<v1::ShardCheckpoint> DecodeCheckpointFile(absl::string_view bytes,
                                                         absl::string_view path);

// Reads `path` through `fs` and decodes it: the file system's error (NOT_FOUND when
// there is no such file) or DecodeCheckpointFile's.
absl::StatusOr<v1::ShardCheckpoint> ReadCheckpointFile(const std::string& path,
                                                       FileSystem* fs = DefaultFileSystem());

// The version a checkpoint is named by: that of its sync tables holding elements here
// (all equal, since they are captured at one version) if it has any, else the newest
// version of any table; 0 when it has no tables.
int64_t CheckpointVersion(const v1::ShardCheckpoint& checkpoint);

}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_CHECKPOINT_FILE_H_
