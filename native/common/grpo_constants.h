// Constants the GRPO ops (ops/*.cc, built against libtorch) and their CUDA kernels (kernels/*.cu,
// built by plain nvcc without torch headers) must agree on: option values the ops pass to the
// kernels as plain ints, the slots of the loss statistics both sides fill, the log-ratio clamp and
// the "no index" sentinel. Defined once here so the CPU path, the CUDA path and the reference
// cannot drift apart. Keep it torch-free and CUDA-free: nvcc and the ops both include it.
#pragma once

#include <cstdint>

namespace medgr2 {

// Divisor of the centred rewards (options' scale: "group" | "batch" | "none"). The values are
// what the advantages kernel receives, so they are fixed.
enum class AdvantageScale : int { kGroup = 0, kBatch = 1, kNone = 2 };

// KL(pi || ref) estimator of the loss (options' kl: "k1" | "k2" | "k3"), with delta = ref - logp:
// k1 = -delta, k2 = delta^2 / 2, k3 = e^delta - delta - 1. The values are what the loss kernel
// receives, so they are fixed.
enum class KlEstimator : int { kK1 = 0, kK2 = 1, kK3 = 2 };

// Where the importance ratio lives (options' importanceSamplingLevel): per token, or per sequence
// (GSPO: exp of the masked mean of the sequence's token log-ratios, shared by its tokens).
enum class ImportanceSamplingLevel : int { kToken = 0, kSequence = 1 };

// The policy term (options' policyLoss): PPO's clipped surrogate, or CISPO's clipped, detached
// importance weight times A log p (docs/GRPO.md). The values are what the loss kernel receives.
enum class PolicyLoss : int { kClip = 0, kCispo = 1 };

// Slots of the GRPO loss's per-chunk (CPU) and per-block (CUDA) partial sums, in this order. The
// CUDA result vector holds these kStatCount sums followed by the first non-finite token index.
enum GrpoLossStat : int {
  kStatLoss,         // sum of w_t l_t over active tokens: the loss itself
  kStatActive,       // sum of the mask (active tokens, or their weights)
  kStatClipLow,      // mask sum where ratio < 1 - epsLow and A < 0
  kStatClipHigh,     // mask sum where ratio > 1 + epsHigh and A > 0
  kStatKl,           // mask-weighted sum of the KL estimate
  kStatRatio,        // mask-weighted sum of the ratio
  kStatEntropy,      // mask-weighted sum of the given per-token entropy
  kStatNonFinite,    // count of unmasked tokens whose logp is not finite (an error when > 0)
  kStatAbsLogRatio,  // mask-weighted sum of |logp - oldLogp| (per token, at either level)
  kStatCount
};

// |logp - oldLogp| is clamped to this before exp (verl): keeps ratios finite for wildly
// off-policy tokens; outside the clamp the ratio's gradient is 0.
constexpr double kLogRatioClamp = 20.0;

// "No token index": the first non-finite token when every token is finite.
constexpr int64_t kNoIndex = -1;
// The same inside the kernels' min-reduction over token indices, which runs in double next to the
// sums: the reduction's identity, above any index a tensor can have and exact in double. Mapped
// to kNoIndex before it leaves the kernel.
constexpr double kNoIndexMin = 9.0e18;

}  // namespace medgr2
