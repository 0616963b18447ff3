#include "ops/scale_add.h"

#include "common/nvtx.h"

#ifdef MEDGR2_WITH_CUDA
// c10's stream and guard only: ATen/cuda/CUDAContext.h would also pull in cuBLAS, cuSPARSE and
// cuSOLVER headers that this glue never uses (and that a toolkit-only install may lack).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/scale_add.h"
#endif

namespace medgr2::ops {

at::Tensor ScaleAddReference(const at::Tensor& x, double a, double b) {
  return x * a + b;
}

bool ScaleAddUsesKernel(const at::Tensor& x) {
#ifdef MEDGR2_WITH_CUDA
  return x.is_cuda() && x.scalar_type() == at::kFloat;
#else
  (void)x;
  return false;
#endif
}

at::Tensor ScaleAdd(const at::Tensor& x, double a, double b) {
  NvtxRange range("medgr2.scale_add");
#ifdef MEDGR2_WITH_CUDA
  if (ScaleAddUsesKernel(x)) {
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty_like(xc);
    cudaError_t st = kernels::ScaleAddF32(xc.data_ptr<float>(), y.data_ptr<float>(), xc.numel(), static_cast<float>(a),
                                          static_cast<float>(b), c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(st == cudaSuccess, "scale_add kernel launch failed: ", cudaGetErrorString(st));
    return y;
  }
#endif
  return ScaleAddReference(x, a, b);
}

}  // namespace medgr2::ops
