// The model's parameters by canonical (hub, old-layout) name, e.g. "model.layers.0.self_attn.q_proj.weight".
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

namespace medgr2::model {

class ParamMap {
 public:
  const at::Tensor& Get(const std::string& name) const;
  // Undefined tensor when absent (optional biases).
  at::Tensor Find(const std::string& name) const;
  void Set(const std::string& name, at::Tensor t) { params_[name] = std::move(t); }
  bool Has(const std::string& name) const { return params_.count(name) > 0; }
  // Whether a parameter whose name starts with `prefix` (e.g. "model.layers.3.") requires grad.
  bool AnyRequiresGrad(const std::string& prefix) const;
  std::map<std::string, at::Tensor>& All() { return params_; }
  const std::map<std::string, at::Tensor>& All() const { return params_; }

 private:
  std::map<std::string, at::Tensor> params_;
};

}  // namespace medgr2::model
