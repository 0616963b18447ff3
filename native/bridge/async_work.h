// Heavy native calls run off the JS thread and return Promises.
//
// RunAsync(env, name, state, keepAlive, work, finish):
//   - `work` runs on a libuv pool thread with libtorch's per-thread state set from `state`
//     (grad mode is thread-local in libtorch, and a fresh pool thread has it ON, so every worker
//     sets it explicitly; the device guard selects the CUDA device for the whole call);
//     and the intra-op thread count set by at::set_num_threads is applied to the pool thread;
//   - `finish` turns the result into a JS value on the JS thread;
//   - every value in `keepAlive` (the JS handles the call uses) is referenced until the promise
//     settles, so neither the handles nor what they own can be collected mid-call.
// Exceptions from `work` reject the promise: ArgumentError as a TypeError, everything else as an
// Error with the native message.
#pragma once

#include <napi.h>

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bridge/errors.h"
#include "common/threads.h"

namespace medgr2 {

struct ThreadState {
  bool grad_enabled = false;
  std::optional<c10::Device> device;
};

template <typename R>
class TorchWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<R()>;
  using Finish = std::function<Napi::Value(Napi::Env, R&)>;

  TorchWorker(Napi::Env env, const char* name, ThreadState state, const std::vector<Napi::Value>& keep_alive, Work work,
              Finish finish)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(state),
        work_(std::move(work)),
        finish_(std::move(finish)) {
    // References can only be made to objects (Node-API 8); primitives need no keeping alive.
    for (const auto& v : keep_alive) {
      if (v.IsObject() || v.IsFunction()) keep_alive_.push_back(Napi::Persistent(v));
    }
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      ApplyIntraOpThreads();
      at::AutoGradMode grad_mode(state_.grad_enabled);
      c10::OptionalDeviceGuard device_guard;
      if (state_.device && !state_.device->is_cpu()) device_guard.reset_device(*state_.device);
      result_.emplace(work_());
    } catch (const ArgumentError& e) {
      type_error_ = true;
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(NativeErrorMessage(e));
    } catch (...) {
      SetError("unknown native exception");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(finish_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, NativeErrorMessage(e)).Value());
    }
    result_.reset();  // drop tensors on the JS thread, where borrowed buffers can be released at once
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (type_error_) {
      deferred_.Reject(Napi::TypeError::New(env, e.Message()).Value());
    } else {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  ThreadState state_;
  Work work_;
  Finish finish_;
  std::optional<R> result_;
  std::vector<Napi::Reference<Napi::Value>> keep_alive_;
  bool type_error_ = false;
};

template <typename R>
Napi::Promise RunAsync(Napi::Env env, const char* name, ThreadState state, const std::vector<Napi::Value>& keep_alive,
                       std::function<R()> work, std::function<Napi::Value(Napi::Env, R&)> finish) {
  auto* worker = new TorchWorker<R>(env, name, state, keep_alive, std::move(work), std::move(finish));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK / OnError
  return promise;
}

}  // namespace medgr2
