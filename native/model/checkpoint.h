// Activation checkpointing for one layer: the forward runs without keeping activations, and the
// backward runs the layer again with autograd on, then back-propagates through that recomputation
// (a reentrant backward: parameter gradients accumulate into .grad as usual).
#pragma once

#include <ATen/ATen.h>

#include <functional>

namespace medgr2::model {

using LayerFn = std::function<at::Tensor(const at::Tensor&)>;

// fn(x) with activations recomputed in backward; plain fn(x) when no gradient is being recorded.
// `trainable_inside`: some parameter fn reads requires grad. Then an input that does not require grad
// (a frozen embedding below LoRA adapters) still goes through the recomputing function, or the
// layer's parameters would get no gradient (the first forward runs without grad).
at::Tensor CheckpointedCall(const LayerFn& fn, const at::Tensor& x, bool trainable_inside);

}  // namespace medgr2::model
