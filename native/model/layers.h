// The building blocks shared by the vision tower and the decoder: norms, activations, rotary
// embeddings and variable-length attention over packed sequences.
#pragma once

#include <ATen/ATen.h>

namespace medgr2::model {

// The dtype norms, rotary embeddings and softmax compute in: float32, or float64 for a float64
// model (so a float64 model is float64 end to end, for gradient checks).
inline at::ScalarType AccType(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Qwen2RMSNorm: normalize in float32, cast back, then scale (the HF order, so bf16 matches).
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor LayerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = at::Tensor());
at::Tensor QuickGelu(const at::Tensor& x);
at::Tensor RotateHalf(const at::Tensor& x);
// x * cos + rotate_half(x) * sin, computed in float32. x [L, heads, D]; cos/sin [L, D].
at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Attention over packed sequences: q [L, Hq, D], k/v [L, Hkv, D] (Hq a multiple of Hkv),
// cu_seqlens [S+1] int64 on the CPU; each segment attends only within itself. Returns [L, Hq, D].
// Uses scaled_dot_product_attention on libtorch >= 2 and an explicit softmax(QK^T)V otherwise.
at::Tensor VarlenAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                           bool causal);
// The explicit form, always available: the reference VarlenAttention is tested against.
at::Tensor VarlenAttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& cu_seqlens, bool causal);

// Repeats each of Hkv heads (dim 1 of [L, Hkv, D]) n times: grouped-query attention.
at::Tensor RepeatKv(const at::Tensor& x, int64_t n);

}  // namespace medgr2::model
