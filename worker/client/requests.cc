// Request building for the gRPC client.
#include "worker/client/requests.h"

#include <cstring>
#include <utility>

#include "common/value_format.h"

namespace ps {
namespace {

// Names `p` in a request: its table and elements, and its place in the shard's window
// when it goes through one.
void DescribeSlice(const Piece& p, v1::DenseSlice* d) {
  d->set_table(p.tensor->table);
  d->set_offset(p.begin);
  d->set_length(p.length);
  if (p.window_offset >= 0) d->set_window_offset(p.window_offset);
}

}  // namespace

v1::PullRequest DensePullRequest(const Chunk& chunk, const RequestSender& sender,
                                 int64_t min_version, const WireFormats* formats) {
  v1::PullRequest request;
  request.set_worker_index(sender.worker);
  request.set_incarnation(sender.incarnation);
  request.set_min_version(min_version);
  request.set_clock(sender.clock);
  for (const Piece& p : chunk.pieces) {
    v1::DenseSlice* d = request.add_dense();
    DescribeSlice(p, d);
    if (formats != nullptr && p.window_offset < 0) d->set_format(formats->Of(p.tensor->table));
  }
  return request;
}

wire::PushRequest WireDensePushRequest(const Chunk& chunk, const RequestSender& sender,
                                       int64_t step, int64_t sequence, int part,
                                       GradientCoder* coder) {
  wire::PushRequest wire;
  v1::PushRequest& request = wire.message;
  request.set_worker_index(sender.worker);
  request.set_step(step);
  request.set_clock(sender.clock);
  SetPushId(&request, sender.incarnation, sequence, part);
  for (const Piece& p : chunk.pieces) {
    v1::DenseSlice* d = request.add_dense();
    DescribeSlice(p, d);
    const v1::ValueFormat format =
        coder != nullptr ? coder->formats().Of(p.tensor->table) : v1::FLOAT32;
    if (p.window_offset >= 0) {
      wire.values.emplace_back();
    } else if (format == v1::FLOAT32) {
      wire.values.emplace_back(reinterpret_cast<const char*>(p.tensor->data + p.begin),
                               static_cast<size_t>(p.length) * 4);
    } else {
      const size_t size = static_cast<size_t>(p.length) * ValueBytes(format);
      wire.coded.emplace_back(new char[size]);
      coder->Encode(p.tensor->table, p.tensor->data, p.tensor->num_elements, p.begin, p.length,
                    format, wire.coded.back().get());
      wire.values.emplace_back(wire.coded.back().get(), size);
      d->set_format(format);
    }
  }
  return wire;
}

int64_t PushedBytes(const Chunk& chunk, const std::vector<absl::Span<const char>>& values) {
  int64_t bytes = 0;
  for (size_t i = 0; i < chunk.pieces.size(); ++i) {
    const Piece& p = chunk.pieces[i];
    bytes += p.window_offset >= 0 ? p.length * 4 : static_cast<int64_t>(values[i].size());
  }
  return bytes;
}

v1::PushRequest DensePushRequest(const Chunk& chunk, const RequestSender& sender, int64_t step,
                                 int64_t sequence, int part) {
  wire::PushRequest wire = WireDensePushRequest(chunk, sender, step, sequence, part);
  for (size_t i = 0; i < wire.values.size(); ++i) {
    if (!wire.values[i].empty()) {
      wire.message.mutable_dense(static_cast<int>(i))
          ->set_values(wire.values[i].data(), wire.values[i].size());
    }
  }
  return std::move(wire.message);
}

v1::PullRequest SparsePullRequest(const std::string& table, const SparseChunk& chunk,
                                  const std::vector<int64_t>& unique, const RequestSender& sender) {
  v1::PullRequest request;
  request.set_worker_index(sender.worker);
  request.set_incarnation(sender.incarnation);
  request.set_clock(sender.clock);
  v1::SparseRows* r = request.add_sparse();
  r->set_table(table);
  for (size_t k : chunk.positions) r->add_keys(unique[k]);
  return request;
}

v1::PushRequest SparsePushRequest(const std::string& table, const SparseChunk& chunk,
                                  const std::vector<int64_t>& unique,
                                  const std::vector<float>& summed, int width,
                                  const RequestSender& sender, int64_t step, int64_t sequence,
                                  int part) {
  v1::PushRequest request;
  request.set_worker_index(sender.worker);
  request.set_step(step);
  request.set_clock(sender.clock);
  SetPushId(&request, sender.incarnation, sequence, part);
  v1::SparseRows* r = request.add_sparse();
  r->set_table(table);
  std::string* values = r->mutable_values();
  values->resize(chunk.positions.size() * width * 4);
  for (size_t j = 0; j < chunk.positions.size(); ++j) {
    const size_t k = chunk.positions[j];
    r->add_keys(unique[k]);
    std::memcpy(values->data() + j * width * 4, summed.data() + k * width, width * 4);
  }
  return request;
}

bool PushPullPairs(const std::vector<DenseTensor>& grads, const std::vector<DenseTensor>& params) {
  if (grads.size() != params.size()) return false;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].table != params[i].table || grads[i].num_elements != params[i].num_elements) {
      return false;
    }
  }
  return true;
}

void SetPushId(v1::PushRequest* request, uint64_t incarnation, int64_t sequence, int part) {
  if (request->worker_index() < 0) return;
  request->mutable_id()->set_incarnation(incarnation);
  request->mutable_id()->set_sequence(sequence);
  request->mutable_id()->set_part(part);
}

}  // namespace ps
