#include "train/adamw.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common/nvtx.h"

namespace medgr2::train {

double AdamW::GradNorm(const model::ParamMap& params) {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& [name, p] : params.All()) {
    if (p.grad().defined()) sq += p.grad().to(at::kFloat).pow(2).sum().item<double>();
  }
  return std::sqrt(sq);
}

void AdamW::ZeroGrad(model::ParamMap& params) {
  for (auto& [name, p] : params.All()) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

StepReport AdamW::Step(model::ParamMap& params, const AdamWOptions& o) {
  NvtxRange range("medgr2.optimizer");
  at::NoGradGuard no_grad;
  StepReport r;
  r.grad_norm = GradNorm(params);
  if (MustSkip(o, r.grad_norm)) {
    ZeroGrad(params);
    r.skipped = true;
    r.step = step_;
    return r;
  }
  const double clip =
      (o.max_grad_norm > 0 && r.grad_norm > o.max_grad_norm) ? o.max_grad_norm / (r.grad_norm + 1e-6) : 1.0;
  ++step_;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step_));
  for (auto& [name, p] : params.All()) {
    if (!p.requires_grad() || !p.grad().defined()) continue;
    Slot& s = slots_[name];
    if (!s.exp_avg.defined()) {
      s.exp_avg = at::zeros(p.sizes(), p.options().dtype(at::kFloat));
      s.exp_avg_sq = at::zeros(p.sizes(), p.options().dtype(at::kFloat));
      if (p.scalar_type() != at::kFloat) s.master = p.detach().to(at::kFloat);
    }
    at::Tensor w = s.master.defined() ? s.master : p.detach();
    at::Tensor g = p.grad().to(at::kFloat);
    if (clip != 1.0) g = g * clip;
    if (o.weight_decay > 0 && p.dim() > 1) w.mul_(1.0 - o.lr * o.weight_decay);
    s.exp_avg.mul_(o.beta1).add_(g, 1.0 - o.beta1);
    s.exp_avg_sq.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
    at::Tensor denom = (s.exp_avg_sq / bc2).sqrt_().add_(o.eps);
    w.addcdiv_(s.exp_avg, denom, -o.lr / bc1);
    if (s.master.defined()) p.detach().copy_(s.master);
    ++r.params_updated;
  }
  ZeroGrad(params);
  r.step = step_;
  return r;
}

std::map<std::string, at::Tensor> AdamW::State() const {
  std::map<std::string, at::Tensor> out;
  out["step"] = at::tensor({static_cast<double>(step_)}, at::kDouble);
  for (const auto& [name, s] : slots_) {
    out["exp_avg." + name] = s.exp_avg;
    out["exp_avg_sq." + name] = s.exp_avg_sq;
    if (s.master.defined()) out["master." + name] = s.master;
  }
  return out;
}

void AdamW::Forget(const std::vector<std::string>& names) {
  for (const std::string& name : names) slots_.erase(name);
}

void AdamW::ResyncMaster(const std::string& name, const at::Tensor& param) {
  auto it = slots_.find(name);
  if (it == slots_.end() || !it->second.master.defined()) return;
  at::NoGradGuard no_grad;
  it->second.master.copy_(param.detach());
}

void AdamW::LoadState(const std::map<std::string, at::Tensor>& state, const at::Device& device) {
  slots_.clear();
  step_ = 0;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      step_ = static_cast<int64_t>(t.to(at::kDouble).item<double>());
      continue;
    }
    const auto dot = key.find('.');
    const std::string kind = key.substr(0, dot), name = key.substr(dot + 1);
    at::Tensor v = t.to(device, at::kFloat).clone();
    if (kind == "exp_avg")
      slots_[name].exp_avg = v;
    else if (kind == "exp_avg_sq")
      slots_[name].exp_avg_sq = v;
    else if (kind == "master")
      slots_[name].master = v;
  }
}

}  // namespace medgr2::train
