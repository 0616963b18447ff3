#include "ops/grpo_common.h"

namespace medgr2::ops {

std::optional<AdvantageScale> ParseAdvantageScale(const std::string& s) {
  if (s == "group") return AdvantageScale::kGroup;
  if (s == "batch") return AdvantageScale::kBatch;
  if (s == "none") return AdvantageScale::kNone;
  return std::nullopt;
}

std::optional<LossType> ParseLossType(const std::string& s) {
  if (s == "grpo") return LossType::kGrpo;
  if (s == "bnpo") return LossType::kBnpo;
  if (s == "dr_grpo") return LossType::kDrGrpo;
  if (s == "dapo") return LossType::kDapo;
  return std::nullopt;
}

std::optional<KlEstimator> ParseKlEstimator(const std::string& s) {
  if (s == "k1") return KlEstimator::kK1;
  if (s == "k2") return KlEstimator::kK2;
  if (s == "k3") return KlEstimator::kK3;
  return std::nullopt;
}

std::optional<Impl> ParseImpl(const std::string& s) {
  if (s == "auto") return Impl::kAuto;
  if (s == "reference") return Impl::kReference;
  if (s == "fused") return Impl::kFused;
  return std::nullopt;
}

std::optional<ImportanceSamplingLevel> ParseImportanceSamplingLevel(const std::string& s) {
  if (s == "token") return ImportanceSamplingLevel::kToken;
  if (s == "sequence") return ImportanceSamplingLevel::kSequence;
  return std::nullopt;
}

std::optional<PolicyLoss> ParsePolicyLoss(const std::string& s) {
  if (s == "clip") return PolicyLoss::kClip;
  if (s == "cispo") return PolicyLoss::kCispo;
  return std::nullopt;
}

const char* LossTypeName(LossType t) {
  switch (t) {
    case LossType::kGrpo:
      return "grpo";
    case LossType::kBnpo:
      return "bnpo";
    case LossType::kDrGrpo:
      return "dr_grpo";
    case LossType::kDapo:
      return "dapo";
  }
  return "?";
}

}  // namespace medgr2::ops
