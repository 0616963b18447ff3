// TypedArray <-> at::Tensor.
//
// TypedArray -> tensor borrows the array's memory by default (no copy): the tensor's storage holds a
// reference to the ArrayBuffer, released when the storage dies, so the buffer lives as long as any
// tensor or view of it. A borrowed buffer must not be detached (transferred to a worker) while a
// tensor uses it; pass copy: true when that cannot be promised. Empty arrays are always copied
// (there is nothing to borrow).
//
// Tensor -> TypedArray always copies into a fresh ArrayBuffer that JS owns: a JS array never aliases
// memory that libtorch may reuse or free.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <optional>
#include <vector>

#include "bridge/dtype.h"

namespace medgr2 {

struct FromArrayOptions {
  std::vector<int64_t> shape;                   // the tensor's sizes
  std::optional<std::vector<int64_t>> strides;  // in elements; default: contiguous
  DtypeInfo dtype;
  bool copy = false;
};

at::Tensor TensorFromTypedArray(Napi::Env env, const Napi::TypedArray& array, const FromArrayOptions& opts,
                                const char* where, const char* name);

// Copies any tensor (any device, any layout) into a new TypedArray of its dtype's JS type.
Napi::TypedArray TypedArrayFromTensor(Napi::Env env, const at::Tensor& tensor);

// A TypedArray argument of the expected JS type, for the ops' TypedArray APIs.
Napi::TypedArray ArgTypedArray(const Napi::Value& v, napi_typedarray_type expected, const char* where,
                               const char* name);

// The number of elements a (sizes, strides) view reaches into its buffer: 0 when empty.
int64_t StridedExtent(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides);

}  // namespace medgr2
