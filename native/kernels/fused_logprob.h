// Fused log-probability on the GPU: the softmax statistics and the logits gradient of one
// [rows, cols] tile of logits (a token chunk x a vocabulary tile, produced by a cuBLAS GEMM).
// The online state per row -- running max m, sum s = sum e^(z - m), t = sum e^(z - m) (z - m), and
// the target logit -- is merged tile after tile, so the full vocabulary never needs to be resident.
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

namespace medgr2::kernels {

struct LogitsTile {
  void* z;  // [rows, cols] row-major with leading dimension ld; float or bf16
  int64_t ld;
  int64_t rows, cols;
  int64_t vocab_offset;  // the tile's first vocabulary index
  bool bf16;
};

// Updates (m, s, t, z_target) of each row with the tile's logits scaled by inv_temp.
cudaError_t LogprobTileStats(const LogitsTile& tile, const int64_t* targets, float inv_temp, float* m, float* s,
                             float* t, float* z_target, cudaStream_t stream);
// logp = z_target - lse (0 where target < 0), entropy = log s - t/s, lse = m + log s.
cudaError_t LogprobFinalize(const float* m, const float* s, const float* t, const float* z_target,
                            const int64_t* targets, int64_t rows, float* logp, float* entropy, float* lse,
                            cudaStream_t stream);
// Overwrites the tile with d loss / d (h W^T) = inv_temp * (g (onehot - p) - g_H p (z - E[z])).
// grad_entropy may be null.
cudaError_t LogprobTileGrad(const LogitsTile& tile, const int64_t* targets, const float* lse, const float* entropy,
                            const float* grad_logp, const float* grad_entropy, float inv_temp, cudaStream_t stream);

}  // namespace medgr2::kernels
