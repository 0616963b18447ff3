// Error mapping between libtorch / the standard library and JavaScript.
//
// Every native entry point runs its body inside MEDGR2_JS_TRY / MEDGR2_JS_CATCH(env): a c10::Error
// becomes a JS Error with libtorch's message (without the C++ backtrace, which means nothing to a
// JS caller), a std::exception becomes a JS Error with what(). Argument errors are thrown by
// ThrowArgError so that every one of them names the argument and what was expected.
#pragma once

#include <napi.h>

#include <c10/util/Exception.h>

#include "common/argument_error.h"

#include <exception>
#include <string>

namespace medgr2 {

// The message of a native exception as a JS user should read it.
std::string NativeErrorMessage(const std::exception& e);

// Throws a TypeError: "<where>: argument '<arg>' must be <expected>[, got <got>]".
[[noreturn]] void ThrowArgError(Napi::Env env, const std::string& where, const std::string& arg,
                                const std::string& expected, const std::string& got = "");

}  // namespace medgr2

#define MEDGR2_JS_TRY try {
#define MEDGR2_JS_CATCH(env)                                      \
  }                                                               \
  catch (const Napi::Error&) {                                    \
    throw;                                                        \
  }                                                               \
  catch (const medgr2::ArgumentError& e) {                        \
    throw Napi::TypeError::New((env), e.what());                  \
  }                                                               \
  catch (const std::exception& e) {                               \
    throw Napi::Error::New((env), medgr2::NativeErrorMessage(e)); \
  }

// For functions that return a Promise: errors (argument errors included) reject the promise instead
// of throwing synchronously, so `await f(bad)` and `f(bad).catch()` both see them.
#define MEDGR2_JS_CATCH_ASYNC(env)                                                                         \
  }                                                                                                        \
  catch (const Napi::Error& e) {                                                                           \
    return medgr2::RejectedPromise((env), e.Value());                                                      \
  }                                                                                                        \
  catch (const medgr2::ArgumentError& e) {                                                                 \
    return medgr2::RejectedPromise((env), Napi::TypeError::New((env), e.what()).Value());                  \
  }                                                                                                        \
  catch (const std::exception& e) {                                                                        \
    return medgr2::RejectedPromise((env), Napi::Error::New((env), medgr2::NativeErrorMessage(e)).Value()); \
  }

namespace medgr2 {
inline Napi::Value RejectedPromise(Napi::Env env, Napi::Value error) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(error);
  return deferred.Promise();
}
}  // namespace medgr2
