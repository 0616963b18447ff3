// QwenVL's LoRA adapters: adding, replacing, removing and merging them (the forward side is
// model/lora.h's Project). Every check runs before anything changes, so a rejected call leaves the
// model as it was.
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <set>

#include "common/argument_error.h"
#include "model/layers.h"
#include "model/qwen_vl.h"

namespace medgr2::model {

namespace {

constexpr const char* kProjectable =
    "a projectable linear module (a decoder layer's self_attn.q/k/v/o_proj or mlp.gate/up/down_proj, a vision "
    "block's attn.qkv, attn.proj or mlp projections, visual.merger.mlp.0 or mlp.2)";

// The message part that says why `module` cannot carry an adapter.
std::string WhyNotProjectable(const std::vector<ParamSpec>& specs, const std::string& module) {
  for (const ParamSpec& s : specs)
    if (s.name == module + ".weight") return "\"" + module + "\", which is not one";
  return "\"" + module + "\", which this model does not have";
}

std::string Quoted(const std::string& s) {
  return "\"" + s + "\"";
}

}  // namespace

std::map<std::string, std::vector<int64_t>> QwenVL::ProjectableModules() const {
  // Every matrix of the model is a projection except these three (the patch embedding is 5-D).
  static const std::set<std::string> kNotProjections = {"model.embed_tokens.weight", "lm_head.weight", "score.weight"};
  std::map<std::string, std::vector<int64_t>> out;
  const std::string weight = ".weight";
  for (const ParamSpec& s : ParameterSpecs()) {
    if (s.shape.size() != 2 || kNotProjections.count(s.name)) continue;
    out[s.name.substr(0, s.name.size() - weight.size())] = s.shape;
  }
  return out;
}

int64_t QwenVL::AdapterRank(const std::string& module) const {
  const at::Tensor a = params_.Find(LoraAName(module));
  if (a.defined()) return a.size(0);
  const at::Tensor b = params_.Find(LoraBName(module));
  return b.defined() ? b.size(1) : 0;
}

std::vector<std::string> QwenVL::LoraModules() const {
  std::set<std::string> modules;
  std::string module;
  for (const auto& [name, t] : params_.All())
    if (ParseLoraName(name, &module)) modules.insert(module);
  return {modules.begin(), modules.end()};
}

int64_t QwenVL::LoraRank() const {
  const auto modules = LoraModules();
  return modules.empty() ? 0 : AdapterRank(modules.front());
}

std::vector<ParamSpec> QwenVL::AdapterSpecs() const {
  std::vector<ParamSpec> out;
  for (const std::string& module : LoraModules()) {
    for (const std::string& name : {LoraAName(module), LoraBName(module)}) {
      const at::Tensor t = params_.Find(name);
      if (t.defined()) out.push_back({name, t.sizes().vec()});
    }
  }
  return out;
}

void QwenVL::AddLora(const std::vector<std::string>& modules, int64_t rank, uint64_t seed) {
  constexpr const char* kWhere = "Model.addLora";
  if (rank < 1) throw ArgumentError(kWhere, "options.rank", "an integer >= 1", std::to_string(rank));
  if (modules.empty()) throw ArgumentError(kWhere, "options.modules", "at least one module name", "none");
  const int64_t existing = LoraRank();
  if (existing > 0 && existing != rank) {
    throw ArgumentError(kWhere, "options.rank", "the rank of the model's adapters (" + std::to_string(existing) + ")",
                        std::to_string(rank));
  }
  const auto projectable = ProjectableModules();
  const auto specs = ParameterSpecs();
  std::set<std::string> seen;
  for (size_t i = 0; i < modules.size(); ++i) {
    const std::string& m = modules[i];
    const std::string arg = "options.modules[" + std::to_string(i) + "]";
    if (!projectable.count(m)) throw ArgumentError(kWhere, arg, kProjectable, WhyNotProjectable(specs, m));
    if (AdapterRank(m) > 0)
      throw ArgumentError(kWhere, arg, "a module without an adapter", Quoted(m) + ", which has one");
    if (!seen.insert(m).second) throw ArgumentError(kWhere, arg, "named once", Quoted(m) + " again");
  }
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  for (const std::string& m : modules) {
    const int64_t out = projectable.at(m)[0], in = projectable.at(m)[1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor a = at::empty({rank, in}, at::kFloat).uniform_(-bound, bound, gen);
    params_.Set(LoraAName(m), a.to(device_, dtype_).requires_grad_(true));
    params_.Set(LoraBName(m),
                at::zeros({out, rank}, at::TensorOptions().device(device_).dtype(dtype_)).requires_grad_(true));
  }
}

void QwenVL::CheckLoraTensors(const std::map<std::string, at::Tensor>& tensors) const {
  constexpr const char* kWhere = "Model.setLoraTensors";
  const auto projectable = ProjectableModules();
  const auto specs = ParameterSpecs();
  std::map<std::string, int64_t> given_rank;       // module -> rank of the tensors given for it
  std::map<std::string, std::string> given_by;     // module -> a tensor name (for messages)
  std::map<std::string, std::set<bool>> given_ab;  // module -> which of A (true) / B (false) were given
  for (const auto& [name, t] : tensors) {
    const std::string arg = "tensors." + name;
    std::string module;
    bool is_a = false;
    if (!ParseLoraName(name, &module, &is_a))
      throw ArgumentError(kWhere, arg, "named <module>.lora_A.weight or <module>.lora_B.weight", "another name");
    auto it = projectable.find(module);
    if (it == projectable.end())
      throw ArgumentError(kWhere, arg, std::string("the adapter of ") + kProjectable, WhyNotProjectable(specs, module));
    const int64_t out = it->second[0], in = it->second[1];
    const bool fits = t.dim() == 2 && (is_a ? t.size(1) == in : t.size(0) == out) && t.size(is_a ? 0 : 1) >= 1;
    if (!fits) {
      const std::string want = is_a ? "[r, " + std::to_string(in) + "]" : "[" + std::to_string(out) + ", r]";
      throw ArgumentError(kWhere, arg, "of shape " + want + " (r >= 1) for " + module, "shape " + ShapeText(t.sizes()));
    }
    const int64_t r = t.size(is_a ? 0 : 1);
    auto [rank_it, fresh] = given_rank.emplace(module, r);
    if (!fresh && rank_it->second != r) {
      throw ArgumentError(kWhere, arg,
                          "of the rank of " + given_by[module] + " (" + std::to_string(rank_it->second) + ")",
                          "rank " + std::to_string(r));
    }
    given_by.emplace(module, name);
    given_ab[module].insert(is_a);
  }
  // A module given only one half keeps its other one: which must exist, of the same rank.
  for (const auto& [module, halves] : given_ab) {
    if (halves.size() == 2) continue;
    const std::string& name = given_by.at(module);
    const int64_t have = AdapterRank(module);
    if (have == 0) {
      throw ArgumentError(kWhere, "tensors." + name,
                          "given with " + (*halves.begin() ? LoraBName(module) : LoraAName(module)),
                          "none (" + module + " has no adapter)");
    }
    if (have != given_rank.at(module)) {
      throw ArgumentError(kWhere, "tensors." + name,
                          "of the rank of the adapter it joins (" + std::to_string(have) + ")",
                          "rank " + std::to_string(given_rank.at(module)));
    }
  }
  // Every adapter of the model afterwards has one rank.
  std::map<std::string, int64_t> final_rank = given_rank;
  for (const std::string& module : LoraModules()) final_rank.emplace(module, AdapterRank(module));
  const int64_t first = final_rank.begin()->second;
  for (const auto& [module, r] : final_rank) {
    if (r == first) continue;
    const bool mine = given_by.count(module) > 0;
    const std::string& culprit = mine ? given_by.at(module) : given_by.at(final_rank.begin()->first);
    throw ArgumentError(kWhere, "tensors." + culprit, "of one rank with every other adapter of the model",
                        "ranks " + std::to_string(first) + " and " + std::to_string(r) + " (" + module + ")");
  }
}

void QwenVL::SetLoraTensors(const std::map<std::string, at::Tensor>& tensors) {
  if (tensors.empty()) return;
  CheckLoraTensors(tensors);
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : tensors) params_.Set(name, t.detach().to(device_, dtype_).clone().requires_grad_(true));
}

std::vector<std::string> QwenVL::RemoveLora() {
  std::vector<std::string> dropped;
  auto& all = params_.All();
  for (auto it = all.begin(); it != all.end();) {
    if (ParseLoraName(it->first)) {
      dropped.push_back(it->first);
      it = all.erase(it);
    } else {
      ++it;
    }
  }
  return dropped;
}

std::vector<std::string> QwenVL::MergeLora() {
  const auto modules = LoraModules();
  at::NoGradGuard no_grad;
  const at::ScalarType acc = AccType(dtype_);
  for (const std::string& m : modules) {
    at::Tensor w = params_.Get(m + ".weight").detach();
    const at::Tensor a = params_.Get(LoraAName(m)).detach(), b = params_.Get(LoraBName(m)).detach();
    at::Tensor merged = w.to(acc) + lora_.scale * at::matmul(b.to(acc), a.to(acc));
    w.copy_(merged.to(w.scalar_type()));  // in place: the weight keeps its identity and trainability
  }
  RemoveLora();
  return modules;
}

}  // namespace medgr2::model
