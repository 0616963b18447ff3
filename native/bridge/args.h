// Reading JS arguments into C++ values, each failure naming the argument and what was expected.
// `where` is the JS-visible function name ("Tensor.to", "grpo.loss", ...).
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace medgr2 {

std::string DescribeJsValue(const Napi::Value& v);  // "a string", "undefined", "Float32Array(12)"

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i);  // undefined when absent
Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name);
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name);
int64_t ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name);

// Reads `value` (named `name`) as a list of non-negative integers (a shape) or of integers (strides).
std::vector<int64_t> ReadIntList(const Napi::Value& value, const char* where, const char* name, bool non_negative);

// Optional fields of an options object: absent or undefined gives std::nullopt; a present value of
// the wrong type throws naming "<name>.<key>".
std::optional<double> OptNumber(const Napi::Object& obj, const char* key, const char* where, const char* name);
std::optional<int64_t> OptInteger(const Napi::Object& obj, const char* key, const char* where, const char* name);
std::optional<bool> OptBool(const Napi::Object& obj, const char* key, const char* where, const char* name);
std::optional<std::string> OptString(const Napi::Object& obj, const char* key, const char* where, const char* name);
// An options object that may be absent (undefined) but, when given, must be an object.
Napi::Object OptObject(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name);

}  // namespace medgr2
