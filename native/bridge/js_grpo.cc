// JS bindings of the GRPO ops (exports.grpo). Every tensor input may be a TypedArray (borrowed) or
// a Tensor handle. The plain names (advantages, loss, lossPacked, fusedLogprob, fusedLogprobBackward,
// policyGradient) run synchronously and return TypedArrays -- for scripts and tests; the *Async
// names run on the libuv pool and resolve to Tensor handles -- for the trainer.
#include <napi.h>
#include <ATen/core/grad_mode.h>

#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/dtype.h"
#include "bridge/errors.h"
#include "bridge/tensor_fields.h"
#include "bridge/tensor_handle.h"
#include "bridge/typed_array.h"
#include "ops/fused_logprob.h"
#include "ops/grpo_advantages.h"
#include "ops/grpo_loss.h"

namespace medgr2 {

namespace {

using ops::Impl;

// ----- inputs ---------------------------------------------------------------------------------

Impl ParseImplOption(const Napi::Object& opts, const char* where) {
  auto s = OptString(opts, "impl", where, "options");
  if (!s) return Impl::kAuto;
  auto impl = ops::ParseImpl(*s);
  if (!impl) ThrowArgError(opts.Env(), where, "options.impl", "\"auto\", \"reference\" or \"fused\"", "\"" + *s + "\"");
  return *impl;
}

std::optional<c10::Device> ParseDeviceOption(const Napi::Object& opts, const char* where) {
  auto s = OptString(opts, "device", where, "options");
  if (!s) return std::nullopt;
  return ParseDevice(opts.Env(), *s, where, "options.device");
}

at::Tensor OnDevice(const at::Tensor& t, const std::optional<c10::Device>& device) {
  return (t.defined() && device) ? t.to(*device) : t;
}

ops::LogprobOptions ParseLogprobOptions(const Napi::Object& o, const char* where) {
  ops::LogprobOptions opts;
  opts.temperature = OptNumber(o, "temperature", where, "options").value_or(1.0);
  opts.chunk_tokens = OptInteger(o, "chunkTokens", where, "options").value_or(0);
  opts.vocab_tile = OptInteger(o, "vocabTile", where, "options").value_or(0);
  return opts;
}

// ----- outputs --------------------------------------------------------------------------------

// Results cross back either as TypedArrays (sync forms) or as Tensor handles (async forms).
Napi::Value Out(Napi::Env env, const at::Tensor& t, bool as_handles) {
  if (as_handles) return TensorHandle::Wrap(env, t);
  return TypedArrayFromTensor(env, t);
}

// A loss and its statistics cross from the compute thread in one float64 tensor, in this order.
at::Tensor PackLoss(double loss, const ops::LossStats& s) {
  return at::tensor({loss, s.clip_low_fraction, s.clip_high_fraction, s.kl_mean, s.ratio_mean, s.entropy_mean,
                     s.active_tokens, s.seq_clip_low_fraction, s.seq_clip_high_fraction, s.log_ratio_abs_mean},
                    at::kDouble);
}

ops::LossStats UnpackStats(const at::Tensor& packed) {
  const double* v = packed.data_ptr<double>();
  ops::LossStats s;
  s.clip_low_fraction = v[1];
  s.clip_high_fraction = v[2];
  s.kl_mean = v[3];
  s.ratio_mean = v[4];
  s.entropy_mean = v[5];
  s.active_tokens = v[6];
  s.seq_clip_low_fraction = v[7];
  s.seq_clip_high_fraction = v[8];
  s.log_ratio_abs_mean = v[9];
  return s;
}

// ----- the ops as (parse on the JS thread) -> (compute anywhere) -> (convert on the JS thread) ----

struct Call {
  std::function<std::vector<at::Tensor>()> compute;                              // the work
  std::function<Napi::Value(Napi::Env, std::vector<at::Tensor>&, bool)> finish;  // results -> JS
  std::optional<c10::Device> device;
};

Napi::Value RunSync(Napi::Env env, const Call& call) {
  std::vector<at::Tensor> out = call.compute();
  for (auto& t : out)
    if (t.defined() && call.device) t = t.cpu();
  return call.finish(env, out, false);
}

Napi::Value RunAsyncCall(const Napi::CallbackInfo& info, const char* name, Call call, at::Device device) {
  ThreadState state;
  state.device = device;
  std::vector<Napi::Value> keep;
  for (size_t i = 0; i < info.Length(); ++i) keep.push_back(info[i]);
  return RunAsync<std::vector<at::Tensor>>(
      info.Env(), name, state, keep, call.compute,
      [finish = call.finish](Napi::Env env, std::vector<at::Tensor>& out) { return finish(env, out, true); });
}

// grpo.advantages(rewards, groupSize, { scale, eps, impl, device })
Call AdvantagesCall(const Napi::CallbackInfo& info, const char* where, at::Device* device_out) {
  Napi::Env env = info.Env();
  Napi::Value rv = Arg(info, 0);
  auto holder = Napi::Object::New(env);
  holder.Set("rewards", rv);
  at::Tensor rewards = TensorField(holder, "rewards", where, true);
  ops::AdvantageOptions opts;
  opts.group_size = ArgInteger(info, 1, where, "groupSize");
  Napi::Object o = OptObject(info, 2, where, "options");
  if (auto s = OptString(o, "scale", where, "options")) {
    auto sc = ops::ParseAdvantageScale(*s);
    if (!sc) ThrowArgError(env, where, "options.scale", "one of \"group\", \"batch\", \"none\"", "\"" + *s + "\"");
    opts.scale = *sc;
  }
  opts.eps = OptNumber(o, "eps", where, "options").value_or(1e-4);
  const Impl impl = ParseImplOption(o, where);
  auto device = ParseDeviceOption(o, where);
  ops::CheckAdvantageArgs(rewards, opts, where);
  *device_out = device ? *device : rewards.device();
  Call call;
  call.device = device;
  call.compute = [rewards, opts, impl, device]() -> std::vector<at::Tensor> {
    return {ops::GrpoAdvantages(OnDevice(rewards, device), opts, impl)};
  };
  call.finish = [](Napi::Env e, std::vector<at::Tensor>& out, bool handles) { return Out(e, out[0], handles); };
  return call;
}

// grpo.loss / grpo.lossPacked: inputs -> ops::LossInputs (validated here, on the JS thread).
Call LossCall(const Napi::CallbackInfo& info, const char* where, bool packed, at::Device* device_out) {
  Napi::Env env = info.Env();
  Napi::Object in = ArgObject(info, 0, where, "inputs");
  Napi::Object o = OptObject(info, 1, where, "options");
  at::Tensor logp = TensorField(in, "logp", where, true);
  at::Tensor old = TensorField(in, "oldLogp", where, false);
  at::Tensor ref = TensorField(in, "refLogp", where, false);
  at::Tensor adv = TensorField(in, "advantages", where, true);
  at::Tensor mask = TensorField(in, "mask", where, !packed);
  at::Tensor entropy = TensorField(in, "entropy", where, false);
  at::Tensor is_weights = TensorField(in, "isWeights", where, false);
  ops::LossOptions opts = ParseLossOptions(o, where, "options");
  const Impl impl = ParseImplOption(o, where);
  auto device = ParseDeviceOption(o, where);
  if (!logp.is_floating_point())
    ThrowArgError(env, where, "logp", "floating point (Float32Array or an f32/bf16 Tensor)",
                  c10::toString(logp.scalar_type()));
  ops::LossInputs li;
  if (packed) {
    at::Tensor cu = TensorField(in, "cuSeqlens", where, true);
    if (cu.scalar_type() != at::kInt && cu.scalar_type() != at::kLong) {
      ThrowArgError(env, where, "cuSeqlens", "an Int32Array or an i32/i64 Tensor", c10::toString(cu.scalar_type()));
    }
    li = ops::PackedLossInputs(logp.reshape({-1}), old.defined() ? old.reshape({-1}) : old,
                               ref.defined() ? ref.reshape({-1}) : ref, adv, mask.defined() ? mask.reshape({-1}) : mask,
                               cu);
  } else {
    int64_t batch, seq_len;
    if (logp.dim() == 2) {
      batch = logp.size(0);
      seq_len = logp.size(1);
    } else {
      batch = OptInteger(in, "batch", where, "inputs").value_or(-1);
      seq_len = OptInteger(in, "seqLen", where, "inputs").value_or(-1);
      if (batch < 0)
        ThrowArgError(env, where, "inputs.batch", "a non-negative integer (or logp shaped [B, T])", "undefined");
      if (seq_len < 0)
        ThrowArgError(env, where, "inputs.seqLen", "a non-negative integer (or logp shaped [B, T])", "undefined");
    }
    const int64_t n = batch * seq_len;
    auto check_len = [&](const at::Tensor& t, const char* name) {
      if (t.defined() && t.numel() != n) {
        ThrowArgError(env, where, name,
                      "of length batch x seqLen = " + std::to_string(batch) + " x " + std::to_string(seq_len) + " = " +
                          std::to_string(n),
                      "length " + std::to_string(t.numel()));
      }
    };
    check_len(logp, "logp");
    check_len(old, "oldLogp");
    check_len(ref, "refLogp");
    check_len(mask, "mask");
    check_len(entropy, "entropy");
    check_len(is_weights, "isWeights");
    if (adv.numel() != batch) {
      ThrowArgError(env, where, "advantages", "of length batch = " + std::to_string(batch),
                    "length " + std::to_string(adv.numel()));
    }
    auto as2d = [&](const at::Tensor& t) { return t.defined() ? t.reshape({batch, seq_len}) : t; };
    li = ops::PaddedLossInputs(as2d(logp), as2d(old), as2d(ref), adv.reshape({-1}), as2d(mask));
  }
  li.entropy = entropy.defined() ? entropy.reshape({-1}) : entropy;
  li.is_weights = is_weights.defined() ? is_weights.reshape({-1}) : is_weights;
  ops::CheckLossInputs(li, opts, where);
  *device_out = device ? *device : logp.device();
  Call call;
  call.device = device;
  call.compute = [li, opts, impl, device]() -> std::vector<at::Tensor> {
    ops::LossInputs d = li;
    if (device) {
      d.logp = OnDevice(li.logp, device);
      d.old_logp = OnDevice(li.old_logp, device);
      d.ref_logp = OnDevice(li.ref_logp, device);
      d.advantages = OnDevice(li.advantages, device);
      d.mask = OnDevice(li.mask, device);
      d.offsets = OnDevice(li.offsets, device);
      d.entropy = OnDevice(li.entropy, device);
      d.is_weights = OnDevice(li.is_weights, device);
    }
    ops::LossResult r = ops::GrpoLoss(d, opts, impl);
    return {r.grad_logp, PackLoss(r.loss, r.stats)};
  };
  call.finish = [](Napi::Env e, std::vector<at::Tensor>& out, bool handles) -> Napi::Value {
    auto res = Napi::Object::New(e);
    res.Set("loss", out[1].data_ptr<double>()[0]);
    res.Set("gradLogp", Out(e, out[0], handles));
    res.Set("stats", LossStatsJs(e, UnpackStats(out[1])));
    return res;
  };
  return call;
}

// grpo.fusedLogprob({ hidden, weight, targets }, options); hidden/weight given flat as TypedArrays
// are shaped from targets.length (N) and their lengths.
struct LogprobArgs {
  at::Tensor hidden, weight, targets;
};

LogprobArgs ReadLogprobArgs(const Napi::Object& in, const char* where) {
  Napi::Env env = in.Env();
  LogprobArgs a;
  a.hidden = TensorField(in, "hidden", where, true);
  a.weight = TensorField(in, "weight", where, true);
  a.targets = TensorField(in, "targets", where, true);
  const int64_t n = a.targets.numel();
  if (a.hidden.dim() == 1) {
    if (n == 0 || a.hidden.numel() % n != 0) {
      ThrowArgError(env, where, "hidden", "of length N x H with N = targets.length = " + std::to_string(n),
                    "length " + std::to_string(a.hidden.numel()));
    }
    a.hidden = a.hidden.view({n, a.hidden.numel() / n});
  }
  if (a.weight.dim() == 1) {
    const int64_t h = a.hidden.size(1);
    if (h == 0 || a.weight.numel() % h != 0) {
      ThrowArgError(env, where, "weight", "of length V x H with H = " + std::to_string(h),
                    "length " + std::to_string(a.weight.numel()));
    }
    a.weight = a.weight.view({a.weight.numel() / h, h});
  }
  return a;
}

Call LogprobCall(const Napi::CallbackInfo& info, const char* where, at::Device* device_out) {
  Napi::Object in = ArgObject(info, 0, where, "inputs");
  Napi::Object o = OptObject(info, 1, where, "options");
  LogprobArgs a = ReadLogprobArgs(in, where);
  ops::LogprobOptions opts = ParseLogprobOptions(o, where);
  const Impl impl = ParseImplOption(o, where);
  auto device = ParseDeviceOption(o, where);
  ops::CheckLogprobArgs(a.hidden, a.weight, a.targets, opts, where);
  *device_out = device ? *device : a.hidden.device();
  Call call;
  call.device = device;
  call.compute = [a, opts, impl, device]() -> std::vector<at::Tensor> {
    auto h = OnDevice(a.hidden, device), w = OnDevice(a.weight, device), y = OnDevice(a.targets, device);
    ops::LogprobResult r =
        impl == Impl::kReference ? ops::FusedLogprobReference(h, w, y, opts) : ops::FusedLogprobForward(h, w, y, opts);
    return {r.logp, r.entropy, r.lse};
  };
  call.finish = [](Napi::Env e, std::vector<at::Tensor>& out, bool handles) -> Napi::Value {
    auto res = Napi::Object::New(e);
    res.Set("logp", Out(e, out[0], handles));
    res.Set("entropy", Out(e, out[1], handles));
    res.Set("lse", Out(e, out[2], handles));
    return res;
  };
  return call;
}

// grpo.fusedLogprobBackward({ hidden, weight, targets, gradLogp, gradEntropy?, lse?, entropy? }, options)
Call LogprobBackwardCall(const Napi::CallbackInfo& info, const char* where, at::Device* device_out) {
  Napi::Object in = ArgObject(info, 0, where, "inputs");
  Napi::Object o = OptObject(info, 1, where, "options");
  LogprobArgs a = ReadLogprobArgs(in, where);
  at::Tensor g = TensorField(in, "gradLogp", where, true);
  at::Tensor gh = TensorField(in, "gradEntropy", where, false);
  at::Tensor lse = TensorField(in, "lse", where, false);
  at::Tensor ent = TensorField(in, "entropy", where, false);
  ops::LogprobOptions opts = ParseLogprobOptions(o, where);
  const Impl impl = ParseImplOption(o, where);
  auto device = ParseDeviceOption(o, where);
  ops::CheckLogprobArgs(a.hidden, a.weight, a.targets, opts, where);
  *device_out = device ? *device : a.hidden.device();
  Call call;
  call.device = device;
  call.compute = [a, g, gh, lse, ent, opts, impl, device]() -> std::vector<at::Tensor> {
    auto h = OnDevice(a.hidden, device), w = OnDevice(a.weight, device), y = OnDevice(a.targets, device);
    ops::LogprobGrads r;
    if (impl == Impl::kReference) {
      r = ops::FusedLogprobReferenceBackward(h, w, y, OnDevice(g, device), OnDevice(gh, device), opts);
    } else {
      at::Tensor l = OnDevice(lse, device), e = OnDevice(ent, device);
      if (!l.defined() || !e.defined()) {  // not kept from the forward: recompute them
        ops::LogprobResult f = ops::FusedLogprobForward(h, w, y, opts);
        l = f.lse;
        e = f.entropy;
      }
      r = ops::FusedLogprobBackward(h, w, y, l, e, OnDevice(g, device), OnDevice(gh, device), opts);
    }
    return {r.grad_hidden, r.grad_weight};
  };
  call.finish = [](Napi::Env e, std::vector<at::Tensor>& out, bool handles) -> Napi::Value {
    auto res = Napi::Object::New(e);
    res.Set("gradHidden", Out(e, out[0], handles));
    res.Set("gradWeight", Out(e, out[1], handles));
    return res;
  };
  return call;
}

// grpo.policyGradient: the tail of a GRPO step through libtorch autograd --
// hidden, lm_head -> fused logprob -> token-level GRPO loss (packed form) -> backward.
Call PolicyGradientCall(const Napi::CallbackInfo& info, const char* where, at::Device* device_out) {
  Napi::Env env = info.Env();
  Napi::Object in = ArgObject(info, 0, where, "inputs");
  Napi::Object o = OptObject(info, 1, where, "options");
  LogprobArgs a = ReadLogprobArgs(in, where);
  at::Tensor old = TensorField(in, "oldLogp", where, false);
  at::Tensor ref = TensorField(in, "refLogp", where, false);
  at::Tensor adv = TensorField(in, "advantages", where, true);
  at::Tensor mask = TensorField(in, "mask", where, false);
  at::Tensor cu = TensorField(in, "cuSeqlens", where, true);
  if (cu.scalar_type() != at::kInt && cu.scalar_type() != at::kLong) {
    ThrowArgError(env, where, "cuSeqlens", "an Int32Array or an i32/i64 Tensor", c10::toString(cu.scalar_type()));
  }
  ops::LossOptions lopts = ParseLossOptions(o, where, "options");
  ops::LogprobOptions popts = ParseLogprobOptions(o, where);
  auto device = ParseDeviceOption(o, where);
  ops::CheckLogprobArgs(a.hidden, a.weight, a.targets, popts, where);
  // Validate the loss inputs now (with a stand-in logp of the right length and dtype).
  ops::LossInputs probe = ops::PackedLossInputs(at::zeros({a.targets.numel()}, a.hidden.options().dtype(at::kFloat)),
                                                old, ref, adv, mask, cu);
  ops::CheckLossInputs(probe, lopts, where);
  *device_out = device ? *device : a.hidden.device();
  Call call;
  call.device = device;
  call.compute = [=]() -> std::vector<at::Tensor> {
    at::AutoGradMode grad_on(true);
    at::Tensor h = OnDevice(a.hidden, device).detach().requires_grad_(true);
    at::Tensor w = OnDevice(a.weight, device).detach().requires_grad_(true);
    auto lp = ops::FusedLogprobAutograd(h, w, OnDevice(a.targets, device), popts);
    ops::LossInputs li = ops::PackedLossInputs(lp[0], OnDevice(old, device), OnDevice(ref, device),
                                               OnDevice(adv, device), OnDevice(mask, device), OnDevice(cu, device));
    li.entropy = lp[1].detach();
    ops::LossStats stats;
    at::Tensor loss = ops::GrpoLossAutograd(li, lopts, &stats);
    loss.backward();
    return {h.grad(), w.grad(), lp[0].detach(), lp[1].detach(), PackLoss(loss.item<double>(), stats)};
  };
  call.finish = [](Napi::Env e, std::vector<at::Tensor>& out, bool handles) -> Napi::Value {
    const ops::LossStats s = UnpackStats(out[4]);
    auto res = Napi::Object::New(e);
    res.Set("loss", out[4].data_ptr<double>()[0]);
    res.Set("gradHidden", Out(e, out[0], handles));
    res.Set("gradWeight", Out(e, out[1], handles));
    res.Set("logp", Out(e, out[2], handles));
    res.Set("entropy", Out(e, out[3], handles));
    res.Set("stats", LossStatsJs(e, s));
    return res;
  };
  return call;
}

// ----- entry points ---------------------------------------------------------------------------

#define MEDGR2_SYNC_ENTRY(NAME, WHERE, BUILD)        \
  Napi::Value NAME(const Napi::CallbackInfo& info) { \
    Napi::Env env = info.Env();                      \
    MEDGR2_JS_TRY                                    \
    at::Device device(at::kCPU);                     \
    Call call = BUILD;                               \
    return RunSync(env, call);                       \
    MEDGR2_JS_CATCH(env)                             \
  }

#define MEDGR2_ASYNC_ENTRY(NAME, WHERE, BUILD)                \
  Napi::Value NAME(const Napi::CallbackInfo& info) {          \
    Napi::Env env = info.Env();                               \
    MEDGR2_JS_TRY                                             \
    at::Device device(at::kCPU);                              \
    Call call = BUILD;                                        \
    call.device.reset(); /* results stay on the device */     \
    return RunAsyncCall(info, "medgr2." WHERE, call, device); \
    MEDGR2_JS_CATCH_ASYNC(env)                                \
  }

MEDGR2_SYNC_ENTRY(AdvantagesJs, "grpo.advantages", AdvantagesCall(info, "grpo.advantages", &device))
MEDGR2_SYNC_ENTRY(LossJs, "grpo.loss", LossCall(info, "grpo.loss", false, &device))
MEDGR2_SYNC_ENTRY(LossPackedJs, "grpo.lossPacked", LossCall(info, "grpo.lossPacked", true, &device))
MEDGR2_SYNC_ENTRY(LogprobJs, "grpo.fusedLogprob", LogprobCall(info, "grpo.fusedLogprob", &device))
MEDGR2_SYNC_ENTRY(LogprobBackwardJs, "grpo.fusedLogprobBackward",
                  LogprobBackwardCall(info, "grpo.fusedLogprobBackward", &device))
MEDGR2_SYNC_ENTRY(PolicyGradientJs, "grpo.policyGradient", PolicyGradientCall(info, "grpo.policyGradient", &device))

// lossAsync takes either form: packed when the inputs carry cuSeqlens, padded otherwise.
bool HasPackedInputs(const Napi::CallbackInfo& info) {
  Napi::Value in = Arg(info, 0);
  return in.IsObject() && !in.As<Napi::Object>().Get("cuSeqlens").IsUndefined();
}

MEDGR2_ASYNC_ENTRY(AdvantagesAsyncJs, "grpo.advantagesAsync", AdvantagesCall(info, "grpo.advantagesAsync", &device))
MEDGR2_ASYNC_ENTRY(LossAsyncJs, "grpo.lossAsync", LossCall(info, "grpo.lossAsync", HasPackedInputs(info), &device))
MEDGR2_ASYNC_ENTRY(LogprobAsyncJs, "grpo.fusedLogprobAsync", LogprobCall(info, "grpo.fusedLogprobAsync", &device))
MEDGR2_ASYNC_ENTRY(LogprobBackwardAsyncJs, "grpo.fusedLogprobBackwardAsync",
                   LogprobBackwardCall(info, "grpo.fusedLogprobBackwardAsync", &device))
MEDGR2_ASYNC_ENTRY(PolicyGradientAsyncJs, "grpo.policyGradientAsync",
                   PolicyGradientCall(info, "grpo.policyGradientAsync", &device))

}  // namespace

void RegisterGrpo(Napi::Env env, Napi::Object exports) {
  auto grpo = Napi::Object::New(env);
  grpo.Set("advantages", Napi::Function::New(env, AdvantagesJs, "advantages"));
  grpo.Set("loss", Napi::Function::New(env, LossJs, "loss"));
  grpo.Set("lossPacked", Napi::Function::New(env, LossPackedJs, "lossPacked"));
  grpo.Set("fusedLogprob", Napi::Function::New(env, LogprobJs, "fusedLogprob"));
  grpo.Set("fusedLogprobBackward", Napi::Function::New(env, LogprobBackwardJs, "fusedLogprobBackward"));
  grpo.Set("policyGradient", Napi::Function::New(env, PolicyGradientJs, "policyGradient"));
  grpo.Set("advantagesAsync", Napi::Function::New(env, AdvantagesAsyncJs, "advantagesAsync"));
  grpo.Set("lossAsync", Napi::Function::New(env, LossAsyncJs, "lossAsync"));
  grpo.Set("fusedLogprobAsync", Napi::Function::New(env, LogprobAsyncJs, "fusedLogprobAsync"));
  grpo.Set("fusedLogprobBackwardAsync", Napi::Function::New(env, LogprobBackwardAsyncJs, "fusedLogprobBackwardAsync"));
  grpo.Set("policyGradientAsync", Napi::Function::New(env, PolicyGradientAsyncJs, "policyGradientAsync"));
  exports.Set("grpo", grpo);
}

}  // namespace medgr2
