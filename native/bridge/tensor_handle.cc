#include "bridge/tensor_handle.h"

#include <sstream>

#include "bridge/addon_state.h"
#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/dtype.h"
#include "bridge/errors.h"
#include "bridge/typed_array.h"

namespace medgr2 {

namespace {

Napi::Array IntArray(Napi::Env env, at::IntArrayRef values) {
  auto arr = Napi::Array::New(env, values.size());
  for (size_t k = 0; k < values.size(); ++k) arr.Set(static_cast<uint32_t>(k), Napi::Number::New(env, values[k]));
  return arr;
}

std::string DeviceString(const at::Tensor& t) {
  return t.device().str();
}

}  // namespace

c10::Device ParseDevice(Napi::Env env, const std::string& text, const char* where, const char* name) {
  if (text != "cpu" && text.rfind("cuda", 0) != 0) {
    ThrowArgError(env, where, name, "\"cpu\", \"cuda\" or \"cuda:N\"", "\"" + text + "\"");
  }
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text);
  } catch (const c10::Error&) {
    ThrowArgError(env, where, name, "\"cpu\", \"cuda\" or \"cuda:N\"", "\"" + text + "\"");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw Napi::Error::New(env, std::string(where) + ": CUDA is not available (libtorch " +
                                    "built without CUDA, or no NVIDIA GPU/driver); use device \"cpu\"");
  }
  return device;
}

void TensorHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Tensor",
                                   {
                                       InstanceAccessor<&TensorHandle::Shape>("shape"),
                                       InstanceAccessor<&TensorHandle::Strides>("strides"),
                                       InstanceAccessor<&TensorHandle::Dtype>("dtype"),
                                       InstanceAccessor<&TensorHandle::Device>("device"),
                                       InstanceAccessor<&TensorHandle::Numel>("numel"),
                                       InstanceAccessor<&TensorHandle::Nbytes>("nbytes"),
                                       InstanceAccessor<&TensorHandle::IsContiguous>("isContiguous"),
                                       InstanceAccessor<&TensorHandle::IsDisposed>("disposed"),
                                       InstanceMethod<&TensorHandle::ToArray>("toArray"),
                                       InstanceMethod<&TensorHandle::To>("to"),
                                       InstanceMethod<&TensorHandle::Transpose>("transpose"),
                                       InstanceMethod<&TensorHandle::Contiguous>("contiguous"),
                                       InstanceMethod<&TensorHandle::Dispose>("dispose"),
                                       InstanceMethod<&TensorHandle::ToString>("toString"),
                                   });
  GetAddonState(env).tensor_constructor = Napi::Persistent(cls);
  exports.Set("Tensor", cls);
}

Napi::Object TensorHandle::Wrap(Napi::Env env, at::Tensor tensor, bool report_memory) {
  auto* boxed = new at::Tensor(std::move(tensor));
  auto external = Napi::External<at::Tensor>::New(env, boxed, [](Napi::Env, at::Tensor* t) { delete t; });
  Napi::Object obj = GetAddonState(env).tensor_constructor.New({external, Napi::Boolean::New(env, report_memory)});
  return obj;
}

bool TensorHandle::IsHandle(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  Napi::Env env = v.Env();
  return v.As<Napi::Object>().InstanceOf(GetAddonState(env).tensor_constructor.Value());
}

at::Tensor TensorHandle::Get(const Napi::Value& v, const char* where, const char* name) {
  if (!IsHandle(v)) ThrowArgError(v.Env(), where, name, "a Tensor", DescribeJsValue(v));
  TensorHandle* h = Unwrap(v.As<Napi::Object>());
  if (h->disposed_) ThrowArgError(v.Env(), where, name, "a live Tensor", "a disposed Tensor");
  return h->tensor_;
}

// new Tensor(array, shape?, { dtype?, copy?, strides? })  -- from JS
// new Tensor(External<at::Tensor>, reportMemory)          -- from Wrap()
TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "new Tensor";
  MEDGR2_JS_TRY
  if (info.Length() >= 1 && info[0].IsExternal()) {
    tensor_ = std::move(*info[0].As<Napi::External<at::Tensor>>().Data());
    bool report = info.Length() < 2 || info[1].ToBoolean().Value();
    if (report && tensor_.defined() && tensor_.has_storage()) reported_bytes_ = tensor_.storage().nbytes();
  } else {
    Napi::Value arr = Arg(info, 0);
    if (!arr.IsTypedArray()) {
      ThrowArgError(env, kWhere, "array",
                    "a TypedArray (Float32Array, Float64Array, Int32Array, "
                    "BigInt64Array, Uint8Array, or Uint16Array with dtype bf16/f16)",
                    DescribeJsValue(arr));
    }
    auto typed = arr.As<Napi::TypedArray>();
    Napi::Object opts = OptObject(info, 2, kWhere, "options");
    FromArrayOptions from;
    if (auto name = OptString(opts, "dtype", kWhere, "options")) {
      auto d = DtypeByName(*name);
      if (!d)
        ThrowArgError(env, kWhere, "options.dtype", std::string("one of ") + SupportedDtypeList(), "\"" + *name + "\"");
      from.dtype = *d;
    } else {
      auto d = DefaultDtypeFor(typed.TypedArrayType());
      if (!d) {
        ThrowArgError(env, kWhere, "options.dtype",
                      typed.TypedArrayType() == napi_uint16_array
                          ? "\"bf16\" or \"f16\" for a Uint16Array"
                          : std::string("given for this array type (supported: ") + SupportedDtypeList() + ")",
                      "none");
      }
      from.dtype = *d;
    }
    Napi::Value shape = Arg(info, 1);
    from.shape = shape.IsUndefined() ? std::vector<int64_t>{static_cast<int64_t>(typed.ElementLength())}
                                     : ReadIntList(shape, kWhere, "shape", true);
    if (!opts.Get("strides").IsUndefined())
      from.strides = ReadIntList(opts.Get("strides"), kWhere, "options.strides", false);
    from.copy = OptBool(opts, "copy", kWhere, "options").value_or(false);
    tensor_ = TensorFromTypedArray(env, typed, from, kWhere, "array");
    // A borrowed array's memory is V8's own and already counted; a copy is new native memory.
    if (from.copy || tensor_.numel() == 0) reported_bytes_ = tensor_.storage().nbytes();
  }
  if (reported_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  MEDGR2_JS_CATCH(env)
}

