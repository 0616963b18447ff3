#include "train/zero_adamw.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "common/nvtx.h"
#include "train/data_parallel.h"

namespace medgr2::train {

ZeroAdamW::ZeroAdamW(int stage, int rank, int world_size, double bucket_bytes)
    : stage_(stage), rank_(rank), world_size_(world_size), bucket_bytes_(bucket_bytes) {
  if (stage != 1 && stage != 2) throw std::invalid_argument("ZeRO stage must be 1 or 2, got " + std::to_string(stage));
  if (world_size < 1 || rank < 0 || rank >= world_size) throw std::invalid_argument("rank outside the world size");
}

void ZeroAdamW::EnsureLayout(model::ParamMap& params) {
  std::vector<Param> now;
  for (auto& [name, p] : params.All()) {
    if (p.requires_grad()) now.push_back({name, p, p.dim() > 1});
  }
  if (!buckets_.empty()) {
    bool same = now.size() == params_.size();
    for (size_t i = 0; same && i < now.size(); ++i) {
      same = now[i].name == params_[i].name && now[i].tensor.numel() == params_[i].tensor.numel();
    }
    if (!same) {
      throw std::runtime_error("the trainable parameters changed after the sharded optimizer laid them out (" +
                               std::to_string(params_.size()) + " then, " + std::to_string(now.size()) +
                               " now): set what trains before the first step or load of a ZeRO optimizer");
    }
    params_ = std::move(now);  // the same parameters; rebinds tensors a setParameters may have replaced
    return;
  }
  params_ = std::move(now);
  std::vector<at::Tensor> tensors;
  for (const auto& p : params_) tensors.push_back(p.tensor);
  // PlanBuckets keeps the list's order within a dtype; the index of each tensor in params_ follows.
  std::map<const void*, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) index[params_[i].tensor.unsafeGetTensorImpl()] = i;
  std::vector<Param> ordered;
  shard_numel_ = 0;
  for (const auto& group : PlanBuckets(tensors, bucket_bytes_)) {
    Bucket b;
    b.first = ordered.size();
    b.dtype = group.front().scalar_type();
    for (const auto& t : group) {
      ordered.push_back(params_[index.at(t.unsafeGetTensorImpl())]);
      b.numel += t.numel();
    }
    b.last = ordered.size();
    b.slice = (b.numel + world_size_ - 1) / world_size_;
    b.shard_offset = shard_numel_;
    shard_numel_ += b.slice;
    buckets_.push_back(b);
  }
  params_ = std::move(ordered);
  const auto device = params_.empty() ? at::Device(at::kCPU) : params_.front().tensor.device();
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  exp_avg_ = at::zeros({shard_numel_}, f32);
  exp_avg_sq_ = at::zeros({shard_numel_}, f32);
  keep_master_ = false;
  for (const auto& p : params_) keep_master_ = keep_master_ || p.tensor.scalar_type() != at::kFloat;
  if (keep_master_) master_ = SlicesOfParameters();
}

at::Tensor ZeroAdamW::SlicesOfParameters() const {
  at::NoGradGuard no_grad;
  at::Tensor out = at::zeros({shard_numel_}, exp_avg_.options());
  for (const auto& b : buckets_) {
    for (const auto& piece : PiecesOf(b)) {
      out.narrow(0, piece.shard_offset, piece.length)
          .copy_(params_[piece.param].tensor.detach().reshape({-1}).narrow(0, piece.param_offset, piece.length));
    }
  }
  return out;
}

std::vector<ZeroAdamW::Piece> ZeroAdamW::PiecesOf(const Bucket& b) const {
  std::vector<Piece> out;
  const int64_t lo = static_cast<int64_t>(rank_) * b.slice, hi = lo + b.slice;
  int64_t offset = 0;  // of the parameter in the bucket
  for (size_t i = b.first; i < b.last; ++i) {
    const int64_t n = params_[i].tensor.numel();
    const int64_t start = std::max(lo, offset), end = std::min(hi, offset + n);
    if (start < end) out.push_back({i, start - offset, b.shard_offset + (start - lo), end - start});
    offset += n;
  }
  return out;
}

