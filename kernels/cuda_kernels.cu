// The CUDA backend's custom kernels (everything but GEMM, which is cuBLAS) and their
// launchers. Each kernel is checked against the CPU backend in cuda_backend_test.cc.
//
// Element-wise kernels are memory-bound: they use grid-stride loops over 64-bit indices
// with a capped grid, so one launch configuration serves every size and every index is
// coalesced (consecutive threads touch consecutive floats).
#include <climits>
#include <cmath>

#include "kernels/cuda_kernels.h"

namespace ps {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps: full occupancy on sm_80/sm_90 with few registers.
// 132 SMs (H100) x 8 resident blocks of 256 threads is ~1k blocks; 4k keeps every SM busy
// with a short tail while the grid-stride loop covers larger arrays.
constexpr int64_t kMaxBlocks = 4096;
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

int Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

__device__ __forceinline__ int64_t GlobalIndex() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t GridStride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Keeps the lowest bad position: ~p is largest for the smallest p (see DeviceRecord).
__device__ __forceinline__ void RecordBadPosition(DeviceRecord* record, int64_t p) {
  atomicMax(&record->bad_key, ~static_cast<unsigned long long>(p));
}

// ----------------------------------------------------------------------------------------
// Kernels

__global__ void AddBiasKernel(float* __restrict__ y, const float* __restrict__ bias, int64_t n,
                              int cols) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) y[i] += bias[i % cols];
}

// A 32-column tile per block: threadIdx.x walks columns, so each warp reads 128
// contiguous bytes of a row; threadIdx.y splits the rows, and shared memory adds the
// kRowSplit partial sums in a fixed order, so results are deterministic (no atomics).
constexpr int kColTile = 32;
constexpr int kRowSplit = 8;

__global__ void ColumnSumKernel(const float* __restrict__ x, int rows, int cols, bool accumulate,
                                float* __restrict__ out) {
  __shared__ float partial[kRowSplit][kColTile + 1];  // +1: no bank conflicts.
  const int c = blockIdx.x * kColTile + threadIdx.x;
  float sum = 0.0f;
  if (c < cols) {
    for (int r = threadIdx.y; r < rows; r += kRowSplit) {
      sum += x[static_cast<int64_t>(r) * cols + c];
    }
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float total = 0.0f;
    for (int i = 0; i < kRowSplit; ++i) total += partial[i][threadIdx.x];
    out[c] = accumulate ? out[c] + total : total;
  }
}

__global__ void ReluKernel(float* __restrict__ y, int64_t n) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

__global__ void ReluBackwardKernel(const float* __restrict__ y, float* __restrict__ dy, int64_t n) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) {
    dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }
}

// One warp per row: rows are short (10 classes for MNIST), so warp shuffles reduce the
// max, arg-max and sum without shared memory or block barriers. The block then adds its
// rows' losses once, so the global atomics are one per block, not one per row.
constexpr int kRowsPerBlock = kThreads / kWarp;

__global__ void SoftmaxCrossEntropyKernel(const float* __restrict__ logits,
                                          const int32_t* __restrict__ labels, int rows, int cols,
                                          float grad_scale, float* __restrict__ dlogits,
                                          DeviceRecord* record) {
  __shared__ double block_loss[kRowsPerBlock];
  __shared__ int block_correct[kRowsPerBlock];
  const int warp = threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int row = blockIdx.x * kRowsPerBlock + warp;
  double loss = 0.0;
  int correct = 0;
  // No early return: every thread must reach the __syncthreads below.
  if (row < rows) {
    const int label = labels[row];
    if (label < 0 || label >= cols) {
      if (lane == 0) RecordBadPosition(record, row);
    } else {
      const float* x = logits + static_cast<int64_t>(row) * cols;
      float* d = dlogits + static_cast<int64_t>(row) * cols;
      // Max and arg-max; ties go to the lowest column, as in the CPU loop.
      float mx = -INFINITY;
      int arg = INT_MAX;
      for (int c = lane; c < cols; c += kWarp) {
        if (x[c] > mx) {
          mx = x[c];
          arg = c;
        }
      }
      for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const float other_mx = __shfl_xor_sync(kFullMask, mx, offset);
        const int other_arg = __shfl_xor_sync(kFullMask, arg, offset);
        if (other_mx > mx || (other_mx == mx && other_arg < arg)) {
          mx = other_mx;
          arg = other_arg;
        }
      }
      if (arg == INT_MAX) arg = 0;  // All -inf or NaN: the CPU loop reports column 0.
      float sum = 0.0f;
      for (int c = lane; c < cols; c += kWarp) sum += expf(x[c] - mx);
      for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        sum += __shfl_xor_sync(kFullMask, sum, offset);
      }
      // Recompute exp rather than store and reload it: one write of dlogits instead of
      // a write, a read and a write.
      const float scale = (1.0f / sum) * grad_scale;
      for (int c = lane; c < cols; c += kWarp) {
        float v = expf(x[c] - mx) * scale;
        if (c == label) v -= grad_scale;
        d[c] = v;
      }
      loss = static_cast<double>(logf(sum) - (x[label] - mx));
      correct = arg == label ? 1 : 0;
    }
  }
  if (lane == 0) {
    block_loss[warp] = loss;
    block_correct[warp] = correct;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double block_sum = 0.0;
    unsigned long long block_hits = 0;
    for (int w = 0; w < kRowsPerBlock; ++w) {
      block_sum += block_loss[w];
      block_hits += block_correct[w];
    }
    if (block_sum != 0.0) atomicAdd(&record->loss_sum, block_sum);
    if (block_hits != 0) atomicAdd(&record->correct, block_hits);
  }
}

