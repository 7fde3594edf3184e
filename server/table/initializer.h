// Fills table ranges from a table's Initializer.
//
// Each value is a pure function of (seed, global element index), so a tensor is the same
// however it is cut over shards, and a sparse row is the same whichever shard creates it.
//
// Thread-safe: pure functions.
#ifndef PS_SERVER_TABLE_INITIALIZER_H_
#define PS_SERVER_TABLE_INITIALIZER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "proto/v1/ps.pb.h"

namespace ps {

// Returns INVALID_ARGUMENT naming the bad field (e.g. uniform with low > high).
absl::Status ValidateInitializer(const v1::Initializer& init);

// Writes the values of global elements [first, first + n) into out[0, n).
void FillInitial(const v1::Initializer& init, int64_t first, int64_t n, float* out);

}  // namespace ps

#endif  // PS_SERVER_TABLE_INITIALIZER_H_
