// The dtypes that cross the JS boundary, and the TypedArray that carries each of them.
// bf16 and f16 have no JS array type: their raw bits travel in a Uint16Array.
#pragma once

#include <napi.h>

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

namespace medgr2 {

struct DtypeInfo {
  const char* name;              // "f32", "bf16", ...
  c10::ScalarType scalar_type;   // libtorch's type
  napi_typedarray_type js_type;  // the TypedArray that carries its bits
};

// Looks up a dtype by its JS name ("f32", "f64", "i32", "i64", "u8", "bf16", "f16");
// also accepts the long names "float32", "float64", "int32", "int64", "uint8", "bfloat16", "float16".
std::optional<DtypeInfo> DtypeByName(const std::string& name);
std::optional<DtypeInfo> DtypeByScalarType(c10::ScalarType t);
// The dtype a TypedArray is read as when the caller names none.
std::optional<DtypeInfo> DefaultDtypeFor(napi_typedarray_type t);
const char* TypedArrayName(napi_typedarray_type t);
// "f32, f64, i32, i64, u8, bf16, f16": for error messages.
const char* SupportedDtypeList();

}  // namespace medgr2
