#include "kernels/scale_add.h"

namespace medgr2::kernels {

namespace {
// Grid-stride loop with float4 loads when the pointers are 16-byte aligned: a bandwidth-bound op
// must issue 128-bit transactions to approach copy bandwidth.
__global__ void ScaleAddVec4Kernel(const float4* __restrict__ x, float4* __restrict__ y, int64_t n4, float a, float b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 v = x[i];
    y[i] = make_float4(fmaf(a, v.x, b), fmaf(a, v.y, b), fmaf(a, v.z, b), fmaf(a, v.w, b));
  }
}

__global__ void ScaleAddScalarKernel(const float* __restrict__ x, float* __restrict__ y, int64_t begin, int64_t n,
                                     float a, float b) {
  for (int64_t i = begin + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = fmaf(a, x[i], b);
  }
}

int GridFor(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}
}  // namespace

cudaError_t ScaleAddF32(const float* x, float* y, int64_t n, float a, float b, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const bool aligned = (reinterpret_cast<uintptr_t>(x) % 16 == 0) && (reinterpret_cast<uintptr_t>(y) % 16 == 0);
  int64_t done = 0;
  if (aligned) {
    const int64_t n4 = n / 4;
    if (n4 > 0) {
      ScaleAddVec4Kernel<<<GridFor(n4, kThreads), kThreads, 0, stream>>>(reinterpret_cast<const float4*>(x),
                                                                         reinterpret_cast<float4*>(y), n4, a, b);
    }
    done = n4 * 4;
  }
  if (done < n) ScaleAddScalarKernel<<<GridFor(n - done, kThreads), kThreads, 0, stream>>>(x, y, done, n, a, b);
  return cudaGetLastError();
}

}  // namespace medgr2::kernels
