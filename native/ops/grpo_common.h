// Options shared by the GRPO ops, parsed once (from JS or C++) into plain structs.
// The math is docs/GRPO.md (TRL's and verl's published formulas).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace medgr2::ops {

enum class AdvantageScale { kGroup, kBatch, kNone };
enum class LossType { kGrpo, kBnpo, kDrGrpo, kDapo };
enum class KlEstimator { kK1, kK2, kK3 };
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
};

// Log-ratio clamp before exp (verl): keeps ratios finite for wildly off-policy tokens.
constexpr double kLogRatioClamp = 20.0;

std::optional<AdvantageScale> ParseAdvantageScale(const std::string& s);
std::optional<LossType> ParseLossType(const std::string& s);
std::optional<KlEstimator> ParseKlEstimator(const std::string& s);
std::optional<Impl> ParseImpl(const std::string& s);
const char* LossTypeName(LossType t);

}  // namespace medgr2::ops
