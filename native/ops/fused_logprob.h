// Fused log-probability: per-token log p(target) and entropy straight from the final hidden states
// and the lm_head weight, never holding [N, V] logits for all tokens at once.
//   z = h W^T / tau,  logp = z_y - logsumexp(z),  entropy = logsumexp(z) - sum softmax(z) z
// Backward (recomputing z tile by tile; lse saved from the forward, E[z] = lse - entropy):
//   dz = g (onehot(y) - p) - g_H p (z - E[z]),  dh = dz W / tau,  dW = dz^T h / tau
// Work is split into chunks of tokens and, within a chunk, tiles of the vocabulary merged with an
// online logsumexp. CPU default: one tile = the whole vocabulary; CUDA: GEMM tiles through cuBLAS
// (ATen mm) and the per-tile softmax statistics / gradient in kernels/fused_logprob.cu.
// A target < 0 is ignored: its logp is 0 and it sends no logp gradient (its entropy still counts).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "ops/grpo_common.h"

namespace medgr2::ops {

struct LogprobOptions {
  double temperature = 1.0;
  int64_t chunk_tokens = 0;  // 0: chosen from a memory budget
  int64_t vocab_tile = 0;    // 0: whole vocabulary on CPU, 16384 on CUDA
};

struct LogprobResult {
  at::Tensor logp;     // [N] float32 (float64 for float64 inputs)
  at::Tensor entropy;  // [N]
  at::Tensor lse;      // [N] logsumexp(z): kept for the backward pass
};

struct LogprobGrads {
  at::Tensor grad_hidden;  // [N, H], hidden's dtype
  at::Tensor grad_weight;  // [V, H], weight's dtype
};

void CheckLogprobArgs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                      const LogprobOptions& opts, const char* where);

// Reference: materialized logits + log_softmax + gather; gradients by autograd through that graph.
LogprobResult FusedLogprobReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                    const LogprobOptions& opts);
LogprobGrads FusedLogprobReferenceBackward(const at::Tensor& hidden, const at::Tensor& weight,
                                           const at::Tensor& targets, const at::Tensor& grad_logp,
                                           const at::Tensor& grad_entropy, const LogprobOptions& opts);

// Fused: chunked / tiled (CPU loops or CUDA kernels). grad_entropy may be undefined.
LogprobResult FusedLogprobForward(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                  const LogprobOptions& opts);
LogprobGrads FusedLogprobBackward(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                  const at::Tensor& lse, const at::Tensor& entropy, const at::Tensor& grad_logp,
                                  const at::Tensor& grad_entropy, const LogprobOptions& opts);

// Autograd: {logp, entropy} with a grad_fn that runs FusedLogprobBackward.
std::vector<at::Tensor> FusedLogprobAutograd(const at::Tensor& hidden, const at::Tensor& weight,
                                             const at::Tensor& targets, const LogprobOptions& opts);

// The token chunk used for (n tokens, vocab v, tile t, element size) under a memory budget.
int64_t LogprobChunkTokens(int64_t n, int64_t vocab_tile, const LogprobOptions& opts, bool cuda);

}  // namespace medgr2::ops
