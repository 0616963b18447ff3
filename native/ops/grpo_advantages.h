// Group advantage normalization: rewards [B] in consecutive groups of G -> advantages [B].
//   scale group: A = (r - mean_g) / (std_g + eps)   std unbiased, over the group's non-NaN rewards
//   scale batch: A = (r - mean_g) / (std_B + eps)   std over the whole batch's non-NaN rewards
//   scale none:  A = r - mean_g                     (Dr. GRPO)
// NaN reward -> 0; a group with fewer than two valid rewards, or whose valid rewards are all equal,
// -> exactly 0 (never NaN, never a rounding residue divided by eps).
#pragma once

#include <ATen/ATen.h>

#include "ops/grpo_common.h"

namespace medgr2::ops {

// Plain ATen composition in float64; the result has the rewards' dtype.
at::Tensor GrpoAdvantagesReference(const at::Tensor& rewards, const AdvantageOptions& opts);
// One loop per group on the CPU (float64 accumulation), one launch on CUDA (float32 rewards).
at::Tensor GrpoAdvantagesFused(const at::Tensor& rewards, const AdvantageOptions& opts);
at::Tensor GrpoAdvantages(const at::Tensor& rewards, const AdvantageOptions& opts, Impl impl = Impl::kAuto);

// Throws ArgumentError (naming `where`'s arguments) when rewards/options do not fit.
void CheckAdvantageArgs(const at::Tensor& rewards, const AdvantageOptions& opts, const char* where);

}  // namespace medgr2::ops
