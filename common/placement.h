// Placement: which shard holds which part of a table.
//
// A pure function of the table's name and size and the shard count, computed the same
// way by every process, so no lookup service sits on the hot path. Dense tables of at
// least kSplitBytes are cut into `num_shards` contiguous ranges of near-equal bytes (in
// whole cache lines); smaller ones are placed whole on the shard chosen by a stable hash
// of the name. Sparse rows go to the shard chosen by a stable hash of the key.
//
// Thread-safe: pure functions.
#ifndef PS_COMMON_PLACEMENT_H_
#define PS_COMMON_PLACEMENT_H_

#include <cstdint>
#include <string_view>
#include <vector>

namespace ps {

// Dense tables at least this large are spread over all shards.
inline constexpr int64_t kSplitBytes = 64 * 1024;
// Range boundaries are multiples of this many elements (one 64-byte cache line).
inline constexpr int64_t kAlignElements = 16;

// Elements [begin, end) of a flattened table, held by `shard`.
struct ShardRange {
  int shard = 0;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Returns the non-empty ranges of a dense table of `num_elements` float32 values, in
// increasing order of `begin`; together they cover [0, num_elements) exactly once.
// Requires num_shards >= 1 and num_elements >= 0.
std::vector<ShardRange> PlaceDense(std::string_view table, int64_t num_elements,
                                   int num_shards);

// Returns the range `shard` holds, or an empty range {shard, 0, 0} if it holds none.
ShardRange LocalRange(std::string_view table, int64_t num_elements, int num_shards,
                      int shard);

// Returns the shard that holds row `key` of a sparse table.
int ShardForKey(int64_t key, int num_shards);

// A stable 64-bit FNV-1a hash (unlike absl::Hash, the same in every process).
uint64_t StableHash(std::string_view bytes);
// A stable 64-bit mix of an integer (SplitMix64's finaliser).
uint64_t MixBits(uint64_t x);

}  // namespace ps

#endif  // PS_COMMON_PLACEMENT_H_
