#include "model/rope.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace medgr2::model {

RopeIndex ComputeRopeIndex(const at::Tensor& ids_in, const at::Tensor& cu_in, const at::Tensor& grids_in,
                           const ModelConfig& cfg) {
  at::Tensor ids = ids_in.to(at::kCPU, at::kLong).contiguous();
  at::Tensor cu = cu_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = ids.numel();
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t* c = cu.data_ptr<int64_t>();
  const int64_t seqs = cu.numel() - 1;
  at::Tensor grids = grids_in.defined() ? grids_in.to(at::kCPU, at::kLong).contiguous() : at::zeros({0, 3}, at::kLong);
  const int64_t* g = grids.data_ptr<int64_t>();
  const int64_t images = grids.size(0);
  const int64_t m = cfg.vision.present ? cfg.vision.spatial_merge_size : 1;
  const bool image_tokens = cfg.vision.present && cfg.image_token_id >= 0;

  RopeIndex out;
  out.position_ids = at::empty({3, n}, at::kLong);
  int64_t* pt = out.position_ids.data_ptr<int64_t>();
  int64_t* ph = pt + n;
  int64_t* pw = ph + n;
  out.next_position.resize(seqs);
  int64_t image = 0;
  for (int64_t s = 0; s < seqs; ++s) {
    int64_t next = 0;
    int64_t i = c[s];
    while (i < c[s + 1]) {
      const bool block_starts =
          image_tokens && id[i] == cfg.image_token_id && i > c[s] && id[i - 1] == cfg.vision_start_token_id;
      if (!block_starts) {
        pt[i] = ph[i] = pw[i] = next++;
        ++i;
        continue;
      }
      int64_t run = 0;
      while (i + run < c[s + 1] && id[i + run] == cfg.image_token_id) ++run;
      if (image >= images) {
        throw std::invalid_argument("rope index: more image blocks in the token ids than image grids (" +
                                    std::to_string(images) + ")");
      }
      const int64_t gt = g[image * 3], gh = g[image * 3 + 1] / m, gw = g[image * 3 + 2] / m;
      const int64_t block = gt * gh * gw;
      if (run != block) {
        throw std::invalid_argument("rope index: image " + std::to_string(image) + " (grid " + std::to_string(gt) +
                                    "x" + std::to_string(gh * m) + "x" + std::to_string(gw * m) + ") needs " +
                                    std::to_string(block) + " image tokens after <|vision_start|> in sequence " +
                                    std::to_string(s) + ", found " + std::to_string(run));
      }
      for (int64_t k = 0; k < block; ++k) {
        const int64_t tt = k / (gh * gw), hh = (k / gw) % gh, ww = k % gw;
        // Qwen2.5-VL scales the temporal index by seconds per grid, which is 0 for images.
        pt[i + k] = next + (cfg.vision.qwen25 ? 0 : tt);
        ph[i + k] = next + hh;
        pw[i + k] = next + ww;
        out.image_positions.push_back(i + k);
      }
      next += std::max({cfg.vision.qwen25 ? int64_t(1) : gt, gh, gw});
      i += block;
      ++image;
    }
    out.next_position[s] = next;
  }
  if (image != images) {
    throw std::invalid_argument("rope index: " + std::to_string(images) + " image grids but " + std::to_string(image) +
                                " image blocks in the token ids");
  }
  return out;
}