StepReport ZeroAdamW::Step(model::ParamMap& params, const AdamWOptions& o, dist::ProcessGroup::Sequence& seq) {
  NvtxRange range("medgr2.optimizer.zero");
  at::NoGradGuard no_grad;
  EnsureLayout(params);
  StepReport r;
  if (params_.empty()) return r;
  const at::Device device = params_.front().tensor.device();
  std::vector<at::Tensor> tensors;
  for (const auto& p : params_) tensors.push_back(p.tensor);
  const std::vector<bool> has = GradientsAnywhere(tensors, seq, device);

  // 1. This rank's slice of the summed gradients, float32.
  at::Tensor grad = at::zeros({shard_numel_}, exp_avg_.options());
  for (const auto& b : buckets_) {
    at::Tensor flat = at::zeros({b.slice * world_size_}, at::TensorOptions().dtype(b.dtype).device(device));
    int64_t offset = 0;
    for (size_t i = b.first; i < b.last; ++i) {
      const at::Tensor& t = params_[i].tensor;
      if (t.grad().defined()) flat.narrow(0, offset, t.numel()).copy_(t.grad().reshape({-1}));
      offset += t.numel();
    }
    at::Tensor mine;
    if (stage_ == 1) {
      seq.AllReduceFlat({flat}, dist::ReduceKind::kSum);
      mine = flat.narrow(0, static_cast<int64_t>(rank_) * b.slice, b.slice);
    } else {
      mine = at::empty({b.slice}, flat.options());
      seq.ReduceScatter(mine, flat, dist::ReduceKind::kSum);
      for (size_t i = b.first; i < b.last; ++i) params_[i].tensor.mutable_grad() = at::Tensor();
    }
    grad.narrow(0, b.shard_offset, b.slice).copy_(mine);
  }

  // 2. The global norm (padding and gradient-less parameters are zeros).
  at::Tensor sq = grad.to(at::kDouble).pow(2).sum().reshape({1});
  // A rank asked to skip makes the global norm NaN, so every rank skips together (a rank that went
  // on alone would wait forever in the all-gather below).
  if (o.skip) sq.fill_(std::numeric_limits<double>::quiet_NaN());
  seq.AllReduce(sq, dist::ReduceKind::kSum);
  r.grad_norm = std::sqrt(sq.item<double>());
  // The norm is global (a skip anywhere made it NaN), so every rank takes the same branch.
  if (MustSkip(o, r.grad_norm)) {
    AdamW::ZeroGrad(params);
    r.skipped = true;
    r.step = step_;
    return r;
  }
  const double clip =
      (o.max_grad_norm > 0 && r.grad_norm > o.max_grad_norm) ? o.max_grad_norm / (r.grad_norm + 1e-6) : 1.0;

  // 3. AdamW on this rank's slices: AdamW::Step's operations, on views.
  if (!keep_master_) master_ = SlicesOfParameters();
  ++step_;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step_));
  for (const auto& b : buckets_) {
    for (const auto& piece : PiecesOf(b)) {
      if (!has[piece.param]) continue;
      at::Tensor w = master_.narrow(0, piece.shard_offset, piece.length);
      at::Tensor m = exp_avg_.narrow(0, piece.shard_offset, piece.length);
      at::Tensor v = exp_avg_sq_.narrow(0, piece.shard_offset, piece.length);
      at::Tensor g = grad.narrow(0, piece.shard_offset, piece.length);
      if (clip != 1.0) g = g * clip;
      if (o.weight_decay > 0 && params_[piece.param].decay) w.mul_(1.0 - o.lr * o.weight_decay);
      m.mul_(o.beta1).add_(g, 1.0 - o.beta1);
      v.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
      at::Tensor denom = (v / bc2).sqrt_().add_(o.eps);
      w.addcdiv_(m, denom, -o.lr / bc1);
    }
  }
  for (size_t i = 0; i < params_.size(); ++i) r.params_updated += has[i] ? 1 : 0;

  // 4. Every rank's updated slices into every rank's parameters.
  for (const auto& b : buckets_) {
    at::Tensor mine = master_.narrow(0, b.shard_offset, b.slice).to(b.dtype);
    at::Tensor flat = at::empty({b.slice * world_size_}, mine.options());
    seq.AllGather(flat, mine);
    int64_t offset = 0;
    for (size_t i = b.first; i < b.last; ++i) {
      at::Tensor t = params_[i].tensor.detach();
      if (has[i]) t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
  if (!keep_master_) master_ = at::Tensor();
  AdamW::ZeroGrad(params);
  r.step = step_;
  return r;
}

std::map<std::string, at::Tensor> ZeroAdamW::State() const {
  std::map<std::string, at::Tensor> out;
  out["step"] = at::tensor({static_cast<double>(step_)}, at::kDouble);
  if (exp_avg_.defined()) {
    out["zero.exp_avg"] = exp_avg_;
    out["zero.exp_avg_sq"] = exp_avg_sq_;
  }
  if (keep_master_ && master_.defined()) out["zero.master"] = master_;
  return out;
}

void ZeroAdamW::LoadState(model::ParamMap& params, const std::map<std::string, at::Tensor>& state) {
  EnsureLayout(params);
  std::map<std::string, at::Tensor> slices;
  for (const char* key : {"zero.master", "zero.exp_avg", "zero.exp_avg_sq"}) {
    auto it = state.find(key);
    if (it == state.end()) continue;
    if (it->second.numel() != shard_numel_) {
      throw std::invalid_argument(std::string("state.") + key + ": " + std::to_string(it->second.numel()) +
                                  " elements, but this rank's slice of the trainable parameters has " +
                                  std::to_string(shard_numel_) + " (world size " + std::to_string(world_size_) +
                                  "; was the state saved with another world size or trainable set?)");
    }
    slices[key] = it->second.reshape({-1}).to(exp_avg_.device(), at::kFloat).clone();
  }
  const size_t want = keep_master_ ? 3 : 2;  // the master slices only for parameters not in float32
  if (!slices.empty() && (slices.size() != want || (keep_master_ != (slices.count("zero.master") > 0)))) {
    throw std::invalid_argument(keep_master_
                                    ? "state: zero.master, zero.exp_avg and zero.exp_avg_sq go together"
                                    : "state: zero.exp_avg and zero.exp_avg_sq go together (and no zero.master: "
                                      "float32 parameters are their own master weights)");
  }
  if (!slices.empty()) {
    exp_avg_ = slices["zero.exp_avg"];
    exp_avg_sq_ = slices["zero.exp_avg_sq"];
    if (keep_master_) master_ = slices["zero.master"];
  }
  auto step = state.find("step");
  step_ = step == state.end() ? 0 : static_cast<int64_t>(step->second.to(at::kDouble).item<double>());
}

}  // namespace medgr2::train
