#include "model/decoder.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <limits>
#include <string>

#include "common/nvtx.h"
#include "model/checkpoint.h"
#include "model/layers.h"
#include "model/rope.h"

namespace medgr2::model {

namespace {

std::string Layer(int64_t i) {
  return "model.layers." + std::to_string(i) + ".";
}

struct Qkv {
  at::Tensor q, k, v;  // [L, H, D] (q) and [L, Hkv, D] (k, v), rotated
};

Qkv ProjectQkv(const ForwardWeights& p, const ModelConfig& cfg, int64_t i, const at::Tensor& h, const at::Tensor& cos,
               const at::Tensor& sin) {
  const std::string b = Layer(i) + "self_attn.";
  const TextConfig& t = cfg.text;
  const int64_t n = h.size(0);
  at::Tensor q = Project(p, b + "q_proj", h).view({n, t.num_heads, t.head_dim});
  at::Tensor k = Project(p, b + "k_proj", h).view({n, t.num_kv_heads, t.head_dim});
  at::Tensor v = Project(p, b + "v_proj", h).view({n, t.num_kv_heads, t.head_dim});
  return {ApplyRotary(q, cos, sin), ApplyRotary(k, cos, sin), v};
}

at::Tensor Mlp(const ForwardWeights& p, int64_t i, const at::Tensor& h) {
  const std::string b = Layer(i) + "mlp.";
  return Project(p, b + "down_proj", at::silu(Project(p, b + "gate_proj", h)) * Project(p, b + "up_proj", h));
}

}  // namespace

KvCache AllocateKvCache(const ModelConfig& cfg, int64_t sequences, int64_t capacity, const at::TensorOptions& opts) {
  KvCache c;
  c.capacity = capacity;
  c.length.assign(sequences, 0);
  for (int64_t i = 0; i < cfg.text.num_layers; ++i) {
    c.k.push_back(at::zeros({sequences, cfg.text.num_kv_heads, capacity, cfg.text.head_dim}, opts));
    c.v.push_back(at::zeros({sequences, cfg.text.num_kv_heads, capacity, cfg.text.head_dim}, opts));
  }
  return c;
}

at::Tensor DecoderForward(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& embeds,
                          const at::Tensor& position_ids, const at::Tensor& cu_seqlens, bool checkpoint_layers,
                          KvCache* cache) {
  NvtxRange range("medgr2.decoder");
  const TextConfig& t = cfg.text;
  auto [cos, sin] = TextRotary(position_ids, cfg, embeds.device(), embeds.scalar_type());
  cos = cos.to(embeds.scalar_type());
  sin = sin.to(embeds.scalar_type());
  at::Tensor cu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  at::Tensor x = embeds;
  for (int64_t i = 0; i < t.num_layers; ++i) {
    // `p` by value: a recomputation in backward runs after this function (and its caller's
    // ForwardWeights) returned.
    auto layer = [p, &cfg, i, cos, sin, cu, cache](const at::Tensor& in) {
      const TextConfig& tc = cfg.text;
      at::Tensor h = RmsNorm(in, p.Get(Layer(i) + "input_layernorm.weight"), tc.rms_norm_eps);
      Qkv a = ProjectQkv(p, cfg, i, h, cos, sin);
      if (cache) {
        const int64_t* c = cu.data_ptr<int64_t>();
        at::NoGradGuard no_grad;
        for (int64_t s = 0; s + 1 < cu.numel(); ++s) {
          const int64_t len = c[s + 1] - c[s];
          cache->k[i][s].narrow(1, 0, len).copy_(a.k.narrow(0, c[s], len).transpose(0, 1));
          cache->v[i][s].narrow(1, 0, len).copy_(a.v.narrow(0, c[s], len).transpose(0, 1));
        }
      }
      at::Tensor attn = VarlenAttention(a.q, a.k, a.v, cu, /*causal=*/true).reshape({in.size(0), -1});
      at::Tensor out = in + Project(p, Layer(i) + "self_attn.o_proj", attn);
      h = RmsNorm(out, p.Get(Layer(i) + "post_attention_layernorm.weight"), tc.rms_norm_eps);
      return out + Mlp(p, i, h);
    };
    x = (checkpoint_layers && !cache) ? CheckpointedCall(layer, x, p.params->AnyRequiresGrad(Layer(i))) : layer(x);
  }
  if (cache) {
    const int64_t* c = cu.data_ptr<int64_t>();
    for (int64_t s = 0; s + 1 < cu.numel(); ++s) cache->length[s] = c[s + 1] - c[s];
  }
  return RmsNorm(x, p.Get("model.norm.weight"), t.rms_norm_eps);
}

at::Tensor DecoderStep(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& embeds,
                       const std::vector<int64_t>& positions, KvCache& cache) {
  NvtxRange range("medgr2.decoder_step");
  const TextConfig& t = cfg.text;
  const int64_t s = embeds.size(0);
  at::Tensor pos = at::tensor(positions, at::kLong).unsqueeze(0).expand({3, s});
  auto [cos, sin] = TextRotary(pos, cfg, embeds.device(), embeds.scalar_type());
  cos = cos.to(embeds.scalar_type());
  sin = sin.to(embeds.scalar_type());
  int64_t max_len = 0;
  for (int64_t b = 0; b < s; ++b) max_len = std::max(max_len, cache.length[b] + 1);
  TORCH_CHECK(max_len <= cache.capacity, "KV cache capacity ", cache.capacity, " exceeded");
  // Key positions each sequence may attend to: its cached tokens plus the new one.
  at::Tensor keep =
      at::arange(max_len, at::kLong).unsqueeze(0) <= at::tensor(cache.length, at::kLong).unsqueeze(1);  // [S, max_len]
  at::Tensor mask = keep.to(embeds.device()).view({s, 1, 1, max_len});
  const double scale = 1.0 / std::sqrt(static_cast<double>(t.head_dim));
  const int64_t groups = t.num_heads / t.num_kv_heads;

  at::Tensor x = embeds;
  for (int64_t i = 0; i < t.num_layers; ++i) {
    at::Tensor h = RmsNorm(x, p.Get(Layer(i) + "input_layernorm.weight"), t.rms_norm_eps);
    Qkv a = ProjectQkv(p, cfg, i, h, cos, sin);  // q [S, H, D], k/v [S, Hkv, D]
    for (int64_t b = 0; b < s; ++b) {
      cache.k[i][b].select(1, cache.length[b]).copy_(a.k[b]);
      cache.v[i][b].select(1, cache.length[b]).copy_(a.v[b]);
    }
    at::Tensor kc = cache.k[i].narrow(2, 0, max_len);  // [S, Hkv, L, D]
    at::Tensor vc = cache.v[i].narrow(2, 0, max_len);
    if (groups > 1) {
      kc = kc.repeat_interleave(groups, 1);
      vc = vc.repeat_interleave(groups, 1);
    }
    at::Tensor q = a.q.unsqueeze(2);                                                               // [S, H, 1, D]
    at::Tensor scores = at::matmul(q, kc.transpose(-2, -1)).to(AccType(q.scalar_type())) * scale;  // [S, H, 1, L]
    scores = scores.masked_fill(~mask, -std::numeric_limits<float>::infinity());
    at::Tensor attn = at::matmul(at::softmax(scores, -1).to(q.scalar_type()), vc).reshape({s, -1});
    x = x + Project(p, Layer(i) + "self_attn.o_proj", attn);
    h = RmsNorm(x, p.Get(Layer(i) + "post_attention_layernorm.weight"), t.rms_norm_eps);
    x = x + Mlp(p, i, h);
  }
  for (int64_t b = 0; b < s; ++b) cache.length[b] += 1;
  return RmsNorm(x, p.Get("model.norm.weight"), t.rms_norm_eps);
}

}  // namespace medgr2::model
