// Per-environment state of the addon (one per JS thread that loads it: main thread or worker).
// Node-API gives one instance-data slot per env, so everything per-env lives here.
#pragma once

#include <napi.h>

#include <thread>

namespace medgr2 {

struct AddonState {
  Napi::FunctionReference tensor_constructor;  // the JS class `Tensor`
  Napi::ThreadSafeFunction release_queue;      // runs deletes of JS references on the JS thread
  std::thread::id js_thread;
};

// Creates the state for `env` (called once from module init).
AddonState& CreateAddonState(Napi::Env env);
AddonState& GetAddonState(Napi::Env env);

}  // namespace medgr2
