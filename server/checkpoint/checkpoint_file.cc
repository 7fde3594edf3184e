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

namespace {

constexpr char kRecordsMagic[8] = {'P', 'S', 'C', 'K', 'P', 'T', '0', '2'};

void AppendRecord(const std::string& payload, std::string* out) {
  char header[12];
  PutFixed(payload.size(), 8, header);
  PutFixed(Crc32(payload), 4, header + 8);
  out->append(header, sizeof(header));
  out->append(payload);
}

// The record at *at (past the magic), verified; advances *at.
absl::StatusOr<absl::string_view> ReadRecord(absl::string_view bytes, size_t* at,
                                             absl::string_view path) {
  if (bytes.size() - *at < 12) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size() - *at,
                                            " bytes at ", *at, ", shorter than a record header"));
  }
  const uint64_t length = GetFixed(bytes.data() + *at, 8);
  const uint32_t crc = static_cast<uint32_t>(GetFixed(bytes.data() + *at + 8, 4));
  *at += 12;
  if (bytes.size() - *at < length) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size() - *at,
                                            " payload bytes at ", *at, ", header says ", length));
  }
  const absl::string_view payload = bytes.substr(*at, length);
  *at += length;
  if (const uint32_t actual = Crc32(payload); actual != crc) {
    return absl::DataLossError(
        absl::StrFormat("%s: CRC-32 %08x does not match %08x", path, actual, crc));
  }
  return payload;
}

template <typename Message>
absl::Status Parse(absl::string_view payload, absl::string_view path, Message* out) {
  if (payload.size() > static_cast<size_t>(INT_MAX) ||
      !out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(absl::StrCat(path, ": payload does not parse"));
  }
  return absl::OkStatus();
}

// Elements (dense) or rows (sparse) of a table part, and the bytes each takes in a piece.
int64_t PieceUnits(const v1::TableCheckpoint& t) {
  return t.spec().kind() == v1::SPARSE ? t.keys_size() : static_cast<int64_t>(t.params().size() / 4);
}
int64_t BytesPerUnit(const v1::TableCheckpoint& t) {
  if (t.spec().kind() == v1::SPARSE) return 8 + 4 * t.spec().row_width() * (1 + t.slots_size());
  int64_t arrays = 1 + t.slots_size() + (t.step_sum().empty() ? 0 : 1);
  for (const v1::SyncContribution& c : t.step_contributions()) arrays += !c.partial().empty();
  return 4 * arrays;
}

// Bytes [b, e) units of a per-unit array of `width` bytes per unit.
std::string Part(const std::string& array, int64_t b, int64_t e, int64_t width) {
  if (array.empty()) return std::string();
  return array.substr(b * width, (e - b) * width);
}

// Units [b, e) of `t`, as one piece.
v1::TableCheckpoint Piece(const v1::TableCheckpoint& t, int64_t b, int64_t e) {
  v1::TableCheckpoint p;
  *p.mutable_spec() = t.spec();
  p.set_offset(t.offset());
  p.set_version(t.version());
  p.set_piece_begin(b);
  p.set_piece_total(PieceUnits(t));
  const bool sparse = t.spec().kind() == v1::SPARSE;
  const int64_t width = sparse ? 4 * t.spec().row_width() : 4;
  p.set_params(Part(t.params(), b, e, width));
  for (const std::string& slot : t.slots()) p.add_slots(Part(slot, b, e, width));
  if (sparse) {
    for (int64_t i = b; i < e; ++i) p.add_keys(t.keys(static_cast<int>(i)));
    return p;
  }
  p.set_step_sum(Part(t.step_sum(), b, e, 4));
  for (const v1::SyncContribution& c : t.step_contributions()) {
    v1::SyncContribution* out = p.add_step_contributions();
    out->set_worker_index(c.worker_index());
    if (b == 0) *out->mutable_span_bounds() = c.span_bounds();
    out->set_partial(Part(c.partial(), b, e, 4));
  }
  return p;
}

