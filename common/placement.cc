#include "common/placement.h"

#include <algorithm>

namespace ps {

uint64_t StableHash(std::string_view bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t MixBits(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::vector<ShardRange> PlaceDense(std::string_view table, int64_t num_elements,
                                   int num_shards) {
  std::vector<ShardRange> ranges;
  if (num_elements <= 0 || num_shards <= 0) return ranges;
  const int64_t bytes = num_elements * static_cast<int64_t>(sizeof(float));
  if (num_shards == 1 || bytes < kSplitBytes) {
    const int shard = static_cast<int>(StableHash(table) % num_shards);
    ranges.push_back({shard, 0, num_elements});
    return ranges;
  }
  // Near-equal parts in whole cache lines; the first `extra` parts get one line more.
  const int64_t lines = (num_elements + kAlignElements - 1) / kAlignElements;
  const int64_t base = lines / num_shards;
  const int64_t extra = lines % num_shards;
  int64_t begin = 0;
  for (int s = 0; s < num_shards && begin < num_elements; ++s) {
    const int64_t part_lines = base + (s < extra ? 1 : 0);
    const int64_t end = std::min(num_elements, begin + part_lines * kAlignElements);
    if (end > begin) ranges.push_back({s, begin, end});
    begin = end;
  }
  return ranges;
}

ShardRange LocalRange(std::string_view table, int64_t num_elements, int num_shards,
                      int shard) {
  for (const ShardRange& r : PlaceDense(table, num_elements, num_shards)) {
    if (r.shard == shard) return r;
  }
  return {shard, 0, 0};
}

int ShardForKey(int64_t key, int num_shards) {
  if (num_shards <= 1) return 0;
  return static_cast<int>(MixBits(static_cast<uint64_t>(key)) % num_shards);
}

}  // namespace ps
