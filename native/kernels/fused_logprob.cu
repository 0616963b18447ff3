// One block per row of the tile. TileStats makes one pass: each thread keeps its own online
// (max, sum, weighted sum) over its columns, then the block merges the 256 states. TileGrad is an
// elementwise pass over the tile (it needs only per-row lse and E[z], known from the forward).
#include "kernels/fused_logprob.h"

#include <cmath>

#include "kernels/cuda_utils.cuh"

namespace medgr2::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;

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

struct MergeOp {
  __device__ __forceinline__ Online operator()(Online a, Online b) const { return Merge(a, b); }
};

// Lets the shared warp/block reductions (kernels/cuda_utils.cuh) move an Online state between lanes.
__device__ __forceinline__ Online ShflXor(Online v, int lane_mask) {
  return {kernels::ShflXor(v.m, lane_mask), kernels::ShflXor(v.s, lane_mask), kernels::ShflXor(v.u, lane_mask)};
}

__global__ void __launch_bounds__(kThreads)
    TileStatsKernel(LogitsTile tile, const int64_t* __restrict__ targets, float inv_temp, float* m, float* s, float* t,
                    float* z_target) {
  const int64_t row = blockIdx.x;
  const int64_t base = row * tile.ld;
  Online acc{-INFINITY, 0.f, 0.f};
  for (int64_t c = threadIdx.x; c < tile.cols; c += kThreads) {
    const float z = LoadF32(tile.z, base + c, tile.bf16) * inv_temp;
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
  __shared__ Online scratch[kWarps];
  BlockReduceToScratch(acc, scratch, MergeOp{});
  if (threadIdx.x == 0) {
    // Onto the state from earlier tiles, in warp order.
    const Online total = FoldWarps<kWarps>(Online{m[row], s[row], t[row]}, scratch, MergeOp{});
    m[row] = total.m;
    s[row] = total.s;
    t[row] = total.u;
    const int64_t y = targets[row] - tile.vocab_offset;
    if (y >= 0 && y < tile.cols) z_target[row] = LoadF32(tile.z, base + y, tile.bf16) * inv_temp;
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

__global__ void __launch_bounds__(kThreads)
    TileGradKernel(LogitsTile tile, const int64_t* __restrict__ targets, const float* __restrict__ lse,
                   const float* __restrict__ entropy, const float* __restrict__ grad_logp,
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
    const float z = LoadF32(tile.z, base + c, tile.bf16) * inv_temp;
    const float p = __expf(z - l);
    float dz = -g * p - gh * p * ((z - l) + h);
    if (has_target && c == y) dz += g;
    dz *= inv_temp;
    StoreF32(tile.z, base + c, dz, tile.bf16);
  }
}

}  // namespace

cudaError_t LogprobTileStats(const LogitsTile& tile, const int64_t* targets, float inv_temp, float* m, float* s,
                             float* t, float* z_target, cudaStream_t stream) {
  if (tile.rows == 0) return cudaSuccess;
  TileStatsKernel<<<static_cast<unsigned>(tile.rows), kThreads, 0, stream>>>(tile, targets, inv_temp, m, s, t,
                                                                             z_target);
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
