// JS bindings of the safetensors IO (exports.safetensors): arguments are read into plain structs on
// the JS thread, the file work runs on the libuv pool, tensors come back as handles.
//
//   readTensors(path, [{name, dtype, shape, offset, nbytes}], {dtype?}) -> Promise<{[name]: Tensor}>
//   writeSafetensors(path, headerBytes, tensors, [{name, dtype, nbytes}]) -> Promise<void>
//   isMapped(tensor) -> boolean        liveMappings() -> number
#include <napi.h>

#include <string>
#include <vector>

#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/dtype.h"
#include "bridge/errors.h"
#include "bridge/tensor_handle.h"
#include "model/safetensors_io.h"

namespace medgr2 {

namespace {

// Accepts the addon's names ("f32", "bfloat16", ...) and safetensors' ("F32", "BF16", ...).
std::optional<DtypeInfo> ParseDtype(const std::string& s) {
  if (s == "F32") return DtypeByName("f32");
  if (s == "F64") return DtypeByName("f64");
  if (s == "F16") return DtypeByName("f16");
  if (s == "BF16") return DtypeByName("bf16");
  if (s == "I64") return DtypeByName("i64");
  if (s == "I32") return DtypeByName("i32");
  if (s == "U8") return DtypeByName("u8");
  return DtypeByName(s);
}

c10::ScalarType DtypeField(const Napi::Object& obj, const char* where, const std::string& name) {
  auto s = OptString(obj, "dtype", where, name.c_str());
  if (!s) ThrowArgError(obj.Env(), where, name + ".dtype", "a dtype name", "undefined");
  auto d = ParseDtype(*s);
  if (!d)
    ThrowArgError(obj.Env(), where, name + ".dtype",
                  std::string("one of ") + SupportedDtypeList() + " (or F32, F64, F16, BF16, I64, I32, U8)",
                  "\"" + *s + "\"");
  return d->scalar_type;
}

int64_t RequiredInteger(const Napi::Object& obj, const char* key, const char* where, const std::string& name) {
  auto v = OptInteger(obj, key, where, name.c_str());
  if (!v || *v < 0)
    ThrowArgError(obj.Env(), where, name + "." + key, "a non-negative integer", DescribeJsValue(obj.Get(key)));
  return *v;
}

Napi::Array ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* where, const char* name) {
  Napi::Value v = Arg(info, i);
  if (!v.IsArray()) ThrowArgError(info.Env(), where, name, "an array", DescribeJsValue(v));
  return v.As<Napi::Array>();
}

Napi::Object ElementObject(const Napi::Array& arr, uint32_t i, const char* where, const std::string& name) {
  Napi::Value v = arr.Get(i);
  if (!v.IsObject()) ThrowArgError(arr.Env(), where, name, "an object", DescribeJsValue(v));
  return v.As<Napi::Object>();
}

Napi::Value ReadTensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "safetensors.readTensors";
  MEDGR2_JS_TRY
  std::string path = ArgString(info, 0, kWhere, "path");
  Napi::Array descs = ArrayArg(info, 1, kWhere, "descriptors");
  std::vector<model::TensorLocation> locations;
  locations.reserve(descs.Length());
  for (uint32_t i = 0; i < descs.Length(); ++i) {
    const std::string name = "descriptors[" + std::to_string(i) + "]";
    Napi::Object d = ElementObject(descs, i, kWhere, name);
    model::TensorLocation loc;
    auto tname = OptString(d, "name", kWhere, name.c_str());
    if (!tname) ThrowArgError(env, kWhere, name + ".name", "a string", "undefined");
    loc.name = *tname;
    loc.dtype = DtypeField(d, kWhere, name);
    loc.shape = ReadIntList(d.Get("shape"), kWhere, (name + ".shape").c_str(), true);
    loc.offset = RequiredInteger(d, "offset", kWhere, name);
    loc.nbytes = RequiredInteger(d, "nbytes", kWhere, name);
    locations.push_back(std::move(loc));
  }
  Napi::Object opts = OptObject(info, 2, kWhere, "options");
  std::optional<c10::ScalarType> target;
  if (auto s = OptString(opts, "dtype", kWhere, "options")) {
    auto d = ParseDtype(*s);
    if (!d)
      ThrowArgError(env, kWhere, "options.dtype", std::string("one of ") + SupportedDtypeList(), "\"" + *s + "\"");
    target = d->scalar_type;
  }
  auto names = std::make_shared<std::vector<std::string>>();
  for (const auto& l : locations) names->push_back(l.name);
  return RunAsync<std::vector<at::Tensor>>(
      env, "medgr2.safetensors.readTensors", ThreadState{}, {},
      [path, locations, target]() { return model::ReadTensors(path, locations, target); },
      [names](Napi::Env e, std::vector<at::Tensor>& tensors) -> Napi::Value {
        auto out = Napi::Object::New(e);
        for (size_t i = 0; i < tensors.size(); ++i) {
          // A mapped tensor's pages belong to the page cache, not to the heap: not reported to V8.
          const bool mapped = model::IsMapped(tensors[i]);
          out.Set((*names)[i], TensorHandle::Wrap(e, std::move(tensors[i]), !mapped));
        }
        return out;
      });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value WriteSafetensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "safetensors.writeSafetensors";
  MEDGR2_JS_TRY
  std::string path = ArgString(info, 0, kWhere, "path");
  Napi::Value hv = Arg(info, 1);
  if (!hv.IsTypedArray() || hv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowArgError(env, kWhere, "headerBytes", "a Uint8Array", DescribeJsValue(hv));
  }
  auto header_arr = hv.As<Napi::Uint8Array>();
  std::vector<uint8_t> header(header_arr.Data(), header_arr.Data() + header_arr.ElementLength());
  Napi::Array tarr = ArrayArg(info, 2, kWhere, "tensors");
  Napi::Array earr = ArrayArg(info, 3, kWhere, "entries");
  if (tarr.Length() != earr.Length()) {
    ThrowArgError(env, kWhere, "entries", "one entry per tensor (" + std::to_string(tarr.Length()) + ")",
                  std::to_string(earr.Length()) + " entries");
  }
  std::vector<at::Tensor> tensors;
  std::vector<model::WriteEntry> entries;
  for (uint32_t i = 0; i < tarr.Length(); ++i) {
    const std::string tname = "tensors[" + std::to_string(i) + "]";
    tensors.push_back(TensorHandle::Get(tarr.Get(i), kWhere, tname.c_str()));
    const std::string ename = "entries[" + std::to_string(i) + "]";
    Napi::Object e = ElementObject(earr, i, kWhere, ename);
    model::WriteEntry we;
    auto n = OptString(e, "name", kWhere, ename.c_str());
    we.name = n ? *n : tname;
    we.dtype = DtypeField(e, kWhere, ename);
    we.nbytes = RequiredInteger(e, "nbytes", kWhere, ename);
    entries.push_back(std::move(we));
  }
  return RunAsync<bool>(
      env, "medgr2.safetensors.writeSafetensors", ThreadState{}, {info[2]},
      [path, header = std::move(header), tensors = std::move(tensors), entries = std::move(entries)]() {
        model::WriteSafetensors(path, header, tensors, entries);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value IsMappedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  at::Tensor t = TensorHandle::Get(Arg(info, 0), "safetensors.isMapped", "tensor");
  return Napi::Boolean::New(env, model::IsMapped(t));
  MEDGR2_JS_CATCH(env)
}

Napi::Value LiveMappingsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model::LiveMappings()));
}

}  // namespace

void RegisterSafetensors(Napi::Env env, Napi::Object exports) {
  auto st = Napi::Object::New(env);
  st.Set("readTensors", Napi::Function::New(env, ReadTensorsJs, "readTensors"));
  st.Set("writeSafetensors", Napi::Function::New(env, WriteSafetensorsJs, "writeSafetensors"));
  st.Set("isMapped", Napi::Function::New(env, IsMappedJs, "isMapped"));
  st.Set("liveMappings", Napi::Function::New(env, LiveMappingsJs, "liveMappings"));
  exports.Set("safetensors", st);
}

}  // namespace medgr2
