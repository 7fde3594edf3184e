// The gRPC implementation of PsClient.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "common/placement.h"
#include "common/status_util.h"
#include "proto/v1/ps.grpc.pb.h"
#include "worker/ps_client.h"

namespace ps {
namespace {

// One slice of one tensor in one chunk request: elements [begin, begin + length).
struct Piece {
  const DenseTensor* tensor;
  int64_t begin;
  int64_t length;
};

// A request to one shard with the pieces it carries, in order.
struct Chunk {
  int shard;
  std::vector<Piece> pieces;
};

// One request to one shard and what came back.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext ctx;
  Request request;
  Response response;
  grpc::Status status;
};

// Sends calls[i] to shard shards[i], all at once (gRPC's callback API), and returns when
// every one has finished. Calls wait for a shard that is down or restarting, up to
// `timeout`, instead of failing at once.
template <typename Request, typename Response, typename Method>
void SendAll(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
             std::vector<std::unique_ptr<v1::ParameterServer::Stub>>& stubs,
             absl::Duration timeout, Method method) {
  absl::BlockingCounter done(static_cast<int>(calls.size()));
  for (size_t i = 0; i < calls.size(); ++i) {
    Call<Request, Response>& c = calls[i];
    c.ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    c.ctx.set_wait_for_ready(true);
    method(stubs[shards[i]]->async(), &c.ctx, &c.request, &c.response,
           [&c, &done](grpc::Status s) {
             c.status = std::move(s);
             done.DecrementCount();
           });
  }
  done.Wait();
}

constexpr auto kPull = [](auto* async, grpc::ClientContext* ctx, const v1::PullRequest* req,
                          v1::PullResponse* resp, std::function<void(grpc::Status)> cb) {
  async->Pull(ctx, req, resp, std::move(cb));
};
constexpr auto kPush = [](auto* async, grpc::ClientContext* ctx, const v1::PushRequest* req,
                          v1::PushResponse* resp, std::function<void(grpc::Status)> cb) {
  async->Push(ctx, req, resp, std::move(cb));
};

class GrpcPsClient final : public PsClient {
 public:
  GrpcPsClient(const std::vector<std::string>& servers, const ClientOptions& options)
      : servers_(servers), options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
    args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
    next_.assign(servers_.size(), 0);
    pulled_.assign(servers_.size(), 0);
    for (const std::string& address : servers_) {
      stubs_.push_back(v1::ParameterServer::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
    }
  }

  int num_shards() const override { return static_cast<int>(servers_.size()); }

  absl::Status CreateTable(const v1::TableSpec& spec) override {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    return ForEachShard<v1::CreateTableResponse>(
        [&](int s, grpc::ClientContext* ctx, v1::CreateTableResponse* resp) {
          return stubs_[s]->CreateTable(ctx, request, resp);
        },
        /*wait_for_ready=*/true);
  }

  absl::Status RegisterWorker(int worker, const std::string& host, const std::string& device,
                              int64_t clock) override {
    v1::RegisterWorkerRequest request;
    request.set_worker_index(worker);
    request.set_clock(clock);
    request.set_host(host);
    request.set_device(device);
    return ForEachShard<v1::RegisterWorkerResponse>(
        [&](int s, grpc::ClientContext* ctx, v1::RegisterWorkerResponse* resp) {
          return stubs_[s]->RegisterWorker(ctx, request, resp);
        },
        /*wait_for_ready=*/true);
  }

  absl::Status Heartbeat(int worker, const v1::WorkerStats& stats) override {
    v1::HeartbeatRequest request;
    request.set_worker_index(worker);
    *request.mutable_stats() = stats;
    return ForEachShard<v1::HeartbeatResponse>(
        [&](int s, grpc::ClientContext* ctx, v1::HeartbeatResponse* resp) {
          return stubs_[s]->Heartbeat(ctx, request, resp);
        },
        /*wait_for_ready=*/false);
  }

