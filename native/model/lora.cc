#include "model/lora.h"

#include "model/layers.h"

#include "model/seeded_generator.h"

namespace medgr2::model {

namespace {

constexpr const char* kLoraA = ".lora_A.weight";
constexpr const char* kLoraB = ".lora_B.weight";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// FNV-1a: a hash of the module name that is the same on every rank and build (std::hash need not be).
uint64_t NameHash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// Inverted dropout (nn.Dropout's): zero each element with probability p, scale the rest by 1/(1-p).
at::Tensor AdapterDropout(const ForwardWeights& w, const std::string& module, const at::Tensor& x) {
  const double keep = 1.0 - w.lora.dropout;
  at::Generator gen = SeededGenerator(x.device(), MixSeed(w.dropout_seed ^ NameHash(module)));
  // Drawn in float32 whatever the model's dtype: the same mask for a bf16 and a float32 model.
  at::Tensor mask = at::empty(x.sizes(), x.options().dtype(at::kFloat)).bernoulli_(keep, gen);
  return x * (mask / keep).to(x.scalar_type());
}

}  // namespace

std::string LoraAName(const std::string& module) {
  return module + kLoraA;
}

std::string LoraBName(const std::string& module) {
  return module + kLoraB;
}

bool ParseLoraName(const std::string& name, std::string* module, bool* is_a) {
  for (const bool a : {true, false}) {
    const std::string suffix = a ? kLoraA : kLoraB;
    if (!EndsWith(name, suffix)) continue;
    if (module) *module = name.substr(0, name.size() - suffix.size());
    if (is_a) *is_a = a;
    return true;
  }
  return false;
}

uint64_t MixSeed(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

at::Tensor Project(const ForwardWeights& w, const std::string& module, const at::Tensor& x) {
  at::Tensor y = Linear(x, w.Get(module + ".weight"), w.Find(module + ".bias"));
  if (!w.lora.enabled) return y;
  const at::Tensor a = w.Find(LoraAName(module));
  if (!a.defined()) return y;
  const at::Tensor adapter_in = (w.training && w.lora.dropout > 0) ? AdapterDropout(w, module, x) : x;
  return y + w.lora.scale * Linear(Linear(adapter_in, a), w.Get(LoraBName(module)));
}

}  // namespace medgr2::model
