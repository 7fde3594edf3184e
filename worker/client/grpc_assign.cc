// GrpcPsClient: given values for untrained tables (ps_worker --init_from,
// docs/model_files.md), cut by placement as pushes are.
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "worker/client/grpc_calls.h"
#include "worker/client/grpc_ps_client_impl.h"

namespace ps {
namespace internal {

absl::Status GrpcPsClient::Assign(const std::vector<DenseTensor>& tensors) {
  std::vector<Chunk> chunks = Plan(tensors);
  std::vector<Call<v1::AssignRequest, v1::AssignResponse>> calls(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    for (const Piece& p : chunks[i].pieces) {
      v1::DenseSlice* slice = calls[i].request.add_dense();
      slice->set_table(p.tensor->table);
      slice->set_offset(p.begin);
      slice->set_length(p.length);
      slice->set_values(reinterpret_cast<const char*>(p.tensor->data + p.begin),
                        static_cast<size_t>(p.length) * 4);
    }
  }
  stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kAssign);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "assign", calls[i].status);
  }
  return absl::OkStatus();
}

absl::Status GrpcPsClient::AssignSparse(const std::string& table, const std::vector<int64_t>& keys,
                                        int width, const float* rows) {
  if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
  absl::flat_hash_set<int64_t> seen;
  for (int64_t k : keys) {
    if (!seen.insert(k).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", table, "': key ", k, " is given twice"));
    }
  }
  // As many rows per request as fit in a chunk (at least one), within the key limit.
  const int64_t rows_per_request =
      std::max<int64_t>(1, std::min<int64_t>(options_.max_sparse_keys_per_request,
                                             options_.max_chunk_bytes / (int64_t{4} * width)));
  std::vector<SparseChunk> chunks = ps::PlanSparse(keys, num_shards(), rows_per_request);
  std::vector<Call<v1::AssignRequest, v1::AssignResponse>> calls(chunks.size());
  const size_t row_bytes = static_cast<size_t>(width) * 4;
  for (size_t i = 0; i < chunks.size(); ++i) {
    v1::SparseRows* out = calls[i].request.add_sparse();
    out->set_table(table);
    std::string* values = out->mutable_values();
    values->reserve(chunks[i].positions.size() * row_bytes);
    for (size_t pos : chunks[i].positions) {
      out->add_keys(keys[pos]);
      values->append(reinterpret_cast<const char*>(rows + pos * width), row_bytes);
    }
  }
  stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kAssign);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "assign", calls[i].status);
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace ps
