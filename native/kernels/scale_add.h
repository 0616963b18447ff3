// y = a * x + b, elementwise, float32. The smallest real kernel: it exists so that the CUDA build
// path (nvcc, linking, stream handling) is exercised by the bridge tests and compile-checked on CI.
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

namespace medgr2::kernels {

// Launches on `stream`; returns the launch status (no synchronisation).
cudaError_t ScaleAddF32(const float* x, float* y, int64_t n, float a, float b, cudaStream_t stream);

}  // namespace medgr2::kernels