std::pair<at::Tensor, at::Tensor> TextRotary(const at::Tensor& position_ids, const ModelConfig& cfg,
                                             const at::Device& device, at::ScalarType dtype) {
  const int64_t d = cfg.text.head_dim, half = d / 2;
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  auto f = at::TensorOptions().dtype(acc).device(device);
  at::Tensor inv =
      1.0 / at::pow(cfg.text.rope_theta, at::arange(0, d, 2, f.dtype(at::kDouble)) / static_cast<double>(d));
  at::Tensor inv_full = at::cat({inv, inv}).to(acc);  // [d]
  at::Tensor pos = position_ids.to(device, acc);
  at::Tensor angles;
  if (pos.dim() == 1 || cfg.text.mrope_section.empty()) {
    at::Tensor p = pos.dim() == 1 ? pos : pos[0];
    angles = p.unsqueeze(1) * inv_full.unsqueeze(0);  // [N, d]
  } else {
    // Rotary dim j (of each half) takes its position from component sections: [t..., h..., w...].
    std::vector<int64_t> comp(d);
    int64_t j = 0;
    for (int64_t rep = 0; rep < 2; ++rep)
      for (int64_t sec = 0; sec < 3; ++sec)
        for (int64_t k = 0; k < cfg.text.mrope_section[sec]; ++k) comp[j++] = sec;
    (void)half;
    at::Tensor comp_t = at::tensor(comp, at::kLong).to(device);
    angles = pos.index_select(0, comp_t).t() * inv_full.unsqueeze(0);  // [N, d]
  }
  return {angles.cos(), angles.sin()};
}

std::pair<at::Tensor, at::Tensor> VisionRotary(const at::Tensor& grids_in, const VisionConfig& v,
                                               const at::Device& device, at::ScalarType dtype) {
  at::Tensor grids = grids_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t* g = grids.data_ptr<int64_t>();
  const int64_t m = v.spatial_merge_size;
  std::vector<int64_t> hpos, wpos;
  for (int64_t i = 0; i < grids.size(0); ++i) {
    const int64_t t = g[i * 3], h = g[i * 3 + 1], w = g[i * 3 + 2];
    for (int64_t f = 0; f < t; ++f)
      for (int64_t hb = 0; hb < h / m; ++hb)
        for (int64_t wb = 0; wb < w / m; ++wb)
          for (int64_t hi = 0; hi < m; ++hi)
            for (int64_t wi = 0; wi < m; ++wi) {
              hpos.push_back(hb * m + hi);
              wpos.push_back(wb * m + wi);
            }
  }
  const int64_t head_dim = v.embed_dim / v.num_heads;
  const int64_t dim = head_dim / 2;
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  auto f = at::TensorOptions().dtype(acc).device(device);
  at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, dim, 2, f) / static_cast<double>(dim));  // [dim/2]
  at::Tensor hp = at::tensor(hpos, at::kLong).to(device, acc).unsqueeze(1);
  at::Tensor wp = at::tensor(wpos, at::kLong).to(device, acc).unsqueeze(1);
  at::Tensor freqs = at::cat({hp * inv, wp * inv}, 1);  // [P, dim]
  at::Tensor emb = at::cat({freqs, freqs}, 1);          // [P, head_dim]
  return {emb.cos(), emb.sin()};
}

WindowIndex ComputeWindowIndex(const at::Tensor& grids_in, const VisionConfig& v) {
  at::Tensor grids = grids_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t* g = grids.data_ptr<int64_t>();
  const int64_t m = v.spatial_merge_size;
  const int64_t unit = v.MergeUnit();
  const int64_t ws = v.window_size / m / v.patch_size;  // window side in merged units
  std::vector<int64_t> order;
  std::vector<int64_t> cu{0};
  int64_t base = 0;
  for (int64_t i = 0; i < grids.size(0); ++i) {
    const int64_t t = g[i * 3], gh = g[i * 3 + 1] / m, gw = g[i * 3 + 2] / m;
    const int64_t nwh = (gh + ws - 1) / ws, nww = (gw + ws - 1) / ws;
    for (int64_t f = 0; f < t; ++f)
      for (int64_t wy = 0; wy < nwh; ++wy)
        for (int64_t wx = 0; wx < nww; ++wx) {
          int64_t count = 0;
          for (int64_t y = wy * ws; y < std::min(gh, (wy + 1) * ws); ++y)
            for (int64_t x = wx * ws; x < std::min(gw, (wx + 1) * ws); ++x) {
              order.push_back(base + f * gh * gw + y * gw + x);
              ++count;
            }
          if (count) cu.push_back(cu.back() + count * unit);
        }
    base += t * gh * gw;
  }
  return {at::tensor(order, at::kLong), at::tensor(cu, at::kLong)};
}

}  // namespace medgr2::model
