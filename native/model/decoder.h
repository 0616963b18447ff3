// The Qwen2 decoder: RMSNorm, grouped-query attention with q/k/v bias and (multimodal) rotary
// positions, SwiGLU MLP. Two entry points: a packed forward over whole sequences (training,
// scoring, generation prefill) and a one-token-per-sequence step against a KV cache (decoding).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/params.h"

namespace medgr2::model {

// Per layer keys/values [S, Hkv, capacity, D] of S sequences, and how many positions each holds.
struct KvCache {
  std::vector<at::Tensor> k, v;
  std::vector<int64_t> length;
  int64_t capacity = 0;
};

KvCache AllocateKvCache(const ModelConfig& cfg, int64_t sequences, int64_t capacity, const at::TensorOptions& opts);

// `p`: the weights and adapter settings of this forward (model/lora.h).
// embeds [N, H] of packed sequences (cu_seqlens [S+1], CPU int64), position_ids [3, N].
// Returns the final-norm hidden states [N, H]. With `cache`, each sequence's keys/values are
// written to cache slots 0..len-1 (prefill).
at::Tensor DecoderForward(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& embeds,
                          const at::Tensor& position_ids, const at::Tensor& cu_seqlens, bool checkpoint_layers,
                          KvCache* cache);

// One new token per sequence: embeds [S, H], positions [S] (text positions, all M-RoPE components
// equal). Appends to the cache; returns final-norm hidden states [S, H].
at::Tensor DecoderStep(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& embeds,
                       const std::vector<int64_t>& positions, KvCache& cache);

}  // namespace medgr2::model
