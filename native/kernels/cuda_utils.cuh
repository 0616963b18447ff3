// Device helpers the kernels share, written once: warp reductions (shuffle butterflies), a
// fixed-order block reduction, and loads/stores of float or bf16 arrays as float.
//
// Every reduction here combines in a fixed order (butterfly within a warp, then the warps' results
// in warp order), so a kernel that uses them is deterministic run to run. Device code only: include
// from .cu files (plain nvcc, no torch headers).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace medgr2::kernels {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarpMask = 0xffffffffu;

// ---------------------------------------------------------------------------------------------
// Warp reductions: after the call every lane holds the reduction of the 32 lanes' values.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float ShflXor(float v, int lane_mask) {
  return __shfl_xor_sync(kFullWarpMask, v, lane_mask);
}
__device__ __forceinline__ double ShflXor(double v, int lane_mask) {
  return __shfl_xor_sync(kFullWarpMask, v, lane_mask);
}

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
// fminf/fmaxf for float and fmin/fmax for double: the ones the kernels used, NaN handling included.
struct MinOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fminf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmin(a, b); }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Butterfly over the warp: v = op(v, value of lane ^ o) for o = 16, 8, 4, 2, 1. A struct type T
// (an online softmax state, say) supplies its own ShflXor(T, int) next to it; ADL finds it.
template <typename T, typename Op>
__device__ __forceinline__ T WarpAllReduce(T v, Op op) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v = op(v, ShflXor(v, o));
  return v;
}

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
  return WarpAllReduce(v, SumOp{});
}
template <typename T>
__device__ __forceinline__ T WarpMin(T v) {
  return WarpAllReduce(v, MinOp{});
}
template <typename T>
__device__ __forceinline__ T WarpMax(T v) {
  return WarpAllReduce(v, MaxOp{});
}

// ---------------------------------------------------------------------------------------------
// Block reduction in two stages, so that a kernel can fold the warps' results onto a state of its
// own (an earlier tile's) or in only one thread.
// ---------------------------------------------------------------------------------------------
// Stage 1: each warp reduces its values and lane 0 of warp w stores the result in scratch[w]
// (shared memory, blockDim.x / 32 elements). Every thread of the block must call it; on return
// scratch is complete and visible to all threads.
template <typename T, typename Op>
__device__ __forceinline__ void BlockReduceToScratch(T v, T* scratch, Op op) {
  v = WarpAllReduce(v, op);
  __syncthreads();  // an earlier reduction may still be reading scratch
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = v;
  __syncthreads();
}

// Stage 2: init folded with scratch[0], scratch[1], ... in warp order.
template <int kWarps, typename T, typename Op>
__device__ __forceinline__ T FoldWarps(T init, const T* scratch, Op op) {
  for (int w = 0; w < kWarps; ++w) init = op(init, scratch[w]);
  return init;
}

// Both stages: every thread gets op(...op(init, warp 0), ..., warp kThreads/32 - 1).
template <int kThreads, typename T, typename Op>
__device__ __forceinline__ T BlockAllReduce(T v, T init, T* scratch, Op op) {
  BlockReduceToScratch(v, scratch, op);
  return FoldWarps<kThreads / kWarpSize>(init, scratch, op);
}

template <int kThreads, typename T>
__device__ __forceinline__ T BlockSum(T v, T* scratch) {
  return BlockAllReduce<kThreads>(v, T(0), scratch, SumOp{});
}

// ---------------------------------------------------------------------------------------------
// Element i of an array that holds float or bf16 (the tensor's dtype, chosen at run time), as
// float; and the matching store, rounding to nearest for bf16.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float LoadF32(const void* p, int64_t i, bool bf16) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]) : static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void StoreF32(void* p, int64_t i, float v, bool bf16) {
  if (bf16)
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
  else
    static_cast<float*>(p)[i] = v;
}

}  // namespace medgr2::kernels
