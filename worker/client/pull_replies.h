// Taking in what pulls brought back. Dense slices: in-band values are copied where they
// belong at once; windowed slices (the reply names their place in the shard's pull
// window) are queued, per shard, for one read of the window after every reply is in
// (SameHostTransport::ReadPullWindows); the smallest version seen, overall and per
// shard, is kept along the way. Sparse rows: each reply's rows go to the distinct keys
// it was asked for, and from those to every position of a key.
//
// Thread safety: a PulledParts belongs to one call; the functions write only to what
// they are given (TakePulled adds to an atomic counter).
#ifndef PS_WORKER_CLIENT_PULL_REPLIES_H_
#define PS_WORKER_CLIENT_PULL_REPLIES_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/same_host.h"
#include "common/tensor_coding.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/request_plan.h"
#include "worker/client/same_host_transport.h"

namespace ps {

// What a dense pull brought back, while its replies are taken in.
struct PulledParts {
  explicit PulledParts(size_t shards)
      : reads(shards), shard_version(shards, std::numeric_limits<int64_t>::max()) {}
  std::vector<std::vector<RemoteCopy>> reads;  // windowed slices, per shard
  int64_t version = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> shard_version;  // max(): none from that shard
};

// Takes in one chunk's pulled slices: in-band values (those of `values`, the reply's
// tensor bytes as they arrived, or when it is null those in the message) are copied to
// dest(piece) now,
// windowed ones (at use[chunk.shard].pull_address + window_offset) are queued in
// parts->reads. Adds every slice's bytes to *bytes_pulled. INTERNAL when the reply does
// not match the request; the slices before the mismatch are taken in.
absl::Status TakePulled(const Chunk& chunk, const v1::PullResponse& r,
                        const wire::Values* values, const std::vector<WindowUse>& use,
                        const std::function<float*(const Piece&)>& dest, PulledParts* parts,
                        std::atomic<int64_t>* bytes_pulled);

// Copies the rows of `table` that one sparse pull reply brought for `chunk` into
// `unique_rows` (`width` floats per distinct key, at the chunk's positions). Returns the
// reply's version; INTERNAL, naming the shard, when it holds the wrong number of bytes.
absl::StatusOr<int64_t> TakeSparseRows(const SparseChunk& chunk, const v1::PullResponse& resp,
                                       const std::string& table, int width, float* unique_rows);

// Writes row i of `rows` (`width` floats) from the row of keys[i] in `unique_rows`, whose
// rows are those of the distinct keys `unique`, in order.
void ScatterRows(const std::vector<int64_t>& keys, const std::vector<int64_t>& unique,
                 const std::vector<float>& unique_rows, int width, float* rows);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_PULL_REPLIES_H_
