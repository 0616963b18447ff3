#include "model/layers.h"

#include <torch/version.h>

#include <cmath>

namespace medgr2::model {

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(AccType(x.scalar_type()));
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor LayerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(x, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
}

at::Tensor QuickGelu(const at::Tensor& x) {
  return x * at::sigmoid(1.702 * x);
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto acc = AccType(x.scalar_type());
  at::Tensor xf = x.to(acc);
  at::Tensor c = cos.to(acc).unsqueeze(-2), s = sin.to(acc).unsqueeze(-2);
  return (xf * c + RotateHalf(xf) * s).to(x.scalar_type());
}

at::Tensor RepeatKv(const at::Tensor& x, int64_t n) {
  if (n == 1) return x;
  return x.unsqueeze(2).expand({x.size(0), x.size(1), n, x.size(2)}).reshape({x.size(0), x.size(1) * n, x.size(2)});
}

namespace {

// One segment: q [Hq, L, D], k/v [Hq, L, D] (kv already repeated).
at::Tensor SegmentAttentionExplicit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).to(AccType(q.scalar_type())) * scale;
  if (causal && q.size(1) > 1) {
    at::Tensor future = at::ones({q.size(1), k.size(1)}, q.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  return at::matmul(at::softmax(scores, -1).to(q.scalar_type()), v);
}

template <typename SegmentFn>
at::Tensor ForEachSegment(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                          SegmentFn fn) {
  const int64_t groups = q.size(1) / k.size(1);
  at::Tensor cu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = cu.data_ptr<int64_t>();
  std::vector<at::Tensor> outs;
  outs.reserve(cu.numel());
  for (int64_t s = 0; s + 1 < cu.numel(); ++s) {
    const int64_t begin = p[s], len = p[s + 1] - p[s];
    if (len == 0) continue;
    at::Tensor qs = q.narrow(0, begin, len).transpose(0, 1);                    // [Hq, L, D]
    at::Tensor ks = RepeatKv(k.narrow(0, begin, len), groups).transpose(0, 1);  // [Hq, L, D]
    at::Tensor vs = RepeatKv(v.narrow(0, begin, len), groups).transpose(0, 1);
    outs.push_back(fn(qs, ks, vs).transpose(0, 1));  // [L, Hq, D]
  }
  if (outs.empty()) return at::empty_like(q);
  return outs.size() == 1 ? outs[0].contiguous() : at::cat(outs, 0);
}

}  // namespace

at::Tensor VarlenAttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& cu_seqlens, bool causal) {
  return ForEachSegment(q, k, v, cu_seqlens,
                        [causal](const at::Tensor& qs, const at::Tensor& ks, const at::Tensor& vs) {
                          return SegmentAttentionExplicit(qs, ks, vs, causal);
                        });
}

at::Tensor VarlenAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                           bool causal) {
#if TORCH_VERSION_MAJOR >= 2
  // Flash / memory-efficient kernels on CUDA, a fused kernel on CPU.
  return ForEachSegment(q, k, v, cu_seqlens,
                        [causal](const at::Tensor& qs, const at::Tensor& ks, const at::Tensor& vs) {
                          return at::scaled_dot_product_attention(qs.unsqueeze(0), ks.unsqueeze(0), vs.unsqueeze(0),
                                                                  c10::nullopt, 0.0, causal)
                              .squeeze(0);
                        });
#else
  return VarlenAttentionReference(q, k, v, cu_seqlens, causal);
#endif
}

}  // namespace medgr2::model
