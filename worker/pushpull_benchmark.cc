// pushpull_benchmark: push, pull and push+pull throughput of one dense table through
// PsClient, with --in_flight calls at once (threads sharing the client), as ps-lite's and
// gRPC's figures in docs/benchmarks.md were measured. Start the shards first
// (tests/bench.sh does it all, and runs several of these at once for NxN figures).
//
//   pushpull_benchmark --servers=127.0.0.1:5000 --sizes=4096,65536,1048576,16777216
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/malloc_tuning.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

ABSL_FLAG(std::string, servers, "127.0.0.1:50051", "Shards, in order.");
ABSL_FLAG(std::string, sizes, "4096,65536,1048576,16777216", "Payload bytes per push/pull.");
ABSL_FLAG(double, seconds, 2.0, "Time per measurement.");
ABSL_FLAG(std::string, optimizer, "sgd", "sgd (the server adds the values) or adam.");
ABSL_FLAG(int64_t, max_chunk_bytes, 0, "ClientOptions.max_chunk_bytes (0: its default).");
ABSL_FLAG(int, channels_per_shard, 2, "ClientOptions.channels_per_shard: connections per shard.");
ABSL_FLAG(std::string, wire_format, "float32",
          "ClientOptions.wire_formats: float32, bf16 or fp16.");
ABSL_FLAG(int, in_flight, 1, "Calls in flight at once (each on its own thread).");
ABSL_FLAG(int, worker_index, 0, "The worker index to register as (one per process).");
ABSL_FLAG(std::string, ops, "push,pull,pushpull", "What to measure, in order.");
ABSL_FLAG(bool, table_format, true,
          "A table for people; false: one line per figure (size op GB/s p50 p99) for scripts.");
ABSL_FLAG(bool, same_host, true,
          "Register as worker 0 and use the servers' same-host windows when offered; false: "
          "tensor bytes over gRPC.");

namespace {

// The servers fill every hyper-parameter left out with PyTorch's default for the kind.
ps::v1::OptimizerSpec OptimizerOf(ps::v1::OptimizerSpec::Kind kind, float learning_rate) {
  ps::v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return spec;
}

struct Rate {
  double gbps = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Runs op(t) on `threads` threads (t = 0, 1, ...) at once for `seconds` (each at least 5 times);
// GB/s of `bytes` per op over the wall time, and the latency percentiles of all calls.
template <typename F>
Rate Measure(F op, int64_t bytes, double seconds, int threads) {
  std::vector<std::vector<double>> lat(threads);
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      while (absl::Now() < end || lat[t].size() < 5) {
        const absl::Time t0 = absl::Now();
        if (absl::Status s = op(t); !s.ok()) {
          std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
          std::exit(1);
        }
        lat[t].push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
      }
    });
  }
  for (std::thread& t : running) t.join();
  const double total = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  return {static_cast<double>(bytes) * all.size() / total / 1e9, all[all.size() / 2],
          all[all.size() * 99 / 100]};
}

}  // namespace

