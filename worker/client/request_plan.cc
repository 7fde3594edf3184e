#include "worker/client/request_plan.h"

#include <algorithm>

#include "common/placement.h"

namespace ps {

int64_t ChunkBytes(const Chunk& chunk) {
  int64_t bytes = 0;
  for (const Piece& p : chunk.pieces) bytes += p.length * 4;
  return bytes;
}

std::vector<Chunk> PlanDense(const std::vector<DenseTensor>& tensors, int num_shards,
                             int64_t max_chunk_bytes) {
  const int64_t max_elems = std::max<int64_t>(1, max_chunk_bytes / 4);
  std::vector<std::vector<Chunk>> per_shard(num_shards);
  std::vector<int64_t> fill(num_shards, 0);
  for (const DenseTensor& t : tensors) {
    for (const ShardRange& r : PlaceDense(t.table, t.num_elements, num_shards)) {
      for (int64_t b = r.begin; b < r.end;) {
        std::vector<Chunk>& cs = per_shard[r.shard];
        // A slice that fits in one chunk is never split, so it starts a new chunk when
        // the current one lacks room.
        const bool fits_alone = r.end - b <= max_elems;
        if (cs.empty() || fill[r.shard] >= max_elems ||
            (fits_alone && fill[r.shard] + (r.end - b) > max_elems)) {
          cs.push_back({r.shard, {}});
          fill[r.shard] = 0;
        }
        const int64_t n = std::min(r.end - b, max_elems - fill[r.shard]);
        cs.back().pieces.push_back({&t, b, n});
        fill[r.shard] += n;
        b += n;
      }
    }
  }
  std::vector<Chunk> out;
  for (auto& cs : per_shard) {
    for (auto& c : cs) out.push_back(std::move(c));
  }
  return out;
}

std::vector<SparseChunk> PlanSparse(const std::vector<int64_t>& unique, int num_shards,
                                    int64_t max_keys, bool every_shard) {
  std::vector<std::vector<SparseChunk>> per_shard(num_shards);
  if (every_shard) {
    for (int s = 0; s < num_shards; ++s) per_shard[s].push_back({s, {}});
  }
  const size_t max = static_cast<size_t>(std::max<int64_t>(1, max_keys));
  for (size_t k = 0; k < unique.size(); ++k) {
    const int shard = ShardForKey(unique[k], num_shards);
    std::vector<SparseChunk>& cs = per_shard[shard];
    if (cs.empty() || cs.back().positions.size() >= max) cs.push_back({shard, {}});
    cs.back().positions.push_back(k);
  }
  std::vector<SparseChunk> out;
  for (auto& cs : per_shard) {
    for (auto& c : cs) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace ps
