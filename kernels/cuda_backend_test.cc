// Every CUDA backend method against the CPU backend (itself checked against naive loops
// in backend_test.cc), on random inputs of sizes that are not multiples of the block
// sizes (1, 31, 257, 1000, 4097), with every output element compared.
//
// Tolerances (float32): |cuda - cpu| <= kRtol * scale with kRtol = 1e-5, where scale is
// the magnitude the element is computed from: sum_k |alpha a_ik b_kj| + |beta c_ij| for
// GEMM, the sum of absolute terms for column sums and scatter-adds, grad_scale for
// softmax gradients, |value| + 1 for updates of values of order one. The two backends
// add in different orders and the GPU contracts a*b+c into FMAs, so bitwise equality is
// not expected; copies, ReLU, gather and arg-max counts must match exactly.
// TF32 GEMM rounds its inputs to a 10-bit mantissa (relative error up to 2^-10 per
// product), so it gets kTf32Rtol = 3e-3 of the same scale.
//
// Skips (GTEST_SKIP) when NewCudaBackend returns UNAVAILABLE: no GPU or a CPU-only build.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace ps {
namespace kernels {
namespace {

constexpr double kRtol = 1e-5;
constexpr double kTf32Rtol = 3e-3;
const int kSizes[] = {1, 31, 257, 1000, 4097};

std::vector<float> Random(size_t n, std::mt19937* rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(*rng);
  return v;
}

std::vector<float> Abs(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

FloatBuffer ToBackend(ComputeBackend* backend, const std::vector<float>& values) {
  absl::StatusOr<FloatBuffer> buf = backend->AllocFloat(values.size());
  EXPECT_TRUE(buf.ok()) << buf.status();
  if (!buf.ok()) return FloatBuffer();
  absl::Status s = backend->CopyToDevice(values.data(), buf->data(), values.size());
  EXPECT_TRUE(s.ok()) << s;
  return *std::move(buf);
}

IntBuffer ToBackendInt(ComputeBackend* backend, const std::vector<int32_t>& values) {
  absl::StatusOr<IntBuffer> buf = backend->AllocInt(values.size());
  EXPECT_TRUE(buf.ok()) << buf.status();
  if (!buf.ok()) return IntBuffer();
  absl::Status s = backend->CopyToDeviceInt(values.data(), buf->data(), values.size());
  EXPECT_TRUE(s.ok()) << s;
  return *std::move(buf);
}

std::vector<float> ToHost(ComputeBackend* backend, const FloatBuffer& buf) {
  std::vector<float> out(buf.size());
  absl::Status s = backend->CopyToHost(buf.data(), out.data(), buf.size());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// Checks |got[i] - want[i]| <= rtol * scale(i) for every i; reports the first few misses
// and the count. Returns true when all pass.
template <typename ScaleFn>
bool AllNear(const std::vector<float>& got, const std::vector<float>& want, double rtol,
             ScaleFn scale, const std::string& context) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << context << ": size " << got.size() << " != " << want.size();
    return false;
  }
  int64_t misses = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * scale(i);
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(diff <= tol)) {  // Also catches NaN.
      if (++misses <= 5) {
        ADD_FAILURE() << context << ": element " << i << " cuda=" << got[i] << " cpu=" << want[i]
                      << " |diff|=" << diff << " > tol=" << tol;
      }
    }
  }
  if (misses > 5) ADD_FAILURE() << context << ": " << misses << " elements differ in all";
  return misses == 0;
}

bool AllEqual(const std::vector<float>& got, const std::vector<float>& want,
              const std::string& context) {
  return AllNear(
      got, want, 0.0, [](size_t) { return 0.0; }, context);
}

