// info(): what this build of the addon runs on -- libtorch version, CUDA devices, what was
// compiled in, thread counts. Backs `medgr2 info`.
#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <thread>

#include "common/nvtx.h"
#include "common/threads.h"

#ifdef MEDGR2_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace medgr2 {

namespace {

Napi::Array CudaDevices(Napi::Env env) {
  auto devices = Napi::Array::New(env);
#ifdef MEDGR2_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    auto d = Napi::Object::New(env);
    d.Set("index", i);
    d.Set("name", prop.name);
    d.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    d.Set("totalMemoryBytes", static_cast<double>(prop.totalGlobalMem));
    d.Set("multiprocessors", prop.multiProcessorCount);
    devices.Set(static_cast<uint32_t>(i), d);
  }
#endif
  return devices;
}

Napi::Value InfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  out.Set("torchVersion", TORCH_VERSION);
  out.Set("torchSource", MEDGR2_TORCH_SOURCE);
  out.Set("cudaAvailable", at::hasCUDA());
  out.Set("cudaDevices", CudaDevices(env));
  out.Set("cudaKernelsCompiled", kCudaKernelsCompiled);
  out.Set("nvtxCompiled", kNvtxCompiled);
  auto threads = Napi::Object::New(env);
  threads.Set("intraOp", at::get_num_threads());
  threads.Set("interOp", at::get_num_interop_threads());
  threads.Set("hardware", static_cast<double>(std::thread::hardware_concurrency()));
  out.Set("threads", threads);
  out.Set("napiVersion", NAPI_VERSION);
  return out;
}

// setNumThreads(n): libtorch's intra-op thread pool size (process-wide).
Napi::Value SetNumThreadsJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1) {
    throw Napi::TypeError::New(info.Env(), "setNumThreads: argument 'n' must be a positive integer");
  }
  SetIntraOpThreads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, InfoJs, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreadsJs, "setNumThreads"));
}

}  // namespace medgr2
