// optimizer_benchmark: the server-side update rules on one large range, reported as
// memory traffic beside this machine's copy bandwidth (the bound they are held to).
//
//   bazel run -c opt //server/table:optimizer_benchmark -- --elements=16777216
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "server/table/optimizer.h"

ABSL_FLAG(int64_t, elements, 16 << 20, "Elements per range (float32).");
ABSL_FLAG(int, repeats, 7, "Timed repeats; the median is reported.");

namespace {

template <typename F>
double MedianSeconds(F body, int repeats) {
  body();  // warm: page in every buffer
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const absl::Time start = absl::Now();
    body();
    t.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t n = absl::GetFlag(FLAGS_elements);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  std::vector<float> p(n, 0.5f), g(n, 0.001f), a(n, 0.0f), b(n, 0.1f), c(n);

  // The bound: y += a * x over the same sizes (read x and y, write y), the streaming loop
  // that moves memory as fast as one core can, measured here in the same run.
  const double axpy_s = MedianSeconds(
      [&] {
        float* __restrict y = c.data();
        const float* __restrict x = g.data();
        for (int64_t i = 0; i < n; ++i) y[i] += 0.5f * x[i];
      },
      repeats);
  const double bound_gbs = 3.0 * n * 4 / axpy_s / 1e9;
  const double copy_s = MedianSeconds([&] { std::memcpy(c.data(), p.data(), n * 4); }, repeats);
  std::printf("%-22s %10s %12s %14s %16s\n", "rule", "ns/elem", "GB/s moved", "of y+=a*x",
              "finite check ns");
  std::printf("%-22s %10.3f %12.1f %13.0f%%\n", "y += a*x (the bound)", axpy_s / n * 1e9,
              bound_gbs, 100.0);
  std::printf("%-22s %10.3f %12.1f %13.0f%%\n", "memcpy", copy_s / n * 1e9,
              2.0 * n * 4 / copy_s / 1e9, 100.0 * (2.0 * n * 4 / copy_s / 1e9) / bound_gbs);

  struct Case {
    const char* name;
    ps::v1::OptimizerSpec spec;
  };
  std::vector<Case> cases;
  cases.push_back({"sgd", ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::SGD, 0.01f)});
  ps::v1::OptimizerSpec momentum = ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::SGD, 0.01f);
  momentum.set_momentum(0.9f);
  cases.push_back({"sgd momentum", momentum});
  cases.push_back({"adagrad", ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAGRAD, 0.01f)});
  cases.push_back({"adam", ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAM, 0.001f)});
  cases.push_back({"adamw", ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAMW, 0.001f)});
  cases.push_back({"ftrl", ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::FTRL, 0.1f)});
  for (const Case& k : cases) {
    absl::StatusOr<std::unique_ptr<ps::Optimizer>> opt = ps::Optimizer::Create(k.spec);
    if (!opt.ok()) {
      std::fprintf(stderr, "%s: %s\n", k.name, std::string(opt.status().message()).c_str());
      return 1;
    }
    float* slots[2] = {a.data(), b.data()};
    (*opt)->InitSlots(slots, n);
    int64_t step = 1;
    const double s = MedianSeconds([&] { (*opt)->Apply(p.data(), g.data(), n, slots, step++); },
                                   repeats);
    // Reads p, g and every slot; writes p and every slot.
    const int streams = 2 + 2 * (*opt)->num_slots() + 1;
    const double gbs = static_cast<double>(streams) * n * 4 / s / 1e9;
    // The numeric-safety check a push pays before its update (Optimizer::FirstNonFinite).
    const double check_s = MedianSeconds(
        [&] {
          if ((*opt)->FirstNonFinite(p.data(), g.data(), n, slots, step).has_value()) {
            std::fprintf(stderr, "%s: unexpected non-finite update\n", k.name);
          }
        },
        repeats);
    std::printf("%-22s %10.3f %12.1f %13.0f%% %16.3f\n", k.name, s / n * 1e9, gbs,
                100.0 * gbs / bound_gbs, check_s / n * 1e9);
  }
  return 0;
}
