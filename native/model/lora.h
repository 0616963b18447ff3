// LoRA adapters in PEFT's layout. A target linear module M (weight M.weight [out, in]) gains
// M.lora_A.weight [r, in] and M.lora_B.weight [out, r] in the same ParamMap as the base weights, so
// the optimizer, gradients, data parallelism and checkpoints of the model see them as ordinary
// parameters. Every projection an adapter may target goes through Project(), which adds
// scale * B(A(dropout(x))) to the base output.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "model/params.h"

namespace medgr2::model {

struct LoraSettings {
  double scale = 1.0;    // lora_alpha / r, chosen by the caller
  double dropout = 0.0;  // on the adapter's input (as PEFT), in training backward passes only
  bool enabled = true;   // false: the base model's outputs exactly (the adapters stay)
};

std::string LoraAName(const std::string& module);  // module + ".lora_A.weight"
std::string LoraBName(const std::string& module);  // module + ".lora_B.weight"
// Whether `name` is an adapter tensor's; if so, its module and whether it is the A matrix.
bool ParseLoraName(const std::string& name, std::string* module = nullptr, bool* is_a = nullptr);

// What one forward reads: the parameters, the adapter settings, and whether this forward belongs to
// a training backward (the only one where adapter dropout is on -- decided by the caller, not by
// GradMode, because activation recomputation runs its first forward without grad). Small and
// copied by value into recomputed layers, so a recomputation sees exactly what the first pass saw.
struct ForwardWeights {
  const ParamMap* params = nullptr;
  LoraSettings lora;
  bool training = false;
  // This forward's dropout masks: module M draws its mask from a generator seeded with
  // (dropout_seed, M), so a recomputation of M's layer draws the very same mask.
  uint64_t dropout_seed = 0;

  const at::Tensor& Get(const std::string& name) const { return params->Get(name); }
  at::Tensor Find(const std::string& name) const { return params->Find(name); }
};

// x M.weight^T + M.bias, plus scale * dropout(x) A^T B^T when M has an adapter and adapters are on.
at::Tensor Project(const ForwardWeights& w, const std::string& module, const at::Tensor& x);

// splitmix64: spreads nearby seeds (consecutive forwards, similar names) over unrelated streams.
uint64_t MixSeed(uint64_t x);

}  // namespace medgr2::model