std::string Shape(int rows, int cols) {
  std::ostringstream s;
  s << rows << "x" << cols;
  return s.str();
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ComputeBackend>> gpu = NewCudaBackend(0, false);
    if (absl::IsUnavailable(gpu.status())) GTEST_SKIP() << gpu.status();
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    gpu_ = *std::move(gpu);
    cpu_ = NewCpuBackend(1);
  }

  // Runs C = alpha op(A) op(B) + beta C on both backends and compares every element.
  void CompareGemm(ComputeBackend* gpu, bool trans_a, bool trans_b, int m, int n, int k,
                   double rtol, std::mt19937* rng) {
    const float alpha = 0.75f, beta = -0.5f;
    const std::vector<float> a = Random(static_cast<size_t>(m) * k, rng);
    const std::vector<float> b = Random(static_cast<size_t>(k) * n, rng);
    const std::vector<float> c0 = Random(static_cast<size_t>(m) * n, rng);
    FloatBuffer ga = ToBackend(gpu, a), gb = ToBackend(gpu, b), gc = ToBackend(gpu, c0);
    FloatBuffer ca = ToBackend(cpu_.get(), a), cb = ToBackend(cpu_.get(), b),
                cc = ToBackend(cpu_.get(), c0);
    ASSERT_TRUE(
        gpu->Gemm(trans_a, trans_b, m, n, k, alpha, ga.data(), gb.data(), beta, gc.data()).ok());
    ASSERT_TRUE(
        cpu_->Gemm(trans_a, trans_b, m, n, k, alpha, ca.data(), cb.data(), beta, cc.data()).ok());
    // scale = |alpha| |op(A)| |op(B)| + |beta C|, computed by the CPU backend.
    FloatBuffer abs_a = ToBackend(cpu_.get(), Abs(a)), abs_b = ToBackend(cpu_.get(), Abs(b)),
                scale = ToBackend(cpu_.get(), Abs(c0));
    ASSERT_TRUE(cpu_->Gemm(trans_a, trans_b, m, n, k, std::fabs(alpha), abs_a.data(), abs_b.data(),
                           std::fabs(beta), scale.data())
                    .ok());
    const std::vector<float> s = ToHost(cpu_.get(), scale);
    std::ostringstream context;
    context << gpu->name() << " Gemm trans_a=" << trans_a << " trans_b=" << trans_b << " m=" << m
            << " n=" << n << " k=" << k;
    AllNear(
        ToHost(gpu, gc), ToHost(cpu_.get(), cc), rtol,
        [&](size_t i) { return static_cast<double>(s[i]); }, context.str());
  }

  std::unique_ptr<ComputeBackend> gpu_, cpu_;
};

// GEMM shapes: every combination of small odd sizes, plus larger ones that are not
// multiples of cuBLAS's tiles, including 4097 along each dimension.
std::vector<std::vector<int>> GemmShapes() {
  std::vector<std::vector<int>> shapes;
  for (int m : {1, 31, 257}) {
    for (int n : {1, 31, 257}) {
      for (int k : {1, 31, 257}) shapes.push_back({m, n, k});
    }
  }
  for (const std::vector<int>& s : std::vector<std::vector<int>>{{1000, 1000, 1000},
                                                                 {4097, 31, 257},
                                                                 {31, 4097, 257},
                                                                 {257, 31, 4097},
                                                                 {1000, 257, 31},
                                                                 {64, 512, 784},
                                                                 {784, 512, 64},
                                                                 {64, 784, 512}}) {
    shapes.push_back(s);
  }
  return shapes;
}

