// Reading tensor-valued fields and shared option objects from JS, for the op and model bindings.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include "ops/grpo_common.h"
#include "ops/grpo_loss.h"

namespace medgr2 {

// obj[key] as a tensor: a Tensor handle, or a TypedArray (dtype from its type; borrowed, or copied
// when `copy` -- which calls that outlive the JS call must ask for). Undefined tensor when absent
// and not required; an argument error naming `key` otherwise.
at::Tensor TensorField(const Napi::Object& obj, const char* key, const char* where, bool required, bool copy = false);

// The GRPO loss options (lossType, epsLow, epsHigh, beta, kl, maxCompletionLength,
// numItemsInBatch, importanceSamplingLevel, delta, policyLoss) of an options object named `name`.
ops::LossOptions ParseLossOptions(const Napi::Object& o, const char* where, const char* name);

// The loss statistics as JS sees them (LossStats in src/native/grpo_types.ts).
Napi::Object LossStatsJs(Napi::Env env, const ops::LossStats& s);

}  // namespace medgr2
