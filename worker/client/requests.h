// The requests of one client call, built from its plan (request_plan.h): a dense pull
// or push per chunk, a sparse pull or push per key chunk, and push ids. Every request of
// a worker's push carries the same id sequence and its own part, which shards use to
// apply a push at most once however often it is sent.
//
// Thread-safe: pure functions (they read the tensors and write only what they return).
#ifndef PS_WORKER_CLIENT_REQUESTS_H_
#define PS_WORKER_CLIENT_REQUESTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/tensor_coding.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/request_plan.h"
#include "worker/client/value_coding.h"

namespace ps {

// What every request of a call says of who sends it: the worker index (< 0 for tools),
// the client's incarnation, and its SSP clock.
struct RequestSender {
  int worker = -1;
  uint64_t incarnation = 0;
  int64_t clock = 0;
};

// The pull of `chunk`'s slices, waiting for `min_version`. Windowed pieces
// (window_offset >= 0) name their place in the shard's pull window.
// With `formats`, in-band pieces ask for their table's format.
v1::PullRequest DensePullRequest(const Chunk& chunk, const RequestSender& sender,
                                 int64_t min_version, const WireFormats* formats = nullptr);

// The push of `chunk`'s slices as the gradient of `step`, part `part` of push `sequence`
// (SetPushId). In-band pieces carry their values; windowed ones name their place in the
// shard's push window.
v1::PushRequest DensePushRequest(const Chunk& chunk, const RequestSender& sender, int64_t step,
                                 int64_t sequence, int part);
// The same push with its values left in the tensors: gRPC reads them from there
// (common/tensor_coding.h), so the tensors must stay as they are until the call is done.
// With a coder, in-band pieces of tables it codes in 16 bits are coded into the request
// instead (value_coding.h).
wire::PushRequest WireDensePushRequest(const Chunk& chunk, const RequestSender& sender,
                                       int64_t step, int64_t sequence, int part,
                                       GradientCoder* coder = nullptr);

// The tensor bytes a push of `chunk` moves: `values` (WireDensePushRequest's) in-band,
// float32 through windows.
int64_t PushedBytes(const Chunk& chunk, const std::vector<absl::Span<const char>>& values);

// The pull of the rows of unique[p] for each position p of `chunk`, from `table`.
v1::PullRequest SparsePullRequest(const std::string& table, const SparseChunk& chunk,
                                  const std::vector<int64_t>& unique, const RequestSender& sender);

// The push, as the gradient of `step`, of the rows of `summed` (`width` floats for each
// distinct key in `unique`) at the positions of `chunk`; part `part` of push `sequence`.
v1::PushRequest SparsePushRequest(const std::string& table, const SparseChunk& chunk,
                                  const std::vector<int64_t>& unique,
                                  const std::vector<float>& summed, int width,
                                  const RequestSender& sender, int64_t step, int64_t sequence,
                                  int part);

// Whether one push-pull request per chunk can carry the push of grads[i] and the pull
// of params[i] for every i: each pair names the same table of the same size.
bool PushPullPairs(const std::vector<DenseTensor>& grads, const std::vector<DenseTensor>& params);

// Gives a worker's push (worker_index >= 0) its id: `incarnation`, `sequence`, `part`.
// Tools' pushes (worker_index < 0) carry none.
void SetPushId(v1::PushRequest* request, uint64_t incarnation, int64_t sequence, int part);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_REQUESTS_H_
