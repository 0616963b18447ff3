#include "bridge/tensor_fields.h"

#include "bridge/args.h"
#include "bridge/dtype.h"
#include "bridge/errors.h"
#include "bridge/tensor_handle.h"
#include "bridge/typed_array.h"

namespace medgr2 {

at::Tensor TensorField(const Napi::Object& obj, const char* key, const char* where, bool required, bool copy) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) ThrowArgError(obj.Env(), where, key, "given (a TypedArray or a Tensor)", "undefined");
    return at::Tensor();
  }
  if (TensorHandle::IsHandle(v)) return TensorHandle::Get(v, where, key);
  if (!v.IsTypedArray()) ThrowArgError(obj.Env(), where, key, "a TypedArray or a Tensor", DescribeJsValue(v));
  auto arr = v.As<Napi::TypedArray>();
  auto dtype = DefaultDtypeFor(arr.TypedArrayType());
  if (!dtype) {
    ThrowArgError(obj.Env(), where, key, "a Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array",
                  DescribeJsValue(v));
  }
  FromArrayOptions from;
  from.dtype = *dtype;
  from.shape = {static_cast<int64_t>(arr.ElementLength())};
  from.copy = copy;
  return TensorFromTypedArray(obj.Env(), arr, from, where, key);
}

ops::LossOptions ParseLossOptions(const Napi::Object& o, const char* where, const char* name) {
  const std::string prefix = std::string(name) + ".";
  ops::LossOptions opts;
  if (auto s = OptString(o, "lossType", where, name)) {
    auto t = ops::ParseLossType(*s);
    if (!t)
      ThrowArgError(o.Env(), where, prefix + "lossType", "one of \"grpo\", \"bnpo\", \"dr_grpo\", \"dapo\"",
                    "\"" + *s + "\"");
    opts.loss_type = *t;
  }
  opts.eps_low = OptNumber(o, "epsLow", where, name).value_or(0.2);
  opts.eps_high = OptNumber(o, "epsHigh", where, name).value_or(opts.eps_low);
  opts.beta = OptNumber(o, "beta", where, name).value_or(0.0);
  if (auto s = OptString(o, "kl", where, name)) {
    auto k = ops::ParseKlEstimator(*s);
    if (!k) ThrowArgError(o.Env(), where, prefix + "kl", "one of \"k1\", \"k2\", \"k3\"", "\"" + *s + "\"");
    opts.kl = *k;
  }
  if (auto v = OptInteger(o, "maxCompletionLength", where, name)) opts.max_completion_length = *v;
  if (auto v = OptNumber(o, "numItemsInBatch", where, name)) opts.num_items_in_batch = *v;
  return opts;
}

}  // namespace medgr2
