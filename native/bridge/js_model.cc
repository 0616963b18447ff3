// The native `Model` class: one QwenVL plus its optimizer. Created by Model.create(config, options)
// where `config` is the normalized object of src/native/model_config.ts. Every heavy method returns
// a Promise and runs on the libuv pool; calls on one model are serialized by its mutex (a generate
// and a backward never interleave on the same weights).
#include <napi.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/dtype.h"
#include "bridge/errors.h"
#include "bridge/js_dist.h"
#include "bridge/tensor_fields.h"
#include "bridge/tensor_handle.h"
#include "bridge/typed_array.h"
#include "model/qwen_vl.h"
#include "model/rope.h"
#include "train/adamw.h"
#include "train/data_parallel.h"
#include "train/grad_reducer.h"
#include "train/zero_adamw.h"

namespace medgr2 {

namespace {

using model::ModelConfig;

// Every entry point of the class runs inside MODEL_JS_TRY / MODEL_JS_CATCH(env, where) (or
// MODEL_JS_CATCH_ASYNC for the ones that return a Promise), the sync ones included: with
// NAPI_CPP_EXCEPTIONS, node-addon-api turns only a Napi::Error into a JS exception, and any other
// C++ exception (a c10::Error from libtorch, std::bad_alloc, std::system_error from a mutex) that
// leaves a callback reaches std::terminate and aborts the process. These are the bridge's
// MEDGR2_JS_TRY / MEDGR2_JS_CATCH plus one thing: a native error's message is prefixed with the
// method ("Model.ropeIndex: shape '[-1, 3]' is invalid for input of size 4", from libtorch's
// reshape; "Model.x: libtorch: ..." for a c10::Error), because libtorch's own text does not say
// which call failed. Napi errors and argument errors already name their method and pass through
// unchanged.
#define MODEL_JS_TRY \
  MEDGR2_JS_TRY      \
  try {
#define MODEL_JS_NAME_NATIVE_ERROR(env, where)                                                \
  }                                                                                           \
  catch (const Napi::Error&) {                                                                \
    throw;                                                                                    \
  }                                                                                           \
  catch (const medgr2::ArgumentError&) {                                                      \
    throw;                                                                                    \
  }                                                                                           \
  catch (const std::exception& e) {                                                           \
    throw Napi::Error::New((env), std::string(where) + ": " + medgr2::NativeErrorMessage(e)); \
  }                                                                                           \
  catch (...) {                                                                               \
    throw Napi::Error::New((env), std::string(where) + ": unknown native exception");         \
  }
#define MODEL_JS_CATCH(env, where)       \
  MODEL_JS_NAME_NATIVE_ERROR(env, where) \
  MEDGR2_JS_CATCH(env)
#define MODEL_JS_CATCH_ASYNC(env, where) \
  MODEL_JS_NAME_NATIVE_ERROR(env, where) \
  MEDGR2_JS_CATCH_ASYNC(env)

// ----- config from the normalized JS object ---------------------------------------------------

int64_t Int(const Napi::Object& o, const char* key, const char* where, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowArgError(o.Env(), where, path + key, "a number", DescribeJsValue(v));
  return static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
}
double Num(const Napi::Object& o, const char* key, const char* where, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowArgError(o.Env(), where, path + key, "a number", DescribeJsValue(v));
  return v.As<Napi::Number>().DoubleValue();
}
std::vector<int64_t> IntList(const Napi::Object& o, const char* key, const char* where, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (v.IsNull() || v.IsUndefined()) return {};
  return ReadIntList(v, where, (path + key).c_str(), false);
}

ModelConfig ConfigFromJs(const Napi::Object& c, const char* where) {
  Napi::Env env = c.Env();
  ModelConfig cfg;
  const std::string type = c.Get("modelType").IsString() ? c.Get("modelType").As<Napi::String>().Utf8Value() : "";
  if (type == "qwen2")
    cfg.kind = model::ModelKind::kQwen2;
  else if (type == "qwen2_vl")
    cfg.kind = model::ModelKind::kQwen2VL;
  else if (type == "qwen2_5_vl")
    cfg.kind = model::ModelKind::kQwen25VL;
  else
    ThrowArgError(env, where, "config.modelType", "\"qwen2\", \"qwen2_vl\" or \"qwen2_5_vl\"",
                  DescribeJsValue(c.Get("modelType")));
  if (!c.Get("text").IsObject()) ThrowArgError(env, where, "config.text", "an object", DescribeJsValue(c.Get("text")));
  Napi::Object t = c.Get("text").As<Napi::Object>();
  const std::string tp = "config.text.";
  cfg.text.vocab_size = Int(t, "vocabSize", where, tp);
  cfg.text.hidden_size = Int(t, "hiddenSize", where, tp);
  cfg.text.intermediate_size = Int(t, "intermediateSize", where, tp);
  cfg.text.num_layers = Int(t, "numLayers", where, tp);
  cfg.text.num_heads = Int(t, "numHeads", where, tp);
  cfg.text.num_kv_heads = Int(t, "numKvHeads", where, tp);
  cfg.text.head_dim = Int(t, "headDim", where, tp);
  cfg.text.rms_norm_eps = Num(t, "rmsNormEps", where, tp);
  cfg.text.rope_theta = Num(t, "ropeTheta", where, tp);
  cfg.text.tie_word_embeddings = t.Get("tieWordEmbeddings").ToBoolean().Value();
  cfg.text.mrope_section = IntList(t, "mropeSection", where, tp);
  Napi::Value vis = c.Get("vision");
  if (vis.IsObject()) {
    Napi::Object v = vis.As<Napi::Object>();
    const std::string vp = "config.vision.";
    auto& vc = cfg.vision;
    vc.present = true;
    const std::string kind = v.Get("kind").IsString() ? v.Get("kind").As<Napi::String>().Utf8Value() : "";
    if (kind != "qwen2_vl" && kind != "qwen2_5_vl")
      ThrowArgError(env, where, "config.vision.kind", "\"qwen2_vl\" or \"qwen2_5_vl\"", DescribeJsValue(v.Get("kind")));
    vc.qwen25 = kind == "qwen2_5_vl";
    vc.depth = Int(v, "depth", where, vp);
    vc.embed_dim = Int(v, "embedDim", where, vp);
    vc.num_heads = Int(v, "numHeads", where, vp);
    vc.mlp_hidden_dim = Int(v, "mlpHiddenDim", where, vp);
    const std::string act = v.Get("hiddenAct").IsString() ? v.Get("hiddenAct").As<Napi::String>().Utf8Value() : "";
    if (act == "quick_gelu")
      vc.act = model::VisionAct::kQuickGelu;
    else if (act == "silu")
      vc.act = model::VisionAct::kSilu;
    else if (act == "gelu")
      vc.act = model::VisionAct::kGelu;
    else
      ThrowArgError(env, where, "config.vision.hiddenAct", "\"quick_gelu\", \"silu\" or \"gelu\"",
                    DescribeJsValue(v.Get("hiddenAct")));
    vc.in_channels = Int(v, "inChannels", where, vp);
    vc.patch_size = Int(v, "patchSize", where, vp);
    vc.temporal_patch_size = Int(v, "temporalPatchSize", where, vp);
    vc.spatial_merge_size = Int(v, "spatialMergeSize", where, vp);
    vc.out_hidden_size = Int(v, "outHiddenSize", where, vp);
    if (vc.qwen25) {
      vc.window_size = Int(v, "windowSize", where, vp);
      vc.full_att_block_indexes = IntList(v, "fullAttBlockIndexes", where, vp);
    }
  }
  cfg.image_token_id = c.Get("imageTokenId").IsNumber() ? Int(c, "imageTokenId", where, "config.") : -1;
  cfg.video_token_id = c.Get("videoTokenId").IsNumber() ? Int(c, "videoTokenId", where, "config.") : -1;
  cfg.vision_start_token_id =
      c.Get("visionStartTokenId").IsNumber() ? Int(c, "visionStartTokenId", where, "config.") : -1;
  cfg.vision_end_token_id = c.Get("visionEndTokenId").IsNumber() ? Int(c, "visionEndTokenId", where, "config.") : -1;
  // Absent (a config object from before score heads): no head.
  cfg.score_labels = OptInteger(c, "scoreLabels", where, "config").value_or(0);
  try {
    model::ValidateConfig(cfg);
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(env, std::string(where) + ": " + e.what());
  }
  return cfg;
}

// ----- tensors from JS ------------------------------------------------------------------------

// Batches and loss inputs are used after the call returns (async): never alias JS memory there.
at::Tensor AnyTensor(const Napi::Object& obj, const char* key, const char* where, bool required) {
  return TensorField(obj, key, where, required, /*copy=*/true);
}

// ropeIndex and tokenLogprobs walk cuSeqlens with raw pointers on the JS thread (ComputeRopeIndex,
// NextTokenLabels) before the model's own CheckBatch runs in the worker: an offset past the token
// count would read and write out of bounds and crash the process. So every batch's offsets are
// checked here: [0, ..., N], non-decreasing.
void CheckCuSeqlens(Napi::Env env, const model::PackedBatch& b, const char* where) {
  const int64_t n = b.input_ids.numel();
  const at::Tensor cu = b.cu_seqlens.contiguous();
  const int64_t* c = cu.data_ptr<int64_t>();
  const int64_t len = cu.numel();
  if (len < 2)
    ThrowArgError(env, where, "batch.cuSeqlens", "at least one sequence ([0, N])", "length " + std::to_string(len));
  if (c[0] != 0 || c[len - 1] != n) {
    ThrowArgError(env, where, "batch.cuSeqlens", "from 0 to the token count " + std::to_string(n),
                  "[" + std::to_string(c[0]) + " .. " + std::to_string(c[len - 1]) + "]");
  }
  for (int64_t i = 1; i < len; ++i) {
    if (c[i] < c[i - 1])
      ThrowArgError(env, where, "batch.cuSeqlens", "non-decreasing", "a decrease at index " + std::to_string(i));
  }
}

model::PackedBatch BatchFromJs(const Napi::Value& value, const ModelConfig& cfg, const char* where) {
  if (!value.IsObject())
    ThrowArgError(value.Env(), where, "batch", "an object { inputIds, cuSeqlens, pixelValues?, imageGrids? }",
                  DescribeJsValue(value));
  Napi::Object o = value.As<Napi::Object>();
  model::PackedBatch b;
  b.input_ids = AnyTensor(o, "inputIds", where, true).to(at::kLong);
  b.cu_seqlens = AnyTensor(o, "cuSeqlens", where, true).to(at::kCPU, at::kLong);
  b.pixel_values = AnyTensor(o, "pixelValues", where, false);
  at::Tensor grids = AnyTensor(o, "imageGrids", where, false);
  if (b.pixel_values.defined()) {
    if (!cfg.vision.present)
      ThrowArgError(value.Env(), where, "batch.pixelValues", "absent for a text-only model", "given");
    b.pixel_values = b.pixel_values.reshape({-1, cfg.vision.PatchDim()}).to(at::kFloat);
  }
  if (grids.defined()) b.image_grids = grids.reshape({-1, 3}).to(at::kCPU, at::kLong);
  CheckCuSeqlens(value.Env(), b, where);
  return b;
}

// { labels, numItems?, temperature? } of an SFT loss over batch `b`.
model::SftLoss SftSpecFromJs(const Napi::Object& o, const model::PackedBatch& b, const char* where) {
  model::SftLoss spec;
  spec.labels = AnyTensor(o, "labels", where, true);
  if (spec.labels.numel() != b.input_ids.numel()) {
    ThrowArgError(o.Env(), where, "loss.labels", "as long as inputIds (" + std::to_string(b.input_ids.numel()) + ")",
                  std::to_string(spec.labels.numel()));
  }
  if (auto n = OptNumber(o, "numItems", where, "loss")) spec.num_items = *n;
  spec.temperature = OptNumber(o, "temperature", where, "loss").value_or(1.0);
  return spec;
}

// ----- the class ------------------------------------------------------------------------------

struct ModelState {
  std::mutex mutex;
  std::unique_ptr<model::QwenVL> model;
  train::AdamW optimizer;
  // Set by shardOptimizer: the ZeRO optimizer and its group replace `optimizer` for steps and state.
  std::unique_ptr<train::ZeroAdamW> zero;
  std::shared_ptr<dist::ProcessGroup> zero_group;
  int64_t OptimizerStepCount() const { return zero ? zero->step() : optimizer.step(); }
};

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit ModelHandle(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value ParameterSpecs(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value SetParameters(const Napi::CallbackInfo& info);
  Napi::Value SetTrainable(const Napi::CallbackInfo& info);
  Napi::Value SetCheckpointLayers(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value TokenLogprobs(const Napi::CallbackInfo& info);
  Napi::Value BackwardSft(const Napi::CallbackInfo& info);
  Napi::Value SftLoss(const Napi::CallbackInfo& info);
  Napi::Value Gradients(const Napi::CallbackInfo& info);
  Napi::Value AllReduceGradients(const Napi::CallbackInfo& info);
  Napi::Value BroadcastParameters(const Napi::CallbackInfo& info);
  Napi::Value RopeIndex(const Napi::CallbackInfo& info);
  Napi::Value BackwardGrpo(const Napi::CallbackInfo& info);
  Napi::Value Scores(const Napi::CallbackInfo& info);
  Napi::Value BackwardScore(const Napi::CallbackInfo& info);
  Napi::Value AddScoreHead(const Napi::CallbackInfo& info);
  Napi::Value ShardOptimizer(const Napi::CallbackInfo& info);
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value NonFiniteParameter(const Napi::CallbackInfo& info);
  Napi::Value OptimizerState(const Napi::CallbackInfo& info);
  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value AddLora(const Napi::CallbackInfo& info);
  Napi::Value SetLora(const Napi::CallbackInfo& info);
  Napi::Value SetLoraTensors(const Napi::CallbackInfo& info);
  Napi::Value RemoveLora(const Napi::CallbackInfo& info);
  Napi::Value MergeLora(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelState> Live(const char* where) const;
  ThreadState State() const;
  // A backward pass (`work`) run as RunLocked does; or, given `reduce` = { dist, bucketBytes? }
  // (argument `reduce_arg`), the last backward of an optimizer step on this rank with its gradients
  // summed over the ranks while it runs (train/grad_reducer.h): a collective of `dist`, so its turn
  // is taken here and the model's lock inside it. The result gains `bucketsOverlapped` / `buckets`.
  template <typename Work>
  Napi::Value RunBackward(const Napi::CallbackInfo& info, const char* name, const char* where,
                          std::shared_ptr<ModelState> st, size_t reduce_arg, bool grpo, Work work);
  // Runs work(state) off the JS thread with the model's lock held (calls on one model never
  // interleave); finish() converts the result on the JS thread. Keeps this handle alive meanwhile.
  template <typename R, typename Work, typename Finish>
  Napi::Value RunLocked(const Napi::CallbackInfo& info, const char* name, std::shared_ptr<ModelState> st, Work work,
                        Finish finish) {
    return RunAsync<R>(
        info.Env(), name, State(), {info.This()},
        [st, work]() -> R {
          std::lock_guard<std::mutex> lock(st->mutex);
          return work(*st);
        },
        finish);
  }

  std::shared_ptr<ModelState> state_;
};

Napi::FunctionReference* g_model_ctor = nullptr;

void ModelHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Model",
                                   {
                                       StaticMethod<&ModelHandle::Create>("create"),
                                       InstanceMethod<&ModelHandle::ParameterSpecs>("parameterSpecs"),
                                       InstanceMethod<&ModelHandle::Parameters>("parameters"),
                                       InstanceMethod<&ModelHandle::SetParameters>("setParameters"),
                                       InstanceMethod<&ModelHandle::SetTrainable>("setTrainable"),
                                       InstanceMethod<&ModelHandle::SetCheckpointLayers>("setCheckpointLayers"),
                                       InstanceMethod<&ModelHandle::Info>("info"),
                                       InstanceMethod<&ModelHandle::Logits>("logits"),
                                       InstanceMethod<&ModelHandle::TokenLogprobs>("tokenLogprobs"),
                                       InstanceMethod<&ModelHandle::BackwardSft>("backwardSft"),
                                       InstanceMethod<&ModelHandle::SftLoss>("sftLoss"),
                                       InstanceMethod<&ModelHandle::Gradients>("gradients"),
                                       InstanceMethod<&ModelHandle::AllReduceGradients>("allReduceGradients"),
                                       InstanceMethod<&ModelHandle::BroadcastParameters>("broadcastParameters"),
                                       InstanceMethod<&ModelHandle::RopeIndex>("ropeIndex"),
                                       InstanceMethod<&ModelHandle::BackwardGrpo>("backwardGrpo"),
                                       InstanceMethod<&ModelHandle::Scores>("scores"),
                                       InstanceMethod<&ModelHandle::BackwardScore>("backwardScore"),
                                       InstanceMethod<&ModelHandle::AddScoreHead>("addScoreHead"),
                                       InstanceMethod<&ModelHandle::ShardOptimizer>("shardOptimizer"),
                                       InstanceMethod<&ModelHandle::OptimizerStep>("optimizerStep"),
                                       InstanceMethod<&ModelHandle::ZeroGrad>("zeroGrad"),
                                       InstanceMethod<&ModelHandle::NonFiniteParameter>("nonFiniteParameter"),
                                       InstanceMethod<&ModelHandle::OptimizerState>("optimizerState"),
                                       InstanceMethod<&ModelHandle::LoadOptimizerState>("loadOptimizerState"),
                                       InstanceMethod<&ModelHandle::Generate>("generate"),
                                       InstanceMethod<&ModelHandle::AddLora>("addLora"),
                                       InstanceMethod<&ModelHandle::SetLora>("setLora"),
                                       InstanceMethod<&ModelHandle::SetLoraTensors>("setLoraTensors"),
                                       InstanceMethod<&ModelHandle::RemoveLora>("removeLora"),
                                       InstanceMethod<&ModelHandle::MergeLora>("mergeLora"),
                                       InstanceMethod<&ModelHandle::Dispose>("dispose"),
                                   });
  g_model_ctor = new Napi::FunctionReference(Napi::Persistent(cls));
  exports.Set("Model", cls);
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  Napi::Env env = info.Env();
  MODEL_JS_TRY
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(env, "new Model: use Model.create(config, options)");
  }
  state_ = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
  MODEL_JS_CATCH(env, "new Model")
}

std::shared_ptr<ModelState> ModelHandle::Live(const char* where) const {
  if (!state_ || !state_->model) throw Napi::Error::New(Env(), std::string(where) + ": the Model has been disposed");
  return state_;
}

ThreadState ModelHandle::State() const {
  ThreadState s;
  s.device = state_->model->device();
  return s;
}

// Model.create(config, { device?, dtype?, seed?, init?: 'random' | 'none' }) -> Promise<Model>
Napi::Value ModelHandle::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.create";
  MODEL_JS_TRY
  ModelConfig cfg = ConfigFromJs(ArgObject(info, 0, kWhere, "config"), kWhere);
  Napi::Object o = OptObject(info, 1, kWhere, "options");
  c10::Device device =
      ParseDevice(env, OptString(o, "device", kWhere, "options").value_or("cpu"), kWhere, "options.device");
  const std::string dt = OptString(o, "dtype", kWhere, "options").value_or("float32");
  at::ScalarType dtype = at::kFloat;
  if (dt == "bfloat16" || dt == "bf16")
    dtype = at::kBFloat16;
  else if (dt == "float16" || dt == "f16")
    dtype = at::kHalf;
  else if (dt == "float64" || dt == "f64")
    dtype = at::kDouble;  // gradient checks
  else if (dt != "float32" && dt != "f32")
    ThrowArgError(env, kWhere, "options.dtype", "\"float32\", \"bfloat16\", \"float16\" or \"float64\"",
                  "\"" + dt + "\"");
  const auto seed = static_cast<uint64_t>(OptInteger(o, "seed", kWhere, "options").value_or(0));
  const std::string init = OptString(o, "init", kWhere, "options").value_or("random");
  if (init != "random" && init != "none")
    ThrowArgError(env, kWhere, "options.init", "\"random\" or \"none\"", "\"" + init + "\"");
  ThreadState ts;
  ts.device = device;
  return RunAsync<std::shared_ptr<ModelState>>(
      env, "medgr2.Model.create", ts, {},
      [cfg, device, dtype, seed, init]() {
        auto st = std::make_shared<ModelState>();
        st->model = std::make_unique<model::QwenVL>(cfg, device, dtype);
        if (init == "random") {
          st->model->InitRandom(seed);
          st->model->SetTrainable(true, true, true);
        }
        return st;
      },
      [](Napi::Env e, std::shared_ptr<ModelState>& st) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<ModelState>>::New(
            e, new std::shared_ptr<ModelState>(st), [](Napi::Env, std::shared_ptr<ModelState>* p) { delete p; });
        return g_model_ctor->New({ext});
      });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

Napi::Value ModelHandle::ParameterSpecs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.parameterSpecs";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  auto specs = st->model->ParameterSpecs();
  auto arr = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("name", specs[i].name);
    auto shape = Napi::Array::New(env, specs[i].shape.size());
    for (size_t k = 0; k < specs[i].shape.size(); ++k)
      shape.Set(static_cast<uint32_t>(k), static_cast<double>(specs[i].shape[k]));
    o.Set("shape", shape);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
  MODEL_JS_CATCH(env, kWhere)
}

