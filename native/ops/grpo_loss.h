// Token-level GRPO loss, forward and backward in one pass (docs/GRPO.md).
//
// Tokens are laid out flat: row b (a completion) owns tokens [offsets[b], offsets[b+1]). The padded
// form [B, T] is the special case offsets[b] = b*T with a mask; the packed (padding-free) form gives
// cumulative sequence lengths and an optional mask. Per token:
//   r = logp - old (token level) or its masked mean over the sequence (sequence level, GSPO)
//   rho = exp(clamp(r, -20, 20)),  s = min(min(rho, delta) A, clip(rho, 1 - epsLow, 1 + epsHigh) A)
//   (CISPO instead: s = sg(clip(rho, 1 - epsLow, 1 + epsHigh)) A logp)
//   d = ref - logp,  k1 = -d, k2 = d^2 / 2, k3 = e^d - d - 1
//   l = -isw s + beta KL,    loss = sum_t w_t l_t   (w from the lossType; see LossRowScales)
// The gradient w.r.t. logp comes out of the same pass; the statistics are means over active tokens.
#pragma once

#include <ATen/ATen.h>

#include "ops/grpo_common.h"

namespace medgr2::ops {

struct LossInputs {
  at::Tensor logp;        // [N] (a [B,T] input is flattened), f32 / bf16 / f16 / f64
  at::Tensor old_logp;    // optional; absent = logp (ratio 1)
  at::Tensor ref_logp;    // optional; needed when beta > 0
  at::Tensor advantages;  // [B]
  at::Tensor mask;        // optional [N]: u8/bool (0/1) or float weights; absent = all tokens
  at::Tensor offsets;     // [B+1] int64 row starts, offsets[0] = 0, offsets[B] = N
  at::Tensor entropy;     // optional [N]: only feeds the entropy statistic
  at::Tensor is_weights;  // optional [N]: detached per-token weights of the policy term (truncated IS)
  bool padded = false;    // came from [B,T]: dr_grpo's default length is T
};

struct LossStats {
  double clip_low_fraction = 0;   // ratio < 1 - epsLow with A < 0
  double clip_high_fraction = 0;  // ratio > 1 + epsHigh with A > 0
  double kl_mean = 0;             // 0 when no refLogp
  double ratio_mean = 0;
  double entropy_mean = 0;   // 0 when no entropy given
  double active_tokens = 0;  // sum of the mask
  // Over sequences with active tokens: the sequence ratio exp(mean log-ratio) < 1 - epsLow with
  // A < 0, > 1 + epsHigh with A > 0 (at either level; at 'sequence' it is the ratio the loss used).
  double seq_clip_low_fraction = 0;
  double seq_clip_high_fraction = 0;
  double log_ratio_abs_mean = 0;  // mean |logp - oldLogp| over active tokens
};

// The per-sequence quantities of the 'sequence' level, float64 [B]: the masked mean log-ratio, and
// the factor S_b / M_b (sum of mask x isWeights over the mask's sum) that carries the loss of the
// sequence's tokens back to each token through the mean. Rows without active tokens get 0 and 1.
struct SequenceRatios {
  at::Tensor log_ratio;
  at::Tensor grad_factor;
  at::Tensor active;  // [B] bool: the row has active tokens
};
SequenceRatios ComputeSequenceRatios(const LossInputs& in);

struct LossResult {
  double loss = 0;
  at::Tensor grad_logp;  // shape and dtype of inputs.logp
  LossStats stats;
};

// Builds LossInputs from the padded form: logp/old/ref/mask [B,T], advantages [B].
LossInputs PaddedLossInputs(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                            const at::Tensor& advantages, const at::Tensor& mask);
// Builds LossInputs from the packed form: logp/old/ref/mask [N], cu_seqlens [B+1], advantages [B].
LossInputs PackedLossInputs(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                            const at::Tensor& advantages, const at::Tensor& mask, const at::Tensor& cu_seqlens);

// Throws ArgumentError naming the argument (as the JS API calls it) when inputs/options do not fit.
void CheckLossInputs(const LossInputs& in, const LossOptions& opts, const char* where);

// The per-row weight factor (w_t = mask_t * scale[row]) of each lossType, in float64 [B].
at::Tensor LossRowScales(const LossInputs& in, const LossOptions& opts);

// Eager ATen composition of the formulas; the gradient comes from libtorch autograd.
LossResult GrpoLossReference(const LossInputs& in, const LossOptions& opts);
// One pass over the tokens (CPU: chunked, parallel, deterministic; CUDA: kernels/grpo_loss.cu).
LossResult GrpoLossFused(const LossInputs& in, const LossOptions& opts);
LossResult GrpoLoss(const LossInputs& in, const LossOptions& opts, Impl impl = Impl::kAuto);

// Autograd: a scalar loss tensor whose backward gives d loss / d logp (for a model's graph).
// `stats` (optional) receives the statistics of the forward pass.
at::Tensor GrpoLossAutograd(const LossInputs& in, const LossOptions& opts, LossStats* stats = nullptr);

}  // namespace medgr2::ops
