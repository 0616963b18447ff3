// Module registration only: each part of the addon registers its own exports.
#include <napi.h>

#include "bridge/addon_state.h"
#include "bridge/tensor_handle.h"
#include "common/threads.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace medgr2 {
void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterTensorOps(Napi::Env env, Napi::Object exports);
void RegisterGrpo(Napi::Env env, Napi::Object exports);
void RegisterModel(Napi::Env env, Napi::Object exports);
void RegisterSafetensors(Napi::Env env, Napi::Object exports);
void RegisterDistributed(Napi::Env env, Napi::Object exports);
}  // namespace medgr2

// libtorch's OpenMP pool may start with one thread (Debian's does); use every core unless the
// user chose a count (OMP_NUM_THREADS, or MEDGR2_NUM_THREADS which wins).
static void ChooseThreadCount() {
  if (const char* n = std::getenv("MEDGR2_NUM_THREADS")) {
    if (std::atoi(n) > 0) medgr2::SetIntraOpThreads(std::atoi(n));
    return;
  }
  if (std::getenv("OMP_NUM_THREADS")) return;
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0 && at::get_num_threads() < static_cast<int>(hw)) medgr2::SetIntraOpThreads(static_cast<int>(hw));
}

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  static const bool threads_chosen = (ChooseThreadCount(), true);
  (void)threads_chosen;
  medgr2::CreateAddonState(env);
  medgr2::TensorHandle::Init(env, exports);
  medgr2::RegisterInfo(env, exports);
  medgr2::RegisterTensorOps(env, exports);
  medgr2::RegisterGrpo(env, exports);
  medgr2::RegisterModel(env, exports);
  medgr2::RegisterSafetensors(env, exports);
  medgr2::RegisterDistributed(env, exports);
  return exports;
}

NODE_API_MODULE(medgr2, InitAddon)
