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

}  // namespace medgr2::model
