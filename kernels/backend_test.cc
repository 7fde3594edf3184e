// The CPU backend against naive double-precision loops. The CPU backend is the oracle for
// the CUDA backend (cuda_backend_test.cc), so it is itself checked here from first
// principles.
//
// Tolerances (float32): an output element passes when |got - ref| <= 1e-5 * scale, where
// scale is the magnitude the element was summed from (sum_k |alpha a_ik b_kj| + |beta
// c_ij| for GEMM, the sum of absolute terms for sums, |ref| + 1 for updates of values of
// order one). Copies, ReLU, gather and arg-max counts must match exactly.
#include "kernels/backend.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace kernels {
namespace {

constexpr double kRtol = 1e-5;

std::vector<float> Random(size_t n, std::mt19937* rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(*rng);
  return v;
}

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override { backend_ = NewCpuBackend(1); }

  // A backend buffer holding `values`.
  FloatBuffer Upload(const std::vector<float>& values) {
    absl::StatusOr<FloatBuffer> buf = backend_->AllocFloat(values.size());
    EXPECT_TRUE(buf.ok()) << buf.status();
    EXPECT_TRUE(backend_->CopyToDevice(values.data(), buf->data(), values.size()).ok());
    return *std::move(buf);
  }
  IntBuffer UploadInt(const std::vector<int32_t>& values) {
    absl::StatusOr<IntBuffer> buf = backend_->AllocInt(values.size());
    EXPECT_TRUE(buf.ok()) << buf.status();
    EXPECT_TRUE(backend_->CopyToDeviceInt(values.data(), buf->data(), values.size()).ok());
    return *std::move(buf);
  }
  std::vector<float> Download(const FloatBuffer& buf) {
    std::vector<float> out(buf.size());
    EXPECT_TRUE(backend_->CopyToHost(buf.data(), out.data(), buf.size()).ok());
    return out;
  }

  std::unique_ptr<ComputeBackend> backend_;
};

