// Pull replies, taken in one by one.
#include "worker/client/pull_replies.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/value_format.h"

namespace ps {
namespace {

// Widens value j of a reply (in `values` when not null, else `in_message`) from `format`.
void Widen(v1::ValueFormat format, const wire::Values* values, int j, const std::string& in_message,
           size_t size, int64_t length, float* out) {
  const char* in = values != nullptr ? values->InPlace(j, /*alignment=*/1) : in_message.data();
  std::string joined;
  if (in == nullptr) {  // split across gRPC's slices
    joined.resize(size);
    values->CopyTo(j, joined.data());
    in = joined.data();
  }
  DecodeValues(format, in, length, out);
}

}  // namespace

absl::Status TakePulled(const Chunk& chunk, const v1::PullResponse& r, const wire::Values* values,
                        const std::vector<WindowUse>& use,
                        const std::function<float*(const Piece&)>& dest, PulledParts* parts,
                        std::atomic<int64_t>* bytes_pulled) {
  if (r.dense_size() != static_cast<int>(chunk.pieces.size())) {
    return absl::InternalError(absl::StrCat("shard ", chunk.shard, " answered ", r.dense_size(),
                                            " slices for ", chunk.pieces.size()));
  }
  if (values != nullptr && values->count() != chunk.pieces.size()) {
    return absl::InternalError(absl::StrCat("shard ", chunk.shard, " answered ", values->count(),
                                            " slice values for ", chunk.pieces.size()));
  }
  for (int j = 0; j < r.dense_size(); ++j) {
    const Piece& p = chunk.pieces[j];
    const v1::DenseSlice& d = r.dense(j);
    const size_t size = values != nullptr ? values->size(j) : d.values().size();
    const size_t width = ValueBytes(d.format());
    float* out = dest(p);
    if (p.window_offset >= 0) {
      if (!d.has_window_offset() || d.window_offset() != p.window_offset || size != 0) {
        return absl::InternalError(absl::StrCat("shard ", chunk.shard,
                                                " answered a windowed pull of table '",
                                                p.tensor->table, "' without its window"));
      }
      parts->reads[chunk.shard].push_back(
          {reinterpret_cast<char*>(out),
           use[chunk.shard].pull_address + static_cast<uint64_t>(p.window_offset),
           static_cast<size_t>(p.length * 4)});
    } else if (width == 0 || static_cast<int64_t>(size) != p.length * static_cast<int64_t>(width)) {
      return absl::InternalError(absl::StrCat("shard ", chunk.shard, " sent ", size, " bytes of ",
                                              ValueFormatName(d.format()), " for table '",
                                              p.tensor->table, "' slice of ", p.length));
    } else if (d.format() != v1::FLOAT32) {
      Widen(d.format(), values, j, d.values(), size, p.length, out);
    } else if (values != nullptr) {
      values->CopyTo(j, reinterpret_cast<char*>(out));
    } else {
      std::memcpy(out, d.values().data(), size);
    }
    bytes_pulled->fetch_add(p.window_offset >= 0 ? p.length * 4 : static_cast<int64_t>(size),
                            std::memory_order_relaxed);
    parts->version = std::min(parts->version, d.version());
    parts->shard_version[chunk.shard] = std::min(parts->shard_version[chunk.shard], d.version());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> TakeSparseRows(const SparseChunk& chunk, const v1::PullResponse& resp,
                                       const std::string& table, int width, float* unique_rows) {
  const size_t want = chunk.positions.size() * width * 4;
  if (resp.sparse_size() != 1 || resp.sparse(0).values().size() != want) {
    return absl::InternalError(absl::StrCat("shard ", chunk.shard, " sent ",
                                            resp.sparse_size() ? resp.sparse(0).values().size() : 0,
                                            " bytes of table '", table, "' rows, want ", want));
  }
  const char* src = resp.sparse(0).values().data();
  for (size_t j = 0; j < chunk.positions.size(); ++j) {
    std::memcpy(unique_rows + chunk.positions[j] * width, src + j * width * 4, width * 4);
  }
  return resp.sparse(0).version();
}

void ScatterRows(const std::vector<int64_t>& keys, const std::vector<int64_t>& unique,
                 const std::vector<float>& unique_rows, int width, float* rows) {
  absl::flat_hash_map<int64_t, size_t> where;
  for (size_t k = 0; k < unique.size(); ++k) where.emplace(unique[k], k);
  for (size_t i = 0; i < keys.size(); ++i) {
    std::memcpy(rows + i * width, unique_rows.data() + where[keys[i]] * width, width * 4);
  }
}

}  // namespace ps
