#include "server/checkpoint/checkpoint_file.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ps {
namespace {

constexpr char kMagic[8] = {'P', 'S', 'C', 'K', 'P', 'T', '0', '1'};

// Fixed-width little-endian integers, byte by byte, so a file reads the same on any host.
// On x86 these are the bytes that files written by an earlier memcpy of the integers hold.
void PutFixed(uint64_t value, int bytes, char* out) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t GetFixed(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return value;
}

}  // namespace

uint32_t Crc32(absl::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  for (size_t at = 0; at < data.size();) {
    const uInt n = static_cast<uInt>(std::min<size_t>(data.size() - at, size_t{1} << 30));
    crc = crc32(crc, p + at, n);
    at += n;
  }
  return static_cast<uint32_t>(crc);
}

absl::StatusOr<std::string> EncodeCheckpointFile(const v1::ShardCheckpoint& checkpoint) {
  std::string payload;
  if (!checkpoint.SerializeToString(&payload)) {
    return absl::ResourceExhaustedError(
        "checkpoint does not fit one protobuf message (2 GiB per shard)");
  }
  std::string out(kCheckpointHeaderBytes, '\0');
  std::memcpy(out.data(), kMagic, 8);
  PutFixed(payload.size(), 8, out.data() + 8);
  PutFixed(Crc32(payload), 4, out.data() + 16);
  out += payload;
  return out;
}

absl::StatusOr<v1::ShardCheckpoint> DecodeCheckpointFile(absl::string_view bytes,
                                                         absl::string_view path) {
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a checkpoint (bad magic)"));
  }
  if (bytes.size() < kCheckpointHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size(),
                                            " bytes, shorter than the header"));
  }
  const uint64_t length = GetFixed(bytes.data() + 8, 8);
  const uint32_t crc = static_cast<uint32_t>(GetFixed(bytes.data() + 16, 4));
  const absl::string_view payload = bytes.substr(kCheckpointHeaderBytes);
  if (payload.size() < length) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", payload.size(),
                                            " payload bytes, header says ", length));
  }
  if (payload.size() > length) {
    return absl::DataLossError(absl::StrCat(path, ": ", payload.size() - length,
                                            " bytes after the payload of ", length));
  }
  if (const uint32_t actual = Crc32(payload); actual != crc) {
    return absl::DataLossError(
        absl::StrFormat("%s: CRC-32 %08x does not match %08x", path, actual, crc));
  }
  v1::ShardCheckpoint out;
  if (payload.size() > static_cast<size_t>(INT_MAX) ||
      !out.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(absl::StrCat(path, ": payload does not parse"));
  }
  return out;
}

absl::StatusOr<v1::ShardCheckpoint> ReadCheckpointFile(const std::string& path,
                                                       FileSystem* fs) {
  absl::StatusOr<std::string> bytes = fs->ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return DecodeCheckpointFile(*bytes, path);
}

int64_t CheckpointVersion(const v1::ShardCheckpoint& checkpoint) {
  int64_t newest = 0, sync = -1;
  for (const v1::TableCheckpoint& t : checkpoint.tables()) {
    newest = std::max(newest, t.version());
    // Sparse tables are never sync (docs/consistency.md); a dense one holding no
    // elements here takes no steps here.
    if (t.spec().consistency() == v1::SYNC && !t.params().empty()) {
      sync = std::max(sync, t.version());
    }
  }
  return sync >= 0 ? sync : newest;
}

}  // namespace ps
