// Layout: grid.y walks rows (completions), grid.x splits a row into tiles of kThreads * kItems
// tokens; every thread keeps its partial sums in registers (double), a block reduces them with warp
// shuffles and writes one slot of the workspace; FinalizeKernel adds the slots in order.
// Loads are scalar but coalesced with kItems independent tokens per thread in flight, which is what
// a bandwidth-bound elementwise pass needs; there is no shared-memory staging to pay for.
#include "kernels/grpo_loss.h"

#include <cmath>

#include "common/grpo_constants.h"
#include "kernels/cuda_utils.cuh"

namespace medgr2::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kItems = 4;
constexpr int kTile = kThreads * kItems;
// A block's partials, and `out`: the kStatCount sums (GrpoLossStat slots), then the smallest
// non-finite token index, reduced with min from kNoIndexMin.
constexpr int kFirstBadSlot = kStatCount;
constexpr int kSlots = kStatCount + 1;
constexpr int kMaxBlocksPerRow = 256;
constexpr int kMaxGridY = 65535;

__device__ __forceinline__ float LoadMask(const void* m, int kind, int64_t i) {
  return kind == 0   ? 1.f
         : kind == 1 ? static_cast<float>(static_cast<const uint8_t*>(m)[i])
                     : static_cast<const float*>(m)[i];
}

// Reduces each thread's kSlots values over the block in a fixed order (warp butterflies, then the
// warps in order): sums for the statistics, min for kFirstBadSlot. Every thread must call it;
// thread k < kSlots gets slot k's total in `total` and true, the others false.
__device__ __forceinline__ bool BlockReduceSlots(double (&s)[kSlots], double& total) {
  __shared__ double shared[kSlots][kWarps];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int k = 0; k < kStatCount; ++k) s[k] = WarpSum(s[k]);
  s[kFirstBadSlot] = WarpMin(s[kFirstBadSlot]);
  if (lane == 0)
    for (int k = 0; k < kSlots; ++k) shared[k][warp] = s[k];
  __syncthreads();
  if (threadIdx.x >= kSlots) return false;
  const int k = threadIdx.x;
  total = k == kFirstBadSlot ? FoldWarps<kWarps>(kNoIndexMin, shared[k], MinOp{})
                             : FoldWarps<kWarps>(0.0, shared[k], SumOp{});
  return true;
}

__global__ void __launch_bounds__(kThreads) GrpoLossKernel(GrpoLossParams p, double* __restrict__ partials) {
  double s[kSlots];
  for (int k = 0; k < kStatCount; ++k) s[k] = 0;
  s[kFirstBadSlot] = kNoIndexMin;
  const float lo = 1.f - p.eps_low, hi = 1.f + p.eps_high, clampv = static_cast<float>(kLogRatioClamp);

  for (int64_t row = blockIdx.y; row < p.rows; row += gridDim.y) {
    const int64_t row_begin = p.offsets[row], row_end = p.offsets[row + 1];
    const float a = p.advantages[row];
    const float scale = static_cast<float>(p.row_scale[row]);
    const bool sequence = p.row_log_ratio != nullptr;
    const float row_lr = sequence ? static_cast<float>(p.row_log_ratio[row]) : 0.f;
    const float row_gf = sequence ? static_cast<float>(p.row_grad_factor[row]) : 1.f;
    const bool cispo = p.policy_loss == PolicyLoss::kCispo;
    for (int64_t tile = row_begin + int64_t(blockIdx.x) * kTile; tile < row_end; tile += int64_t(gridDim.x) * kTile) {
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = tile + k * kThreads + threadIdx.x;
        if (i >= row_end) break;
        const float m = LoadMask(p.mask, p.mask_kind, i);
        if (m == 0.f) {
          StoreF32(p.grad, i, 0.f, p.bf16);
          continue;
        }
        const float x = LoadF32(p.logp, i, p.bf16);
        if (!isfinite(x)) {
          s[kStatNonFinite] += 1;
          s[kFirstBadSlot] = fmin(s[kFirstBadSlot], static_cast<double>(i));
          StoreF32(p.grad, i, 0.f, p.bf16);
          continue;
        }
        const float token_log_ratio = p.old_logp ? x - LoadF32(p.old_logp, i, p.bf16) : 0.f;
        const float log_ratio = sequence ? row_lr : token_log_ratio;
        const bool in_range = log_ratio >= -clampv && log_ratio <= clampv;
        const float rho = __expf(fminf(fmaxf(log_ratio, -clampv), clampv));
        const float clipped = fminf(fmaxf(rho, lo), hi);
        const float wi = p.is_weights ? p.is_weights[i] : 1.f;
        float g, ell;
        if (cispo) {  // the clipped weight is a constant (stop-gradient)
          g = -clipped * a * wi;
          ell = -clipped * a * x * wi;
        } else {  // as ops/grpo_loss.cc's FusedLossCpu
          const float s1 = fminf(rho, p.delta) * a, s2 = clipped * a;
          const float d = (s1 <= s2 && in_range && rho <= p.delta) ? -a * rho : 0.f;
          g = sequence ? d * row_gf : d * wi;
          ell = -fminf(s1, s2) * wi;
        }
        float kl = 0.f;
        if (p.ref_logp) {
          const float d = LoadF32(p.ref_logp, i, p.bf16) - x;
          float gkl;
          if (p.kl == KlEstimator::kK1) {
            kl = -d;
            gkl = 1.f;
          } else if (p.kl == KlEstimator::kK2) {
            kl = 0.5f * d * d;
            gkl = -d;
          } else {
            const float e = expf(d);
            kl = e - d - 1.f;
            gkl = 1.f - e;
          }
          if (p.beta > 0.f) {
            ell += p.beta * kl;
            g += p.beta * gkl;
          }
        }
        const float w = m * scale;
        StoreF32(p.grad, i, w * g, p.bf16);
        s[kStatLoss] += static_cast<double>(w * ell);
        s[kStatActive] += m;
        s[kStatClipLow] += (rho < lo && (cispo || a < 0.f)) ? m : 0.f;
        s[kStatClipHigh] += (rho > hi && (cispo || a > 0.f)) ? m : 0.f;
        s[kStatAbsLogRatio] += static_cast<double>(m * fabsf(token_log_ratio));
        s[kStatKl] += static_cast<double>(m * kl);
        s[kStatRatio] += static_cast<double>(m * rho);
        if (p.entropy) s[kStatEntropy] += static_cast<double>(m * p.entropy[i]);
      }
    }
  }

  double total;
  if (BlockReduceSlots(s, total))
    partials[(int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * kSlots + threadIdx.x] = total;
}

// One block adds the per-block partials in a fixed order: thread t takes slots t, t + kThreads, ...
__global__ void __launch_bounds__(kThreads)
    FinalizeKernel(const double* __restrict__ partials, int64_t blocks, double* __restrict__ out) {
  double s[kSlots];
  for (int k = 0; k < kStatCount; ++k) s[k] = 0.0;
  s[kFirstBadSlot] = kNoIndexMin;
  for (int64_t b = threadIdx.x; b < blocks; b += kThreads) {
    for (int k = 0; k < kStatCount; ++k) s[k] += partials[b * kSlots + k];
    s[kFirstBadSlot] = fmin(s[kFirstBadSlot], partials[b * kSlots + kFirstBadSlot]);
  }
  double total;
  if (BlockReduceSlots(s, total)) {
    if (threadIdx.x == kFirstBadSlot && total >= kNoIndexMin) total = static_cast<double>(kNoIndex);
    out[threadIdx.x] = total;
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
