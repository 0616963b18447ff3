// Layout: grid.y walks rows (completions), grid.x splits a row into tiles of kThreads * kItems
// tokens; every thread keeps its partial sums in registers (double), a block reduces them with warp
// shuffles and writes one slot of the workspace; FinalizeKernel adds the slots in order.
// Loads are scalar but coalesced with kItems independent tokens per thread in flight, which is what
// a bandwidth-bound elementwise pass needs; there is no shared-memory staging to pay for.
#include "kernels/grpo_loss.h"

#include <cuda_bf16.h>

#include <cmath>

namespace medgr2::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kItems = 4;
constexpr int kTile = kThreads * kItems;
constexpr int kSlots = kGrpoLossStatCount + 1;  // + first non-finite index
constexpr int kMaxBlocksPerRow = 256;
constexpr int kMaxGridY = 65535;

__device__ __forceinline__ float Load(const void* p, int64_t i, bool bf16) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]) : static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void Store(void* p, int64_t i, float v, bool bf16) {
  if (bf16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
  else static_cast<float*>(p)[i] = v;
}
__device__ __forceinline__ float LoadMask(const void* m, int kind, int64_t i) {
  return kind == 0 ? 1.f : kind == 1 ? static_cast<float>(static_cast<const uint8_t*>(m)[i]) : static_cast<const float*>(m)[i];
}

__device__ __forceinline__ double WarpSum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kThreads) GrpoLossKernel(GrpoLossParams p, double* __restrict__ partials) {
  __shared__ double shared[kThreads / 32][kSlots];
  double s[kSlots];
  for (int k = 0; k < kSlots; ++k) s[k] = 0;
  double first_bad = 9.0e18;
  const float lo = 1.f - p.eps_low, hi = 1.f + p.eps_high, clampv = 20.f;

  for (int64_t row = blockIdx.y; row < p.rows; row += gridDim.y) {
    const int64_t row_begin = p.offsets[row], row_end = p.offsets[row + 1];
    const float a = p.advantages[row];
    const float scale = static_cast<float>(p.row_scale[row]);
    for (int64_t tile = row_begin + int64_t(blockIdx.x) * kTile; tile < row_end; tile += int64_t(gridDim.x) * kTile) {
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = tile + k * kThreads + threadIdx.x;
        if (i >= row_end) break;
        const float m = LoadMask(p.mask, p.mask_kind, i);
        if (m == 0.f) { Store(p.grad, i, 0.f, p.bf16); continue; }
        const float x = Load(p.logp, i, p.bf16);
        if (!isfinite(x)) {
          s[kGrpoLossStatCount - 1] += 1;
          first_bad = fmin(first_bad, static_cast<double>(i));
          Store(p.grad, i, 0.f, p.bf16);
          continue;
        }
        const float log_ratio = p.old_logp ? x - Load(p.old_logp, i, p.bf16) : 0.f;
        const bool in_range = log_ratio >= -clampv && log_ratio <= clampv;
        const float rho = __expf(fminf(fmaxf(log_ratio, -clampv), clampv));
        const float s1 = rho * a, s2 = fminf(fmaxf(rho, lo), hi) * a;
        float g = (s1 <= s2 && in_range) ? -a * rho : 0.f;
        float ell = -fminf(s1, s2);
        float kl = 0.f;
        if (p.ref_logp) {
          const float d = Load(p.ref_logp, i, p.bf16) - x;
          float gkl;
          if (p.kl == 0) { kl = -d; gkl = 1.f; }
          else if (p.kl == 1) { kl = 0.5f * d * d; gkl = -d; }
          else { const float e = expf(d); kl = e - d - 1.f; gkl = 1.f - e; }
          if (p.beta > 0.f) { ell += p.beta * kl; g += p.beta * gkl; }
        }
        const float w = m * scale;
        Store(p.grad, i, w * g, p.bf16);
        s[0] += static_cast<double>(w * ell);
        s[1] += m;
        s[2] += (rho < lo && a < 0.f) ? m : 0.f;
        s[3] += (rho > hi && a > 0.f) ? m : 0.f;
        s[4] += static_cast<double>(m * kl);
        s[5] += static_cast<double>(m * rho);
        if (p.entropy) s[6] += static_cast<double>(m * p.entropy[i]);
      }
    }
  }

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int k = 0; k < kSlots - 1; ++k) s[k] = WarpSum(s[k]);
  for (int o = 16; o > 0; o >>= 1) first_bad = fmin(first_bad, __shfl_xor_sync(0xffffffffu, first_bad, o));
  s[kSlots - 1] = first_bad;
  if (lane == 0) for (int k = 0; k < kSlots; ++k) shared[warp][k] = s[k];
  __syncthreads();
  if (threadIdx.x < kSlots) {
    const int k = threadIdx.x;
    double v = k == kSlots - 1 ? 9.0e18 : 0.0;
    for (int w = 0; w < kThreads / 32; ++w) v = (k == kSlots - 1) ? fmin(v, shared[w][k]) : v + shared[w][k];
    partials[(int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * kSlots + k] = v;
  }
}