int main(int argc, char** argv) {
  ps::KeepFreedMemoryForReuse();
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> servers = absl::StrSplit(absl::GetFlag(FLAGS_servers), ',');
  ps::ClientOptions options;
  options.same_host = absl::GetFlag(FLAGS_same_host);
  if (absl::GetFlag(FLAGS_max_chunk_bytes) > 0) {
    options.max_chunk_bytes = absl::GetFlag(FLAGS_max_chunk_bytes);
  }
  options.channels_per_shard = absl::GetFlag(FLAGS_channels_per_shard);
  absl::StatusOr<ps::WireFormats> formats = ps::ParseWireFormats(absl::GetFlag(FLAGS_wire_format));
  if (!formats.ok()) {
    std::fprintf(stderr, "pushpull_benchmark: %s\n",
                 std::string(formats.status().message()).c_str());
    return 2;
  }
  options.wire_formats = *formats;
  const bool table = absl::GetFlag(FLAGS_table_format);
  const int threads = std::max(1, absl::GetFlag(FLAGS_in_flight));
  // A client per thread, each its own worker (index * threads + thread): one worker's
  // pushes go one after another (ps_client.h), so calls in flight at once need workers.
  std::vector<std::unique_ptr<ps::PsClient>> clients;
  std::vector<int> workers;
  for (int t = 0; t < threads; ++t) {
    clients.push_back(ps::NewGrpcPsClient(servers, options));
    workers.push_back(absl::GetFlag(FLAGS_worker_index) * threads + t);
    if (absl::Status s = clients[t]->RegisterWorker(workers[t], "pushpull_benchmark", "cpu");
        !s.ok()) {
      std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  ps::PsClient* client = clients[0].get();
  if (table) {
    std::printf("tensor bytes: %s; %d in flight\n",
                client->same_host_shards() == client->num_shards()
                    ? "same-host windows (cross-memory attach)"
                    : "gRPC messages",
                threads);
    std::printf("%-10s %-9s %10s %10s %10s\n", "payload", "op", "GB/s", "p50 us", "p99 us");
  }
  const double seconds = absl::GetFlag(FLAGS_seconds);
  for (absl::string_view size_text : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    int64_t bytes = 0;
    if (!absl::SimpleAtoi(size_text, &bytes) || bytes < 4) {
      std::fprintf(stderr, "pushpull_benchmark: bad size '%s'\n", std::string(size_text).c_str());
      return 2;
    }
    const int64_t n = bytes / 4;
    ps::v1::TableSpec spec;
    spec.set_name(absl::StrCat("bench_", bytes));
    spec.set_kind(ps::v1::DENSE);
    spec.add_shape(n);
    spec.set_consistency(ps::v1::ASYNC);
    *spec.mutable_optimizer() =
        OptimizerOf(absl::GetFlag(FLAGS_optimizer) == "adam" ? ps::v1::OptimizerSpec::ADAM
                                                             : ps::v1::OptimizerSpec::SGD,
                    1e-6f);
    if (absl::Status s = client->CreateTable(spec); !s.ok()) {
      std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    // Each thread its own tensors (a push reads them while it is in flight).
    std::vector<std::vector<float>> grads(threads, std::vector<float>(n, 0.001f));
    std::vector<std::vector<float>> params(threads, std::vector<float>(n));
    auto tensors = [&](std::vector<std::vector<float>>& of, int t) {
      return std::vector<ps::DenseTensor>{{spec.name(), n, of[t].data()}};
    };
    for (absl::string_view op : absl::StrSplit(absl::GetFlag(FLAGS_ops), ',')) {
      Rate r;
      if (op == "push") {
        r = Measure([&](int t) { return clients[t]->Push(tensors(grads, t), 0, workers[t]); },
                    bytes, seconds, threads);
      } else if (op == "pull") {
        r = Measure(
            [&](int t) { return clients[t]->Pull(tensors(params, t), 0, workers[t]).status(); },
            bytes, seconds, threads);
      } else if (op == "pushpull") {
        // One push-pull call per shard (the server applies the push, then answers the pull
        // of the same slices); async tables: the newest values.
        r = Measure(
            [&](int t) -> absl::Status {
              ps::PsClient::PushPullResult res =
                  clients[t]->PushPull(tensors(grads, t), tensors(params, t), workers[t], 0);
              if (!res.push.ok()) return res.push;
              return res.pull.status();
            },
            2 * bytes, seconds, threads);
      } else {
        std::fprintf(stderr, "pushpull_benchmark: bad op '%s'\n", std::string(op).c_str());
        return 2;
      }
      std::printf(table ? "%-10lld %-9s %10.3f %10.0f %10.0f\n" : "%lld %s %.4f %.1f %.1f\n",
                  static_cast<long long>(bytes), std::string(op).c_str(), r.gbps, r.p50_us,
                  r.p99_us);
      std::fflush(stdout);
    }
  }
  for (int t = 0; t < threads; ++t) clients[t]->LeaveWorker(workers[t]).IgnoreError();
  return 0;
}
