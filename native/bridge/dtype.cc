#include "bridge/dtype.h"

#include <array>

namespace medgr2 {

namespace {
constexpr std::array<DtypeInfo, 7> kDtypes = {{
    {"f32", c10::ScalarType::Float, napi_float32_array},
    {"f64", c10::ScalarType::Double, napi_float64_array},
    {"i32", c10::ScalarType::Int, napi_int32_array},
    {"i64", c10::ScalarType::Long, napi_bigint64_array},
    {"u8", c10::ScalarType::Byte, napi_uint8_array},
    {"bf16", c10::ScalarType::BFloat16, napi_uint16_array},
    {"f16", c10::ScalarType::Half, napi_uint16_array},
}};

const char* LongName(const std::string& name) {
  if (name == "float32" || name == "float") return "f32";
  if (name == "float64" || name == "double") return "f64";
  if (name == "int32") return "i32";
  if (name == "int64") return "i64";
  if (name == "uint8") return "u8";
  if (name == "bfloat16") return "bf16";
  if (name == "float16" || name == "half") return "f16";
  return nullptr;
}
}  // namespace

std::optional<DtypeInfo> DtypeByName(const std::string& name) {
  const char* canonical = LongName(name);
  const std::string key = canonical ? canonical : name;
  for (const auto& d : kDtypes) {
    if (key == d.name) return d;
  }
  return std::nullopt;
}

std::optional<DtypeInfo> DtypeByScalarType(c10::ScalarType t) {
  for (const auto& d : kDtypes) {
    if (d.scalar_type == t) return d;
  }
  return std::nullopt;
}

std::optional<DtypeInfo> DefaultDtypeFor(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array:
      return kDtypes[0];
    case napi_float64_array:
      return kDtypes[1];
    case napi_int32_array:
      return kDtypes[2];
    case napi_bigint64_array:
      return kDtypes[3];
    case napi_uint8_array:
      return kDtypes[4];
    default:
      return std::nullopt;  // Uint16Array is ambiguous (bf16 or f16): the caller must say.
  }
}

const char* TypedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
      return "Int8Array";
    case napi_uint8_array:
      return "Uint8Array";
    case napi_uint8_clamped_array:
      return "Uint8ClampedArray";
    case napi_int16_array:
      return "Int16Array";
    case napi_uint16_array:
      return "Uint16Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint32_array:
      return "Uint32Array";
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_bigint64_array:
      return "BigInt64Array";
    case napi_biguint64_array:
      return "BigUint64Array";
    default:
      return "TypedArray";
  }
}

const char* SupportedDtypeList() {
  return "f32, f64, i32, i64, u8, bf16, f16";
}

}  // namespace medgr2
