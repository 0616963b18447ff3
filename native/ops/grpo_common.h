// Options shared by the GRPO ops, parsed once (from JS or C++) into plain structs.
// The math is docs/GRPO.md (TRL's and verl's published formulas).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "common/grpo_constants.h"

namespace medgr2::ops {

// Defined with the kernels' other shared constants (common/grpo_constants.h); named here too so
// ops::AdvantageScale, ops::KlEstimator and ops::kLogRatioClamp keep working.
using medgr2::AdvantageScale;
using medgr2::KlEstimator;
using medgr2::kLogRatioClamp;
enum class LossType { kGrpo, kBnpo, kDrGrpo, kDapo };
using medgr2::ImportanceSamplingLevel;
using medgr2::PolicyLoss;
// Which implementation runs: the plain ATen reference, the fused CPU/CUDA path, or the best one.
enum class Impl { kAuto, kReference, kFused };

struct AdvantageOptions {
  int64_t group_size = 1;
  AdvantageScale scale = AdvantageScale::kGroup;
  double eps = 1e-4;
};

struct LossOptions {
  LossType loss_type = LossType::kDapo;
  double eps_low = 0.2;
  double eps_high = 0.2;
  double beta = 0.0;
  KlEstimator kl = KlEstimator::kK3;
  std::optional<int64_t> max_completion_length;  // dr_grpo; default: the longest row
  std::optional<double> num_items_in_batch;      // dapo; default: the mask's sum
  // 'sequence' (GSPO): one ratio per sequence, exp of the masked mean of its tokens' log-ratios.
  ImportanceSamplingLevel level = ImportanceSamplingLevel::kToken;
  // Two-sided clipping (TRL's delta): the unclipped term's ratio is capped at delta (> 1 + epsHigh).
  std::optional<double> delta;
  PolicyLoss policy_loss = PolicyLoss::kClip;
};

std::optional<AdvantageScale> ParseAdvantageScale(const std::string& s);
std::optional<LossType> ParseLossType(const std::string& s);
std::optional<KlEstimator> ParseKlEstimator(const std::string& s);
std::optional<Impl> ParseImpl(const std::string& s);
std::optional<ImportanceSamplingLevel> ParseImportanceSamplingLevel(const std::string& s);
std::optional<PolicyLoss> ParsePolicyLoss(const std::string& s);
const char* LossTypeName(LossType t);

}  // namespace medgr2::ops