TEST_F(BackendTest, AllocationsAreZeroFilledAndAligned) {
  for (int64_t n : {1, 7, 1000}) {
    absl::StatusOr<FloatBuffer> f = backend_->AllocFloat(n);
    absl::StatusOr<IntBuffer> i = backend_->AllocInt(n);
    absl::StatusOr<FloatBuffer> pinned = backend_->AllocHostPinned(n);
    ASSERT_TRUE(f.ok() && i.ok() && pinned.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pinned->data()) % 64, 0u);
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_EQ(f->data()[j], 0.0f);
      EXPECT_EQ(i->data()[j], 0);
      EXPECT_EQ(pinned->data()[j], 0.0f);
    }
  }
  absl::StatusOr<FloatBuffer> empty = backend_->AllocFloat(0);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(backend_->AllocFloat(-1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_->AllocHostPinned(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

// C = alpha op(A) op(B) + beta C for every transpose combination and odd sizes, against
// a double-precision triple loop.
TEST_F(BackendTest, GemmMatchesNaiveLoopsForAllTransposes) {
  std::mt19937 rng(1);
  const int sizes[] = {1, 7, 33, 129, 257};
  const float alpha = 0.75f, beta = -0.5f;
  for (int trans_a = 0; trans_a < 2; ++trans_a) {
    for (int trans_b = 0; trans_b < 2; ++trans_b) {
      for (int m : sizes) {
        for (int n : sizes) {
          for (int k : sizes) {
            const std::vector<float> a = Random(static_cast<size_t>(m) * k, &rng);
            const std::vector<float> b = Random(static_cast<size_t>(k) * n, &rng);
            const std::vector<float> c0 = Random(static_cast<size_t>(m) * n, &rng);
            FloatBuffer da = Upload(a), db = Upload(b), dc = Upload(c0);
            ASSERT_TRUE(
                backend_
                    ->Gemm(trans_a, trans_b, m, n, k, alpha, da.data(), db.data(), beta, dc.data())
                    .ok());
            const std::vector<float> c = Download(dc);
            // op(A)[i][p] and op(B)[p][j] on the row-major storage.
            auto at = [&](int i, int p) { return trans_a ? a[p * m + i] : a[i * k + p]; };
            auto bt = [&](int p, int j) { return trans_b ? b[j * k + p] : b[p * n + j]; };
            for (int i = 0; i < m; ++i) {
              for (int j = 0; j < n; ++j) {
                double ref = 0, scale = 0;
                for (int p = 0; p < k; ++p) {
                  ref += static_cast<double>(at(i, p)) * bt(p, j);
                  scale += std::fabs(static_cast<double>(at(i, p)) * bt(p, j));
                }
                ref = alpha * ref + beta * c0[i * n + j];
                scale = std::fabs(alpha) * scale + std::fabs(beta * c0[i * n + j]);
                ASSERT_NEAR(c[i * n + j], ref, kRtol * scale)
                    << "trans_a=" << trans_a << " trans_b=" << trans_b << " m=" << m << " n=" << n
                    << " k=" << k << " at (" << i << ", " << j << ")";
              }
            }
          }
        }
      }
    }
  }
}

TEST_F(BackendTest, GemmWithZeroInnerSizeScalesC) {
  FloatBuffer c = Upload({1.0f, 2.0f, 3.0f, 4.0f});
  ASSERT_TRUE(backend_->Gemm(false, false, 2, 2, 0, 1.0f, nullptr, nullptr, 0.5f, c.data()).ok());
  EXPECT_EQ(Download(c), (std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f}));
}

TEST_F(BackendTest, GemmRejectsNegativeSizes) {
  EXPECT_EQ(backend_->Gemm(false, false, -1, 2, 2, 1.0f, nullptr, nullptr, 0.0f, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BackendTest, AddBiasAndColumnSumMatchNaiveLoops) {
  std::mt19937 rng(2);
  for (int rows : {1, 7, 33, 257}) {
    for (int cols : {1, 10, 129}) {
      const std::vector<float> y0 = Random(static_cast<size_t>(rows) * cols, &rng);
      const std::vector<float> bias = Random(cols, &rng);
      const std::vector<float> out0 = Random(cols, &rng);
      FloatBuffer y = Upload(y0), b = Upload(bias);
      ASSERT_TRUE(backend_->AddBias(y.data(), b.data(), rows, cols).ok());
      const std::vector<float> got = Download(y);
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
          const size_t i = static_cast<size_t>(r) * cols + c;
          ASSERT_NEAR(got[i], static_cast<double>(y0[i]) + bias[c],
                      kRtol * (std::fabs(y0[i]) + std::fabs(bias[c])));
        }
      }
      for (bool accumulate : {false, true}) {
        FloatBuffer x = Upload(y0), out = Upload(out0);
        ASSERT_TRUE(backend_->ColumnSum(x.data(), rows, cols, accumulate, out.data()).ok());
        const std::vector<float> sums = Download(out);
        for (int c = 0; c < cols; ++c) {
          double ref = accumulate ? out0[c] : 0.0, scale = accumulate ? std::fabs(out0[c]) : 0;
          for (int r = 0; r < rows; ++r) {
            ref += y0[static_cast<size_t>(r) * cols + c];
            scale += std::fabs(y0[static_cast<size_t>(r) * cols + c]);
          }
          ASSERT_NEAR(sums[c], ref, kRtol * scale) << "rows=" << rows << " col " << c;
        }
      }
    }
  }
}

TEST_F(BackendTest, ReluAndReluBackwardMaskExactly) {
  std::mt19937 rng(3);
  const std::vector<float> x0 = Random(1001, &rng);
  const std::vector<float> g0 = Random(1001, &rng);
  FloatBuffer y = Upload(x0), dy = Upload(g0);
  ASSERT_TRUE(backend_->Relu(y.data(), x0.size()).ok());
  ASSERT_TRUE(backend_->ReluBackward(y.data(), dy.data(), g0.size()).ok());
  const std::vector<float> ry = Download(y), rdy = Download(dy);
  for (size_t i = 0; i < x0.size(); ++i) {
    EXPECT_EQ(ry[i], x0[i] > 0 ? x0[i] : 0.0f);
    EXPECT_EQ(rdy[i], x0[i] > 0 ? g0[i] : 0.0f);
  }
}

// Reference softmax cross-entropy in double, straight from the definition.
struct SoftmaxRef {
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<double> dlogits;
};

SoftmaxRef ReferenceSoftmax(const std::vector<float>& x, const std::vector<int32_t>& labels,
                            int rows, int cols, double grad_scale) {
  SoftmaxRef ref;
  ref.dlogits.resize(x.size());
  for (int r = 0; r < rows; ++r) {
    const float* row = &x[static_cast<size_t>(r) * cols];
    int arg = 0;
    for (int c = 1; c < cols; ++c) {
      if (row[c] > row[arg]) arg = c;
    }
    double z = 0;
    for (int c = 0; c < cols; ++c) z += std::exp(static_cast<double>(row[c]) - row[arg]);
    ref.loss_sum += std::log(z) - (static_cast<double>(row[labels[r]]) - row[arg]);
    ref.correct += arg == labels[r];
    for (int c = 0; c < cols; ++c) {
      const double p = std::exp(static_cast<double>(row[c]) - row[arg]) / z;
      ref.dlogits[static_cast<size_t>(r) * cols + c] =
          (p - (c == labels[r] ? 1.0 : 0.0)) * grad_scale;
    }
  }
  return ref;
}

void CheckSoftmax(ComputeBackend* backend, const std::vector<float>& x,
                  const std::vector<int32_t>& labels, int rows, int cols) {
  const float grad_scale = 1.0f / rows;
  absl::StatusOr<FloatBuffer> dx = backend->AllocFloat(x.size());
  ASSERT_TRUE(dx.ok());
  absl::StatusOr<ComputeBackend::LossResult> got =
      backend->SoftmaxCrossEntropy(x.data(), labels.data(), rows, cols, grad_scale, dx->data());
  ASSERT_TRUE(got.ok()) << got.status();
  const SoftmaxRef ref = ReferenceSoftmax(x, labels, rows, cols, grad_scale);
  EXPECT_NEAR(got->loss_sum, ref.loss_sum, kRtol * std::max(1.0, std::fabs(ref.loss_sum)));
  EXPECT_EQ(got->correct, ref.correct);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_TRUE(std::isfinite(dx->data()[i])) << i;
    ASSERT_NEAR(dx->data()[i], ref.dlogits[i], kRtol * grad_scale) << "element " << i;
  }
}

TEST_F(BackendTest, SoftmaxCrossEntropyMatchesDirectFormula) {
  std::mt19937 rng(4);
  for (int rows : {1, 7, 64, 257}) {
    for (int cols : {1, 2, 10, 33, 1000}) {
      const std::vector<float> x = Random(static_cast<size_t>(rows) * cols, &rng, -5, 5);
      std::vector<int32_t> labels(rows);
      for (int32_t& l : labels) l = std::uniform_int_distribution<int>(0, cols - 1)(rng);
      CheckSoftmax(backend_.get(), x, labels, rows, cols);
    }
  }
}

TEST_F(BackendTest, SoftmaxCrossEntropyIsStableForLargeLogits) {
  // exp(1000) overflows float and double alike; subtracting the row max keeps it finite.
  const std::vector<float> x = {1000.0f,  999.0f,  -1000.0f, 0.0f,      // row 0
                                -1000.0f, -999.0f, -998.0f,  -1000.0f,  // row 1
                                1000.0f,  1000.0f, 1000.0f,  1000.0f};  // row 2: ties
  const std::vector<int32_t> labels = {1, 2, 3};
  CheckSoftmax(backend_.get(), x, labels, 3, 4);
  FloatBuffer dx = Upload(std::vector<float>(x.size()));
  absl::StatusOr<ComputeBackend::LossResult> got =
      backend_->SoftmaxCrossEntropy(x.data(), labels.data(), 3, 4, 1.0f, dx.data());
  ASSERT_TRUE(got.ok());
  // Row 0: log(1 + e^-1 + ...) + 1; row 1: log(1 + e^-1 + 2 e^-2); row 2: log 4.
  const double expected = std::log1p(std::exp(-1.0)) + 1.0 +
                          std::log(1.0 + std::exp(-1.0) + 2 * std::exp(-2.0)) + std::log(4.0);
  EXPECT_NEAR(got->loss_sum, expected, 1e-5);
  EXPECT_EQ(got->correct, 1);  // Row 1 only: row 2's tie goes to column 0, not label 3.
}

TEST_F(BackendTest, SoftmaxCrossEntropyRejectsBadLabels) {
  const std::vector<float> x(2 * 3, 0.0f);
  std::vector<float> dx(x.size());
  for (int32_t bad : {-1, 3}) {
    const std::vector<int32_t> labels = {0, bad};
    absl::StatusOr<ComputeBackend::LossResult> got =
        backend_->SoftmaxCrossEntropy(x.data(), labels.data(), 2, 3, 1.0f, dx.data());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(BackendTest, GatherAndScatterAddHandleDuplicateIndices) {
  const int width = 3;
  const int64_t table_rows = 4;
  std::mt19937 rng(5);
  const std::vector<float> table0 = Random(table_rows * width, &rng);
  const std::vector<int32_t> idx = {2, 0, 2, 3, 2};
  const std::vector<float> g = Random(idx.size() * width, &rng);

  FloatBuffer table = Upload(table0), out = Upload(std::vector<float>(idx.size() * width));
  IntBuffer didx = UploadInt(idx);
  ASSERT_TRUE(
      backend_->Gather(table.data(), table_rows, width, didx.data(), idx.size(), out.data()).ok());
  const std::vector<float> gathered = Download(out);
  for (size_t i = 0; i < idx.size(); ++i) {
    for (int c = 0; c < width; ++c) {
      EXPECT_EQ(gathered[i * width + c], table0[idx[i] * width + c]);
    }
  }

  FloatBuffer dg = Upload(g);
  ASSERT_TRUE(
      backend_->ScatterAdd(dg.data(), didx.data(), idx.size(), width, table.data(), table_rows)
          .ok());
  std::vector<double> ref(table0.begin(), table0.end()), scale(table0.size());
  for (size_t j = 0; j < ref.size(); ++j) scale[j] = std::fabs(table0[j]);
  for (size_t i = 0; i < idx.size(); ++i) {
    for (int c = 0; c < width; ++c) {
      ref[idx[i] * width + c] += g[i * width + c];
      scale[idx[i] * width + c] += std::fabs(g[i * width + c]);
    }
  }
  const std::vector<float> got = Download(table);
  for (size_t j = 0; j < ref.size(); ++j) EXPECT_NEAR(got[j], ref[j], kRtol * scale[j]);
  EXPECT_EQ(got[1 * width], table0[1 * width]);  // Row 1 has no index: untouched.
}

TEST_F(BackendTest, GatherAndScatterAddRejectBadIndices) {
  const int width = 2;
  const std::vector<float> table0 = {1, 2, 3, 4};  // 2 rows
  FloatBuffer table = Upload(table0), out = Upload(std::vector<float>(4));
  for (int32_t bad : {-1, 2}) {
    IntBuffer idx = UploadInt({0, bad});
    EXPECT_EQ(backend_->Gather(table.data(), 2, width, idx.data(), 2, out.data()).code(),
              absl::StatusCode::kInvalidArgument);
    FloatBuffer g = Upload({1, 1, 1, 1});
    EXPECT_EQ(backend_->ScatterAdd(g.data(), idx.data(), 2, width, table.data(), 2).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Download(table), table0) << "an invalid batch must not half-update the table";
  }
}

TEST_F(BackendTest, AxpyAndScaleMatchNaiveLoops) {
  std::mt19937 rng(6);
  const std::vector<float> x = Random(999, &rng), y0 = Random(999, &rng);
  FloatBuffer dx = Upload(x), dy = Upload(y0);
  ASSERT_TRUE(backend_->Axpy(-0.3f, dx.data(), dy.data(), x.size()).ok());
  ASSERT_TRUE(backend_->Scale(1.7f, dx.data(), x.size()).ok());
  const std::vector<float> y = Download(dy), xs = Download(dx);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y[i], y0[i] - 0.3 * x[i], kRtol * (std::fabs(y0[i]) + 0.3 * std::fabs(x[i])));
    EXPECT_NEAR(xs[i], 1.7 * x[i], kRtol * 1.7 * std::fabs(x[i]));
  }
}

TEST(NewBackendTest, PicksBackendsByName) {
  absl::StatusOr<std::unique_ptr<ComputeBackend>> cpu = NewBackend("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ((*cpu)->name(), "cpu");
  EXPECT_FALSE((*cpu)->is_gpu());
  absl::StatusOr<std::unique_ptr<ComputeBackend>> any = NewBackend("auto");
  ASSERT_TRUE(any.ok()) << "auto falls back to the CPU";
  EXPECT_EQ(NewBackend("tpu").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<ComputeBackend>> cuda = NewCudaBackend();
  if (!cuda.ok()) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable) << cuda.status();
  }
}

}  // namespace
}  // namespace kernels
}  // namespace ps
