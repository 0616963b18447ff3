// One block does the whole batch (B is the number of completions: thousands at most), so the batch
// standard deviation and the per-group statistics come out of one launch. Each warp takes groups in
// turn and reduces them with shuffles (a segmented reduction); accumulation is in double so the
// result matches the float64 reference to float32 rounding.
#include "kernels/grpo_advantages.h"

#include <cmath>

#include "kernels/cuda_utils.cuh"

namespace medgr2::kernels {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / kWarpSize;

__global__ void __launch_bounds__(kThreads)
    GrpoAdvantagesKernel(const float* __restrict__ r, float* __restrict__ adv, int64_t batch, int64_t g,
                         AdvantageScale scale, float eps) {
  __shared__ double scratch[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  // Batch standard deviation (only for scale == batch): two passes, mean then squared deviations.
  double batch_std = 0;
  if (scale == AdvantageScale::kBatch) {
    double s = 0, c = 0;
    for (int64_t i = threadIdx.x; i < batch; i += kThreads) {
      if (!isnan(r[i])) {
        s += r[i];
        c += 1;
      }
    }
    const double n = BlockSum<kThreads>(c, scratch);
    const double mean = BlockSum<kThreads>(s, scratch) / (n > 0 ? n : 1);
    double q = 0;
    for (int64_t i = threadIdx.x; i < batch; i += kThreads) {
      if (!isnan(r[i])) {
        const double d = r[i] - mean;
        q += d * d;
      }
    }
    const double ss = BlockSum<kThreads>(q, scratch);
    batch_std = n > 1 ? sqrt(ss / (n - 1)) : 0;
  }

  const int64_t groups = batch / g;
  for (int64_t grp = warp; grp < groups; grp += kWarps) {
    const float* rg = r + grp * g;
    float* ag = adv + grp * g;
    double s = 0, c = 0;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t k = lane; k < g; k += 32) {
      const float v = rg[k];
      if (!isnan(v)) {
        s += v;
        c += 1;
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
      }
    }
    s = WarpSum(s);
    c = WarpSum(c);
    lo = WarpMin(lo);
    hi = WarpMax(hi);
    const double mean = c > 0 ? s / c : 0;
    double q = 0;
    for (int64_t k = lane; k < g; k += 32) {
      const float v = rg[k];
      if (!isnan(v)) {
        const double d = v - mean;
        q += d * d;
      }
    }
    q = WarpSum(q);
    const bool degenerate = c < 2 || lo == hi;  // one valid reward, or all equal: no signal
    const double denom = scale == AdvantageScale::kGroup   ? (sqrt(q / (c > 1 ? c - 1 : 1)) + eps)
                         : scale == AdvantageScale::kBatch ? (batch_std + eps)
                                                           : 1.0;
    for (int64_t k = lane; k < g; k += 32) {
      const float v = rg[k];
      ag[k] = (degenerate || isnan(v)) ? 0.f : static_cast<float>((v - mean) / denom);
    }
  }
}

}  // namespace

cudaError_t GrpoAdvantagesF32(const float* rewards, float* advantages, int64_t batch, int64_t group_size,
                              AdvantageScale scale, float eps, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  GrpoAdvantagesKernel<<<1, kThreads, 0, stream>>>(rewards, advantages, batch, group_size, scale, eps);
  return cudaGetLastError();
}

}  // namespace medgr2::kernels