__global__ void CheckIndicesKernel(const int32_t* __restrict__ idx, int64_t n, int64_t limit,
                                   DeviceRecord* record) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) {
    if (idx[i] < 0 || idx[i] >= limit) RecordBadPosition(record, i);
  }
}

__global__ void GatherKernel(const float* __restrict__ table, int width,
                             const int32_t* __restrict__ idx, int64_t total,
                             float* __restrict__ out, const DeviceRecord* record) {
  if (record->bad_key != 0) return;  // Invalid batch: touch nothing.
  for (int64_t i = GlobalIndex(); i < total; i += GridStride()) {
    const int64_t row = i / width;
    const int64_t col = i - row * width;
    out[i] = table[static_cast<int64_t>(idx[row]) * width + col];
  }
}

// atomicAdd because duplicate indices in a batch add into the same table row.
__global__ void ScatterAddKernel(const float* __restrict__ g, const int32_t* __restrict__ idx,
                                 int64_t total, int width, float* __restrict__ table,
                                 const DeviceRecord* record) {
  if (record->bad_key != 0) return;  // Invalid batch: leave the table unchanged.
  for (int64_t i = GlobalIndex(); i < total; i += GridStride()) {
    const int64_t row = i / width;
    const int64_t col = i - row * width;
    atomicAdd(&table[static_cast<int64_t>(idx[row]) * width + col], g[i]);
  }
}

__global__ void AxpyKernel(float alpha, const float* __restrict__ x, float* __restrict__ y,
                           int64_t n) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) y[i] += alpha * x[i];
}

__global__ void ScaleKernel(float alpha, float* __restrict__ x, int64_t n) {
  for (int64_t i = GlobalIndex(); i < n; i += GridStride()) x[i] *= alpha;
}

}  // namespace

// ----------------------------------------------------------------------------------------
// Launchers. Empty inputs launch nothing (a zero-block grid is a launch error).

cudaError_t LaunchAddBias(float* y, const float* bias, int rows, int cols, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * cols;
  if (n <= 0) return cudaSuccess;
  AddBiasKernel<<<Blocks(n), kThreads, 0, stream>>>(y, bias, n, cols);
  return cudaGetLastError();
}

cudaError_t LaunchColumnSum(const float* x, int rows, int cols, bool accumulate, float* out,
                            cudaStream_t stream) {
  if (cols <= 0) return cudaSuccess;
  const dim3 block(kColTile, kRowSplit);
  const dim3 grid((cols + kColTile - 1) / kColTile);
  ColumnSumKernel<<<grid, block, 0, stream>>>(x, rows, cols, accumulate, out);
  return cudaGetLastError();
}

cudaError_t LaunchRelu(float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ReluKernel<<<Blocks(n), kThreads, 0, stream>>>(y, n);
  return cudaGetLastError();
}

cudaError_t LaunchReluBackward(const float* y, float* dy, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ReluBackwardKernel<<<Blocks(n), kThreads, 0, stream>>>(y, dy, n);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmaxCrossEntropy(const float* logits, const int32_t* labels, int rows,
                                      int cols, float grad_scale, float* dlogits,
                                      DeviceRecord* record, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;  // cols == 0 still runs: every label is then invalid.
  const int blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  SoftmaxCrossEntropyKernel<<<blocks, kThreads, 0, stream>>>(logits, labels, rows, cols, grad_scale,
                                                             dlogits, record);
  return cudaGetLastError();
}

cudaError_t LaunchCheckIndices(const int32_t* idx, int64_t n, int64_t limit, DeviceRecord* record,
                               cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  CheckIndicesKernel<<<Blocks(n), kThreads, 0, stream>>>(idx, n, limit, record);
  return cudaGetLastError();
}

cudaError_t LaunchGather(const float* table, int width, const int32_t* idx, int64_t n, float* out,
                         const DeviceRecord* record, cudaStream_t stream) {
  const int64_t total = n * width;
  if (total <= 0) return cudaSuccess;
  GatherKernel<<<Blocks(total), kThreads, 0, stream>>>(table, width, idx, total, out, record);
  return cudaGetLastError();
}

cudaError_t LaunchScatterAdd(const float* g, const int32_t* idx, int64_t n, int width, float* table,
                             const DeviceRecord* record, cudaStream_t stream) {
  const int64_t total = n * width;
  if (total <= 0) return cudaSuccess;
  ScatterAddKernel<<<Blocks(total), kThreads, 0, stream>>>(g, idx, total, width, table, record);
  return cudaGetLastError();
}

cudaError_t LaunchAxpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  AxpyKernel<<<Blocks(n), kThreads, 0, stream>>>(alpha, x, y, n);
  return cudaGetLastError();
}

cudaError_t LaunchScale(float alpha, float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ScaleKernel<<<Blocks(n), kThreads, 0, stream>>>(alpha, x, n);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace kernels
}  // namespace ps