// One block adds the per-block partials in a fixed order: thread t takes slots t, t + kThreads, ...
__global__ void __launch_bounds__(kThreads) FinalizeKernel(const double* __restrict__ partials, int64_t blocks,
                                                           double* __restrict__ out) {
  __shared__ double shared[kThreads / 32][kSlots];
  double s[kSlots];
  for (int k = 0; k < kSlots; ++k) s[k] = k == kSlots - 1 ? 9.0e18 : 0.0;
  for (int64_t b = threadIdx.x; b < blocks; b += kThreads) {
    for (int k = 0; k < kSlots - 1; ++k) s[k] += partials[b * kSlots + k];
    s[kSlots - 1] = fmin(s[kSlots - 1], partials[b * kSlots + kSlots - 1]);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int k = 0; k < kSlots - 1; ++k) s[k] = WarpSum(s[k]);
  for (int o = 16; o > 0; o >>= 1) s[kSlots - 1] = fmin(s[kSlots - 1], __shfl_xor_sync(0xffffffffu, s[kSlots - 1], o));
  if (lane == 0) for (int k = 0; k < kSlots; ++k) shared[warp][k] = s[k];
  __syncthreads();
  if (threadIdx.x < kSlots) {
    const int k = threadIdx.x;
    double v = k == kSlots - 1 ? 9.0e18 : 0.0;
    for (int w = 0; w < kThreads / 32; ++w) v = (k == kSlots - 1) ? fmin(v, shared[w][k]) : v + shared[w][k];
    if (k == kSlots - 1) v = v >= 9.0e18 ? -1.0 : v;
    out[k] = v;
  }
}

dim3 GridFor(int64_t rows, int64_t max_row_len) {
  const int64_t per_row = (max_row_len + kTile - 1) / kTile;
  const unsigned x = static_cast<unsigned>(per_row < 1 ? 1 : per_row > kMaxBlocksPerRow ? kMaxBlocksPerRow : per_row);
  const unsigned y = static_cast<unsigned>(rows < 1 ? 1 : rows > kMaxGridY ? kMaxGridY : rows);
  return dim3(x, y, 1);
}

}  // namespace

int64_t GrpoLossWorkspaceDoubles(int64_t rows, int64_t max_row_len) {
  const dim3 g = GridFor(rows, max_row_len);
  return int64_t(g.x) * g.y * kSlots;
}

cudaError_t GrpoLossForwardBackward(const GrpoLossParams& p, double* workspace, double* out, cudaStream_t stream) {
  const dim3 grid = GridFor(p.rows, p.max_row_len);
  GrpoLossKernel<<<grid, kThreads, 0, stream>>>(p, workspace);
  cudaError_t st = cudaGetLastError();
  if (st != cudaSuccess) return st;
  FinalizeKernel<<<1, kThreads, 0, stream>>>(workspace, int64_t(grid.x) * grid.y, out);
  return cudaGetLastError();
}

}  // namespace medgr2::kernels
