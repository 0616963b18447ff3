// AdamW with decoupled weight decay, global-norm gradient clipping and float32 master weights and
// states (a bf16 model keeps a float32 copy of each trainable parameter; updates happen there and
// are copied back). No decay on 1-D parameters (biases and norm weights), as the field's trainers do.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/params.h"

namespace medgr2::train {

struct AdamWOptions {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 0.0;  // 0: no clipping
  // Skip this step whatever the gradients (a trainer that saw a non-finite loss asks for it).
  bool skip = false;
};

struct StepReport {
  double grad_norm = 0;  // before clipping
  int64_t step = 0;
  int64_t params_updated = 0;
  // No update happened: `skip` was asked for, or the global gradient norm was not finite. The
  // weights, moments and step count are as before; the gradients are dropped.
  bool skipped = false;
};

// Whether a step must leave everything untouched (a NaN/Inf gradient would poison the moments).
inline bool MustSkip(const AdamWOptions& o, double grad_norm) {
  return o.skip || !std::isfinite(grad_norm);
}

class AdamW {
 public:
  // Clips, updates every parameter that requires grad and has one, then zeroes the gradients;
  // or, when MustSkip, only zeroes them.
  StepReport Step(model::ParamMap& params, const AdamWOptions& o);
  static void ZeroGrad(model::ParamMap& params);
  static double GradNorm(const model::ParamMap& params);

  // "step", "exp_avg.<name>", "exp_avg_sq.<name>", "master.<name>": float32 tensors for checkpoints.
  std::map<std::string, at::Tensor> State() const;
  void LoadState(const std::map<std::string, at::Tensor>& state, const at::Device& device);
  int64_t step() const { return step_; }
  // Drops the moments (and master) of parameters that left the model (removed LoRA adapters), so
  // State() names only live parameters and a later parameter of the same name starts fresh.
  void Forget(const std::vector<std::string>& names);
  // A parameter changed outside the optimizer (a LoRA merge into its weight): its float32 master
  // copy, if it has one, takes the new value (else the next step would copy the old one back).
  void ResyncMaster(const std::string& name, const at::Tensor& param);

 private:
  struct Slot {
    at::Tensor exp_avg, exp_avg_sq, master;  // master undefined for float32 parameters
  };
  std::map<std::string, Slot> slots_;
  int64_t step_ = 0;
};

}  // namespace medgr2::train
