// Request planning: how a client cuts whole tensors and key batches into requests to the
// shards. Dense tensors are cut by placement (common/placement.h) into per-shard slices
// and those into chunks of at most `max_chunk_bytes`; sparse keys go to the shard of
// their hash, at most `max_keys` per request. Every client (gRPC, in-process) plans the
// same way, so a push reaches a shard as the same parts whatever carries it.
//
// Thread-safe: pure functions.
#ifndef PS_WORKER_CLIENT_REQUEST_PLAN_H_
#define PS_WORKER_CLIENT_REQUEST_PLAN_H_

#include <cstdint>
#include <vector>

#include "worker/client/ps_client.h"

namespace ps {

// One slice of one tensor in one request: elements [begin, begin + length).
struct Piece {
  const DenseTensor* tensor;
  int64_t begin;
  int64_t length;
  int64_t window_offset = -1;  // byte offset in the shard's transfer window; -1: in-band
};

// A request to one shard with the pieces it carries, in order.
struct Chunk {
  int shard;
  std::vector<Piece> pieces;
};

// Tensor bytes of the chunk's pieces.
int64_t ChunkBytes(const Chunk& chunk);

// The shard of each chunk (Chunk or SparseChunk), in order.
template <typename C>
std::vector<int> ShardsOf(const std::vector<C>& chunks) {
  std::vector<int> shards;
  for (const C& c : chunks) shards.push_back(c.shard);
  return shards;
}

// Cuts `tensors` into per-shard chunk requests of at most max_chunk_bytes of tensor
// each, grouped by shard. A slice that fits in one chunk is never split.
std::vector<Chunk> PlanDense(const std::vector<DenseTensor>& tensors, int num_shards,
                             int64_t max_chunk_bytes);

// Positions (into a distinct-key list) that one request to `shard` carries.
struct SparseChunk {
  int shard;
  std::vector<size_t> positions;
};

// Groups distinct keys by shard (ShardForKey), at most `max_keys` per request. With
// `every_shard`, every shard gets a request even without keys (so SSP clocks advance on
// all shards).
std::vector<SparseChunk> PlanSparse(const std::vector<int64_t>& unique, int num_shards,
                                    int64_t max_keys, bool every_shard = false);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_REQUEST_PLAN_H_
