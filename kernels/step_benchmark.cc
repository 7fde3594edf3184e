// Times one forward+backward step of the 784-512-256-10 MLP (ReLU, softmax
// cross-entropy) on a compute backend, and puts the GEMM rates beside it: the step's own
// GEMM shapes alone on the same backend (the GEMM share of the step), the same shapes on
// one CPU core, and a square 1024 SGEMM on one CPU core (the machine's reference rate).
//
//   bazel run -c opt //kernels:step_benchmark -- --device=cpu --batch=64 --threads=1
//   bazel run -c opt //kernels:step_benchmark -- --device=cuda --batch=256
//
// Each time is the median (and the best) over --repeats runs of --iters iterations, after
// --warmup; --profile adds a per-operation breakdown of the step.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"

ABSL_FLAG(std::string, device, "cpu", "Backend: cpu, cuda or auto.");
ABSL_FLAG(int, batch, 64, "Rows per step.");
ABSL_FLAG(int, iters, 200, "Timed iterations per repeat.");
ABSL_FLAG(int, repeats, 5, "Repeats of --iters; the median is reported.");
ABSL_FLAG(int, warmup, 20, "Untimed iterations before each measurement.");
ABSL_FLAG(int, threads, 1, "BLAS threads of the CPU backend.");
ABSL_FLAG(bool, tf32, false, "Allow TF32 tensor cores for CUDA GEMMs.");
ABSL_FLAG(bool, reference, true, "Also measure single-core CPU SGEMM rates.");
ABSL_FLAG(bool, profile, false, "Also time each operation of the step.");

namespace ps {
namespace kernels {
namespace {

#define BENCH_RETURN_IF_ERROR(expr)                \
  do {                                             \
    absl::Status bench_status_ = (expr);           \
    if (!bench_status_.ok()) return bench_status_; \
  } while (0)

// One GEMM of the step: C (m x n) = op(A) op(B), op(A) m x k.
struct GemmShape {
  const char* name;
  bool trans_a, trans_b;
  int m, n, k;
  double flops() const { return 2.0 * m * n * k; }
};

// The step's GEMMs at `batch`, with weights stored [in, out] (y = x W).
std::vector<GemmShape> StepGemms(int batch) {
  return {
      {"fwd  x  W1", false, false, batch, 512, 784},
      {"fwd  h1 W2", false, false, batch, 256, 512},
      {"fwd  h2 W3", false, false, batch, 10, 256},
      {"dW3 = h2^T dz3", true, false, 256, 10, batch},
      {"dh2 = dz3 W3^T", false, true, batch, 256, 10},
      {"dW2 = h1^T dz2", true, false, 512, 256, batch},
      {"dh1 = dz2 W2^T", false, true, batch, 512, 256},
      {"dW1 = x^T dz1", true, false, 784, 512, batch},
  };
}

// Seconds per call: the median and the best over `repeats` runs of `iters` calls. The
// device is synchronised before the clock stops. On a shared machine the best run is the
// one least disturbed by other processes.
struct Timing {
  double median = NAN;
  double best = NAN;
  double cpu_median = NAN;  // Process CPU time (all threads): immune to time-slicing.
};

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

absl::StatusOr<Timing> TimePerCall(const std::function<absl::Status()>& fn, ComputeBackend* backend,
                                   int iters, int repeats, int warmup) {
  for (int i = 0; i < warmup; ++i) BENCH_RETURN_IF_ERROR(fn());
  BENCH_RETURN_IF_ERROR(backend->Synchronize());
  std::vector<double> runs, cpu_runs;
  for (int r = 0; r < repeats; ++r) {
    const double cpu_start = ProcessCpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) BENCH_RETURN_IF_ERROR(fn());
    BENCH_RETURN_IF_ERROR(backend->Synchronize());
    runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                   iters);
    cpu_runs.push_back((ProcessCpuSeconds() - cpu_start) / iters);
  }
  std::sort(runs.begin(), runs.end());
  std::sort(cpu_runs.begin(), cpu_runs.end());
  Timing t;
  t.median = runs[runs.size() / 2];
  t.best = runs.front();
  t.cpu_median = cpu_runs[cpu_runs.size() / 2];
  return t;
}

// Device buffers of the MLP and one step over them.
class Mlp {
 public:
  static absl::StatusOr<std::unique_ptr<Mlp>> Create(ComputeBackend* backend, int batch) {
    std::unique_ptr<Mlp> mlp(new Mlp(backend, batch));
    BENCH_RETURN_IF_ERROR(mlp->Init());
    return mlp;
  }

