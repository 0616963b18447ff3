// Group advantage normalization on the GPU, one launch: rewards [B] in consecutive groups of G ->
// advantages [B], divided by the group std, the batch std or nothing (Dr. GRPO). NaN reward -> 0; a
// group whose valid rewards are all equal, or that has fewer than two, -> 0.
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

#include "common/grpo_constants.h"

namespace medgr2::kernels {

cudaError_t GrpoAdvantagesF32(const float* rewards, float* advantages, int64_t batch, int64_t group_size,
                              AdvantageScale scale, float eps, cudaStream_t stream);

}  // namespace medgr2::kernels
