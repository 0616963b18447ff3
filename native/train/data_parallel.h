// Data parallelism over a c10d group (ZeRO stage 0, as DDP): gradients summed over the ranks in
// buckets, parameters broadcast from one rank. Both run inside a ProcessGroup::Sequence, i.e. in the
// caller's turn, with the model's lock held by the caller.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "dist/process_group.h"
#include "model/qwen_vl.h"

namespace medgr2::train {

constexpr double kDefaultBucketBytes = 25.0 * 1024 * 1024;  // DDP's default bucket

// DDP's buckets: consecutive tensors of one dtype, each bucket at most `bucket_bytes` (a larger tensor
// gets one of its own). Every rank passes the same list in the same order and gets the same buckets:
// that is what keeps the ranks' collectives matched (a mismatch deadlocks until the timeout).
std::vector<std::vector<at::Tensor>> PlanBuckets(const std::vector<at::Tensor>& tensors, double bucket_bytes);

// Which of `params` has a gradient on at least one rank (one small all-reduce): 1 or 0 per parameter.
std::vector<bool> GradientsAnywhere(const std::vector<at::Tensor>& params, dist::ProcessGroup::Sequence& seq,
                                    const at::Device& device);

// Sums the trainable parameters' gradients over the ranks, in place, after backward (GradReducer's
// collectives without its hooks). A parameter that got no gradient on this rank but got one on another
// takes part as zeros; one that got none on any rank keeps none (AdamW skips it, as one process would).
void ReduceGradients(model::QwenVL& m, dist::ProcessGroup::Sequence& seq, double bucket_bytes);

// Every parameter (frozen ones too) takes `root`'s values, one flat broadcast per bucket.
void BroadcastParams(model::QwenVL& m, dist::ProcessGroup::Sequence& seq, int root);

}  // namespace medgr2::train
