// Position encodings: the multimodal rope index (HF's get_rope_index rule) for packed sequences,
// the decoder's M-RoPE cos/sin, and the vision tower's 2-D rotary cos/sin.
#pragma once

#include <ATen/ATen.h>

#include <utility>
#include <vector>

#include "model/config.h"

namespace medgr2::model {

struct RopeIndex {
  at::Tensor position_ids;               // [3, N] int64 (temporal, height, width)
  std::vector<int64_t> next_position;    // per sequence: the position a token appended after it gets
  std::vector<int64_t> image_positions;  // token indices of all image blocks, in order
};

// ids [N] and cu_seqlens [S+1] (int64, CPU), grids [I, 3] (t, h, w in patches) in the order their
// images appear in the packed stream. An image block is the run of <|image_pad|> tokens right after
// a <|vision_start|> (as in HF, where images are counted by the token after each vision start); its
// length must be the grid's t*(h/m)*(w/m). A block takes (t, row, col) offsets from the position its
// first token would have had as text; the text after it continues from the block's largest
// position + 1. Any other <|image_pad|> (say, one a model generated) is text.
// Throws std::invalid_argument when the image blocks and the grids disagree.
RopeIndex ComputeRopeIndex(const at::Tensor& ids, const at::Tensor& cu_seqlens, const at::Tensor& grids,
                           const ModelConfig& cfg);

// cos/sin [N, head_dim] of the decoder for positions [3, N] (M-RoPE sections) or [N] (plain RoPE).
// Computed in float32 like HF (float64 when `dtype` is float64).
std::pair<at::Tensor, at::Tensor> TextRotary(const at::Tensor& position_ids, const ModelConfig& cfg,
                                             const at::Device& device, at::ScalarType dtype = at::kFloat);

// cos/sin [P, vision head_dim] for the patches of grids [I, 3], in the processor's patch order
// (2x2 merge blocks consecutive).
std::pair<at::Tensor, at::Tensor> VisionRotary(const at::Tensor& grids, const VisionConfig& v, const at::Device& device,
                                               at::ScalarType dtype = at::kFloat);

// Qwen2.5-VL window attention: the permutation of merged patch units that makes each window
// contiguous, and the cumulative patch lengths of the windows.
struct WindowIndex {
  at::Tensor unit_order;  // [P / merge_unit] int64: new position k holds old unit unit_order[k]
  at::Tensor cu_window;   // [W + 1] int64 patch offsets of the windows (empty windows dropped)
};
WindowIndex ComputeWindowIndex(const at::Tensor& grids, const VisionConfig& v);

}  // namespace medgr2::model
