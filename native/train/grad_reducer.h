// DDP's gradient reduction for one optimizer step (ZeRO stage 0): the trainable parameters' gradients
// summed over the ranks in buckets of about `bucket_bytes`, each bucket's all-reduce started as soon as
// backward has produced all of its gradients -- so the communication overlaps the rest of backward, as
// torch's DistributedDataParallel reducer does -- and the rest started when backward ends.
//
// Every rank runs the same collectives in the same order, whatever its graph: the buckets are planned
// over all trainable parameters in backward's order (roughly), started strictly in bucket
// order (a bucket whose gradients are ready waits for the ones before it: a parameter this rank's
// graph does not use -- the vision tower on a text-only batch -- holds its bucket until Finish, so the
// model lists those last), and Finish() starts every
// bucket not started yet with zeros for parameters that got no gradient here. Then one small
// all-reduce says which parameters got a gradient on any rank: those end with the sum (a parameter
// without one here takes part as zeros), the others keep none (AdamW skips them, as one process would).
//
// Used two ways, with the same collectives: around a backward pass (WithHooks: a post-hook on each
// parameter's gradient accumulator calls Ready), or after all of them (Finish alone; allReduceGradients).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "dist/process_group.h"

namespace medgr2::train {

class GradReducer {
 public:
  // `params`: the trainable parameters in backward's order (QwenVL::TrainableInBackwardOrder), the
  // same list on every rank.
  GradReducer(std::vector<at::Tensor> params, double bucket_bytes, dist::ProcessGroup::Sequence& seq);

  // Runs `backward` with a post-hook on every trainable parameter's gradient accumulator (removed
  // afterwards, also on failure), then Finish().
  void WithHooks(const std::function<void()>& backward);
  // Starts the buckets not started yet, reduces which parameters have a gradient anywhere, waits for
  // every bucket and writes the sums into the gradients.
  void Finish();

  // How many buckets started while backward was still running (for tests and benches).
  int64_t started_during_backward() const { return started_early_; }
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    size_t pending = 0;          // gradients not reported ready yet
    at::Tensor buffer;           // flat, in the wire dtype, once started
    c10::intrusive_ptr<c10d::Work> work;
  };
  // Called from the autograd thread (hooks) or the sequence's thread (Finish); under mutex_.
  void Ready(size_t param);
  void StartReadyInOrder(bool force);
  void Start(Bucket& b);

  std::vector<at::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;  // the first bucket not started
  bool in_backward_ = false;
  int64_t started_early_ = 0;
  dist::ProcessGroup::Sequence& seq_;
  std::mutex mutex_;
};

}  // namespace medgr2::train