TensorHandle::~TensorHandle() {
  Release();
}

void TensorHandle::Release() {
  if (reported_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
    reported_bytes_ = 0;
  }
  tensor_ = at::Tensor();
  disposed_ = true;
}

const at::Tensor& TensorHandle::Live(const Napi::CallbackInfo& info, const char* where) const {
  if (disposed_) throw Napi::Error::New(info.Env(), std::string(where) + ": the Tensor has been disposed");
  return tensor_;
}

Napi::Value TensorHandle::Shape(const Napi::CallbackInfo& info) {
  return IntArray(info.Env(), Live(info, "Tensor.shape").sizes());
}
Napi::Value TensorHandle::Strides(const Napi::CallbackInfo& info) {
  return IntArray(info.Env(), Live(info, "Tensor.strides").strides());
}
Napi::Value TensorHandle::Dtype(const Napi::CallbackInfo& info) {
  auto d = DtypeByScalarType(Live(info, "Tensor.dtype").scalar_type());
  return Napi::String::New(info.Env(), d ? d->name : c10::toString(tensor_.scalar_type()));
}
Napi::Value TensorHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DeviceString(Live(info, "Tensor.device")));
}
Napi::Value TensorHandle::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Live(info, "Tensor.numel").numel()));
}
Napi::Value TensorHandle::Nbytes(const Napi::CallbackInfo& info) {
  const at::Tensor& t = Live(info, "Tensor.nbytes");
  return Napi::Number::New(info.Env(), static_cast<double>(t.numel() * t.element_size()));
}
Napi::Value TensorHandle::IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Live(info, "Tensor.isContiguous").is_contiguous());
}
Napi::Value TensorHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

Napi::Value TensorHandle::ToArray(const Napi::CallbackInfo& info) {
  MEDGR2_JS_TRY
  return TypedArrayFromTensor(info.Env(), Live(info, "Tensor.toArray"));
  MEDGR2_JS_CATCH(info.Env())
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  at::Tensor src = Live(info, "Tensor.to");
  c10::Device device = ParseDevice(env, ArgString(info, 0, "Tensor.to", "device"), "Tensor.to", "device");
  ThreadState state;
  state.device = device.is_cuda() ? device : src.device();
  return RunAsync<at::Tensor>(
      env, "medgr2.Tensor.to", state, {info.This()},
      [src, device]() { return src.to(device, /*non_blocking=*/false, /*copy=*/true); },
      [](Napi::Env e, at::Tensor& out) -> Napi::Value { return TensorHandle::Wrap(e, std::move(out)); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value TensorHandle::Transpose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  const at::Tensor& t = Live(info, "Tensor.transpose");
  int64_t d0 = ArgInteger(info, 0, "Tensor.transpose", "dim0");
  int64_t d1 = ArgInteger(info, 1, "Tensor.transpose", "dim1");
  const int64_t nd = t.dim();
  for (auto [d, name] : {std::pair{d0, "dim0"}, std::pair{d1, "dim1"}}) {
    if (d < -nd || d >= nd) {
      ThrowArgError(env, "Tensor.transpose", name, "in [" + std::to_string(-nd) + ", " + std::to_string(nd) + ")",
                    std::to_string(d));
    }
  }
  return Wrap(env, t.transpose(d0, d1), /*report_memory=*/false);
  MEDGR2_JS_CATCH(env)
}

Napi::Value TensorHandle::Contiguous(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  const at::Tensor& t = Live(info, "Tensor.contiguous");
  at::Tensor c = t.contiguous();
  const bool fresh = !c.is_same(t);
  return Wrap(env, std::move(c), fresh);
  MEDGR2_JS_CATCH(env)
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::ToString(const Napi::CallbackInfo& info) {
  if (disposed_) return Napi::String::New(info.Env(), "Tensor(disposed)");
  std::ostringstream s;
  s << "Tensor(shape=" << tensor_.sizes()
    << ", dtype=" << DtypeByScalarType(tensor_.scalar_type()).value_or(DtypeInfo{"?", {}, {}}).name
    << ", device=" << DeviceString(tensor_) << ")";
  return Napi::String::New(info.Env(), s.str());
}

}  // namespace medgr2
