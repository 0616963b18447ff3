#include "bridge/addon_state.h"

namespace medgr2 {

AddonState& CreateAddonState(Napi::Env env) {
  auto* state = new AddonState();
  state->js_thread = std::this_thread::get_id();
  // A thread-safe function whose JS body does nothing: only its native callbacks are used (to
  // release ArrayBuffer references from other threads). Unref'd: it never keeps the process alive.
  auto noop = Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
  state->release_queue = Napi::ThreadSafeFunction::New(env, noop, "medgr2.releaseQueue", 0, 1);
  state->release_queue.Unref(env);
  env.SetInstanceData<AddonState>(state);  // deleted by Node-API when the env is torn down
  return *state;
}

AddonState& GetAddonState(Napi::Env env) {
  return *env.GetInstanceData<AddonState>();
}

}  // namespace medgr2
