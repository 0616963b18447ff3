// scale_add: y = a * x + b. The reference is the ATen composition; the fast path is the CUDA kernel
// in kernels/scale_add.cu (float32, CUDA tensors). Used by the bridge tests and the CUDA build check.
#pragma once

#include <ATen/ATen.h>

namespace medgr2::ops {

at::Tensor ScaleAddReference(const at::Tensor& x, double a, double b);
// Dispatches: CUDA float32 -> the kernel; anything else -> the reference.
at::Tensor ScaleAdd(const at::Tensor& x, double a, double b);
// True when ScaleAdd(x, ...) would run the CUDA kernel.
bool ScaleAddUsesKernel(const at::Tensor& x);

}  // namespace medgr2::ops
