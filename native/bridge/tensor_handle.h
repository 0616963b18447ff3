// The JS `Tensor` class: a handle that owns one at::Tensor.
//
// JS sees shape, strides, dtype, device, numel, isContiguous and disposed; toArray() copies out;
// to(device) returns a Promise of a new handle; dispose() frees the native memory at once (the GC
// finalizer does the same for handles never disposed). Native memory owned by a handle is reported
// to V8 so that the GC feels the pressure of large tensors whose JS objects are tiny.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

namespace medgr2 {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);

  // Wraps a tensor in a new JS handle. `report_memory`: count the storage against the GC
  // (false for views and borrowed buffers, whose memory is accounted elsewhere).
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor, bool report_memory = true);
  static bool IsHandle(const Napi::Value& v);
  // The tensor of a handle argument; throws an argument error naming `name` when `v` is not a live
  // Tensor handle.
  static at::Tensor Get(const Napi::Value& v, const char* where, const char* name);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const at::Tensor& tensor() const { return tensor_; }

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Strides(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value IsContiguous(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value Nbytes(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Transpose(const Napi::CallbackInfo& info);
  Napi::Value Contiguous(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value ToString(const Napi::CallbackInfo& info);

  const at::Tensor& Live(const Napi::CallbackInfo& info, const char* where) const;
  void Release();

  at::Tensor tensor_;
  bool disposed_ = false;
  int64_t reported_bytes_ = 0;
};

// Parses "cpu", "cuda", "cuda:N"; a clear error when CUDA is asked for but absent.
c10::Device ParseDevice(Napi::Env env, const std::string& text, const char* where, const char* name);

}  // namespace medgr2