// Adds `piece` to the table it continues (the last of `out`), or starts a table.
absl::Status AddPiece(v1::TableCheckpoint piece, absl::string_view path, v1::ShardCheckpoint* out) {
  auto lost = [&](const std::string& what) {
    return absl::DataLossError(
        absl::StrCat(path, ": table '", piece.spec().name(), "': ", what));
  };
  if (piece.piece_begin() == 0) {
    *out->add_tables() = std::move(piece);
    return absl::OkStatus();
  }
  if (out->tables_size() == 0) return lost("a piece with no start");
  v1::TableCheckpoint& t = *out->mutable_tables(out->tables_size() - 1);
  if (t.spec().name() != piece.spec().name() || PieceUnits(t) != piece.piece_begin() ||
      t.piece_total() != piece.piece_total() || t.slots_size() != piece.slots_size() ||
      t.step_contributions_size() != piece.step_contributions_size() ||
      t.step_sum().empty() != piece.step_sum().empty()) {
    return lost(absl::StrCat("a piece from ", piece.piece_begin(), " does not continue it"));
  }
  t.mutable_params()->append(piece.params());
  for (int i = 0; i < t.slots_size(); ++i) t.mutable_slots(i)->append(piece.slots(i));
  for (int64_t key : piece.keys()) t.add_keys(key);
  t.mutable_step_sum()->append(piece.step_sum());
  for (int i = 0; i < t.step_contributions_size(); ++i) {
    t.mutable_step_contributions(i)->mutable_partial()->append(piece.step_contributions(i).partial());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeRecords(const v1::ShardCheckpoint& checkpoint,
                                          int64_t max_record_bytes) {
  // Every field but the tables (copied one by one: a copy of the whole would copy them).
  v1::ShardCheckpoint meta;
  meta.set_shard_index(checkpoint.shard_index());
  meta.set_num_shards(checkpoint.num_shards());
  meta.set_created_unix_ms(checkpoint.created_unix_ms());
  *meta.mutable_workers() = checkpoint.workers();
  *meta.mutable_pushes() = checkpoint.pushes();
  *meta.mutable_live_workers() = checkpoint.live_workers();
  meta.set_table_count(checkpoint.tables_size());
  std::string out(kRecordsMagic, sizeof(kRecordsMagic));
  std::string payload;
  if (static_cast<int64_t>(meta.ByteSizeLong()) > max_record_bytes ||
      !meta.SerializeToString(&payload)) {
    return absl::ResourceExhaustedError("the checkpoint's workers and ledger exceed a record");
  }
  AppendRecord(payload, &out);
  for (const v1::TableCheckpoint& t : checkpoint.tables()) {
    const int64_t overhead = static_cast<int64_t>(Piece(t, 0, 0).ByteSizeLong()) + 64;
    const int64_t per_piece = (max_record_bytes - overhead) / BytesPerUnit(t);
    if (per_piece < 1) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "table '", t.spec().name(), "': one element does not fit a checkpoint record"));
    }
    const int64_t units = PieceUnits(t);
    for (int64_t b = 0; b == 0 || b < units; b += per_piece) {
      if (!Piece(t, b, std::min(units, b + per_piece)).SerializeToString(&payload)) {
        return absl::ResourceExhaustedError(
            absl::StrCat("table '", t.spec().name(), "': a piece does not serialize"));
      }
      AppendRecord(payload, &out);
    }
  }
  return out;
}

absl::StatusOr<v1::ShardCheckpoint> DecodeRecords(absl::string_view bytes,
                                                  absl::string_view path) {
  size_t at = sizeof(kRecordsMagic);
  v1::ShardCheckpoint out;
  absl::StatusOr<absl::string_view> meta = ReadRecord(bytes, &at, path);
  if (!meta.ok()) return meta.status();
  if (absl::Status s = Parse(*meta, path, &out); !s.ok()) return s;
  if (out.tables_size() != 0) return absl::DataLossError(absl::StrCat(path, ": tables in the header"));
  while (at < bytes.size()) {
    absl::StatusOr<absl::string_view> record = ReadRecord(bytes, &at, path);
    if (!record.ok()) return record.status();
    v1::TableCheckpoint piece;
    if (absl::Status s = Parse(*record, path, &piece); !s.ok()) return s;
    if (absl::Status s = AddPiece(std::move(piece), path, &out); !s.ok()) return s;
  }
  if (out.tables_size() != out.table_count()) {
    return absl::DataLossError(absl::StrCat(path, ": ", out.tables_size(), " of its ",
                                            out.table_count(), " tables"));
  }
  out.clear_table_count();
  for (v1::TableCheckpoint& t : *out.mutable_tables()) {
    if (PieceUnits(t) != t.piece_total()) {
      return absl::DataLossError(absl::StrCat(path, ": table '", t.spec().name(), "' has ",
                                              PieceUnits(t), " of its ", t.piece_total(),
                                              " elements or rows"));
    }
    t.clear_piece_begin();
    t.clear_piece_total();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodeCheckpointFile(const v1::ShardCheckpoint& checkpoint,
                                                 int64_t max_record_bytes) {
  if (static_cast<int64_t>(checkpoint.ByteSizeLong()) > max_record_bytes) {
    return EncodeRecords(checkpoint, max_record_bytes);
  }
  std::string payload;
  if (!checkpoint.SerializeToString(&payload)) {
    return absl::ResourceExhaustedError("checkpoint does not serialize");
  }
  std::string out(kMagic, sizeof(kMagic));
  AppendRecord(payload, &out);
  return out;
}

absl::StatusOr<v1::ShardCheckpoint> DecodeCheckpointFile(absl::string_view bytes,
                                                         absl::string_view path) {
  if (bytes.size() >= sizeof(kRecordsMagic) &&
      std::memcmp(bytes.data(), kRecordsMagic, sizeof(kRecordsMagic)) == 0) {
    return DecodeRecords(bytes, path);
  }
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
  if (absl::Status s = Parse(payload, path, &out); !s.ok()) return s;
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
