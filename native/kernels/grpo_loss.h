// Token-level GRPO loss on the GPU: forward value, d loss / d logp and statistics in one pass over
// the tokens (each token's inputs are read once and its gradient written once), then one tiny
// launch that adds the per-block partial sums in a fixed order (deterministic).
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

#include "common/grpo_constants.h"

namespace medgr2::kernels {

struct GrpoLossParams {
  const void* logp;         // [N] float or bf16 (see bf16)
  const void* old_logp;     // [N] same dtype, or null (ratio 1)
  const void* ref_logp;     // [N] same dtype, or null (no KL)
  const float* advantages;  // [rows]
  const void* mask;         // [N] or null
  int mask_kind;            // 0 none, 1 uint8, 2 float
  const int64_t* offsets;   // [rows + 1]
  const double* row_scale;  // [rows]: the lossType's weight per unit of mask
  const float* entropy;     // [N] or null
  const float* is_weights;  // [N] or null: detached weights of the policy term
  // 'sequence' level (GSPO): each row's mean log-ratio and gradient factor; null at 'token' level.
  const double* row_log_ratio;
  const double* row_grad_factor;
  void* grad;  // [N] out, dtype of logp
  int64_t rows;
  int64_t max_row_len;
  float eps_low, eps_high, beta;
  float delta;  // two-sided clipping cap of the unclipped ratio; +inf when off
  KlEstimator kl;
  PolicyLoss policy_loss;
  bool bf16;
};

int64_t GrpoLossWorkspaceDoubles(int64_t rows, int64_t max_row_len);
// `out` (kStatCount + 1 doubles) gets the sums of the statistics, slot by slot as GrpoLossStat
// (common/grpo_constants.h) orders them, followed by the first non-finite token index or kNoIndex.
cudaError_t GrpoLossForwardBackward(const GrpoLossParams& p, double* workspace, double* out, cudaStream_t stream);

}  // namespace medgr2::kernels
