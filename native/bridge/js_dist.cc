// The JS `Distributed` class (exports.Distributed): a c10d process group (native/dist/). create() and
// every collective return Promises and run on the libuv pool; collectives on one group run in the order
// JS called them (tickets, see dist/process_group.h). Arguments are checked here, on the JS thread,
// before a ticket is taken, so a bad call never leaves a hole in the sequence.
#include <napi.h>

#include <memory>

#include "bridge/args.h"
#include "bridge/async_work.h"
#include "bridge/errors.h"
#include "bridge/js_dist.h"
#include "bridge/tensor_handle.h"
#include "dist/process_group.h"

namespace medgr2 {

namespace {

using dist::ProcessGroup;
using dist::ReduceKind;

ReduceKind ParseOp(const Napi::CallbackInfo& info, size_t i, const char* where) {
  Napi::Value v = Arg(info, i);
  if (v.IsUndefined()) return ReduceKind::kSum;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "sum") return ReduceKind::kSum;
  if (s == "avg") return ReduceKind::kAvg;
  if (s == "max") return ReduceKind::kMax;
  if (s == "min") return ReduceKind::kMin;
  ThrowArgError(info.Env(), where, "op", "\"sum\", \"avg\", \"max\" or \"min\"", DescribeJsValue(v));
}

void CheckAvg(Napi::Env env, ReduceKind op, const at::Tensor& t, const char* where, const char* name) {
  if (op == ReduceKind::kAvg && !t.is_floating_point()) {
    ThrowArgError(env, where, name, "a floating-point Tensor for op \"avg\"", c10::toString(t.scalar_type()));
  }
}

void CheckSameKind(Napi::Env env, const at::Tensor& a, const at::Tensor& b, const char* where, const char* name) {
  if (a.scalar_type() != b.scalar_type() || a.device() != b.device()) {
    ThrowArgError(env, where, name,
                  std::string("of the same dtype and device as the others (") + c10::toString(a.scalar_type()) + ", " +
                      a.device().str() + ")",
                  std::string(c10::toString(b.scalar_type())) + ", " + b.device().str());
  }
}

class DistributedHandle : public Napi::ObjectWrap<DistributedHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit DistributedHandle(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group_->rank()); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group_->world_size()); }
  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), group_->backend()); }
  Napi::Value TimeoutMs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(group_->timeout().count()));
  }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), group_->closed()); }
  Napi::Value AllReduce(const Napi::CallbackInfo& info);
  Napi::Value AllReduceFlat(const Napi::CallbackInfo& info);
  Napi::Value Broadcast(const Napi::CallbackInfo& info);
  Napi::Value AllGather(const Napi::CallbackInfo& info);
  Napi::Value ReduceScatter(const Napi::CallbackInfo& info);
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

 public:
  const std::shared_ptr<ProcessGroup>& group() const { return group_; }

 private:
  // Takes the next ticket and runs `work(ticket)` on the pool; resolves to undefined. Keeps this
  // handle and every argument (the tensors written in place) alive until it settles.
  Napi::Value Collective(const Napi::CallbackInfo& info, const char* name, std::optional<c10::Device> device,
                         std::function<void(ProcessGroup&, uint64_t)> work);

  std::shared_ptr<ProcessGroup> group_;
};

Napi::FunctionReference* g_distributed_ctor = nullptr;

void DistributedHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "Distributed",
                                   {
                                       StaticMethod<&DistributedHandle::Create>("create"),
                                       InstanceAccessor<&DistributedHandle::Rank>("rank"),
                                       InstanceAccessor<&DistributedHandle::WorldSize>("worldSize"),
                                       InstanceAccessor<&DistributedHandle::Backend>("backend"),
                                       InstanceAccessor<&DistributedHandle::TimeoutMs>("timeoutMs"),
                                       InstanceAccessor<&DistributedHandle::Closed>("closed"),
                                       InstanceMethod<&DistributedHandle::AllReduce>("allReduce"),
                                       InstanceMethod<&DistributedHandle::AllReduceFlat>("allReduceFlat"),
                                       InstanceMethod<&DistributedHandle::Broadcast>("broadcast"),
                                       InstanceMethod<&DistributedHandle::AllGather>("allGather"),
                                       InstanceMethod<&DistributedHandle::ReduceScatter>("reduceScatter"),
                                       InstanceMethod<&DistributedHandle::Barrier>("barrier"),
                                       InstanceMethod<&DistributedHandle::Close>("close"),
                                   });
  g_distributed_ctor = new Napi::FunctionReference(Napi::Persistent(cls));
  exports.Set("Distributed", cls);
}

DistributedHandle::DistributedHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DistributedHandle>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "new Distributed: use Distributed.create(options)");
  }
  // Shared with in-flight collectives: the GC may collect this handle, the group lives until they end.
  group_ = *info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
}

