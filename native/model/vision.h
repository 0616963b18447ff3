// The vision tower: patch embedding (Conv3d with stride = kernel, i.e. one matmul), 2-D rotary
// attention blocks over each image (Qwen2.5-VL: within windows, except its full-attention blocks),
// and the 2x2 patch merger into language-model tokens.
#pragma once

#include <ATen/ATen.h>

#include "model/config.h"
#include "model/lora.h"
#include "model/params.h"

namespace medgr2::model {

// `p`: the weights and adapter settings of this forward (model/lora.h).
// pixel_values [P, C*Tp*p*p], grids [I, 3] -> image token embeddings [P / merge_unit, text hidden].
at::Tensor VisionForward(const ForwardWeights& p, const ModelConfig& cfg, const at::Tensor& pixel_values,
                         const at::Tensor& grids, bool checkpoint_layers);

}  // namespace medgr2::model
