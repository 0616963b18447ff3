// AdamW sharded over the ranks of a process group: ZeRO stages 1 and 2 (Rajbhandari et al., 2020).
//
// The trainable parameters (by name, the same order on every rank) are laid end to end and cut into
// buckets as PlanBuckets does; each bucket is padded to a multiple of the world size and rank r owns
// the r-th of its N equal slices. A rank keeps both AdamW moments of its slices only (8 bytes per
// parameter / N instead of 8), plus float32 master weights of them when the parameters are in another
// dtype (4 / N more; float32 parameters are their own masters: a step reads its slices from them). One
// step:
//   1. the gradients of each bucket are summed over the ranks: stage 1 all-reduces the bucket (every
//      rank sees the whole sum, as DeepSpeed's stage 1 does) and keeps its slice; stage 2
//      reduce-scatters it and drops the bucket's full gradients at once;
//   2. the global gradient norm is the all-reduced sum of the slices' squares; clipping as AdamW;
//   3. each rank applies AdamW::Step's element-wise update to its slices (same formulas, same order
//      of operations, so a slice's values equal those of the unsharded optimizer up to the order in
//      which gradients were summed);
//   4. the updated slices, cast to the compute dtype, are all-gathered into the parameters.
// A parameter with a gradient on no rank is skipped, as AdamW::Step skips it.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "model/params.h"
#include "train/adamw.h"

namespace medgr2::train {

class ZeroAdamW {
 public:
  // stage 1 or 2; `rank` / `world_size` of the group the steps will run on.
  ZeroAdamW(int stage, int rank, int world_size, double bucket_bytes);

  // Reduces the gradients, updates this rank's slices, all-gathers the weights, zeroes the gradients.
  StepReport Step(model::ParamMap& params, const AdamWOptions& o, dist::ProcessGroup::Sequence& seq);

  // "step" [1] float64 and "zero.exp_avg", "zero.exp_avg_sq" (and "zero.master" for parameters not in
  // float32): this rank's slices (float32, ShardNumel() each) -- only "step" before the first step.
  std::map<std::string, at::Tensor> State() const;
  // Lays out `params` now and takes `state`'s slices; throws std::invalid_argument naming the key
  // when a slice's size is not this layout's (another world size, bucket size or trainable set).
  void LoadState(model::ParamMap& params, const std::map<std::string, at::Tensor>& state);

  int stage() const { return stage_; }
  int world_size() const { return world_size_; }
  int64_t step() const { return step_; }
  // Elements of this rank's slices (0 before the layout exists).
  int64_t ShardNumel() const { return shard_numel_; }

 private:
  struct Param {
    std::string name;
    at::Tensor tensor;
    bool decay;  // weight decay on matrices only, as AdamW::Step
  };
  struct Bucket {
    size_t first = 0, last = 0;  // params [first, last)
    int64_t numel = 0;           // before padding
    int64_t slice = 0;           // padded numel / world size
    int64_t shard_offset = 0;    // where this rank's slice sits in the shard
    at::ScalarType dtype = at::kFloat;
  };
  // A parameter's part of this rank's slice of its bucket.
  struct Piece {
    size_t param;
    int64_t param_offset, shard_offset, length;
  };

  // Builds the layout from the parameters that require grad, or checks it still fits them.
  void EnsureLayout(model::ParamMap& params);
  std::vector<Piece> PiecesOf(const Bucket& b) const;
  // This rank's slices of the current parameters, float32.
  at::Tensor SlicesOfParameters() const;

  int stage_, rank_, world_size_;
  double bucket_bytes_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  int64_t shard_numel_ = 0;
  // Whether master_ lives between steps (some parameter is not float32); else it exists during a step.
  bool keep_master_ = false;
  at::Tensor master_, exp_avg_, exp_avg_sq_;  // [shard_numel_] float32
  int64_t step_ = 0;
};

}  // namespace medgr2::train
