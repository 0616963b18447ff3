// One block per row of the tile. TileStats makes one pass: each thread keeps its own online
// (max, sum, weighted sum) over its columns, then the block merges the 256 states. TileGrad is an
// elementwise pass over the tile (it needs only per-row lse and E[z], known from the forward).
#include "kernels/fused_logprob.h"

#include <cuda_bf16.h>

#include <cmath>

namespace medgr2::kernels {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float LoadZ(const void* z, int64_t i, bool bf16) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(z)[i]) : static_cast<const float*>(z)[i];
}

// u is kept relative to the running max (sum e^(z-m) (z-m)), not as sum e^(z-m) z: entropy is then
// log s - u/s with no cancellation between two large numbers (lse and E[z] are both ~ max logit).
struct Online {
  float m, s, u;  // max, sum e^(z-m), sum e^(z-m) (z-m)
};

__device__ __forceinline__ Online Merge(Online a, Online b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  const float ea = __expf(a.m - m), eb = __expf(b.m - m);
  return {m, a.s * ea + b.s * eb, ea * (a.u + (a.m - m) * a.s) + eb * (b.u + (b.m - m) * b.s)};
}

__device__ __forceinline__ Online WarpMerge(Online v) {
  for (int o = 16; o > 0; o >>= 1) {
    Online other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o),
                 __shfl_xor_sync(0xffffffffu, v.u, o)};
    v = Merge(v, other);
  }
  return v;
}

__global__ void __launch_bounds__(kThreads) TileStatsKernel(LogitsTile tile, const int64_t* __restrict__ targets,
                                                            float inv_temp, float* m, float* s, float* t,
                                                            float* z_target) {
  const int64_t row = blockIdx.x;
  const int64_t base = row * tile.ld;
  Online acc{-INFINITY, 0.f, 0.f};
  for (int64_t c = threadIdx.x; c < tile.cols; c += kThreads) {
    const float z = LoadZ(tile.z, base + c, tile.bf16) * inv_temp;
    if (z > acc.m) {
      // Rebase the state on the new max; the new element itself adds e^0 (z - z) = 0 to u.
      const float e = acc.m == -INFINITY ? 0.f : __expf(acc.m - z);
      acc = {z, acc.s * e + 1.f, acc.m == -INFINITY ? 0.f : e * (acc.u + (acc.m - z) * acc.s)};
    } else {
      const float e = __expf(z - acc.m);
      acc.s += e;
      acc.u += e * (z - acc.m);
    }
  }
  __shared__ float sm[kThreads / 32], ss[kThreads / 32], st[kThreads / 32];
  acc = WarpMerge(acc);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) { sm[warp] = acc.m; ss[warp] = acc.s; st[warp] = acc.u; }
  __syncthreads();
  if (threadIdx.x == 0) {
    Online total{m[row], s[row], t[row]};  // the state from earlier tiles
    for (int w = 0; w < kThreads / 32; ++w) total = Merge(total, Online{sm[w], ss[w], st[w]});
    m[row] = total.m; s[row] = total.s; t[row] = total.u;
    const int64_t y = targets[row] - tile.vocab_offset;
    if (y >= 0 && y < tile.cols) z_target[row] = LoadZ(tile.z, base + y, tile.bf16) * inv_temp;
  }
}

__global__ void FinalizeKernel(const float* m, const float* s, const float* t, const float* z_target,
                               const int64_t* targets, int64_t rows, float* logp, float* entropy, float* lse) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  const float log_s = logf(s[r]);
  const float l = m[r] + log_s;
  lse[r] = l;
  entropy[r] = log_s - t[r] / s[r];
  logp[r] = targets[r] >= 0 ? z_target[r] - l : 0.f;
}

__global__ void __launch_bounds__(kThreads) TileGradKernel(LogitsTile tile, const int64_t* __restrict__ targets,
                                                           const float* __restrict__ lse, const float* __restrict__ entropy,
                                                           const float* __restrict__ grad_logp,
                                                           const float* __restrict__ grad_entropy, float inv_temp) {
  const int64_t row = blockIdx.x;
  const int64_t base = row * tile.ld;
  const float l = lse[row];
  const float h = entropy[row];  // z - E[z] = (z - lse) + entropy
  const bool has_target = targets[row] >= 0;
  const float g = has_target ? grad_logp[row] : 0.f;
  const float gh = grad_entropy ? grad_entropy[row] : 0.f;
  const int64_t y = targets[row] - tile.vocab_offset;
  for (int64_t c = threadIdx.x; c < tile.cols; c += kThreads) {
    const float z = LoadZ(tile.z, base + c, tile.bf16) * inv_temp;
    const float p = __expf(z - l);
    float dz = -g * p - gh * p * ((z - l) + h);
    if (has_target && c == y) dz += g;
    dz *= inv_temp;
    if (tile.bf16) static_cast<__nv_bfloat16*>(tile.z)[base + c] = __float2bfloat16(dz);
    else static_cast<float*>(tile.z)[base + c] = dz;
  }
}

}  // namespace

cudaError_t LogprobTileStats(const LogitsTile& tile, const int64_t* targets, float inv_temp, float* m, float* s,
                             float* t, float* z_target, cudaStream_t stream) {
  if (tile.rows == 0) return cudaSuccess;
  TileStatsKernel<<<static_cast<unsigned>(tile.rows), kThreads, 0, stream>>>(tile, targets, inv_temp, m, s, t, z_target);
  return cudaGetLastError();
}

cudaError_t LogprobFinalize(const float* m, const float* s, const float* t, const float* z_target,
                            const int64_t* targets, int64_t rows, float* logp, float* entropy, float* lse,
                            cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((rows + kThreads - 1) / kThreads);
  FinalizeKernel<<<blocks, kThreads, 0, stream>>>(m, s, t, z_target, targets, rows, logp, entropy, lse);
  return cudaGetLastError();
}

cudaError_t LogprobTileGrad(const LogitsTile& tile, const int64_t* targets, const float* lse, const float* entropy,
                            const float* grad_logp, const float* grad_entropy, float inv_temp, cudaStream_t stream) {
  if (tile.rows == 0) return cudaSuccess;
  TileGradKernel<<<static_cast<unsigned>(tile.rows), kThreads, 0, stream>>>(tile, targets, lse, entropy, grad_logp,
                                                                           grad_entropy, inv_temp);
  return cudaGetLastError();
}

}  // namespace medgr2::kernels