  // Seconds spent in each kind of operation, filled in by Step() when profiling.
  struct Profile {
    std::vector<std::pair<std::string, double>> seconds;
    void Add(const std::string& op, double s) {
      for (auto& entry : seconds) {
        if (entry.first == op) {
          entry.second += s;
          return;
        }
      }
      seconds.emplace_back(op, s);
    }
  };

  // Runs one forward+backward step. With `profile`, times every operation (waiting for
  // the device after each one, which adds a sync per operation on a GPU).
  absl::StatusOr<ComputeBackend::LossResult> Step(Profile* profile = nullptr) {
    ComputeBackend* b = backend_;
    const int n = batch_;
    auto op = [&](const std::string& label, const std::function<absl::Status()>& fn) {
      if (profile == nullptr) return fn();
      const auto start = std::chrono::steady_clock::now();
      absl::Status s = fn();
      if (s.ok()) s = b->Synchronize();
      profile->Add(label,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return s;
    };
    // Forward: h = relu(x W + b); logits = h2 W3 + b3.
    for (int l = 0; l < 3; ++l) {
      const float* in = l == 0 ? x_.data() : act_[l - 1].data();
      const int out = kSizes[l + 1];
      BENCH_RETURN_IF_ERROR(op(absl::StrCat("Gemm fwd ", l + 1), [&] {
        return b->Gemm(false, false, n, out, kSizes[l], 1.0f, in, w_[l].data(), 0.0f,
                       act_[l].data());
      }));
      BENCH_RETURN_IF_ERROR(
          op("AddBias", [&] { return b->AddBias(act_[l].data(), b_[l].data(), n, out); }));
      if (l < 2) {
        BENCH_RETURN_IF_ERROR(
            op("Relu", [&] { return b->Relu(act_[l].data(), static_cast<int64_t>(n) * out); }));
      }
    }
    absl::StatusOr<ComputeBackend::LossResult> loss;
    BENCH_RETURN_IF_ERROR(op("SoftmaxCrossEntropy", [&] {
      loss = b->SoftmaxCrossEntropy(act_[2].data(), labels_.data(), n, kSizes[3], 1.0f / n,
                                    dact_[2].data());
      return loss.status();
    }));
    // Backward: dW = h^T dz, db = colsum(dz), dh = dz W^T masked by the ReLU.
    for (int l = 2; l >= 0; --l) {
      const float* in = l == 0 ? x_.data() : act_[l - 1].data();
      const int out = kSizes[l + 1];
      BENCH_RETURN_IF_ERROR(op(absl::StrCat("Gemm dW", l + 1), [&] {
        return b->Gemm(true, false, kSizes[l], out, n, 1.0f, in, dact_[l].data(), 0.0f,
                       dw_[l].data());
      }));
      BENCH_RETURN_IF_ERROR(op("ColumnSum", [&] {
        return b->ColumnSum(dact_[l].data(), n, out, false, db_[l].data());
      }));
      if (l > 0) {
        BENCH_RETURN_IF_ERROR(op(absl::StrCat("Gemm dh", l), [&] {
          return b->Gemm(false, true, n, kSizes[l], out, 1.0f, dact_[l].data(), w_[l].data(), 0.0f,
                         dact_[l - 1].data());
        }));
        BENCH_RETURN_IF_ERROR(op("ReluBackward", [&] {
          return b->ReluBackward(act_[l - 1].data(), dact_[l - 1].data(),
                                 static_cast<int64_t>(n) * kSizes[l]);
        }));
      }
    }
    return loss;
  }

 private:
  static constexpr int kSizes[4] = {784, 512, 256, 10};

  Mlp(ComputeBackend* backend, int batch) : backend_(backend), batch_(batch) {}

  absl::StatusOr<FloatBuffer> Filled(int64_t n, float bound, std::mt19937* rng) {
    absl::StatusOr<FloatBuffer> buf = backend_->AllocFloat(n);
    if (!buf.ok()) return buf.status();
    std::uniform_real_distribution<float> dist(-bound, bound);
    std::vector<float> host(n);
    for (float& v : host) v = dist(*rng);
    BENCH_RETURN_IF_ERROR(backend_->CopyToDevice(host.data(), buf->data(), n));
    return buf;
  }

  absl::Status Init() {
    std::mt19937 rng(42);
    absl::StatusOr<FloatBuffer> x = Filled(static_cast<int64_t>(batch_) * kSizes[0], 1.0f, &rng);
    if (!x.ok()) return x.status();
    x_ = *std::move(x);
    for (int l = 0; l < 3; ++l) {
      const float bound = 1.0f / std::sqrt(static_cast<float>(kSizes[l]));
      const int64_t out = kSizes[l + 1];
      for (auto* spec : {&w_, &dw_}) {
        absl::StatusOr<FloatBuffer> buf = Filled(out * kSizes[l], bound, &rng);
        if (!buf.ok()) return buf.status();
        spec->push_back(*std::move(buf));
      }
      for (auto* spec : {&b_, &db_}) {
        absl::StatusOr<FloatBuffer> buf = Filled(out, bound, &rng);
        if (!buf.ok()) return buf.status();
        spec->push_back(*std::move(buf));
      }
      for (auto* spec : {&act_, &dact_}) {
        absl::StatusOr<FloatBuffer> buf = backend_->AllocFloat(batch_ * out);
        if (!buf.ok()) return buf.status();
        spec->push_back(*std::move(buf));
      }
    }
    std::vector<int32_t> labels(batch_);
    for (int32_t& l : labels) l = std::uniform_int_distribution<int>(0, kSizes[3] - 1)(rng);
    absl::StatusOr<IntBuffer> y = backend_->AllocInt(batch_);
    if (!y.ok()) return y.status();
    labels_ = *std::move(y);
    return backend_->CopyToDeviceInt(labels.data(), labels_.data(), batch_);
  }

  ComputeBackend* const backend_;
  const int batch_;
  FloatBuffer x_;
  IntBuffer labels_;
  std::vector<FloatBuffer> w_, b_, dw_, db_, act_, dact_;
};

constexpr int Mlp::kSizes[4];

// Times each GEMM shape on `backend` (operands of the right sizes, random).
absl::StatusOr<std::vector<Timing>> TimeGemms(ComputeBackend* backend,
                                              const std::vector<GemmShape>& shapes, int iters,
                                              int repeats, int warmup) {
  std::vector<Timing> times;
  std::mt19937 rng(7);
  for (const GemmShape& s : shapes) {
    std::vector<FloatBuffer> ops;
    for (int64_t n : {static_cast<int64_t>(s.m) * s.k, static_cast<int64_t>(s.k) * s.n,
                      static_cast<int64_t>(s.m) * s.n}) {
      absl::StatusOr<FloatBuffer> buf = backend->AllocFloat(n);
      if (!buf.ok()) return buf.status();
      std::vector<float> host(n);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (float& v : host) v = dist(rng);
      BENCH_RETURN_IF_ERROR(backend->CopyToDevice(host.data(), buf->data(), n));
      ops.push_back(*std::move(buf));
    }
    absl::StatusOr<Timing> t = TimePerCall(
        [&] {
          return backend->Gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, ops[0].data(),
                               ops[1].data(), 0.0f, ops[2].data());
        },
        backend, iters, repeats, warmup);
    if (!t.ok()) return t.status();
    times.push_back(*t);
  }
  return times;
}

double SumMedians(const std::vector<Timing>& times) {
  double total = 0;
  for (const Timing& t : times) total += t.median;
  return total;
}

void PrintDevice(ComputeBackend* dev, int batch, int repeats, int iters) {
  std::printf("device %s  batch %d  %d repeats of %d iterations", dev->name().c_str(), batch,
              repeats, iters);
  if (dev->is_gpu()) {
    std::printf("  tf32 %s\n", absl::GetFlag(FLAGS_tf32) ? "on" : "off");
  } else {
    std::printf("  OpenBLAS threads %d (%s)\n", openblas_get_num_threads(), openblas_get_config());
  }
}

// The step's GEMMs and a 1024^3 SGEMM on one CPU core (OpenBLAS), for reference.
absl::Status TimeOneCore(const std::vector<GemmShape>& shapes, const GemmShape& big, int iters,
                         int repeats, int warmup, std::vector<Timing>* ref, Timing* square) {
  std::unique_ptr<ComputeBackend> core = NewCpuBackend(1);
  absl::StatusOr<std::vector<Timing>> r =
      TimeGemms(core.get(), shapes, std::max(1, iters / 4), repeats, warmup);
  if (!r.ok()) return r.status();
  *ref = *r;
  absl::StatusOr<std::vector<Timing>> sq = TimeGemms(core.get(), {big}, 5, 3, 1);
  if (!sq.ok()) return sq.status();
  *square = (*sq)[0];
  return absl::OkStatus();
}

void PrintProfile(const Mlp::Profile& profile, bool gpu, int iters) {
  std::printf("\nper-operation profile (%s, %d steps)\n",
              gpu ? "device synchronised after each operation" : "wall clock", iters);
  double total = 0;
  for (const auto& entry : profile.seconds) total += entry.second;
  for (const auto& entry : profile.seconds) {
    std::printf("  %-26s %8.1f us %6.1f%%\n", entry.first.c_str(), entry.second / iters * 1e6,
                100.0 * entry.second / total);
  }
  std::printf("  %-26s %8.1f us\n", "total", total / iters * 1e6);
}

// One row per GEMM of the step, then the 1024^3 SGEMM, beside their one-core figures.
void PrintGemmRows(const std::vector<GemmShape>& shapes, const std::vector<Timing>& gemm,
                   const std::vector<Timing>& ref, const GemmShape& big, const Timing& dev_square,
                   const Timing& square) {
  for (size_t i = 0; i < shapes.size(); ++i) {
    const GemmShape& s = shapes[i];
    const std::string label = absl::StrCat("    ", s.name, " ", s.m, "x", s.n, "x", s.k);
    std::printf("%-30s %8.1f us %8.1f us %10s %9.1f %9.1f\n", label.c_str(),
                gemm[i].median * 1e6, gemm[i].best * 1e6, "", s.flops() / gemm[i].median / 1e9,
                s.flops() / ref[i].median / 1e9);
  }
  std::printf("%-30s %8.1f us %8.1f us %10s %9.1f %9.1f\n", "SGEMM 1024x1024x1024",
              dev_square.median * 1e6, dev_square.best * 1e6, "",
              big.flops() / dev_square.median / 1e9, big.flops() / square.median / 1e9);
  std::printf(
      "GFLOP/s columns use the median; 1-core: the same GEMMs on one CPU core "
      "(OpenBLAS).\n");
}

absl::Status Run() {
  const int batch = absl::GetFlag(FLAGS_batch);
  const int iters = std::max(1, absl::GetFlag(FLAGS_iters));
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  const int warmup = std::max(0, absl::GetFlag(FLAGS_warmup));
  const int threads = absl::GetFlag(FLAGS_threads);
  if (batch <= 0) return absl::InvalidArgumentError(absl::StrCat("--batch=", batch, " <= 0"));

  absl::StatusOr<std::unique_ptr<ComputeBackend>> backend =
      NewBackend(absl::GetFlag(FLAGS_device), threads, absl::GetFlag(FLAGS_tf32));
  if (!backend.ok()) return backend.status();
  ComputeBackend* dev = backend->get();
  PrintDevice(dev, batch, repeats, iters);

  const std::vector<GemmShape> shapes = StepGemms(batch);
  double step_flops = 0;
  for (const GemmShape& s : shapes) step_flops += s.flops();

  absl::StatusOr<std::unique_ptr<Mlp>> mlp = Mlp::Create(dev, batch);
  if (!mlp.ok()) return mlp.status();
  absl::StatusOr<Timing> step =
      TimePerCall([&] { return (*mlp)->Step().status(); }, dev, iters, repeats, warmup);
  if (!step.ok()) return step.status();
  absl::StatusOr<std::vector<Timing>> gemm = TimeGemms(dev, shapes, iters, repeats, warmup);
  if (!gemm.ok()) return gemm.status();
  const double gemm_total = SumMedians(*gemm);
  const GemmShape big = {"1024^3", false, false, 1024, 1024, 1024};
  absl::StatusOr<std::vector<Timing>> dev_square = TimeGemms(dev, {big}, 5, 3, 1);
  if (!dev_square.ok()) return dev_square.status();

  Mlp::Profile profile;
  if (absl::GetFlag(FLAGS_profile)) {
    for (int i = 0; i < iters; ++i) {
      absl::StatusOr<ComputeBackend::LossResult> loss = (*mlp)->Step(&profile);
      if (!loss.ok()) return loss.status();
    }
  }

  // Single-core references last: NewCpuBackend(1) sets OpenBLAS's global thread count.
  std::vector<Timing> ref(shapes.size());
  Timing square;
  if (absl::GetFlag(FLAGS_reference)) {
    if (absl::Status st = TimeOneCore(shapes, big, iters, repeats, warmup, &ref, &square);
        !st.ok()) {
      return st;
    }
  }
  const double ref_total = SumMedians(ref);

  std::printf("\nMLP 784-512-256-10 forward+backward: %.3f MFLOP/sample in GEMMs\n",
              step_flops / batch / 1e6);
  std::printf("%-30s %11s %11s %10s %9s %9s\n", "", "median", "best", "samples/s", "GFLOP/s",
              "1-core");
  std::printf("%-30s %8.1f us %8.1f us %10.0f %9.1f %9s\n", "step (fwd+bwd)", step->median * 1e6,
              step->best * 1e6, batch / step->median, step_flops / step->median / 1e9, "");
  if (!dev->is_gpu() && threads <= 1) {
    // On a shared machine other processes steal time slices; CPU time does not count them.
    std::printf("%-30s %8.1f us %11s %10.0f %9.1f %9s\n", "  CPU time per step",
                step->cpu_median * 1e6, "", batch / step->cpu_median,
                step_flops / step->cpu_median / 1e9, "");
  }
  std::printf("%-30s %8.1f us %11s %9.1f%% %9.1f %9.1f\n", "  its GEMMs alone (share)",
              gemm_total * 1e6, "", 100.0 * gemm_total / step->median,
              step_flops / gemm_total / 1e9, step_flops / ref_total / 1e9);
  PrintGemmRows(shapes, *gemm, ref, big, (*dev_square)[0], square);
  if (absl::GetFlag(FLAGS_profile)) PrintProfile(profile, dev->is_gpu(), iters);
  // One machine-readable line for scripts (tests/gpu.sh).
  std::printf(
      "RESULT device=%s batch=%d threads=%d step_us=%.1f best_step_us=%.1f cpu_step_us=%.1f "
      "samples_per_s=%.0f best_samples_per_s=%.0f step_gflops=%.1f gemm_share=%.3f "
      "core_step_gemm_gflops=%.1f core_sgemm1024_gflops=%.1f\n",
      dev->is_gpu() ? "cuda" : "cpu", batch, dev->is_gpu() ? 0 : threads, step->median * 1e6,
      step->best * 1e6, step->cpu_median * 1e6, batch / step->median, batch / step->best,
      step_flops / step->median / 1e9, gemm_total / step->median, step_flops / ref_total / 1e9,
      big.flops() / square.median / 1e9);
  return absl::OkStatus();
}
}  // namespace
}  // namespace kernels
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Times the MLP training step on a compute backend; see the flags below.");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = ps::kernels::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "step_benchmark: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
