#include "train/data_parallel.h"

#include "train/grad_reducer.h"

#include <ATen/core/grad_mode.h>

#include <map>
#include <utility>

namespace medgr2::train {

std::vector<std::vector<at::Tensor>> PlanBuckets(const std::vector<at::Tensor>& tensors, double bucket_bytes) {
  std::map<at::ScalarType, std::pair<std::vector<at::Tensor>, double>> open;
  std::vector<std::vector<at::Tensor>> buckets;
  for (const auto& t : tensors) {
    auto& b = open[t.scalar_type()];
    const double bytes = static_cast<double>(t.numel()) * static_cast<double>(t.element_size());
    if (!b.first.empty() && b.second + bytes > bucket_bytes) {
      buckets.push_back(std::move(b.first));
      b = {};
    }
    b.first.push_back(t);
    b.second += bytes;
  }
  for (auto& [dtype, b] : open) {
    if (!b.first.empty()) buckets.push_back(std::move(b.first));
  }
  return buckets;
}

std::vector<bool> GradientsAnywhere(const std::vector<at::Tensor>& params, dist::ProcessGroup::Sequence& seq,
                                    const at::Device& device) {
  const int64_t n = static_cast<int64_t>(params.size());
  at::Tensor has = at::zeros({n}, at::kFloat);
  float* h = has.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) h[i] = params[i].grad().defined() ? 1.0f : 0.0f;
  has = has.to(device);
  seq.AllReduceFlat({has}, dist::ReduceKind::kSum);
  has = has.cpu();
  h = has.data_ptr<float>();
  std::vector<bool> out(params.size());
  for (int64_t i = 0; i < n; ++i) out[i] = h[i] > 0.0f;
  return out;
}

void ReduceGradients(model::QwenVL& m, dist::ProcessGroup::Sequence& seq, double bucket_bytes) {
  GradReducer(m.TrainableInBackwardOrder(), bucket_bytes, seq).Finish();
}

void BroadcastParams(model::QwenVL& m, dist::ProcessGroup::Sequence& seq, int root) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : m.params().All()) params.push_back(p.detach());
  for (const auto& bucket : PlanBuckets(params, kDefaultBucketBytes)) {
    std::vector<at::Tensor> flat;
    flat.reserve(bucket.size());
    for (const auto& t : bucket) flat.push_back(t.reshape({-1}));
    at::Tensor buffer = at::cat(flat);
    seq.Broadcast(buffer, root);
    int64_t offset = 0;
    for (const auto& t : bucket) {
      t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace medgr2::train
