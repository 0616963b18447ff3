#include "bridge/typed_array.h"

#include <cstring>

#include "bridge/addon_state.h"
#include "bridge/args.h"
#include "bridge/errors.h"

namespace medgr2 {

namespace {

// What a borrowed storage holds on to. A napi reference may only be deleted on its env's thread,
// so a storage that dies on another thread (say an AsyncWorker dropping the last view) hands the
// delete back to the JS thread through the env's release queue.
struct KeptBuffer {
  Napi::Reference<Napi::Value> ref;
  std::thread::id js_thread;
  Napi::ThreadSafeFunction release_queue;
};

void ReleaseKeptBuffer(void* ctx) {
  auto* kept = static_cast<KeptBuffer*>(ctx);
  if (std::this_thread::get_id() == kept->js_thread) {
    delete kept;
    return;
  }
  napi_status st =
      kept->release_queue.NonBlockingCall(kept, [](Napi::Env, Napi::Function, KeptBuffer* k) { delete k; });
  // The queue is closed only while the env is being torn down; V8 frees the buffer then anyway.
  (void)st;
}

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides(sizes.size());
  int64_t s = 1;
  for (size_t k = sizes.size(); k-- > 0;) {
    strides[k] = s;
    s *= std::max<int64_t>(sizes[k], 1);
  }
  return strides;
}

std::string ShapeString(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

}  // namespace

int64_t StridedExtent(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  int64_t extent = 1;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] == 0) return 0;
    extent += (sizes[k] - 1) * strides[k];
  }
  return extent;
}

at::Tensor TensorFromTypedArray(Napi::Env env, const Napi::TypedArray& array, const FromArrayOptions& opts,
                                const char* where, const char* name) {
  if (array.TypedArrayType() != opts.dtype.js_type) {
    ThrowArgError(env, where, name,
                  std::string("a ") + TypedArrayName(opts.dtype.js_type) + " for dtype " + opts.dtype.name,
                  TypedArrayName(array.TypedArrayType()));
  }
  const auto& sizes = opts.shape;
  const std::vector<int64_t> strides = opts.strides ? *opts.strides : ContiguousStrides(sizes);
  if (strides.size() != sizes.size()) {
    ThrowArgError(env, where, "strides", "as many entries as shape " + ShapeString(sizes), ShapeString(strides));
  }
  for (int64_t st : strides) {
    if (st < 0) ThrowArgError(env, where, "strides", "non-negative", ShapeString(strides));
  }
  const int64_t length = static_cast<int64_t>(array.ElementLength());
  const int64_t extent = StridedExtent(sizes, strides);
  const bool contiguous_default = !opts.strides.has_value();
  if (contiguous_default ? extent != length : extent > length) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    ThrowArgError(env, where, name,
                  contiguous_default ? "of length " + std::to_string(numel) + " for shape " + ShapeString(sizes)
                                     : "at least " + std::to_string(extent) + " elements for shape " +
                                           ShapeString(sizes) + " and strides " + ShapeString(strides),
                  TypedArrayName(array.TypedArrayType()) + std::string("(") + std::to_string(length) + ")");
  }
  auto options = at::TensorOptions().dtype(opts.dtype.scalar_type);
  if (extent == 0) return at::empty(sizes, options);

  void* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (opts.copy) {
    return at::from_blob(data, sizes, strides, options).clone();
  }
  AddonState& state = GetAddonState(env);
  auto* kept = new KeptBuffer{Napi::Persistent(Napi::Value(array.ArrayBuffer())), state.js_thread, state.release_queue};
  return at::from_blob(
      data, sizes, strides, [kept](void*) { ReleaseKeptBuffer(kept); }, options);
}

Napi::TypedArray TypedArrayFromTensor(Napi::Env env, const at::Tensor& tensor) {
  auto dtype = DtypeByScalarType(tensor.scalar_type());
  if (!dtype) {
    throw Napi::TypeError::New(env, std::string("toArray: dtype ") + c10::toString(tensor.scalar_type()) +
                                        " has no JS array type (supported: " + SupportedDtypeList() + ")");
  }
  at::Tensor host = tensor.to(at::kCPU).contiguous();
  const size_t count = static_cast<size_t>(host.numel());
  const size_t nbytes = count * host.element_size();
  auto buffer = Napi::ArrayBuffer::New(env, nbytes);
  if (nbytes) std::memcpy(buffer.Data(), host.data_ptr(), nbytes);
  napi_value out;
  napi_status st = napi_create_typedarray(env, dtype->js_type, count, buffer, 0, &out);
  NAPI_THROW_IF_FAILED(env, st, Napi::TypedArray());
  return Napi::TypedArray(env, out);
}

Napi::TypedArray ArgTypedArray(const Napi::Value& v, napi_typedarray_type expected, const char* where,
                               const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != expected) {
    ThrowArgError(v.Env(), where, name, std::string("a ") + TypedArrayName(expected), DescribeJsValue(v));
  }
  return v.As<Napi::TypedArray>();
}

}  // namespace medgr2