TEST_F(CudaBackendTest, NameAndAllocations) {
  EXPECT_TRUE(gpu_->is_gpu());
  EXPECT_EQ(gpu_->name().rfind("cuda:0 (", 0), 0u) << gpu_->name();
  for (int n : kSizes) {
    absl::StatusOr<FloatBuffer> f = gpu_->AllocFloat(n);
    absl::StatusOr<FloatBuffer> pinned = gpu_->AllocHostPinned(n);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(pinned.ok()) << pinned.status();
    EXPECT_TRUE(AllEqual(ToHost(gpu_.get(), *f), std::vector<float>(n), "AllocFloat zeros"));
    EXPECT_TRUE(AllEqual(std::vector<float>(pinned->data(), pinned->data() + n),
                         std::vector<float>(n), "AllocHostPinned zeros"));
    // Round trip through pinned memory.
    std::mt19937 rng(n);
    const std::vector<float> v = Random(n, &rng);
    std::copy(v.begin(), v.end(), pinned->data());
    ASSERT_TRUE(gpu_->CopyToDevice(pinned->data(), f->data(), n).ok());
    std::vector<float> back(n);
    ASSERT_TRUE(gpu_->CopyToHost(f->data(), back.data(), n).ok());
    EXPECT_TRUE(AllEqual(back, v, "round trip"));
  }
  absl::StatusOr<IntBuffer> ints = gpu_->AllocInt(4097);
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(gpu_->AllocFloat(-1).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<FloatBuffer> empty = gpu_->AllocFloat(0);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_TRUE(gpu_->Synchronize().ok());
}

TEST_F(CudaBackendTest, BuffersMayOutliveTheirBackend) {
  absl::StatusOr<FloatBuffer> buf = gpu_->AllocFloat(1000);
  ASSERT_TRUE(buf.ok());
  gpu_.reset();
  // Freeing `buf` now must still work: its deleter keeps the stream alive.
}

TEST_F(CudaBackendTest, GemmMatchesCpuForAllTransposes) {
  std::mt19937 rng(11);
  for (const std::vector<int>& s : GemmShapes()) {
    for (int trans_a = 0; trans_a < 2; ++trans_a) {
      for (int trans_b = 0; trans_b < 2; ++trans_b) {
        CompareGemm(gpu_.get(), trans_a, trans_b, s[0], s[1], s[2], kRtol, &rng);
      }
    }
  }
}

TEST_F(CudaBackendTest, Tf32GemmMatchesCpuWithinTf32Tolerance) {
  absl::StatusOr<std::unique_ptr<ComputeBackend>> tf32 = NewCudaBackend(0, true);
  ASSERT_TRUE(tf32.ok()) << tf32.status();
  std::mt19937 rng(12);
  for (const std::vector<int>& s : GemmShapes()) {
    for (int trans_a = 0; trans_a < 2; ++trans_a) {
      for (int trans_b = 0; trans_b < 2; ++trans_b) {
        CompareGemm(tf32->get(), trans_a, trans_b, s[0], s[1], s[2], kTf32Rtol, &rng);
      }
    }
  }
}

TEST_F(CudaBackendTest, GemmEdgeCases) {
  // k = 0 scales C by beta; negative sizes are rejected.
  FloatBuffer c = ToBackend(gpu_.get(), {1, 2, 3, 4});
  ASSERT_TRUE(gpu_->Gemm(false, false, 2, 2, 0, 1.0f, nullptr, nullptr, 0.5f, c.data()).ok());
  EXPECT_TRUE(AllEqual(ToHost(gpu_.get(), c), {0.5f, 1.0f, 1.5f, 2.0f}, "k=0"));
  EXPECT_EQ(gpu_->Gemm(false, false, 2, -1, 2, 1.0f, nullptr, nullptr, 0.0f, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaBackendTest, AddBiasMatchesCpu) {
  std::mt19937 rng(13);
  for (int rows : kSizes) {
    for (int cols : kSizes) {
      const std::vector<float> y = Random(static_cast<size_t>(rows) * cols, &rng);
      const std::vector<float> bias = Random(cols, &rng);
      FloatBuffer gy = ToBackend(gpu_.get(), y), gb = ToBackend(gpu_.get(), bias);
      FloatBuffer cy = ToBackend(cpu_.get(), y), cb = ToBackend(cpu_.get(), bias);
      ASSERT_TRUE(gpu_->AddBias(gy.data(), gb.data(), rows, cols).ok());
      ASSERT_TRUE(cpu_->AddBias(cy.data(), cb.data(), rows, cols).ok());
      AllNear(
          ToHost(gpu_.get(), gy), ToHost(cpu_.get(), cy), kRtol,
          [&](size_t i) { return std::fabs(y[i]) + std::fabs(bias[i % cols]); },
          "AddBias " + Shape(rows, cols));
    }
  }
}

TEST_F(CudaBackendTest, ColumnSumMatchesCpu) {
  std::mt19937 rng(14);
  for (int rows : kSizes) {
    for (int cols : kSizes) {
      const std::vector<float> x = Random(static_cast<size_t>(rows) * cols, &rng);
      const std::vector<float> out0 = Random(cols, &rng);
      std::vector<double> abs_sum(cols, 0.0);
      for (size_t i = 0; i < x.size(); ++i) abs_sum[i % cols] += std::fabs(x[i]);
      for (bool accumulate : {false, true}) {
        FloatBuffer gx = ToBackend(gpu_.get(), x), go = ToBackend(gpu_.get(), out0);
        FloatBuffer cx = ToBackend(cpu_.get(), x), co = ToBackend(cpu_.get(), out0);
        ASSERT_TRUE(gpu_->ColumnSum(gx.data(), rows, cols, accumulate, go.data()).ok());
        ASSERT_TRUE(cpu_->ColumnSum(cx.data(), rows, cols, accumulate, co.data()).ok());
        AllNear(
            ToHost(gpu_.get(), go), ToHost(cpu_.get(), co), kRtol,
            [&](size_t c) { return abs_sum[c] + (accumulate ? std::fabs(out0[c]) : 0.0); },
            "ColumnSum " + Shape(rows, cols) + (accumulate ? " accumulate" : ""));
      }
    }
  }
}

TEST_F(CudaBackendTest, ReluAndReluBackwardMatchCpuExactly) {
  std::mt19937 rng(15);
  for (int n : {1, 31, 257, 1000, 4097, 1 << 20}) {
    const std::vector<float> x = Random(n, &rng), g = Random(n, &rng);
    FloatBuffer gy = ToBackend(gpu_.get(), x), gdy = ToBackend(gpu_.get(), g);
    FloatBuffer cy = ToBackend(cpu_.get(), x), cdy = ToBackend(cpu_.get(), g);
    ASSERT_TRUE(gpu_->Relu(gy.data(), n).ok());
    ASSERT_TRUE(cpu_->Relu(cy.data(), n).ok());
    ASSERT_TRUE(gpu_->ReluBackward(gy.data(), gdy.data(), n).ok());
    ASSERT_TRUE(cpu_->ReluBackward(cy.data(), cdy.data(), n).ok());
    AllEqual(ToHost(gpu_.get(), gy), ToHost(cpu_.get(), cy), "Relu n=" + std::to_string(n));
    AllEqual(ToHost(gpu_.get(), gdy), ToHost(cpu_.get(), cdy),
             "ReluBackward n=" + std::to_string(n));
  }
}

TEST_F(CudaBackendTest, SoftmaxCrossEntropyMatchesCpu) {
  std::mt19937 rng(16);
  for (float magnitude : {5.0f, 1000.0f}) {  // 1000: exp overflows without the max shift.
    for (int rows : kSizes) {
      for (int cols : {1, 10, 31, 257, 1000, 4097}) {
        const std::vector<float> x =
            Random(static_cast<size_t>(rows) * cols, &rng, -magnitude, magnitude);
        std::vector<int32_t> labels(rows);
        for (int32_t& l : labels) l = std::uniform_int_distribution<int>(0, cols - 1)(rng);
        const float grad_scale = 1.0f / rows;
        FloatBuffer gx = ToBackend(gpu_.get(), x), gd = ToBackend(gpu_.get(), x);
        FloatBuffer cx = ToBackend(cpu_.get(), x), cd = ToBackend(cpu_.get(), x);
        IntBuffer gl = ToBackendInt(gpu_.get(), labels), cl = ToBackendInt(cpu_.get(), labels);
        absl::StatusOr<ComputeBackend::LossResult> g =
            gpu_->SoftmaxCrossEntropy(gx.data(), gl.data(), rows, cols, grad_scale, gd.data());
        absl::StatusOr<ComputeBackend::LossResult> c =
            cpu_->SoftmaxCrossEntropy(cx.data(), cl.data(), rows, cols, grad_scale, cd.data());
        ASSERT_TRUE(g.ok()) << g.status();
        ASSERT_TRUE(c.ok()) << c.status();
        const std::string context =
            "SoftmaxCrossEntropy " + Shape(rows, cols) + " |x|<=" + std::to_string(magnitude);
        // Each row's loss is >= 0, so the sum is its own scale.
        EXPECT_NEAR(g->loss_sum, c->loss_sum, kRtol * (c->loss_sum + 1e-3)) << context;
        EXPECT_EQ(g->correct, c->correct) << context;
        AllNear(
            ToHost(gpu_.get(), gd), ToHost(cpu_.get(), cd), kRtol,
            [&](size_t) { return static_cast<double>(grad_scale); }, context);
      }
    }
  }
}

TEST_F(CudaBackendTest, SoftmaxCrossEntropyRejectsBadLabelsLikeCpu) {
  const int rows = 257, cols = 10;
  const std::vector<float> x(rows * cols, 0.5f);
  for (int32_t bad : {-1, cols}) {
    std::vector<int32_t> labels(rows, 3);
    labels[100] = bad;
    labels[200] = bad;
    FloatBuffer gx = ToBackend(gpu_.get(), x), gd = ToBackend(gpu_.get(), x);
    IntBuffer gl = ToBackendInt(gpu_.get(), labels);
    std::vector<float> cd(x.size());
    absl::StatusOr<ComputeBackend::LossResult> g =
        gpu_->SoftmaxCrossEntropy(gx.data(), gl.data(), rows, cols, 1.0f, gd.data());
    absl::StatusOr<ComputeBackend::LossResult> c =
        cpu_->SoftmaxCrossEntropy(x.data(), labels.data(), rows, cols, 1.0f, cd.data());
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(g.status(), c.status()) << "same first bad row and message as the CPU";
  }
  // The backend stays usable after a rejected batch.
  std::vector<int32_t> labels(rows, 3);
  FloatBuffer gx = ToBackend(gpu_.get(), x), gd = ToBackend(gpu_.get(), x);
  IntBuffer gl = ToBackendInt(gpu_.get(), labels);
  EXPECT_TRUE(gpu_->SoftmaxCrossEntropy(gx.data(), gl.data(), rows, cols, 1.0f, gd.data()).ok());
}

TEST_F(CudaBackendTest, GatherAndScatterAddMatchCpu) {
  std::mt19937 rng(17);
  for (int table_rows : {1, 31, 1000}) {
    for (int width : {1, 31, 257}) {
      for (int n : kSizes) {  // n > table_rows guarantees duplicate indices.
        const std::vector<float> table = Random(static_cast<size_t>(table_rows) * width, &rng);
        const std::vector<float> g = Random(static_cast<size_t>(n) * width, &rng);
        std::vector<int32_t> idx(n);
        for (int32_t& i : idx) i = std::uniform_int_distribution<int>(0, table_rows - 1)(rng);
        const std::string context =
            " table " + Shape(table_rows, width) + " n=" + std::to_string(n);

        FloatBuffer gt = ToBackend(gpu_.get(), table), ct = ToBackend(cpu_.get(), table);
        IntBuffer gi = ToBackendInt(gpu_.get(), idx), ci = ToBackendInt(cpu_.get(), idx);
        FloatBuffer go = ToBackend(gpu_.get(), std::vector<float>(g.size()));
        FloatBuffer co = ToBackend(cpu_.get(), std::vector<float>(g.size()));
        ASSERT_TRUE(gpu_->Gather(gt.data(), table_rows, width, gi.data(), n, go.data()).ok());
        ASSERT_TRUE(cpu_->Gather(ct.data(), table_rows, width, ci.data(), n, co.data()).ok());
        AllEqual(ToHost(gpu_.get(), go), ToHost(cpu_.get(), co), "Gather" + context);

        FloatBuffer gg = ToBackend(gpu_.get(), g), cg = ToBackend(cpu_.get(), g);
        ASSERT_TRUE(gpu_->ScatterAdd(gg.data(), gi.data(), n, width, gt.data(), table_rows).ok());
        ASSERT_TRUE(cpu_->ScatterAdd(cg.data(), ci.data(), n, width, ct.data(), table_rows).ok());
        // scale = |table| + sum of |g| added into each element.
        FloatBuffer scale = ToBackend(cpu_.get(), Abs(table)),
                    abs_g = ToBackend(cpu_.get(), Abs(g));
        ASSERT_TRUE(
            cpu_->ScatterAdd(abs_g.data(), ci.data(), n, width, scale.data(), table_rows).ok());
        const std::vector<float> s = ToHost(cpu_.get(), scale);
        AllNear(
            ToHost(gpu_.get(), gt), ToHost(cpu_.get(), ct), kRtol,
            [&](size_t i) { return static_cast<double>(s[i]); }, "ScatterAdd" + context);
      }
    }
  }
}

TEST_F(CudaBackendTest, GatherAndScatterAddRejectBadIndicesLikeCpu) {
  const int table_rows = 31, width = 7, n = 1000;
  std::mt19937 rng(18);
  const std::vector<float> table = Random(table_rows * width, &rng);
  const std::vector<float> g = Random(n * width, &rng);
  for (int32_t bad : {-1, table_rows}) {
    std::vector<int32_t> idx(n);
    for (int32_t& i : idx) i = std::uniform_int_distribution<int>(0, table_rows - 1)(rng);
    idx[500] = bad;
    idx[700] = bad;
    FloatBuffer gt = ToBackend(gpu_.get(), table), go = ToBackend(gpu_.get(), g);
    FloatBuffer gg = ToBackend(gpu_.get(), g);
    IntBuffer gi = ToBackendInt(gpu_.get(), idx);
    std::vector<float> ct = table, co(g.size());
    const absl::Status gather = gpu_->Gather(gt.data(), table_rows, width, gi.data(), n, go.data());
    const absl::Status scatter =
        gpu_->ScatterAdd(gg.data(), gi.data(), n, width, gt.data(), table_rows);
    EXPECT_EQ(gather.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(scatter.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(gather, cpu_->Gather(ct.data(), table_rows, width, idx.data(), n, co.data()));
    EXPECT_EQ(scatter, cpu_->ScatterAdd(g.data(), idx.data(), n, width, ct.data(), table_rows));
    AllEqual(ToHost(gpu_.get(), gt), table, "table after a rejected ScatterAdd");
    AllEqual(ToHost(gpu_.get(), go), g, "output after a rejected Gather");
  }
}

TEST_F(CudaBackendTest, AxpyAndScaleMatchCpu) {
  std::mt19937 rng(19);
  for (int n : {1, 31, 257, 1000, 4097, 1 << 20}) {
    const std::vector<float> x = Random(n, &rng), y = Random(n, &rng);
    const float alpha = -0.3f;
    FloatBuffer gx = ToBackend(gpu_.get(), x), gy = ToBackend(gpu_.get(), y);
    FloatBuffer cx = ToBackend(cpu_.get(), x), cy = ToBackend(cpu_.get(), y);
    ASSERT_TRUE(gpu_->Axpy(alpha, gx.data(), gy.data(), n).ok());
    ASSERT_TRUE(cpu_->Axpy(alpha, cx.data(), cy.data(), n).ok());
    ASSERT_TRUE(gpu_->Scale(1.7f, gx.data(), n).ok());
    ASSERT_TRUE(cpu_->Scale(1.7f, cx.data(), n).ok());
    AllNear(
        ToHost(gpu_.get(), gy), ToHost(cpu_.get(), cy), kRtol,
        [&](size_t i) { return std::fabs(y[i]) + std::fabs(alpha * x[i]); },
        "Axpy n=" + std::to_string(n));
    AllNear(
        ToHost(gpu_.get(), gx), ToHost(cpu_.get(), cx), kRtol,
        [&](size_t i) { return 1.7 * std::fabs(x[i]); }, "Scale n=" + std::to_string(n));
  }
}

TEST(CudaBackendAvailabilityTest, UnavailableIsTheOnlyExpectedFailure) {
  absl::StatusOr<std::unique_ptr<ComputeBackend>> gpu = NewCudaBackend();
  if (gpu.ok()) {
    EXPECT_TRUE((*gpu)->is_gpu());
  } else {
    EXPECT_EQ(gpu.status().code(), absl::StatusCode::kUnavailable) << gpu.status();
    EXPECT_FALSE(gpu.status().message().empty());
  }
}

}  // namespace
}  // namespace kernels
}  // namespace ps