// parameters(): { name: Tensor } sharing the model's storage (detached views; for saving).
Napi::Value ModelHandle::Parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.parameters";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  auto out = Napi::Object::New(env);
  for (const auto& [name, t] : st->model->params().All()) out.Set(name, TensorHandle::Wrap(env, t.detach(), false));
  return out;
  MODEL_JS_CATCH(env, kWhere)
}

// setParameters({ name: Tensor }): exactly the model's parameters, each of its shape; copied into
// the model's dtype and device. Errors name the tensor and both shapes.
Napi::Value ModelHandle::SetParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.setParameters";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "tensors");
  std::map<std::string, at::Tensor> given;
  for (const auto& e : o) {
    const std::string name = e.first.As<Napi::String>().Utf8Value();
    given[name] = TensorHandle::Get(e.second, kWhere, name.c_str());
  }
  auto specs = st->model->ParameterSpecs();
  for (const auto& spec : specs) {
    auto it = given.find(spec.name);
    if (it == given.end()) throw Napi::Error::New(env, std::string(kWhere) + ": missing tensor " + spec.name);
    if (it->second.sizes() != at::IntArrayRef(spec.shape)) {
      std::ostringstream s;
      s << kWhere << ": tensor " << spec.name << " has shape " << it->second.sizes() << ", expected "
        << at::IntArrayRef(spec.shape);
      throw Napi::Error::New(env, s.str());
    }
  }
  if (given.size() != specs.size()) {
    for (const auto& [name, t] : given) {
      bool known = false;
      for (const auto& spec : specs) known = known || spec.name == name;
      if (!known) throw Napi::Error::New(env, std::string(kWhere) + ": unexpected tensor " + name);
    }
  }
  ThreadState ts = State();
  return RunAsync<bool>(
      env, "medgr2.Model.setParameters", ts, {info.This(), info[0]},
      [st, given]() {
        std::lock_guard<std::mutex> lock(st->mutex);
        auto& m = *st->model;
        for (const auto& [name, t] : given) {
          // Keep what a freeze decided for an existing parameter; a new one trains.
          const at::Tensor old = m.params().Find(name);
          const bool trains = old.defined() ? old.requires_grad() : true;
          m.params().Set(name, t.detach().to(m.device(), m.dtype()).clone().requires_grad_(trains));
        }
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

Napi::Value ModelHandle::SetTrainable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.setTrainable";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  // Read the flags before taking the lock: reading them can run JS (getters), and JS that calls
  // back into this model under the lock would deadlock on the (non-recursive) mutex.
  Napi::Object o = ArgObject(info, 0, kWhere, "parts");
  const bool vision = OptBool(o, "vision", kWhere, "parts").value_or(true);
  const bool merger = OptBool(o, "merger", kWhere, "parts").value_or(true);
  const bool language_model = OptBool(o, "languageModel", kWhere, "parts").value_or(true);
  st = Live(kWhere);  // a getter may have disposed it
  std::lock_guard<std::mutex> lock(st->mutex);
  st->model->SetTrainable(vision, merger, language_model);
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

Napi::Value ModelHandle::SetCheckpointLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.setCheckpointLayers";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  const bool on = Arg(info, 0).ToBoolean().Value();
  std::lock_guard<std::mutex> lock(st->mutex);
  st->model->checkpoint_layers = on;
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

Napi::Value ModelHandle::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.info";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  // The parameter map and the optimizer step change under a running setParameters /
  // optimizerStep worker: read them under the model's lock, as parameters() does.
  std::lock_guard<std::mutex> lock(st->mutex);
  auto o = Napi::Object::New(env);
  o.Set("parameterCount", static_cast<double>(st->model->ParameterCount()));
  o.Set("trainableCount", static_cast<double>(st->model->TrainableCount()));
  o.Set("device", st->model->device().str());
  o.Set("dtype", c10::toString(st->model->dtype()));
  o.Set("optimizerStep", static_cast<double>(st->OptimizerStepCount()));
  o.Set("zeroStage", st->zero ? st->zero->stage() : 0);
  o.Set("optimizerShardNumel", static_cast<double>(st->zero ? st->zero->ShardNumel() : 0));
  o.Set("checkpointLayers", st->model->checkpoint_layers);
  o.Set("scoreLabels", static_cast<double>(st->model->config().score_labels));
  o.Set("loraModules", static_cast<double>(st->model->LoraModules().size()));
  o.Set("loraRank", static_cast<double>(st->model->LoraRank()));
  o.Set("loraScale", st->model->lora().scale);
  o.Set("loraDropout", st->model->lora().dropout);
  o.Set("loraEnabled", st->model->lora().enabled);
  return o;
  MODEL_JS_CATCH(env, kWhere)
}

Napi::Value ModelHandle::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.logits";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  return RunLocked<at::Tensor>(
      info, "medgr2.Model.logits", st,
      [b](ModelState& s) {
        at::NoGradGuard ng;
        return s.model->Logits(b);
      },
      [](Napi::Env e, at::Tensor& t) -> Napi::Value { return TensorHandle::Wrap(e, t); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// tokenLogprobs(batch, { labels?, temperature? }): labels default to the next token of each sequence.
Napi::Value ModelHandle::TokenLogprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.tokenLogprobs";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = OptObject(info, 1, kWhere, "options");
  at::Tensor labels = AnyTensor(o, "labels", kWhere, false);
  if (!labels.defined()) labels = model::NextTokenLabels(b.input_ids, b.cu_seqlens);
  if (labels.numel() != b.input_ids.numel())
    ThrowArgError(env, kWhere, "options.labels", "as long as inputIds", std::to_string(labels.numel()));
  const double temperature = OptNumber(o, "temperature", kWhere, "options").value_or(1.0);
  return RunLocked<std::vector<at::Tensor>>(
      info, "medgr2.Model.tokenLogprobs", st,
      [b, labels, temperature](ModelState& s) {
        auto r = s.model->TokenLogprobs(b, labels, temperature);
        return std::vector<at::Tensor>{r.first.cpu(), r.second.cpu()};
      },
      [](Napi::Env e, std::vector<at::Tensor>& r) -> Napi::Value {
        auto out = Napi::Object::New(e);
        out.Set("logp", TypedArrayFromTensor(e, r[0].to(at::kFloat)));
        out.Set("entropy", TypedArrayFromTensor(e, r[1].to(at::kFloat)));
        return out;
      });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

Napi::Value LossReportJs(Napi::Env e, const model::LossReport& r, bool grpo) {
  auto out = Napi::Object::New(e);
  out.Set("loss", r.loss);
  out.Set("tokens", r.tokens);
  out.Set("entropyMean", r.entropy_mean);
  if (grpo) {
    Napi::Object s = LossStatsJs(e, r.stats);
    s.Set("entropyKeptMean", r.entropy_kept_mean);
    s.Set("entropyKeptFraction", r.entropy_kept_fraction);
    out.Set("stats", s);
  }
  return out;
}

// backwardSft(batch, { labels, numItems?, temperature? }, reduce?) -> { loss, tokens, entropyMean }
struct ReducedBackward {
  model::LossReport report;
  int64_t buckets = -1;  // -1: no reduction
  int64_t overlapped = 0;
};

template <typename Work>
Napi::Value ModelHandle::RunBackward(const Napi::CallbackInfo& info, const char* name, const char* where,
                                     std::shared_ptr<ModelState> st, size_t reduce_arg, bool grpo, Work work) {
  Napi::Env env = info.Env();
  auto finish = [grpo](Napi::Env e, ReducedBackward& r) -> Napi::Value {
    Napi::Value out = LossReportJs(e, r.report, grpo);
    if (r.buckets >= 0) {
      out.As<Napi::Object>().Set("buckets", static_cast<double>(r.buckets));
      out.As<Napi::Object>().Set("bucketsOverlapped", static_cast<double>(r.overlapped));
    }
    return out;
  };
  if (Arg(info, reduce_arg).IsUndefined()) {
    return RunLocked<ReducedBackward>(
        info, name, st, [work](ModelState& s) { return ReducedBackward{work(s)}; }, finish);
  }
  Napi::Object o = ArgObject(info, reduce_arg, where, "reduce");
  auto group = ProcessGroupFromJs(o.Get("dist"), where, "reduce.dist");
  const double bucket_bytes = OptNumber(o, "bucketBytes", where, "reduce").value_or(train::kDefaultBucketBytes);
  if (!(bucket_bytes > 0) || !std::isfinite(bucket_bytes))
    ThrowArgError(env, where, "reduce.bucketBytes", "a finite number > 0", DescribeJsValue(o.Get("bucketBytes")));
  const uint64_t ticket = group->TakeTicket();
  return RunAsync<ReducedBackward>(
      env, name, State(), {info.This(), o},
      [st, group, ticket, bucket_bytes, work]() {
        ReducedBackward r;
        group->RunSequence(ticket, "backward + allReduceGradients", [&](dist::ProcessGroup::Sequence& seq) {
          std::lock_guard<std::mutex> lock(st->mutex);
          if (!st->model) throw std::runtime_error("the Model was disposed");
          train::GradReducer reducer(st->model->TrainableInBackwardOrder(), bucket_bytes, seq);
          reducer.WithHooks([&] { r.report = work(*st); });
          r.buckets = reducer.buckets();
          r.overlapped = reducer.started_during_backward();
        });
        return r;
      },
      finish);
}

Napi::Value ModelHandle::BackwardSft(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.backwardSft";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = ArgObject(info, 1, kWhere, "loss");
  model::SftLoss spec = SftSpecFromJs(o, b, kWhere);
  return RunBackward(info, "medgr2.Model.backwardSft", kWhere, st, 2, false,
                     [b, spec](ModelState& s) { return s.model->BackwardSft(b, spec); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// sftLoss(batch, { labels, numItems?, temperature? }) -> Promise<number> (no gradient)
Napi::Value ModelHandle::SftLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.sftLoss";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = ArgObject(info, 1, kWhere, "loss");
  model::SftLoss spec = SftSpecFromJs(o, b, kWhere);
  return RunLocked<double>(
      info, "medgr2.Model.sftLoss", st, [b, spec](ModelState& s) { return s.model->SftLossValue(b, spec); },
      [](Napi::Env e, double& v) -> Napi::Value { return Napi::Number::New(e, v); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// gradients(): { name: Tensor } copies of the accumulated .grad of each parameter that has one.
// Before any backward, or after zeroGrad / optimizerStep, that is {} (not an error).
Napi::Value ModelHandle::Gradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.gradients";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  auto out = Napi::Object::New(env);
  for (const auto& [name, t] : st->model->params().All()) {
    // .cpu() / clone() allocate (and on CUDA, surface any pending device error): libtorch can throw here.
    if (t.grad().defined()) out.Set(name, TensorHandle::Wrap(env, t.grad().detach().cpu().clone()));
  }
  return out;
  MODEL_JS_CATCH(env, kWhere)
}

// ----- data parallelism -------------------------------------------------------------------------

// allReduceGradients(dist, { bucketBytes? }) -> Promise<void>: the gradients summed over the ranks of
// `dist`, in place (see ReduceGradients). Every rank must call it at the same point.
//
// The collective's ticket is taken here, on the JS thread, in program order; the worker waits for its
// turn first and takes the model's lock inside it (never the other way round: a model collective
// holding the lock while waiting for a turn would deadlock with one issued before it).
Napi::Value ModelHandle::AllReduceGradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.allReduceGradients";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  auto group = ProcessGroupFromJs(Arg(info, 0), kWhere, "dist");
  Napi::Object o = OptObject(info, 1, kWhere, "options");
  const double bucket_bytes = OptNumber(o, "bucketBytes", kWhere, "options").value_or(train::kDefaultBucketBytes);
  if (!(bucket_bytes > 0) || !std::isfinite(bucket_bytes)) {
    ThrowArgError(env, kWhere, "options.bucketBytes", "a finite number > 0", DescribeJsValue(o.Get("bucketBytes")));
  }
  const uint64_t ticket = group->TakeTicket();
  return RunAsync<bool>(
      env, "medgr2.Model.allReduceGradients", State(), {info.This(), Arg(info, 0)},
      [st, group, ticket, bucket_bytes]() {
        group->RunSequence(ticket, "allReduceGradients", [&](dist::ProcessGroup::Sequence& seq) {
          std::lock_guard<std::mutex> lock(st->mutex);
          if (!st->model) throw std::runtime_error("the Model was disposed");
          train::ReduceGradients(*st->model, seq, bucket_bytes);
        });
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// broadcastParameters(dist, root = 0) -> Promise<void>: every rank ends with `root`'s weights.
Napi::Value ModelHandle::BroadcastParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.broadcastParameters";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  auto group = ProcessGroupFromJs(Arg(info, 0), kWhere, "dist");
  int64_t root = 0;
  if (!Arg(info, 1).IsUndefined()) root = ArgInteger(info, 1, kWhere, "root");
  if (root < 0 || root >= group->world_size()) {
    ThrowArgError(env, kWhere, "root", "a rank in [0, " + std::to_string(group->world_size()) + ")",
                  std::to_string(root));
  }
  const uint64_t ticket = group->TakeTicket();
  return RunAsync<bool>(
      env, "medgr2.Model.broadcastParameters", State(), {info.This(), Arg(info, 0)},
      [st, group, ticket, root]() {
        group->RunSequence(ticket, "broadcastParameters", [&](dist::ProcessGroup::Sequence& seq) {
          std::lock_guard<std::mutex> lock(st->mutex);
          if (!st->model) throw std::runtime_error("the Model was disposed");
          train::BroadcastParams(*st->model, seq, static_cast<int>(root));
        });
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// ropeIndex(batch) -> { positionIds: Int32Array [3 * N] (t row, h row, w row), nextPositions: Int32Array [S] }
Napi::Value ModelHandle::RopeIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.ropeIndex";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  model::RopeIndex r = model::ComputeRopeIndex(b.input_ids, b.cu_seqlens, b.image_grids, st->model->config());
  auto out = Napi::Object::New(env);
  out.Set("positionIds", TypedArrayFromTensor(env, r.position_ids.to(at::kInt)));
  out.Set("nextPositions", TypedArrayFromTensor(env, at::tensor(r.next_position, at::kLong).to(at::kInt)));
  return out;
  MODEL_JS_CATCH(env, kWhere)
}

// backwardGrpo(batch, { labels, advantages, oldLogp?, refLogp?, temperature?, ...loss options }, reduce?)
Napi::Value ModelHandle::BackwardGrpo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.backwardGrpo";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = ArgObject(info, 1, kWhere, "loss");
  model::GrpoLossSpec spec;
  spec.labels = AnyTensor(o, "labels", kWhere, true);
  spec.advantages = AnyTensor(o, "advantages", kWhere, true).to(at::kFloat);
  spec.old_logp = AnyTensor(o, "oldLogp", kWhere, false);
  spec.ref_logp = AnyTensor(o, "refLogp", kWhere, false);
  if (spec.old_logp.defined()) spec.old_logp = spec.old_logp.to(at::kFloat);
  if (spec.ref_logp.defined()) spec.ref_logp = spec.ref_logp.to(at::kFloat);
  spec.temperature = OptNumber(o, "temperature", kWhere, "loss").value_or(1.0);
  spec.options = ParseLossOptions(o, kWhere, "loss");
  spec.loss_scale = OptNumber(o, "lossScale", kWhere, "loss").value_or(1.0);
  spec.is_weights = AnyTensor(o, "isWeights", kWhere, false);
  if (spec.is_weights.defined()) {
    spec.is_weights = spec.is_weights.to(at::kFloat);
    if (spec.is_weights.numel() != b.input_ids.numel())
      ThrowArgError(env, kWhere, "loss.isWeights", "one weight per token (" + std::to_string(b.input_ids.numel()) + ")",
                    std::to_string(spec.is_weights.numel()));
  }
  spec.entropy_coef = OptNumber(o, "entropyCoef", kWhere, "loss").value_or(0.0);
  if (!std::isfinite(spec.entropy_coef))
    ThrowArgError(env, kWhere, "loss.entropyCoef", "a finite number", std::to_string(spec.entropy_coef));
  spec.entropy_top_quantile = OptNumber(o, "entropyTopQuantile", kWhere, "loss").value_or(1.0);
  if (!(spec.entropy_top_quantile > 0 && spec.entropy_top_quantile <= 1))
    ThrowArgError(env, kWhere, "loss.entropyTopQuantile", "in (0, 1]", std::to_string(spec.entropy_top_quantile));
  if (!(spec.loss_scale > 0) || !std::isfinite(spec.loss_scale))
    ThrowArgError(env, kWhere, "loss.lossScale", "a finite number > 0", std::to_string(spec.loss_scale));
  const ops::LossOptions& lo = spec.options;
  // Validate the loss inputs against the batch before queueing.
  ops::LossInputs probe = ops::PackedLossInputs(at::zeros({b.input_ids.numel()}), spec.old_logp, spec.ref_logp,
                                                spec.advantages, (spec.labels >= 0).to(at::kByte), b.cu_seqlens);
  ops::CheckLossInputs(probe, lo, kWhere);
  return RunBackward(info, "medgr2.Model.backwardGrpo", kWhere, st, 2, true,
                     [b, spec](ModelState& s) { return s.model->BackwardGrpo(b, spec); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// ----- the score head (reward model) ------------------------------------------------------------

// A method of the score head on a model without one is refused before anything is queued.
void RequireScoreHead(Napi::Env env, const model::QwenVL& m, const char* where) {
  if (!m.HasScoreHead()) {
    ThrowArgError(env, where, "model", "a model with a score head (config.scoreLabels > 0; addScoreHead gives it one)",
                  "a model without one");
  }
}

// scores(batch) -> Promise<Tensor [S, L]>: the head at each sequence's last token, float32 (float64
// for a float64 model), no gradient.
Napi::Value ModelHandle::Scores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.scores";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  RequireScoreHead(env, *st->model, kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  return RunLocked<at::Tensor>(
      info, "medgr2.Model.scores", st, [b](ModelState& s) { return s.model->Scores(b).cpu(); },
      [](Napi::Env e, at::Tensor& t) -> Napi::Value { return TensorHandle::Wrap(e, t); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// backwardScore(batch, { targets, numItems? }, reduce?) -> { loss, tokens: S, entropyMean: 0 }: the
// squared error of the scores against `targets` (S * L values, row-major), summed and divided by
// numItems (default S * L), backward into .grad.
Napi::Value ModelHandle::BackwardScore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.backwardScore";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  RequireScoreHead(env, *st->model, kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = ArgObject(info, 1, kWhere, "loss");
  at::Tensor targets = AnyTensor(o, "targets", kWhere, true).to(at::kDouble);
  const int64_t want = b.Sequences() * st->model->config().score_labels;
  if (targets.numel() != want) {
    ThrowArgError(env, kWhere, "loss.targets",
                  std::to_string(want) + " values (sequences x scoreLabels " +
                      std::to_string(st->model->config().score_labels) + ")",
                  std::to_string(targets.numel()));
  }
  std::optional<double> num_items = OptNumber(o, "numItems", kWhere, "loss");
  if (num_items && !(*num_items > 0 && std::isfinite(*num_items)))
    ThrowArgError(env, kWhere, "loss.numItems", "a finite number > 0", DescribeJsValue(o.Get("numItems")));
  return RunBackward(info, "medgr2.Model.backwardScore", kWhere, st, 2, false, [b, targets, num_items](ModelState& s) {
    return s.model->BackwardScoreMse(b, targets, num_items);
  });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// addScoreHead({ labels = 1, seed = 0, std = 0.02 }): a fresh score head (see QwenVL::AddScoreHead);
// the JS Model updates its config to match.
Napi::Value ModelHandle::AddScoreHead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.addScoreHead";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = OptObject(info, 0, kWhere, "options");
  const int64_t labels = OptInteger(o, "labels", kWhere, "options").value_or(1);
  const auto seed = static_cast<uint64_t>(OptInteger(o, "seed", kWhere, "options").value_or(0));
  const double std_dev = OptNumber(o, "std", kWhere, "options").value_or(0.02);
  if (labels < 1) ThrowArgError(env, kWhere, "options.labels", "an integer >= 1", std::to_string(labels));
  if (!(std_dev >= 0 && std::isfinite(std_dev)))
    ThrowArgError(env, kWhere, "options.std", "a finite number >= 0", DescribeJsValue(o.Get("std")));
  st = Live(kWhere);  // reading the options can run JS (getters), which may have disposed it
  std::lock_guard<std::mutex> lock(st->mutex);
  if (st->model->HasScoreHead()) {
    ThrowArgError(env, kWhere, "model", "a model without a score head",
                  "one that already has a head of " + std::to_string(st->model->config().score_labels) + " labels");
  }
  st->model->AddScoreHead(labels, seed, std_dev);
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

// shardOptimizer(dist, { stage, bucketBytes? }): from now on optimizerStep is ZeRO stage 1 or 2 over
// `dist` (train/zero_adamw.h) and the optimizer state is this rank's slices; `null` goes back to the
// unsharded AdamW. Either way the optimizer starts empty: set it up before the first step or load.
Napi::Value ModelHandle::ShardOptimizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.shardOptimizer";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  if (Arg(info, 0).IsNull()) {
    std::lock_guard<std::mutex> lock(st->mutex);
    st->zero.reset();
    st->zero_group.reset();
    st->optimizer = train::AdamW();
    return env.Undefined();
  }
  auto group = ProcessGroupFromJs(Arg(info, 0), kWhere, "dist");
  Napi::Object o = ArgObject(info, 1, kWhere, "options");
  auto stage = OptInteger(o, "stage", kWhere, "options");
  if (!stage || (*stage != 1 && *stage != 2))
    ThrowArgError(env, kWhere, "options.stage", "1 or 2", DescribeJsValue(o.Get("stage")));
  const double bucket_bytes = OptNumber(o, "bucketBytes", kWhere, "options").value_or(train::kDefaultBucketBytes);
  if (!(bucket_bytes > 0) || !std::isfinite(bucket_bytes))
    ThrowArgError(env, kWhere, "options.bucketBytes", "a finite number > 0", DescribeJsValue(o.Get("bucketBytes")));
  std::lock_guard<std::mutex> lock(st->mutex);
  st->zero =
      std::make_unique<train::ZeroAdamW>(static_cast<int>(*stage), group->rank(), group->world_size(), bucket_bytes);
  st->zero_group = group;
  st->optimizer = train::AdamW();
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

Napi::Object StepReportJs(Napi::Env e, const train::StepReport& r) {
  auto out = Napi::Object::New(e);
  out.Set("gradNorm", r.grad_norm);
  out.Set("step", static_cast<double>(r.step));
  out.Set("paramsUpdated", static_cast<double>(r.params_updated));
  out.Set("skipped", r.skipped);
  return out;
}

// optimizerStep({ lr, beta1?, beta2?, eps?, weightDecay?, maxGradNorm?, skip? })
//   -> { gradNorm, step, paramsUpdated, skipped }: a non-finite gradient norm (or skip) updates nothing.
// Sharded (shardOptimizer), it is a collective of the optimizer's group: every rank calls it.
Napi::Value ModelHandle::OptimizerStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.optimizerStep";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "options");
  train::AdamWOptions a;
  auto lr = OptNumber(o, "lr", kWhere, "options");
  if (!lr || !(*lr >= 0)) ThrowArgError(env, kWhere, "options.lr", "a number >= 0", DescribeJsValue(o.Get("lr")));
  a.lr = *lr;
  a.beta1 = OptNumber(o, "beta1", kWhere, "options").value_or(0.9);
  a.beta2 = OptNumber(o, "beta2", kWhere, "options").value_or(0.999);
  a.eps = OptNumber(o, "eps", kWhere, "options").value_or(1e-8);
  a.weight_decay = OptNumber(o, "weightDecay", kWhere, "options").value_or(0.0);
  a.max_grad_norm = OptNumber(o, "maxGradNorm", kWhere, "options").value_or(0.0);
  a.skip = OptBool(o, "skip", kWhere, "options").value_or(false);
  std::shared_ptr<dist::ProcessGroup> group;
  {
    std::lock_guard<std::mutex> lock(st->mutex);
    group = st->zero_group;
  }
  if (group) {
    // A collective: its turn first, then the model's lock (see allReduceGradients).
    const uint64_t ticket = group->TakeTicket();
    return RunAsync<train::StepReport>(
        env, "medgr2.Model.optimizerStep", State(), {info.This()},
        [st, group, ticket, a]() {
          train::StepReport r;
          group->RunSequence(ticket, "optimizerStep (ZeRO)", [&](dist::ProcessGroup::Sequence& seq) {
            std::lock_guard<std::mutex> lock(st->mutex);
            if (!st->model) throw std::runtime_error("the Model was disposed");
            if (!st->zero) throw std::runtime_error("shardOptimizer(null) ran while this step was queued");
            r = st->zero->Step(st->model->params(), a, seq);
          });
          return r;
        },
        [](Napi::Env e, train::StepReport& r) -> Napi::Value { return StepReportJs(e, r); });
  }
  return RunLocked<train::StepReport>(
      info, "medgr2.Model.optimizerStep", st, [a](ModelState& s) { return s.optimizer.Step(s.model->params(), a); },
      [](Napi::Env e, train::StepReport& r) -> Napi::Value { return StepReportJs(e, r); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// On a live model this only drops the .grad tensors and cannot fail; wrapped like every entry so
// that nothing it may come to call can take the process down.
Napi::Value ModelHandle::ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.zeroGrad";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  train::AdamW::ZeroGrad(st->model->params());
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

// nonFiniteParameter() -> Promise<{ name, count } | null>: the first parameter (by name) holding a
// NaN or an infinity, and how many of its elements do; null when every weight is finite. Trainers
// ask before writing a checkpoint, loaders after reading one.
Napi::Value ModelHandle::NonFiniteParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.nonFiniteParameter";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  using Found = std::pair<std::string, int64_t>;
  return RunLocked<Found>(
      info, "medgr2.Model.nonFiniteParameter", st,
      [](ModelState& s) -> Found {
        at::NoGradGuard no_grad;
        for (const auto& [name, p] : s.model->params().All()) {
          const int64_t bad = (~at::isfinite(p.detach())).sum().item<int64_t>();
          if (bad > 0) return {name, bad};
        }
        return {"", 0};
      },
      [](Napi::Env e, Found& f) -> Napi::Value {
        if (f.first.empty()) return e.Null();
        auto o = Napi::Object::New(e);
        o.Set("name", f.first);
        o.Set("count", static_cast<double>(f.second));
        return o;
      });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

Napi::Value ModelHandle::OptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.optimizerState";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  auto out = Napi::Object::New(env);
  const auto state = st->zero ? st->zero->State() : st->optimizer.State();
  for (const auto& [k, t] : state) out.Set(k, TensorHandle::Wrap(env, t.detach().cpu().clone()));
  return out;
  MODEL_JS_CATCH(env, kWhere)
}

// loadOptimizerState(state): a state as optimizerState() returns it. AdamW::LoadState drops the
// current state first and trusts every key and shape (a wrong shape would only fail at the next
// optimizerStep, an odd "step" halfway through the load), so the whole state is checked against
// the model's parameters here, before anything changes: a rejected state leaves the old one.
Napi::Value ModelHandle::LoadOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.loadOptimizerState";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "state");
  std::map<std::string, at::Tensor> state;
  for (const auto& e : o) {
    const std::string k = e.first.As<Napi::String>().Utf8Value();
    state[k] = TensorHandle::Get(e.second, kWhere, ("state." + k).c_str());
  }
  if (st->zero) {
    // This rank's slices (ZeroAdamW::LoadState checks their sizes against its layout and throws
    // before changing anything).
    for (const auto& [key, t] : state) {
      if (key != "step" && key.rfind("zero.", 0) != 0)
        ThrowArgError(env, kWhere, "state." + key, "\"step\" or a \"zero.*\" slice (the optimizer is sharded)",
                      "an unsharded key");
    }
    std::lock_guard<std::mutex> lock(st->mutex);
    st->zero->LoadState(st->model->params(), state);
    return env.Undefined();
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& spec : st->model->ParameterSpecs()) shapes[spec.name] = std::move(spec.shape);
  for (auto& spec : st->model->AdapterSpecs()) shapes[spec.name] = std::move(spec.shape);
  for (const auto& [key, t] : state) {
    const std::string arg = "state." + key;
    if (key == "step") {
      if (t.numel() != 1) ThrowArgError(env, kWhere, arg, "a one-element tensor", "shape " + ShapeText(t.sizes()));
      continue;
    }
    const auto dot = key.find('.');
    const std::string kind = dot == std::string::npos ? key : key.substr(0, dot);
    if (dot == std::string::npos || (kind != "exp_avg" && kind != "exp_avg_sq" && kind != "master")) {
      ThrowArgError(env, kWhere, arg,
                    "named \"step\", \"exp_avg.<parameter>\", \"exp_avg_sq.<parameter>\" or \"master.<parameter>\"",
                    "an unexpected key");
    }
    const std::string name = key.substr(dot + 1);
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      ThrowArgError(env, kWhere, arg, "the state of a parameter of this model", "no parameter \"" + name + "\"");
    }
    if (t.sizes() != at::IntArrayRef(it->second)) {
      ThrowArgError(env, kWhere, arg, "of the parameter's shape " + ShapeText(at::IntArrayRef(it->second)),
                    "shape " + ShapeText(t.sizes()));
    }
    // AdamW keeps both moments of a parameter or neither (a lone one breaks the next step).
    const std::string other = kind == "exp_avg" ? "exp_avg_sq." + name : "exp_avg." + name;
    if (!state.count(other)) ThrowArgError(env, kWhere, arg, "given with state." + other, "none");
  }
  std::lock_guard<std::mutex> lock(st->mutex);
  st->optimizer.LoadState(state, st->model->device());
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

// generate(batch, { maxNewTokens, temperature, topK?, topP?, seed?, seeds?, stopTokens? })
//   -> { tokens: Int32Array[], logprobs: Float32Array[] }
Napi::Value ModelHandle::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.generate";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  model::PackedBatch b = BatchFromJs(Arg(info, 0), st->model->config(), kWhere);
  Napi::Object o = ArgObject(info, 1, kWhere, "options");
  model::GenerateOptions g;
  auto max_new = OptInteger(o, "maxNewTokens", kWhere, "options");
  if (!max_new || *max_new < 0)
    ThrowArgError(env, kWhere, "options.maxNewTokens", "an integer >= 0", DescribeJsValue(o.Get("maxNewTokens")));
  g.max_new_tokens = *max_new;
  g.temperature = OptNumber(o, "temperature", kWhere, "options").value_or(1.0);
  g.top_k = OptInteger(o, "topK", kWhere, "options").value_or(0);
  g.top_p = OptNumber(o, "topP", kWhere, "options").value_or(1.0);
  g.repetition_penalty = OptNumber(o, "repetitionPenalty", kWhere, "options").value_or(1.0);
  g.seed = static_cast<uint64_t>(OptInteger(o, "seed", kWhere, "options").value_or(0));
  if (!o.Get("stopTokens").IsUndefined())
    g.stop_tokens = ReadIntList(o.Get("stopTokens"), kWhere, "options.stopTokens", true);
  if (!o.Get("seeds").IsUndefined()) {
    for (int64_t v : ReadIntList(o.Get("seeds"), kWhere, "options.seeds", true))
      g.sequence_seeds.push_back(static_cast<uint64_t>(v));
  }
  return RunLocked<model::GenerateResult>(
      info, "medgr2.Model.generate", st, [b, g](ModelState& s) { return s.model->Generate(b, g); },
      [](Napi::Env e, model::GenerateResult& r) -> Napi::Value {
        auto tokens = Napi::Array::New(e, r.tokens.size());
        auto logprobs = Napi::Array::New(e, r.tokens.size());
        for (size_t i = 0; i < r.tokens.size(); ++i) {
          auto t = Napi::Int32Array::New(e, r.tokens[i].size());
          auto l = Napi::Float32Array::New(e, r.logprobs[i].size());
          for (size_t k = 0; k < r.tokens[i].size(); ++k) {
            t[k] = static_cast<int32_t>(r.tokens[i][k]);
            l[k] = r.logprobs[i][k];
          }
          tokens.Set(static_cast<uint32_t>(i), t);
          logprobs.Set(static_cast<uint32_t>(i), l);
        }
        auto out = Napi::Object::New(e);
        out.Set("tokens", tokens);
        out.Set("logprobs", logprobs);
        return out;
      });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// ----- LoRA adapters (model/lora.h) -------------------------------------------------------------
// Adapters are parameters of the model (M.lora_A.weight, M.lora_B.weight) that always train. The
// unsharded optimizer forgets the state of adapters that are removed, merged or replaced; a ZeRO
// optimizer (shardOptimizer) lays out the trainable set once, so shard it after the adapters exist.

std::vector<std::string> ReadStringList(const Napi::Value& v, const char* where, const std::string& arg) {
  if (!v.IsArray()) ThrowArgError(v.Env(), where, arg, "an array of strings", DescribeJsValue(v));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString())
      ThrowArgError(v.Env(), where, arg + "[" + std::to_string(i) + "]", "a string", DescribeJsValue(e));
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

// addLora({ modules: string[], rank: number, seed?: number }): fresh adapters (A uniform, B zero) on
// the named modules (QwenVL::AddLora). Errors name the module.
Napi::Value ModelHandle::AddLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.addLora";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "options");
  const std::vector<std::string> modules = ReadStringList(o.Get("modules"), kWhere, "options.modules");
  auto rank = OptInteger(o, "rank", kWhere, "options");
  if (!rank) ThrowArgError(env, kWhere, "options.rank", "an integer >= 1", DescribeJsValue(o.Get("rank")));
  const auto seed = static_cast<uint64_t>(OptInteger(o, "seed", kWhere, "options").value_or(0));
  st = Live(kWhere);  // reading the options can run JS (getters), which may have disposed it
  std::lock_guard<std::mutex> lock(st->mutex);
  st->model->AddLora(modules, *rank, seed);
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

// setLora({ scale?, dropout?, enabled?, seed? }): changes the given settings only. scale: finite
// (lora_alpha / r); dropout in [0, 1), on the adapters' input in backward calls only; seed: restarts
// the dropout masks' streams (QwenVL::SeedLoraDropout), for reproducible runs and tests.
Napi::Value ModelHandle::SetLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.setLora";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "settings");
  const auto scale = OptNumber(o, "scale", kWhere, "settings");
  const auto dropout = OptNumber(o, "dropout", kWhere, "settings");
  const auto enabled = OptBool(o, "enabled", kWhere, "settings");
  const auto seed = OptInteger(o, "seed", kWhere, "settings");
  if (scale && !std::isfinite(*scale))
    ThrowArgError(env, kWhere, "settings.scale", "a finite number", DescribeJsValue(o.Get("scale")));
  if (dropout && !(*dropout >= 0 && *dropout < 1))
    ThrowArgError(env, kWhere, "settings.dropout", "a number in [0, 1)", DescribeJsValue(o.Get("dropout")));
  st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  model::LoraSettings s = st->model->lora();
  if (scale) s.scale = *scale;
  if (dropout) s.dropout = *dropout;
  if (enabled) s.enabled = *enabled;
  st->model->SetLora(s);
  if (seed) st->model->SeedLoraDropout(static_cast<uint64_t>(*seed));
  return env.Undefined();
  MODEL_JS_CATCH(env, kWhere)
}

// setLoraTensors({ "<module>.lora_A.weight": Tensor, ... }) -> Promise: adds or replaces adapter
// tensors (QwenVL::SetLoraTensors), copied into the model's dtype and device. Checked before the
// promise is made (a rejection names the tensor) and nothing changes when one is wrong.
Napi::Value ModelHandle::SetLoraTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.setLoraTensors";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  Napi::Object o = ArgObject(info, 0, kWhere, "tensors");
  std::map<std::string, at::Tensor> given;
  for (const auto& e : o) {
    const std::string name = e.first.As<Napi::String>().Utf8Value();
    given[name] = TensorHandle::Get(e.second, kWhere, ("tensors." + name).c_str());
  }
  st = Live(kWhere);
  {
    std::lock_guard<std::mutex> lock(st->mutex);
    st->model->CheckLoraTensors(given);
  }
  return RunLocked<bool>(
      info, "medgr2.Model.setLoraTensors", st,
      [given](ModelState& s) {
        s.model->SetLoraTensors(given);  // checks again: the adapters may have changed meanwhile
        std::vector<std::string> names;
        for (const auto& [name, t] : given) names.push_back(name);
        s.optimizer.Forget(names);  // a replaced adapter starts fresh (loadOptimizerState resumes)
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

// removeLora() -> number of adapted modules there were: drops every adapter and its optimizer state.
Napi::Value ModelHandle::RemoveLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.removeLora";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  std::lock_guard<std::mutex> lock(st->mutex);
  const size_t modules = st->model->LoraModules().size();
  st->optimizer.Forget(st->model->RemoveLora());
  return Napi::Number::New(env, static_cast<double>(modules));
  MODEL_JS_CATCH(env, kWhere)
}

// mergeLora() -> Promise<number of modules merged>: W += scale * B A (QwenVL::MergeLora), adapters
// dropped with their optimizer state; a merged weight's float32 master copy follows it.
Napi::Value ModelHandle::MergeLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Model.mergeLora";
  MODEL_JS_TRY
  auto st = Live(kWhere);
  return RunLocked<double>(
      info, "medgr2.Model.mergeLora", st,
      [](ModelState& s) {
        const std::vector<std::string> modules = s.model->MergeLora();
        for (const std::string& m : modules) {
          s.optimizer.Forget({model::LoraAName(m), model::LoraBName(m)});
          s.optimizer.ResyncMaster(m + ".weight", s.model->params().Get(m + ".weight"));
        }
        return static_cast<double>(modules.size());
      },
      [](Napi::Env e, double& n) -> Napi::Value { return Napi::Number::New(e, n); });
  MODEL_JS_CATCH_ASYNC(env, kWhere)
}

Napi::Value ModelHandle::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MODEL_JS_TRY
  if (state_) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->model.reset();
  }
  return env.Undefined();
  MODEL_JS_CATCH(env, "Model.dispose")
}

}  // namespace

void RegisterModel(Napi::Env env, Napi::Object exports) {
  ModelHandle::Init(env, exports);
}

}  // namespace medgr2
