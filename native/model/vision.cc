#include "model/vision.h"

#include <algorithm>
#include <string>

#include "common/nvtx.h"
#include "model/checkpoint.h"
#include "model/layers.h"
#include "model/rope.h"

namespace medgr2::model {

namespace {

std::string Block(int64_t i) {
  return "visual.blocks." + std::to_string(i) + ".";
}

at::Tensor Norm(const ForwardWeights& p, const VisionConfig& v, const std::string& prefix, const at::Tensor& x) {
  if (v.qwen25) return RmsNorm(x, p.Get(prefix + "weight"), 1e-6);
  return LayerNorm(x, p.Get(prefix + "weight"), p.Get(prefix + "bias"), 1e-6);
}

at::Tensor Act(VisionAct act, const at::Tensor& x) {
  switch (act) {
    case VisionAct::kQuickGelu:
      return QuickGelu(x);
    case VisionAct::kSilu:
      return at::silu(x);
    case VisionAct::kGelu:
      return at::gelu(x);
  }
  return x;
}

at::Tensor BlockForward(const ForwardWeights& p, const VisionConfig& v, int64_t i, const at::Tensor& x,
                        const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& cu) {
  const std::string b = Block(i);
  const int64_t n = x.size(0), heads = v.num_heads, hd = v.embed_dim / v.num_heads;
  at::Tensor h = Norm(p, v, b + "norm1.", x);
  at::Tensor qkv = Project(p, b + "attn.qkv", h).view({n, 3, heads, hd});
  at::Tensor q = ApplyRotary(qkv.select(1, 0), cos, sin);
  at::Tensor k = ApplyRotary(qkv.select(1, 1), cos, sin);
  at::Tensor a = VarlenAttention(q, k, qkv.select(1, 2), cu, /*causal=*/false).reshape({n, v.embed_dim});
  at::Tensor out = x + Project(p, b + "attn.proj", a);
  h = Norm(p, v, b + "norm2.", out);
  at::Tensor mlp;
  if (v.qwen25) {
    at::Tensor gate = Project(p, b + "mlp.gate_proj", h);
    at::Tensor up = Project(p, b + "mlp.up_proj", h);
    mlp = Project(p, b + "mlp.down_proj", Act(v.act, gate) * up);
  } else {
    mlp = Project(p, b + "mlp.fc2", Act(v.act, Project(p, b + "mlp.fc1", h)));
  }
  return out + mlp;
}

}  // namespace

at::Tensor VisionForward(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& pixel_values,
                         const at::Tensor& grids, bool checkpoint_layers) {
  NvtxRange range("medgr2.vision");
  const VisionConfig& v = cfg.vision;
  const at::Tensor& wpatch = p.Get("visual.patch_embed.proj.weight");
  const int64_t patches = pixel_values.size(0);
  // Conv3d with kernel == stride == the patch is exactly a matmul with the flattened kernel.
  at::Tensor x = at::matmul(pixel_values.to(wpatch.scalar_type()), wpatch.reshape({v.embed_dim, -1}).t());
  auto [cos, sin] = VisionRotary(grids, v, x.device(), x.scalar_type());

  // Full attention stays within each frame of each image.
  at::Tensor g = grids.to(at::kCPU, at::kLong);
  at::Tensor frame_lens = at::repeat_interleave(g.select(1, 1) * g.select(1, 2), g.select(1, 0));
  at::Tensor cu_full = at::cat({at::zeros({1}, at::kLong), frame_lens.cumsum(0)});

  at::Tensor unit_order, cu_window;
  const int64_t unit = v.MergeUnit();
  if (v.qwen25) {
    WindowIndex w = ComputeWindowIndex(g, v);
    unit_order = w.unit_order.to(x.device());
    cu_window = w.cu_window;
    auto reorder = [&](const at::Tensor& t) {
      return t.reshape({patches / unit, unit, -1}).index_select(0, unit_order).reshape({patches, -1});
    };
    x = reorder(x);
    cos = reorder(cos);
    sin = reorder(sin);
  }
  for (int64_t i = 0; i < v.depth; ++i) {
    const bool full = !v.qwen25 || std::count(v.full_att_block_indexes.begin(), v.full_att_block_indexes.end(), i) > 0;
    const at::Tensor& cu = full ? cu_full : cu_window;
    // `p` by value: a recomputation in backward runs after this function returned.
    auto fn = [p, &v, i, cos, sin, cu](const at::Tensor& in) { return BlockForward(p, v, i, in, cos, sin, cu); };
    x = checkpoint_layers ? CheckpointedCall(fn, x, p.params->AnyRequiresGrad(Block(i))) : fn(x);
  }
  // Merger: normalize each patch, concatenate each 2x2 block, two-layer MLP to the LM width.
  at::Tensor h = v.qwen25 ? RmsNorm(x, p.Get("visual.merger.ln_q.weight"), 1e-6)
                          : LayerNorm(x, p.Get("visual.merger.ln_q.weight"), p.Get("visual.merger.ln_q.bias"), 1e-6);
  h = h.reshape({patches / unit, unit * v.embed_dim});
  h = Project(p, "visual.merger.mlp.0", h);
  h = Project(p, "visual.merger.mlp.2", at::gelu(h));
  if (v.qwen25) h = h.index_select(0, at::argsort(unit_order));
  return h;
}

}  // namespace medgr2::model
