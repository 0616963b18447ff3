#include "bridge/errors.h"

namespace medgr2 {

std::string NativeErrorMessage(const std::exception& e) {
  if (auto* torch_error = dynamic_cast<const c10::Error*>(&e)) {
    // msg() is the message without "Exception raised from ..." context and backtrace.
    return "libtorch: " + torch_error->msg();
  }
  return e.what();
}

void ThrowArgError(Napi::Env env, const std::string& where, const std::string& arg, const std::string& expected,
                   const std::string& got) {
  throw Napi::TypeError::New(env, ArgumentError::Format(where, arg, expected, got));
}

}  // namespace medgr2
