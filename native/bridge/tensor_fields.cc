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
  if (auto s = OptString(o, "importanceSamplingLevel", where, name)) {
    auto l = ops::ParseImportanceSamplingLevel(*s);
    if (!l)
      ThrowArgError(o.Env(), where, prefix + "importanceSamplingLevel", "\"token\" or \"sequence\"", "\"" + *s + "\"");
    opts.level = *l;
  }
  if (auto v = OptNumber(o, "delta", where, name)) opts.delta = *v;
  if (auto s = OptString(o, "policyLoss", where, name)) {
    auto pl = ops::ParsePolicyLoss(*s);
    if (!pl) ThrowArgError(o.Env(), where, prefix + "policyLoss", "\"clip\" or \"cispo\"", "\"" + *s + "\"");
    opts.policy_loss = *pl;
  }
  return opts;
}

Napi::Object LossStatsJs(Napi::Env env, const ops::LossStats& s) {
  auto o = Napi::Object::New(env);
  o.Set("clipLowFraction", s.clip_low_fraction);
  o.Set("clipHighFraction", s.clip_high_fraction);
  o.Set("klMean", s.kl_mean);
  o.Set("ratioMean", s.ratio_mean);
  o.Set("entropyMean", s.entropy_mean);
  o.Set("activeTokens", s.active_tokens);
  o.Set("seqClipLowFraction", s.seq_clip_low_fraction);
  o.Set("seqClipHighFraction", s.seq_clip_high_fraction);
  o.Set("logRatioAbsMean", s.log_ratio_abs_mean);
  return o;
}

}  // namespace medgr2
