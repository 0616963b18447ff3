#include "train/grad_reducer.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <map>
#include <memory>
#include <utility>

#include "common/nvtx.h"
#include "train/data_parallel.h"

namespace medgr2::train {

namespace {

// A post-hook on a gradient accumulator: runs after the parameter's .grad has received this backward's
// contribution (accumulated onto earlier micro-batches').
class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  explicit ReadyHook(std::function<void()> ready) : ready_(std::move(ready)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    ready_();
    return outputs;
  }

 private:
  std::function<void()> ready_;
};

}  // namespace

GradReducer::GradReducer(std::vector<at::Tensor> params, double bucket_bytes, dist::ProcessGroup::Sequence& seq)
    : params_(std::move(params)), seq_(seq) {
  bucket_of_.resize(params_.size());
  std::map<const void*, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) index[params_[i].unsafeGetTensorImpl()] = i;
  for (const auto& group : PlanBuckets(params_, bucket_bytes)) {
    Bucket b;
    for (const auto& t : group) {
      const size_t i = index.at(t.unsafeGetTensorImpl());
      bucket_of_[i] = buckets_.size();
      b.params.push_back(i);
    }
    b.pending = b.params.size();
    buckets_.push_back(std::move(b));
  }
}

void GradReducer::Start(Bucket& b) {
  NvtxRange range("medgr2.dist.gradBucket");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> flat;
  for (size_t i : b.params) {
    const at::Tensor& p = params_[i];
    flat.push_back(p.grad().defined() ? p.grad().reshape({-1}) : at::zeros({p.numel()}, p.options()));
  }
  b.buffer = at::cat(flat);
  const at::ScalarType wire = seq_.WireDtype(b.buffer.scalar_type());
  if (wire != b.buffer.scalar_type()) b.buffer = b.buffer.to(wire);
  b.work = seq_.StartAllReduceSum(b.buffer);
  if (in_backward_) ++started_early_;
}

void GradReducer::StartReadyInOrder(bool force) {
  while (next_ < buckets_.size() && (force || buckets_[next_].pending == 0)) Start(buckets_[next_++]);
}

void GradReducer::Ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& b = buckets_[bucket_of_[param]];
  if (b.pending > 0) --b.pending;  // a parameter reached twice (shared) counts once
  StartReadyInOrder(false);
}

void GradReducer::WithHooks(const std::function<void()>& backward) {
  // The accumulators are held while the hooks are on: a parameter's accumulator is cached weakly, and
  // the graph backward builds must reach the very node that carries the hook.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;
  struct Remove {
    std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>>& hooks;
    ~Remove() {
      for (auto& [node, key] : hooks) node->del_post_hook(key);
    }
  } remove{hooks};
  std::vector<bool> reported(params_.size(), false);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto node = torch::autograd::impl::grad_accumulator(params_[i]);
    if (!node) continue;
    const uintptr_t key = node->add_post_hook(std::make_unique<ReadyHook>([this, i] { Ready(i); }));
    hooks.emplace_back(std::move(node), key);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_backward_ = true;
  }
  backward();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_backward_ = false;
  }
  Finish();
}

void GradReducer::Finish() {
  at::NoGradGuard no_grad;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    StartReadyInOrder(true);
  }
  if (params_.empty()) return;
  // After every bucket: the same position in every rank's sequence.
  const std::vector<bool> anywhere = GradientsAnywhere(params_, seq_, params_.front().device());
  for (auto& b : buckets_) {
    seq_.Wait(b.work);
    int64_t offset = 0;
    for (size_t i : b.params) {
      at::Tensor& p = params_[i];
      const int64_t n = p.numel();
      if (anywhere[i]) {
        at::Tensor sum = b.buffer.narrow(0, offset, n).view(p.sizes());
        if (p.grad().defined())
          p.mutable_grad().copy_(sum);
        else
          p.mutable_grad() = sum.to(p.scalar_type()).clone();
      } else if (p.grad().defined()) {
        p.mutable_grad() = at::Tensor();
      }
      offset += n;
    }
  }
}

}  // namespace medgr2::train
