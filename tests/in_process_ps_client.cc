#include "tests/in_process_ps_client.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "worker/client/request_plan.h"
#include "worker/client/requests.h"

namespace ps {
namespace testing {
namespace {

// The status a gRPC client would report for shard `shard`.
absl::Status ShardError(int shard, const char* what, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(what, " to shard ", shard, ": ", s.message()));
}

}  // namespace

InProcessPsClient::InProcessPsClient(int num_shards, const ShardOptions& options,
                                     const ClientOptions& client)
    : options_(client), next_(num_shards, 0), pulled_(num_shards, 0) {
  for (int i = 0; i < num_shards; ++i) {
    ShardOptions o = options;
    o.store.shard_index = i;
    o.store.num_shards = num_shards;
    shards_.push_back(std::make_unique<Shard>(o));
  }
}

absl::Status InProcessPsClient::CreateTable(const v1::TableSpec& spec) {
  v1::CreateTableRequest request;
  *request.mutable_spec() = spec;
  for (int s = 0; s < num_shards(); ++s) {
    v1::CreateTableResponse response;
    if (absl::Status st = shards_[s]->CreateTable(request, &response); !st.ok()) {
      return ShardError(s, "create table", st);
    }
  }
  return absl::OkStatus();
}

absl::Status InProcessPsClient::RegisterWorker(int worker, const std::string& host,
                                               const std::string& device, int64_t clock) {
  for (int s = 0; s < num_shards(); ++s) {
    if (absl::Status st = RegisterWith(s, worker, host, device, clock); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status InProcessPsClient::RegisterWith(int shard, int worker, const std::string& host,
                                             const std::string& device, int64_t clock) {
  v1::RegisterWorkerRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  request.set_host(host);
  request.set_device(device);
  request.set_clock(clock);
  v1::RegisterWorkerResponse response;
  absl::Status st = shards_[shard]->Register(request, &response);
  return st.ok() ? st : ShardError(shard, "register", st);
}

absl::Status InProcessPsClient::Heartbeat(int worker, const v1::WorkerStats& stats) {
  for (int s = 0; s < num_shards(); ++s) {
    if (absl::Status st = HeartbeatTo(s, worker, stats); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status InProcessPsClient::HeartbeatTo(int shard, int worker, const v1::WorkerStats& stats) {
  v1::HeartbeatRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  *request.mutable_stats() = stats;
  v1::HeartbeatResponse response;
  absl::Status st = shards_[shard]->Heartbeat(request, &response);
  return st.ok() ? st : ShardError(shard, "heartbeat", st);
}

absl::Status InProcessPsClient::LeaveWorker(int worker) {
  v1::LeaveWorkerRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  absl::Status first;
  for (int s = 0; s < num_shards(); ++s) {
    absl::Status st = shards_[s]->Leave(request);
    if (!st.ok() && first.ok()) first = ShardError(s, "leave", st);
  }
  return first;
}

absl::StatusOr<int64_t> InProcessPsClient::Pull(const std::vector<DenseTensor>& tensors,
                                                int64_t min_version, int worker) {
  int64_t version = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> shard_version(num_shards(), std::numeric_limits<int64_t>::max());
  for (const Chunk& chunk : PlanDense(tensors, num_shards(), options_.max_chunk_bytes)) {
    int64_t want = min_version;
    if (min_version == kPerShard) {
      absl::MutexLock lock(&mu_);
      want = next_[chunk.shard];
    }
    const v1::PullRequest request = DensePullRequest(chunk, Sender(worker), want);
    v1::PullResponse response;
    if (absl::Status st = shards_[chunk.shard]->Pull(request, Deadline(), &response); !st.ok()) {
      return ShardError(chunk.shard, "pull", st);
    }
    for (size_t j = 0; j < chunk.pieces.size(); ++j) {
      const Piece& p = chunk.pieces[j];
      const v1::DenseSlice& d = response.dense(static_cast<int>(j));
      std::memcpy(p.tensor->data + p.begin, d.values().data(), p.length * 4);
      bytes_pulled_.fetch_add(p.length * 4);
      version = std::min(version, d.version());
      shard_version[chunk.shard] = std::min(shard_version[chunk.shard], d.version());
    }
  }
  absl::MutexLock lock(&mu_);
  for (int s = 0; s < num_shards(); ++s) {
    if (shard_version[s] != std::numeric_limits<int64_t>::max()) pulled_[s] = shard_version[s];
  }
  return version == std::numeric_limits<int64_t>::max() ? 0 : version;
}

absl::Status InProcessPsClient::Push(const std::vector<DenseTensor>& tensors, int64_t step,
                                     int worker) {
  const int64_t sequence = NextPushSequence();
  const std::vector<Chunk> chunks = PlanDense(tensors, num_shards(), options_.max_chunk_bytes);
  std::vector<bool> shard_ok(num_shards(), true);
  absl::Status first;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& chunk = chunks[i];
    int64_t from = step;
    if (step == kPerShard) {
      absl::MutexLock lock(&mu_);
      from = pulled_[chunk.shard];
    }
    const v1::PushRequest request =
        DensePushRequest(chunk, Sender(worker), from, sequence, static_cast<int>(i));
    bytes_pushed_.fetch_add(ChunkBytes(chunk));
    v1::PushResponse response;
    absl::Status st = shards_[chunk.shard]->Push(request, &response);
    // As the gRPC client: a shard that already holds this step's gradient counts it.
    if (step == kPerShard && absl::IsAlreadyExists(st)) continue;
    if (!st.ok()) {
      shard_ok[chunk.shard] = false;
      if (first.ok()) first = ShardError(chunk.shard, "push", st);
    }
  }
  if (step == kPerShard) {
    absl::MutexLock lock(&mu_);
    for (const Chunk& c : chunks) {
      if (shard_ok[c.shard]) next_[c.shard] = pulled_[c.shard] + 1;
    }
  }
  return first;
}

void InProcessPsClient::ResetProgress() {
  absl::MutexLock lock(&mu_);
  std::fill(next_.begin(), next_.end(), 0);
  std::fill(pulled_.begin(), pulled_.end(), 0);
}

absl::StatusOr<int64_t> InProcessPsClient::PullSparse(const std::string& table,
                                                      const std::vector<int64_t>& keys,
                                                      int width, float* rows, int worker) {
  if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
  std::vector<float> unused;
  const std::vector<int64_t> unique = SumDuplicateKeys(keys, 0, nullptr, &unused);
  std::vector<float> unique_rows(unique.size() * static_cast<size_t>(width));
  int64_t version = std::numeric_limits<int64_t>::max();
  for (const SparseChunk& chunk :
       PlanSparse(unique, num_shards(), options_.max_sparse_keys_per_request)) {
    const v1::PullRequest request = SparsePullRequest(table, chunk, unique, Sender(worker));
    v1::PullResponse response;
    if (absl::Status st = shards_[chunk.shard]->Pull(request, Deadline(), &response); !st.ok()) {
      return ShardError(chunk.shard, "sparse pull", st);
    }
    const char* src = response.sparse(0).values().data();
    for (size_t j = 0; j < chunk.positions.size(); ++j) {
      std::memcpy(unique_rows.data() + chunk.positions[j] * width, src + j * width * 4, width * 4);
    }
    bytes_pulled_.fetch_add(chunk.positions.size() * width * 4);
    version = std::min(version, response.sparse(0).version());
  }
  absl::flat_hash_map<int64_t, size_t> where;
  for (size_t k = 0; k < unique.size(); ++k) where.emplace(unique[k], k);
  for (size_t i = 0; i < keys.size(); ++i) {
    std::memcpy(rows + i * width, unique_rows.data() + where[keys[i]] * width, width * 4);
  }
  return version == std::numeric_limits<int64_t>::max() ? 0 : version;
}

absl::Status InProcessPsClient::PushSparse(const std::string& table,
                                           const std::vector<int64_t>& keys, int width,
                                           const float* grads, int64_t step, int worker) {
  if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
  std::vector<float> summed;
  const std::vector<int64_t> unique = SumDuplicateKeys(keys, width, grads, &summed);
  const std::vector<SparseChunk> chunks = PlanSparse(
      unique, num_shards(), options_.max_sparse_keys_per_request, /*every_shard=*/true);
  const int64_t sequence = NextPushSequence();
  for (size_t i = 0; i < chunks.size(); ++i) {
    const v1::PushRequest request = SparsePushRequest(table, chunks[i], unique, summed, width,
                                                      Sender(worker), step, sequence,
                                                      static_cast<int>(i));
    bytes_pushed_.fetch_add(request.sparse(0).values().size());
    const SparseChunk& chunk = chunks[i];
    v1::PushResponse response;
    if (absl::Status st = shards_[chunk.shard]->Push(request, &response); !st.ok()) {
      return ShardError(chunk.shard, "sparse push", st);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::GetStatusResponse>> InProcessPsClient::GetStatus() {
  std::vector<v1::GetStatusResponse> out(num_shards());
  for (int s = 0; s < num_shards(); ++s) shards_[s]->GetStatus(&out[s]);
  return out;
}

}  // namespace testing
}  // namespace ps
