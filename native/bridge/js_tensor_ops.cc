// JS bindings of the small general tensor ops: ops.scaleAdd, ops.matmul, and the NVTX hooks that
// let a TypeScript loop mark its phases for nsys.
#include <napi.h>

#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/errors.h"
#include "bridge/tensor_handle.h"
#include "common/nvtx.h"
#include "ops/scale_add.h"

#ifdef MEDGR2_WITH_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace medgr2 {

namespace {

ThreadState StateFor(const at::Tensor& t) {
  ThreadState s;
  s.device = t.device();
  return s;
}

// ops.scaleAdd(x: Tensor, a: number, b: number): Promise<Tensor>
Napi::Value ScaleAddJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  at::Tensor x = TensorHandle::Get(Arg(info, 0), "ops.scaleAdd", "x");
  double a = ArgNumber(info, 1, "ops.scaleAdd", "a");
  double b = ArgNumber(info, 2, "ops.scaleAdd", "b");
  return RunAsync<at::Tensor>(
      env, "medgr2.ops.scaleAdd", StateFor(x), {info[0]}, [x, a, b]() { return ops::ScaleAdd(x, a, b); },
      [](Napi::Env e, at::Tensor& y) -> Napi::Value { return TensorHandle::Wrap(e, std::move(y)); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// ops.scaleAddUsesKernel(x: Tensor): boolean -- whether the CUDA kernel (not the reference) runs.
Napi::Value ScaleAddUsesKernelJs(const Napi::CallbackInfo& info) {
  at::Tensor x = TensorHandle::Get(Arg(info, 0), "ops.scaleAddUsesKernel", "x");
  return Napi::Boolean::New(info.Env(), ops::ScaleAddUsesKernel(x));
}

// ops.matmul(a: Tensor, b: Tensor): Promise<Tensor>
Napi::Value MatmulJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  at::Tensor a = TensorHandle::Get(Arg(info, 0), "ops.matmul", "a");
  at::Tensor b = TensorHandle::Get(Arg(info, 1), "ops.matmul", "b");
  if (a.dim() < 1 || b.dim() < 1 || a.size(-1) != b.size(b.dim() >= 2 ? -2 : 0)) {
    std::ostringstream got;
    got << a.sizes() << " and " << b.sizes();
    ThrowArgError(env, "ops.matmul", "b", "a tensor whose rows match a's columns", got.str());
  }
  return RunAsync<at::Tensor>(
      env, "medgr2.ops.matmul", StateFor(a), {info[0], info[1]}, [a, b]() { return at::matmul(a, b); },
      [](Napi::Env e, at::Tensor& y) -> Napi::Value { return TensorHandle::Wrap(e, std::move(y)); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value NvtxPushJs(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "nvtx.push", "name");
#ifdef MEDGR2_WITH_NVTX
  nvtxRangePushA(name.c_str());
#endif
  return info.Env().Undefined();
}

Napi::Value NvtxPopJs(const Napi::CallbackInfo& info) {
#ifdef MEDGR2_WITH_NVTX
  nvtxRangePop();
#endif
  return info.Env().Undefined();
}

}  // namespace

void RegisterTensorOps(Napi::Env env, Napi::Object exports) {
  auto ops = Napi::Object::New(env);
  ops.Set("scaleAdd", Napi::Function::New(env, ScaleAddJs, "scaleAdd"));
  ops.Set("scaleAddUsesKernel", Napi::Function::New(env, ScaleAddUsesKernelJs, "scaleAddUsesKernel"));
  ops.Set("matmul", Napi::Function::New(env, MatmulJs, "matmul"));
  exports.Set("ops", ops);
  auto nvtx = Napi::Object::New(env);
  nvtx.Set("push", Napi::Function::New(env, NvtxPushJs, "push"));
  nvtx.Set("pop", Napi::Function::New(env, NvtxPopJs, "pop"));
  exports.Set("nvtx", nvtx);
}

}  // namespace medgr2
