#include "ops/grpo_advantages.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "common/argument_error.h"
#include "common/nvtx.h"

#ifdef MEDGR2_WITH_CUDA
// c10's stream and guard only: ATen/cuda/CUDAContext.h would also pull in cuBLAS, cuSPARSE and
// cuSOLVER headers that this glue never uses (and that a toolkit-only install may lack).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/grpo_advantages.h"
#endif

namespace medgr2::ops {

void CheckAdvantageArgs(const at::Tensor& rewards, const AdvantageOptions& opts, const char* where) {
  if (rewards.dim() != 1) {
    throw ArgumentError(where, "rewards", "a 1-D tensor [B]", std::to_string(rewards.dim()) + "-D");
  }
  if (!at::isFloatingType(rewards.scalar_type())) {
    throw ArgumentError(where, "rewards", "floating point", c10::toString(rewards.scalar_type()));
  }
  const int64_t b = rewards.size(0);
  if (opts.group_size < 1 || b % opts.group_size != 0) {
    throw ArgumentError(where, "groupSize", "a positive divisor of the batch size " + std::to_string(b),
                        std::to_string(opts.group_size));
  }
  if (!(opts.eps >= 0) || !std::isfinite(opts.eps)) {
    throw ArgumentError(where, "eps", "a finite number >= 0", std::to_string(opts.eps));
  }
}

at::Tensor GrpoAdvantagesReference(const at::Tensor& rewards, const AdvantageOptions& opts) {
  const int64_t g = opts.group_size;
  at::Tensor r = rewards.to(at::kDouble).reshape({-1, g});
  at::Tensor valid = ~at::isnan(r);
  at::Tensor n = valid.sum(1, /*keepdim=*/true).to(at::kDouble);
  at::Tensor mean = at::where(valid, r, at::zeros_like(r)).sum(1, true) / n.clamp_min(1);
  at::Tensor dev = at::where(valid, r - mean, at::zeros_like(r));
  at::Tensor group_std = (dev.pow(2).sum(1, true) / (n - 1).clamp_min(1)).sqrt();
  const double inf = std::numeric_limits<double>::infinity();
  at::Tensor lo = at::where(valid, r, at::full_like(r, inf)).amin(1, true);
  at::Tensor hi = at::where(valid, r, at::full_like(r, -inf)).amax(1, true);
  at::Tensor degenerate = (n < 2) | (lo == hi);

  at::Tensor denom;
  switch (opts.scale) {
    case AdvantageScale::kGroup:
      denom = group_std + opts.eps;
      break;
    case AdvantageScale::kBatch: {
      at::Tensor flat = r.reshape({-1});
      at::Tensor vals = flat.masked_select(~at::isnan(flat));
      const double batch_std = vals.numel() > 1 ? vals.std(/*unbiased=*/true).item<double>() : 0.0;
      denom = at::full_like(mean, batch_std + opts.eps);
      break;
    }
    case AdvantageScale::kNone:
      denom = at::ones_like(mean);
      break;
  }
  at::Tensor adv = at::where(valid & ~degenerate, (r - mean) / denom, at::zeros_like(r));
  return adv.reshape({-1}).to(rewards.scalar_type());
}

namespace {

template <typename scalar_t>
void AdvantagesCpu(const scalar_t* r, scalar_t* out, int64_t batch, const AdvantageOptions& opts) {
  const int64_t g = opts.group_size;
  double batch_std = 0;
  if (opts.scale == AdvantageScale::kBatch) {
    double s = 0, n = 0;
    for (int64_t i = 0; i < batch; ++i)
      if (!std::isnan(static_cast<double>(r[i]))) {
        s += r[i];
        n += 1;
      }
    const double mean = n > 0 ? s / n : 0;
    double q = 0;
    for (int64_t i = 0; i < batch; ++i) {
      if (!std::isnan(static_cast<double>(r[i]))) {
        const double d = r[i] - mean;
        q += d * d;
      }
    }
    batch_std = n > 1 ? std::sqrt(q / (n - 1)) : 0;
  }
  at::parallel_for(0, batch / g, 256, [&](int64_t begin, int64_t end) {
    for (int64_t grp = begin; grp < end; ++grp) {
      const scalar_t* rg = r + grp * g;
      scalar_t* ag = out + grp * g;
      double s = 0, n = 0, lo = INFINITY, hi = -INFINITY;
      for (int64_t k = 0; k < g; ++k) {
        const double v = rg[k];
        if (std::isnan(v)) continue;
        s += v;
        n += 1;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      const double mean = n > 0 ? s / n : 0;
      double q = 0;
      for (int64_t k = 0; k < g; ++k) {
        const double v = rg[k];
        if (!std::isnan(v)) q += (v - mean) * (v - mean);
      }
      const bool degenerate = n < 2 || lo == hi;
      double denom = 1;
      if (opts.scale == AdvantageScale::kGroup) denom = std::sqrt(q / std::max(n - 1, 1.0)) + opts.eps;
      if (opts.scale == AdvantageScale::kBatch) denom = batch_std + opts.eps;
      for (int64_t k = 0; k < g; ++k) {
        const double v = rg[k];
        ag[k] = static_cast<scalar_t>((degenerate || std::isnan(v)) ? 0.0 : (v - mean) / denom);
      }
    }
  });
}

}  // namespace

at::Tensor GrpoAdvantagesFused(const at::Tensor& rewards, const AdvantageOptions& opts) {
  NvtxRange range("medgr2.grpo_advantages");
#ifdef MEDGR2_WITH_CUDA
  if (rewards.is_cuda()) {
    c10::cuda::CUDAGuard guard(rewards.device());
    at::Tensor r = rewards.to(at::kFloat).contiguous();
    at::Tensor out = at::empty_like(r);
    cudaError_t st =
        kernels::GrpoAdvantagesF32(r.data_ptr<float>(), out.data_ptr<float>(), r.numel(), opts.group_size, opts.scale,
                                   static_cast<float>(opts.eps), c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(st == cudaSuccess, "grpo_advantages kernel launch failed: ", cudaGetErrorString(st));
    return out.to(rewards.scalar_type());
  }
#endif
  TORCH_CHECK(rewards.device().is_cpu(), "grpo_advantages: no fused kernel for device ", rewards.device());
  at::Tensor r = rewards.scalar_type() == at::kDouble ? rewards.contiguous() : rewards.to(at::kFloat).contiguous();
  at::Tensor out = at::empty_like(r);
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "grpo_advantages_cpu", [&] {
    AdvantagesCpu<scalar_t>(r.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), r.numel(), opts);
  });
  return out.to(rewards.scalar_type());
}

at::Tensor GrpoAdvantages(const at::Tensor& rewards, const AdvantageOptions& opts, Impl impl) {
  CheckAdvantageArgs(rewards, opts, "grpo.advantages");
  if (impl == Impl::kReference) return GrpoAdvantagesReference(rewards, opts);
  return GrpoAdvantagesFused(rewards, opts);
}

}  // namespace medgr2::ops
