#include "bridge/args.h"

#include "bridge/dtype.h"
#include "bridge/errors.h"

#include <cmath>

namespace medgr2 {

std::string DescribeJsValue(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsNumber()) return "the number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "the string \"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsBigInt()) return "a bigint";
  if (v.IsTypedArray()) {
    auto a = v.As<Napi::TypedArray>();
    return std::string(TypedArrayName(a.TypedArrayType())) + "(" + std::to_string(a.ElementLength()) + ")";
  }
  if (v.IsArrayBuffer()) return "an ArrayBuffer";
  if (v.IsArray()) return "an array of length " + std::to_string(v.As<Napi::Array>().Length());
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "an unsupported value";
}

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  Napi::Value v = Arg(info, i);
  if (!v.IsObject() || v.IsArray()) ThrowArgError(info.Env(), where, name, "an object", DescribeJsValue(v));
  return v.As<Napi::Object>();
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  Napi::Value v = Arg(info, i);
  if (!v.IsNumber()) ThrowArgError(info.Env(), where, name, "a number", DescribeJsValue(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  double d = ArgNumber(info, i, where, name);
  if (!std::isfinite(d) || std::floor(d) != d)
    ThrowArgError(info.Env(), where, name, "an integer", DescribeJsValue(Arg(info, i)));
  return static_cast<int64_t>(d);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  Napi::Value v = Arg(info, i);
  if (!v.IsString()) ThrowArgError(info.Env(), where, name, "a string", DescribeJsValue(v));
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> ReadIntList(const Napi::Value& value, const char* where, const char* name, bool non_negative) {
  const char* expected = non_negative ? "an array of non-negative integers" : "an array of integers";
  if (!value.IsArray()) ThrowArgError(value.Env(), where, name, expected, DescribeJsValue(value));
  auto arr = value.As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value e = arr.Get(k);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || std::floor(d) != d || (non_negative && d < 0)) {
      ThrowArgError(value.Env(), where, std::string(name) + "[" + std::to_string(k) + "]",
                    non_negative ? "a non-negative integer" : "an integer", DescribeJsValue(e));
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

namespace {
std::string Field(const char* name, const char* key) {
  return std::string(name) + "." + key;
}
}  // namespace

std::optional<double> OptNumber(const Napi::Object& obj, const char* key, const char* where, const char* name) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  if (!v.IsNumber()) ThrowArgError(obj.Env(), where, Field(name, key), "a number", DescribeJsValue(v));
  return v.As<Napi::Number>().DoubleValue();
}

std::optional<int64_t> OptInteger(const Napi::Object& obj, const char* key, const char* where, const char* name) {
  auto d = OptNumber(obj, key, where, name);
  if (!d) return std::nullopt;
  if (!std::isfinite(*d) || std::floor(*d) != *d)
    ThrowArgError(obj.Env(), where, Field(name, key), "an integer", DescribeJsValue(obj.Get(key)));
  return static_cast<int64_t>(*d);
}

std::optional<bool> OptBool(const Napi::Object& obj, const char* key, const char* where, const char* name) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  if (!v.IsBoolean()) ThrowArgError(obj.Env(), where, Field(name, key), "a boolean", DescribeJsValue(v));
  return v.As<Napi::Boolean>().Value();
}

std::optional<std::string> OptString(const Napi::Object& obj, const char* key, const char* where, const char* name) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  if (!v.IsString()) ThrowArgError(obj.Env(), where, Field(name, key), "a string", DescribeJsValue(v));
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object OptObject(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  Napi::Value v = Arg(info, i);
  if (v.IsUndefined()) return Napi::Object::New(info.Env());
  if (!v.IsObject() || v.IsArray()) ThrowArgError(info.Env(), where, name, "an options object", DescribeJsValue(v));
  return v.As<Napi::Object>();
}

}  // namespace medgr2
