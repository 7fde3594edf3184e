// pushpull_benchmark: push and pull throughput of one dense table through PsClient,
// one request in flight, as ps-lite's and gRPC's figures in docs/benchmarks.md were
// measured. Start the shards first (tests/bench.sh does it all).
//
//   pushpull_benchmark --servers=127.0.0.1:5000 --sizes=4096,65536,1048576,16777216
#include <cstdio>
#include <string>
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
};

template <typename F>
Rate Measure(F op, int64_t bytes, double seconds) {
  std::vector<double> lat;
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  const absl::Time start = absl::Now();
  while (absl::Now() < end || lat.size() < 5) {
    const absl::Time t0 = absl::Now();
    if (absl::Status s = op(); !s.ok()) {
      std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
    lat.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
  }
  const double total = absl::ToDoubleSeconds(absl::Now() - start);
  std::sort(lat.begin(), lat.end());
  return {static_cast<double>(bytes) * lat.size() / total / 1e9, lat[lat.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  ps::KeepFreedMemoryForReuse();
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> servers = absl::StrSplit(absl::GetFlag(FLAGS_servers), ',');
  ps::ClientOptions options;
  options.same_host = absl::GetFlag(FLAGS_same_host);
  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers, options);
  const int worker = 0;
  if (absl::Status s = client->RegisterWorker(worker, "pushpull_benchmark", "cpu"); !s.ok()) {
    std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("tensor bytes: %s\n", client->same_host_shards() == client->num_shards()
                                         ? "same-host windows (cross-memory attach)"
                                         : "gRPC messages");
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::printf("%-10s %12s %12s %12s %12s %14s\n", "payload", "push GB/s", "pull GB/s",
              "push+pull", "push p50 us", "pull p50 us");
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
    *spec.mutable_optimizer() = OptimizerOf(
        absl::GetFlag(FLAGS_optimizer) == "adam" ? ps::v1::OptimizerSpec::ADAM
                                                 : ps::v1::OptimizerSpec::SGD,
        1e-6f);
    if (absl::Status s = client->CreateTable(spec); !s.ok()) {
      std::fprintf(stderr, "pushpull_benchmark: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::vector<float> data(n, 0.001f);
    const std::vector<ps::DenseTensor> t = {{spec.name(), n, data.data()}};
    const Rate push = Measure([&] { return client->Push(t, 0, worker); }, bytes, seconds);
    const Rate pull = Measure([&] { return client->Pull(t, 0, worker).status(); }, bytes, seconds);
    const Rate both = Measure(
        [&]() -> absl::Status {
          if (absl::Status s = client->Push(t, 0, worker); !s.ok()) return s;
          return client->Pull(t, 0, worker).status();
        },
        2 * bytes, seconds);
    std::printf("%-10lld %12.3f %12.3f %12.3f %12.0f %14.0f\n", static_cast<long long>(bytes),
                push.gbps, pull.gbps, both.gbps, push.p50_us, pull.p50_us);
  }
  client->LeaveWorker(worker).IgnoreError();
  return 0;
}