  absl::Status LeaveWorker(int worker) override {
    v1::LeaveWorkerRequest request;
    request.set_worker_index(worker);
    return ForEachShard<v1::LeaveWorkerResponse>(
        [&](int s, grpc::ClientContext* ctx, v1::LeaveWorkerResponse* resp) {
          return stubs_[s]->LeaveWorker(ctx, request, resp);
        },
        /*wait_for_ready=*/false);
  }

  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override {
    std::vector<v1::GetStatusResponse> out(servers_.size());
    v1::GetStatusRequest request;
    absl::Status s = ForEachShard<v1::GetStatusResponse>(
        [&](int shard, grpc::ClientContext* ctx, v1::GetStatusResponse* resp) {
          grpc::Status st = stubs_[shard]->GetStatus(ctx, request, resp);
          out[shard] = *resp;
          return st;
        },
        /*wait_for_ready=*/false);
    if (!s.ok()) return s;
    return out;
  }

  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t min_version,
                               int worker) override {
    const std::vector<Chunk> chunks = Plan(tensors);
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_min_version(min_version == kPerShard ? NextVersion(chunks[i].shard)
                                                         : min_version);
      c.request.set_clock(clock());
      for (const Piece& p : chunks[i].pieces) {
        v1::DenseSlice* d = c.request.add_dense();
        d->set_table(p.tensor->table);
        d->set_offset(p.begin);
        d->set_length(p.length);
      }
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, options_.rpc_timeout, kPull);
    int64_t version = std::numeric_limits<int64_t>::max();
    std::vector<int64_t> shard_version(servers_.size(), std::numeric_limits<int64_t>::max());
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "pull", calls[i].status);
      const v1::PullResponse& r = calls[i].response;
      if (r.dense_size() != static_cast<int>(chunks[i].pieces.size())) {
        return absl::InternalError(absl::StrCat("shard ", chunks[i].shard, " answered ",
                                                r.dense_size(), " slices for ",
                                                chunks[i].pieces.size()));
      }
      for (int j = 0; j < r.dense_size(); ++j) {
        const Piece& p = chunks[i].pieces[j];
        const std::string& values = r.dense(j).values();
        if (static_cast<int64_t>(values.size()) != p.length * 4) {
          return absl::InternalError(absl::StrCat("shard ", chunks[i].shard, " sent ",
                                                  values.size(), " bytes for table '",
                                                  p.tensor->table, "' slice of ", p.length));
        }
        std::memcpy(p.tensor->data + p.begin, values.data(), values.size());
        bytes_pulled_.fetch_add(values.size(), std::memory_order_relaxed);
        version = std::min(version, r.dense(j).version());
        shard_version[chunks[i].shard] = std::min(shard_version[chunks[i].shard], r.dense(j).version());
      }
    }
    {
      absl::MutexLock lock(&progress_mu_);
      for (size_t s = 0; s < shard_version.size(); ++s) {
        if (shard_version[s] != std::numeric_limits<int64_t>::max()) pulled_[s] = shard_version[s];
      }
    }
    return chunks.empty() ? 0 : version;
  }

  void ResetProgress() override {
    absl::MutexLock lock(&progress_mu_);
    std::fill(next_.begin(), next_.end(), 0);
    std::fill(pulled_.begin(), pulled_.end(), 0);
  }

  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) override {
    const std::vector<Chunk> chunks = Plan(tensors);
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_step(step == kPerShard ? PulledVersion(chunks[i].shard) : step);
      c.request.set_clock(clock());
      for (const Piece& p : chunks[i].pieces) {
        v1::DenseSlice* d = c.request.add_dense();
        d->set_table(p.tensor->table);
        d->set_offset(p.begin);
        d->set_length(p.length);
        d->set_values(reinterpret_cast<const char*>(p.tensor->data + p.begin), p.length * 4);
        bytes_pushed_.fetch_add(p.length * 4, std::memory_order_relaxed);
      }
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, options_.rpc_timeout, kPush);
    absl::Status first_error;
    std::vector<bool> shard_ok(servers_.size(), true);
    for (size_t i = 0; i < chunks.size(); ++i) {
      // Per-shard pushes are sync steps: a shard that already holds this worker's gradient
      // for the step (a retry after a lost reply or a rejoin) counts it as delivered.
      if (step == kPerShard && calls[i].status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        continue;
      }
      if (!calls[i].status.ok()) {
        shard_ok[chunks[i].shard] = false;
        if (first_error.ok()) first_error = ShardError(chunks[i].shard, "push", calls[i].status);
      }
    }
    if (step == kPerShard) {
      absl::MutexLock lock(&progress_mu_);
      for (const Chunk& c : chunks) {
        if (shard_ok[c.shard]) next_[c.shard] = pulled_[c.shard] + 1;
      }
    }
    return first_error;
  }

  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    // Each distinct key is asked for once; its row is then copied to every position.
    std::vector<float> unused;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, 0, nullptr, &unused);
    std::vector<SparseChunk> chunks = PlanSparse(unique);
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_clock(clock());
      v1::SparseRows* r = c.request.add_sparse();
      r->set_table(table);
      for (size_t k : chunks[i].positions) r->add_keys(unique[k]);
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, options_.rpc_timeout, kPull);
    std::vector<float> unique_rows(unique.size() * static_cast<size_t>(width));
    int64_t version = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse pull", calls[i].status);
      const v1::PullResponse& resp = calls[i].response;
      const size_t want = chunks[i].positions.size() * width * 4;
      if (resp.sparse_size() != 1 || resp.sparse(0).values().size() != want) {
        return absl::InternalError(absl::StrCat("shard ", chunks[i].shard, " sent ",
                                                resp.sparse_size() ? resp.sparse(0).values().size() : 0,
                                                " bytes of table '", table, "' rows, want ", want));
      }
      const char* src = resp.sparse(0).values().data();
      for (size_t j = 0; j < chunks[i].positions.size(); ++j) {
        std::memcpy(unique_rows.data() + chunks[i].positions[j] * width, src + j * width * 4,
                    width * 4);
      }
      bytes_pulled_.fetch_add(want, std::memory_order_relaxed);
      version = std::min(version, resp.sparse(0).version());
    }
    absl::flat_hash_map<int64_t, size_t> where;
    for (size_t k = 0; k < unique.size(); ++k) where.emplace(unique[k], k);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::memcpy(rows + i * width, unique_rows.data() + where[keys[i]] * width, width * 4);
    }
    return chunks.empty() ? 0 : version;
  }

  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    std::vector<float> summed;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, width, grads, &summed);
    // Every shard hears from every push, even without keys for it, so SSP clocks advance
    // on all shards.
    std::vector<SparseChunk> chunks = PlanSparse(unique, /*every_shard=*/true);
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_step(step);
      c.request.set_clock(clock());
      v1::SparseRows* r = c.request.add_sparse();
      r->set_table(table);
      std::string* values = r->mutable_values();
      values->resize(chunks[i].positions.size() * width * 4);
      for (size_t j = 0; j < chunks[i].positions.size(); ++j) {
        const size_t k = chunks[i].positions[j];
        r->add_keys(unique[k]);
        std::memcpy(values->data() + j * width * 4, summed.data() + k * width, width * 4);
      }
      bytes_pushed_.fetch_add(values->size(), std::memory_order_relaxed);
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, options_.rpc_timeout, kPush);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse push", calls[i].status);
    }
    return absl::OkStatus();
  }

 private:
  // Positions (into a distinct-key list) that one request to `shard` carries.
  struct SparseChunk {
    int shard;
    std::vector<size_t> positions;
  };

  std::vector<SparseChunk> PlanSparse(const std::vector<int64_t>& unique,
                                      bool every_shard = false) const {
    std::vector<std::vector<SparseChunk>> per_shard(servers_.size());
    if (every_shard) {
      for (int s = 0; s < num_shards(); ++s) per_shard[s].push_back({s, {}});
    }
    const size_t max_keys = static_cast<size_t>(std::max<int64_t>(1, options_.max_sparse_keys_per_request));
    for (size_t k = 0; k < unique.size(); ++k) {
      const int shard = ShardForKey(unique[k], num_shards());
      std::vector<SparseChunk>& cs = per_shard[shard];
      if (cs.empty() || cs.back().positions.size() >= max_keys) cs.push_back({shard, {}});
      cs.back().positions.push_back(k);
    }
    std::vector<SparseChunk> out;
    for (auto& cs : per_shard)
      for (auto& c : cs) out.push_back(std::move(c));
    return out;
  }

  // Cuts tensors into per-shard chunk requests of at most max_chunk_bytes each.
  std::vector<Chunk> Plan(const std::vector<DenseTensor>& tensors) const {
    const int64_t max_elems = std::max<int64_t>(1, options_.max_chunk_bytes / 4);
    std::vector<std::vector<Chunk>> per_shard(servers_.size());
    std::vector<int64_t> fill(servers_.size(), 0);
    for (const DenseTensor& t : tensors) {
      for (const ShardRange& r : PlaceDense(t.table, t.num_elements, num_shards())) {
        for (int64_t b = r.begin; b < r.end;) {
          std::vector<Chunk>& cs = per_shard[r.shard];
          // A slice that fits in one chunk is never split (in async mode every piece is
          // one update), so it starts a new chunk when the current one lacks room.
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
    for (auto& cs : per_shard)
      for (auto& c : cs) out.push_back(std::move(c));
    return out;
  }

  absl::Status ShardError(int shard, const char* what, const grpc::Status& s) const {
    absl::Status st = FromGrpcStatus(s);
    return absl::Status(st.code(), absl::StrCat(what, " to shard ", shard, " (", servers_[shard],
                                                "): ", st.message()));
  }

  // Runs one unary call per shard, one after another: these control calls are rare.
  template <typename Response>
  absl::Status ForEachShard(
      const std::function<grpc::Status(int, grpc::ClientContext*, Response*)>& call,
      bool wait_for_ready) {
    for (int s = 0; s < num_shards(); ++s) {
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(wait_for_ready);
      ctx.set_deadline(absl::ToChronoTime(
          absl::Now() + (wait_for_ready ? options_.connect_timeout : absl::Seconds(10))));
      Response response;
      grpc::Status st = call(s, &ctx, &response);
      if (!st.ok()) return ShardError(s, "call", st);
    }
    return absl::OkStatus();
  }

  int64_t NextVersion(int shard) const {
    absl::MutexLock lock(&progress_mu_);
    return next_[shard];
  }
  int64_t PulledVersion(int shard) const {
    absl::MutexLock lock(&progress_mu_);
    return pulled_[shard];
  }

  const std::vector<std::string> servers_;
  const ClientOptions options_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
  mutable absl::Mutex progress_mu_;
  std::vector<int64_t> next_ ABSL_GUARDED_BY(progress_mu_);    // per shard, for kPerShard pulls
  std::vector<int64_t> pulled_ ABSL_GUARDED_BY(progress_mu_);  // per shard, for kPerShard pushes
};

}  // namespace

std::vector<int64_t> SumDuplicateKeys(const std::vector<int64_t>& keys, int width,
                                      const float* grads, std::vector<float>* summed) {
  absl::flat_hash_map<int64_t, size_t> index;
  index.reserve(keys.size());
  std::vector<int64_t> unique;
  summed->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] = index.emplace(keys[i], unique.size());
    if (inserted) {
      unique.push_back(keys[i]);
      if (width > 0) summed->insert(summed->end(), grads + i * width, grads + (i + 1) * width);
    } else if (width > 0) {
      float* dst = summed->data() + it->second * width;
      for (int c = 0; c < width; ++c) dst[c] += grads[i * width + c];
    }
  }
  return unique;
}

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options) {
  return std::make_unique<GrpcPsClient>(servers, options);
}

}  // namespace ps