// Distributed.create({ rank, worldSize, masterAddr, masterPort, backend?, timeoutMs?, agentStore?,
//                      restartCount? }) -> Promise<Distributed>
Napi::Value DistributedHandle::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.create";
  MEDGR2_JS_TRY
  Napi::Object o = ArgObject(info, 0, kWhere, "options");
  dist::GroupOptions g;
  auto world = OptInteger(o, "worldSize", kWhere, "options");
  auto rank = OptInteger(o, "rank", kWhere, "options");
  if (!world || *world < 1)
    ThrowArgError(env, kWhere, "options.worldSize", "an integer >= 1", DescribeJsValue(o.Get("worldSize")));
  if (!rank || *rank < 0 || *rank >= *world) {
    ThrowArgError(env, kWhere, "options.rank", "an integer in [0, worldSize)", DescribeJsValue(o.Get("rank")));
  }
  g.world_size = static_cast<int>(*world);
  g.rank = static_cast<int>(*rank);
  g.backend = OptString(o, "backend", kWhere, "options").value_or("gloo");
  if (g.backend != "gloo" && g.backend != "nccl" && g.backend != "local") {
    ThrowArgError(env, kWhere, "options.backend", "\"gloo\", \"nccl\" or \"local\"", "\"" + g.backend + "\"");
  }
  if (g.backend == "local" && g.world_size != 1) {
    ThrowArgError(env, kWhere, "options.backend", "\"gloo\" or \"nccl\" for a world size above 1", "\"local\"");
  }
  if (g.backend != "local") {
    auto addr = OptString(o, "masterAddr", kWhere, "options");
    auto port = OptInteger(o, "masterPort", kWhere, "options");
    if (!addr || addr->empty())
      ThrowArgError(env, kWhere, "options.masterAddr", "a host name or address", DescribeJsValue(o.Get("masterAddr")));
    if (!port || *port < 1 || *port > 65535)
      ThrowArgError(env, kWhere, "options.masterPort", "a TCP port (1..65535)", DescribeJsValue(o.Get("masterPort")));
    g.master_addr = *addr;
    g.master_port = static_cast<int>(*port);
  }
  if (auto t = OptInteger(o, "timeoutMs", kWhere, "options")) {
    if (*t < 1) ThrowArgError(env, kWhere, "options.timeoutMs", "a positive integer", std::to_string(*t));
    g.timeout = std::chrono::milliseconds(*t);
  }
  g.agent_store = OptBool(o, "agentStore", kWhere, "options").value_or(false);
  g.restart_count = static_cast<int>(OptInteger(o, "restartCount", kWhere, "options").value_or(0));
  return RunAsync<std::shared_ptr<ProcessGroup>>(
      env, "medgr2.Distributed.create", ThreadState{}, {}, [g]() { return ProcessGroup::Create(g); },
      [](Napi::Env e, std::shared_ptr<ProcessGroup>& pg) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<ProcessGroup>>::New(
            e, new std::shared_ptr<ProcessGroup>(pg), [](Napi::Env, std::shared_ptr<ProcessGroup>* p) { delete p; });
        return g_distributed_ctor->New({ext});
      });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value DistributedHandle::Collective(const Napi::CallbackInfo& info, const char* name,
                                          std::optional<c10::Device> device,
                                          std::function<void(ProcessGroup&, uint64_t)> work) {
  if (group_->closed()) throw Napi::Error::New(info.Env(), std::string(name) + ": the process group is closed");
  ThreadState state;
  state.device = device;
  std::vector<Napi::Value> keep{info.This()};
  for (size_t i = 0; i < info.Length(); ++i) keep.push_back(info[i]);
  const uint64_t ticket = group_->TakeTicket();
  return RunAsync<bool>(
      info.Env(), name, state, keep,
      [group = group_, ticket, work = std::move(work)]() {
        work(*group, ticket);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// allReduce(tensor, op = "sum"): in place.
Napi::Value DistributedHandle::AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.allReduce";
  MEDGR2_JS_TRY
  at::Tensor t = TensorHandle::Get(Arg(info, 0), kWhere, "tensor");
  const ReduceKind op = ParseOp(info, 1, kWhere);
  CheckAvg(env, op, t, kWhere, "tensor");
  return Collective(info, "medgr2.dist.allReduce", t.device(),
                    [t, op](ProcessGroup& g, uint64_t ticket) { g.AllReduce(ticket, t, op); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// allReduceFlat(tensors, op = "sum"): one collective over several tensors of one dtype and device.
Napi::Value DistributedHandle::AllReduceFlat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.allReduceFlat";
  MEDGR2_JS_TRY
  Napi::Value list = Arg(info, 0);
  if (!list.IsArray() || list.As<Napi::Array>().Length() == 0) {
    ThrowArgError(env, kWhere, "tensors", "a non-empty array of Tensors", DescribeJsValue(list));
  }
  Napi::Array arr = list.As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string name = "tensors[" + std::to_string(i) + "]";
    tensors.push_back(TensorHandle::Get(arr.Get(i), kWhere, name.c_str()));
    CheckSameKind(env, tensors.front(), tensors.back(), kWhere, name.c_str());
  }
  const ReduceKind op = ParseOp(info, 1, kWhere);
  CheckAvg(env, op, tensors.front(), kWhere, "tensors");
  return Collective(info, "medgr2.dist.allReduceFlat", tensors.front().device(),
                    [tensors, op](ProcessGroup& g, uint64_t ticket) { g.AllReduceFlat(ticket, tensors, op); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// broadcast(tensor, root): in place; every rank ends with root's values.
Napi::Value DistributedHandle::Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.broadcast";
  MEDGR2_JS_TRY
  at::Tensor t = TensorHandle::Get(Arg(info, 0), kWhere, "tensor");
  const int64_t root = ArgInteger(info, 1, kWhere, "root");
  if (root < 0 || root >= group_->world_size()) {
    ThrowArgError(env, kWhere, "root", "a rank in [0, " + std::to_string(group_->world_size()) + ")",
                  std::to_string(root));
  }
  return Collective(info, "medgr2.dist.broadcast", t.device(),
                    [t, root](ProcessGroup& g, uint64_t ticket) { g.Broadcast(ticket, t, static_cast<int>(root)); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// allGather(output, input): output holds worldSize * input.numel elements, rank r's input at slot r.
Napi::Value DistributedHandle::AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.allGather";
  MEDGR2_JS_TRY
  at::Tensor out = TensorHandle::Get(Arg(info, 0), kWhere, "output");
  at::Tensor in = TensorHandle::Get(Arg(info, 1), kWhere, "input");
  CheckSameKind(env, out, in, kWhere, "input");
  if (out.numel() != in.numel() * group_->world_size()) {
    ThrowArgError(env, kWhere, "output",
                  "worldSize * input.numel = " + std::to_string(in.numel() * group_->world_size()) + " elements",
                  std::to_string(out.numel()));
  }
  return Collective(info, "medgr2.dist.allGather", in.device(),
                    [out, in](ProcessGroup& g, uint64_t ticket) { g.AllGather(ticket, out, in); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// reduceScatter(output, input, op = "sum"): output = op over ranks of input's slot `rank`.
Napi::Value DistributedHandle::ReduceScatter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr const char* kWhere = "Distributed.reduceScatter";
  MEDGR2_JS_TRY
  at::Tensor out = TensorHandle::Get(Arg(info, 0), kWhere, "output");
  at::Tensor in = TensorHandle::Get(Arg(info, 1), kWhere, "input");
  CheckSameKind(env, out, in, kWhere, "input");
  if (in.numel() != out.numel() * group_->world_size()) {
    ThrowArgError(env, kWhere, "input",
                  "worldSize * output.numel = " + std::to_string(out.numel() * group_->world_size()) + " elements",
                  std::to_string(in.numel()));
  }
  const ReduceKind op = ParseOp(info, 2, kWhere);
  CheckAvg(env, op, out, kWhere, "output");
  return Collective(info, "medgr2.dist.reduceScatter", in.device(),
                    [out, in, op](ProcessGroup& g, uint64_t ticket) { g.ReduceScatter(ticket, out, in, op); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

Napi::Value DistributedHandle::Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  return Collective(info, "medgr2.dist.barrier", std::nullopt,
                    [](ProcessGroup& g, uint64_t ticket) { g.Barrier(ticket); });
  MEDGR2_JS_CATCH_ASYNC(env)
}

// close(): frees the backend and the store now (collectives in flight finish or fail first).
Napi::Value DistributedHandle::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MEDGR2_JS_TRY
  group_->Close();
  return env.Undefined();
  MEDGR2_JS_CATCH(env)
}

}  // namespace

std::shared_ptr<dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& value, const char* where, const char* name) {
  Napi::Env env = value.Env();
  if (!g_distributed_ctor || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(g_distributed_ctor->Value())) {
    ThrowArgError(env, where, name, "a Distributed (from Distributed.create / initProcessGroup)",
                  DescribeJsValue(value));
  }
  DistributedHandle* h = DistributedHandle::Unwrap(value.As<Napi::Object>());
  if (!h || !h->group())
    ThrowArgError(env, where, name, "a Distributed (from Distributed.create / initProcessGroup)",
                  DescribeJsValue(value));
  if (h->group()->closed()) throw Napi::Error::New(env, std::string(where) + ": the process group is closed");
  return h->group();
}

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  DistributedHandle::Init(env, exports);
}

}  // namespace medgr2
