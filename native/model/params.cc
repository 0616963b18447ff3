#include "model/params.h"

#include <stdexcept>

namespace medgr2::model {

const at::Tensor& ParamMap::Get(const std::string& name) const {
  auto it = params_.find(name);
  if (it == params_.end()) throw std::invalid_argument("model: missing parameter " + name);
  return it->second;
}

at::Tensor ParamMap::Find(const std::string& name) const {
  auto it = params_.find(name);
  return it == params_.end() ? at::Tensor() : it->second;
}

bool ParamMap::AnyRequiresGrad(const std::string& prefix) const {
  for (auto it = params_.lower_bound(prefix); it != params_.end() && it->first.rfind(prefix, 0) == 0; ++it)
    if (it->second.requires_grad()) return true;
  return false;
}

}  // namespace medgr2::model
