#include "ops/grpo_loss.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/argument_error.h"
#include "common/nvtx.h"

#ifdef MEDGR2_WITH_CUDA
// c10's stream and guard only: ATen/cuda/CUDAContext.h would also pull in cuBLAS, cuSPARSE and
// cuSOLVER headers that this glue never uses (and that a toolkit-only install may lack).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/grpo_loss.h"
#endif

namespace medgr2::ops {

namespace {

std::string Sizes(const at::Tensor& t) {
  return ShapeText(t.sizes());
}

LossStats StatsFromSums(const double* s, bool has_ref, bool has_entropy) {
  LossStats st;
  st.active_tokens = s[kStatActive];
  if (s[kStatActive] > 0) {
    st.clip_low_fraction = s[kStatClipLow] / s[kStatActive];
    st.clip_high_fraction = s[kStatClipHigh] / s[kStatActive];
    st.kl_mean = has_ref ? s[kStatKl] / s[kStatActive] : 0;
    st.ratio_mean = s[kStatRatio] / s[kStatActive];
    st.entropy_mean = has_entropy ? s[kStatEntropy] / s[kStatActive] : 0;
    st.log_ratio_abs_mean = s[kStatAbsLogRatio] / s[kStatActive];
  }
  return st;
}

// The sequence-level clip fractions from each row's mean log-ratio (any device; [B] tensors).
void SetSequenceClipStats(const at::Tensor& seq_log_ratio, const at::Tensor& active, const at::Tensor& advantages,
                          const LossOptions& o, LossStats& st) {
  const double rows = active.sum().item<double>();
  if (rows == 0) return;
  at::Tensor rho = at::exp(at::clamp(seq_log_ratio.to(at::kDouble), -kLogRatioClamp, kLogRatioClamp));
  at::Tensor a = advantages.to(at::kDouble);
  st.seq_clip_low_fraction = (active & (rho < 1.0 - o.eps_low) & (a < 0)).sum().item<double>() / rows;
  st.seq_clip_high_fraction = (active & (rho > 1.0 + o.eps_high) & (a > 0)).sum().item<double>() / rows;
}

// Row index of every token [N] (int64), from the row offsets [B+1].
at::Tensor RowIds(const LossInputs& in) {
  const int64_t b = in.advantages.numel();
  at::Tensor lengths = in.offsets.slice(0, 1) - in.offsets.slice(0, 0, b);
  return at::repeat_interleave(at::arange(b, lengths.options()), lengths);
}

at::Tensor SameDtype(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t.to(like.scalar_type()).contiguous() : t;
}

}  // namespace

namespace {

// The row reduction as ATen ops (any device; several passes over the tokens).
SequenceRatios SequenceRatiosAten(const LossInputs& in) {
  const int64_t b = in.advantages.numel();
  const auto f64 = in.logp.options().dtype(at::kDouble);
  at::Tensor rows = RowIds(in);
  at::Tensor m = in.mask.defined() ? in.mask.to(at::kDouble) : at::ones({in.logp.numel()}, f64);
  at::Tensor on = m != 0;
  // Masked tokens are left out by where(), not by a product: their logp may be anything (even -inf).
  at::Tensor lr =
      in.old_logp.defined() ? in.logp.to(at::kDouble) - in.old_logp.to(at::kDouble) : at::zeros({in.logp.numel()}, f64);
  at::Tensor zero = at::zeros({}, f64);
  at::Tensor mass = at::zeros({b}, f64).index_add_(0, rows, m);
  at::Tensor sum = at::zeros({b}, f64).index_add_(0, rows, at::where(on, m * lr, zero));
  at::Tensor weighted = in.is_weights.defined() ? at::zeros({b}, f64).index_add_(
                                                      0, rows, at::where(on, m * in.is_weights.to(at::kDouble), zero))
                                                : mass;
  SequenceRatios r;
  r.active = mass > 0;
  at::Tensor safe = at::where(r.active, mass, at::ones_like(mass));
  r.log_ratio = at::where(r.active, sum / safe, at::zeros_like(sum)).contiguous();
  r.grad_factor = at::where(r.active, weighted / safe, at::ones_like(sum)).contiguous();
  return r;
}

// The same on the CPU in one pass: rows in parallel, each summed in order in double.
template <typename T, typename M>
void SequenceRatiosCpu(const LossInputs& in, double* log_ratio, double* grad_factor, bool* active) {
  const T* lp = in.logp.data_ptr<T>();
  const T* old = in.old_logp.defined() ? in.old_logp.data_ptr<T>() : nullptr;
  const M* mask = in.mask.defined() ? in.mask.data_ptr<M>() : nullptr;
  const auto wt = in.is_weights.defined() ? in.is_weights.scalar_type() : at::kFloat;
  const float* isw_f = in.is_weights.defined() && wt == at::kFloat ? in.is_weights.data_ptr<float>() : nullptr;
  const double* isw_d = in.is_weights.defined() && wt == at::kDouble ? in.is_weights.data_ptr<double>() : nullptr;
  const int64_t* off = in.offsets.data_ptr<int64_t>();
  at::parallel_for(0, in.advantages.numel(), 64, [&](int64_t rb, int64_t re) {
    for (int64_t row = rb; row < re; ++row) {
      double mass = 0, sum = 0, weighted = 0;
      for (int64_t i = off[row]; i < off[row + 1]; ++i) {
        const double m = mask ? static_cast<double>(mask[i]) : 1.0;
        if (m == 0) continue;
        mass += m;
        if (old) sum += m * (static_cast<double>(lp[i]) - static_cast<double>(old[i]));
        weighted += m * (isw_f ? static_cast<double>(isw_f[i]) : isw_d ? isw_d[i] : 1.0);
      }
      active[row] = mass > 0;
      log_ratio[row] = mass > 0 ? sum / mass : 0.0;
      grad_factor[row] = mass > 0 ? weighted / mass : 1.0;
    }
  });
}

}  // namespace

SequenceRatios ComputeSequenceRatios(const LossInputs& in) {
  const bool contiguous_cpu =
      in.logp.device().is_cpu() && in.logp.is_contiguous() &&
      (!in.old_logp.defined() || (in.old_logp.is_contiguous() && in.old_logp.scalar_type() == in.logp.scalar_type())) &&
      (!in.mask.defined() ||
       (in.mask.is_contiguous() && (in.mask.scalar_type() == at::kByte || in.mask.scalar_type() == at::kFloat))) &&
      (!in.is_weights.defined() || (in.is_weights.is_contiguous() && (in.is_weights.scalar_type() == at::kFloat ||
                                                                      in.is_weights.scalar_type() == at::kDouble))) &&
      in.offsets.scalar_type() == at::kLong && in.offsets.is_contiguous();
  if (!contiguous_cpu) return SequenceRatiosAten(in);
  const int64_t b = in.advantages.numel();
  SequenceRatios r;
  r.log_ratio = at::empty({b}, at::kDouble);
  r.grad_factor = at::empty({b}, at::kDouble);
  r.active = at::empty({b}, at::kBool);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.logp.scalar_type(), "grpo_sequence_ratios", [&] {
    if (in.mask.defined() && in.mask.scalar_type() == at::kFloat)
      SequenceRatiosCpu<scalar_t, float>(in, r.log_ratio.data_ptr<double>(), r.grad_factor.data_ptr<double>(),
                                         r.active.data_ptr<bool>());
    else
      SequenceRatiosCpu<scalar_t, uint8_t>(in, r.log_ratio.data_ptr<double>(), r.grad_factor.data_ptr<double>(),
                                           r.active.data_ptr<bool>());
  });
  return r;
}

LossInputs PaddedLossInputs(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                            const at::Tensor& advantages, const at::Tensor& mask) {
  if (logp.dim() != 2) throw ArgumentError("grpo.loss", "logp", "a [B, T] tensor", Sizes(logp));
  const int64_t b = logp.size(0), t = logp.size(1);
  for (auto [tensor, name] :
       {std::pair{old_logp, "oldLogp"}, std::pair{ref_logp, "refLogp"}, std::pair{mask, "mask"}}) {
    if (tensor.defined() && tensor.sizes() != logp.sizes()) {
      throw ArgumentError("grpo.loss", name, "shaped like logp " + Sizes(logp), Sizes(tensor));
    }
  }
  if (!mask.defined()) throw ArgumentError("grpo.loss", "mask", "a [B, T] tensor", "none");
  LossInputs in;
  in.logp = logp.reshape({-1});
  in.old_logp = old_logp.defined() ? old_logp.reshape({-1}) : old_logp;
  in.ref_logp = ref_logp.defined() ? ref_logp.reshape({-1}) : ref_logp;
  in.mask = mask.reshape({-1});
  in.advantages = advantages;
  in.offsets = at::arange(0, b + 1, at::TensorOptions().dtype(at::kLong).device(logp.device())) * t;
  in.padded = true;
  return in;
}

LossInputs PackedLossInputs(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                            const at::Tensor& advantages, const at::Tensor& mask, const at::Tensor& cu_seqlens) {
  LossInputs in;
  in.logp = logp;
  in.old_logp = old_logp;
  in.ref_logp = ref_logp;
  in.advantages = advantages;
  in.mask = mask;
  in.offsets = cu_seqlens.to(at::TensorOptions().dtype(at::kLong).device(logp.device()));
  return in;
}

void CheckLossInputs(const LossInputs& in, const LossOptions& o, const char* where) {
  const at::Tensor& lp = in.logp;
  if (lp.dim() != 1) throw ArgumentError(where, "logp", "a flat [N] tensor", Sizes(lp));
  const auto dt = lp.scalar_type();
  if (dt != at::kFloat && dt != at::kBFloat16 && dt != at::kHalf && dt != at::kDouble) {
    throw ArgumentError(where, "logp", "f32, bf16, f16 or f64", c10::toString(dt));
  }
  const int64_t n = lp.numel();
  for (auto [t, name] :
       {std::pair{in.old_logp, "oldLogp"}, std::pair{in.ref_logp, "refLogp"}, std::pair{in.mask, "mask"},
        std::pair{in.entropy, "entropy"}, std::pair{in.is_weights, "isWeights"}}) {
    if (t.defined() && (t.dim() != 1 || t.numel() != n)) {
      throw ArgumentError(where, name, "of the same length as logp (" + std::to_string(n) + ")", Sizes(t));
    }
    if (t.defined() && t.device() != lp.device()) {
      throw ArgumentError(where, name, "on logp's device " + lp.device().str(), t.device().str());
    }
  }
  if (in.advantages.dim() != 1) throw ArgumentError(where, "advantages", "a [B] tensor", Sizes(in.advantages));
  const int64_t b = in.advantages.numel();
  if (in.offsets.numel() != b + 1) {
    throw ArgumentError(where, "cuSeqlens", "of length B + 1 = " + std::to_string(b + 1) + " (B = advantages.length)",
                        std::to_string(in.offsets.numel()));
  }
  at::Tensor off = in.offsets.cpu();
  const int64_t* p = off.data_ptr<int64_t>();
  if (p[0] != 0 || p[b] != n) {
    throw ArgumentError(where, "cuSeqlens", "from 0 to the token count " + std::to_string(n),
                        "[" + std::to_string(p[0]) + " .. " + std::to_string(p[b]) + "]");
  }
  for (int64_t k = 0; k < b; ++k) {
    if (p[k + 1] < p[k])
      throw ArgumentError(where, "cuSeqlens", "non-decreasing", "a decrease at index " + std::to_string(k + 1));
  }
  if (!(o.eps_low >= 0 && o.eps_low < 1)) throw ArgumentError(where, "epsLow", "in [0, 1)", std::to_string(o.eps_low));
  if (!(o.eps_high >= 0) || !std::isfinite(o.eps_high))
    throw ArgumentError(where, "epsHigh", "a finite number >= 0", std::to_string(o.eps_high));
  if (!(o.beta >= 0) || !std::isfinite(o.beta))
    throw ArgumentError(where, "beta", "a finite number >= 0", std::to_string(o.beta));
  if (o.beta > 0 && !in.ref_logp.defined()) throw ArgumentError(where, "refLogp", "given when beta > 0", "none");
  if (o.max_completion_length && *o.max_completion_length < 1) {
    throw ArgumentError(where, "maxCompletionLength", "a positive integer", std::to_string(*o.max_completion_length));
  }
  if (o.num_items_in_batch && !(*o.num_items_in_batch > 0)) {
    throw ArgumentError(where, "numItemsInBatch", "a positive number", std::to_string(*o.num_items_in_batch));
  }
  if (o.delta) {
    if (o.policy_loss != PolicyLoss::kClip)
      throw ArgumentError(where, "delta", "used with policyLoss \"clip\" only (CISPO has no unclipped term)",
                          std::to_string(*o.delta));
    if (!(*o.delta > 1.0 + o.eps_high) || !std::isfinite(*o.delta))
      throw ArgumentError(where, "delta", "a finite number > 1 + epsHigh = " + std::to_string(1.0 + o.eps_high),
                          std::to_string(*o.delta));
  }
  if (in.is_weights.defined() && !at::isFloatingType(in.is_weights.scalar_type()))
    throw ArgumentError(where, "isWeights", "floating point", c10::toString(in.is_weights.scalar_type()));
  if (in.mask.defined()) {
    const auto mt = in.mask.scalar_type();
    if (mt != at::kByte && mt != at::kBool && !at::isFloatingType(mt)) {
      throw ArgumentError(where, "mask", "u8, bool or floating point", c10::toString(mt));
    }
  }
}

at::Tensor LossRowScales(const LossInputs& in, const LossOptions& o) {
  const int64_t b = in.advantages.numel();
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(in.logp.device());
  at::Tensor lengths = (in.offsets.slice(0, 1) - in.offsets.slice(0, 0, b)).to(at::kDouble);
  // Active tokens per row: the mask's row sums, or the row lengths without a mask.
  auto row_sums = [&]() -> at::Tensor {
    if (!in.mask.defined()) return lengths;
    at::Tensor m = in.mask.to(at::kDouble);
    if (in.padded) return m.view({b, -1}).sum(1);
    at::Tensor c = at::cat({at::zeros({1}, f64), m.cumsum(0)});
    return c.index_select(0, in.offsets.slice(0, 1)) - c.index_select(0, in.offsets.slice(0, 0, b));
  };
  auto total = [&]() -> double {
    return in.mask.defined() ? in.mask.to(at::kDouble).sum().item<double>() : static_cast<double>(in.logp.numel());
  };
  switch (o.loss_type) {
    case LossType::kGrpo:
      return 1.0 / (row_sums().clamp_min(1.0) * static_cast<double>(b));
    case LossType::kBnpo:
      return at::full({b}, 1.0 / std::max(total(), 1.0), f64);
    case LossType::kDrGrpo: {
      double len = 1;
      if (o.max_completion_length)
        len = static_cast<double>(*o.max_completion_length);
      else if (b > 0)
        len = in.padded ? static_cast<double>(in.logp.numel() / b) : std::max(lengths.max().item<double>(), 1.0);
      return at::full({b}, 1.0 / (static_cast<double>(b) * len), f64);
    }
    case LossType::kDapo: {
      const double items = o.num_items_in_batch ? *o.num_items_in_batch : std::max(total(), 1.0);
      return at::full({b}, 1.0 / items, f64);
    }
  }
  return at::Tensor();
}

// ---------------------------------------------------------------------------------------------
// Reference: the formulas as an eager ATen composition; d loss / d logp from autograd.
// ---------------------------------------------------------------------------------------------
LossResult GrpoLossReference(const LossInputs& in, const LossOptions& o) {
  CheckLossInputs(in, o, "grpo.loss");
  at::AutoGradMode grad_on(true);
  const auto cdt = in.logp.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t b = in.advantages.numel();
  at::Tensor row_ids = RowIds(in);

  at::Tensor lp = in.logp.to(cdt).detach().requires_grad_(true);
  at::Tensor old = in.old_logp.defined() ? in.old_logp.to(cdt) : lp.detach();
  at::Tensor m = in.mask.defined() ? in.mask.to(cdt) : at::ones_like(lp);
  at::Tensor adv = in.advantages.to(cdt).index_select(0, row_ids);
  at::Tensor isw = in.is_weights.defined() ? in.is_weights.to(cdt) : at::ones_like(lp);

  // Per token, or (GSPO) each sequence's masked mean, broadcast back to its tokens; the gradient
  // reaches every token through the mean.
  at::Tensor token_log_ratio = lp - old;
  at::Tensor on = m != 0;
  at::Tensor mass = at::zeros({b}, m.options()).index_add(0, row_ids, m);
  at::Tensor seq_sum =
      at::zeros({b}, lp.options()).index_add(0, row_ids, at::where(on, m * token_log_ratio, at::zeros_like(lp)));
  at::Tensor seq_active = mass > 0;
  at::Tensor seq_log_ratio = seq_sum / at::where(seq_active, mass, at::ones_like(mass));
  at::Tensor log_ratio =
      o.level == ImportanceSamplingLevel::kSequence ? seq_log_ratio.index_select(0, row_ids) : token_log_ratio;
  at::Tensor ratio = at::exp(at::clamp(log_ratio, -kLogRatioClamp, kLogRatioClamp));
  at::Tensor clipped = at::clamp(ratio, 1.0 - o.eps_low, 1.0 + o.eps_high);
  at::Tensor policy;
  if (o.policy_loss == PolicyLoss::kCispo) {
    policy = -clipped.detach() * adv * lp;
  } else {
    at::Tensor capped = o.delta ? at::clamp_max(ratio, *o.delta) : ratio;
    policy = -at::minimum(capped * adv, clipped * adv);
  }
  at::Tensor per_token = isw * policy;
  at::Tensor kl;
  if (in.ref_logp.defined()) {
    at::Tensor delta = in.ref_logp.to(cdt) - lp;
    switch (o.kl) {
      case KlEstimator::kK1:
        kl = -delta;
        break;
      case KlEstimator::kK2:
        kl = delta.pow(2) / 2;
        break;
      case KlEstimator::kK3:
        kl = at::exp(delta) - delta - 1;
        break;
    }
    if (o.beta > 0) per_token = per_token + o.beta * kl;
  }
  at::Tensor w = m * LossRowScales(in, o).to(cdt).index_select(0, row_ids);
  // Masked tokens are left out by where(), not by w = 0: their logp may be anything.
  at::Tensor loss = at::where(on, w * per_token, at::zeros_like(lp)).sum();
  at::Tensor grad = torch::autograd::grad({loss}, {lp}, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                          /*allow_unused=*/true)[0];
  if (!grad.defined()) grad = at::zeros_like(lp);

  LossResult r;
  r.loss = loss.item<double>();
  r.grad_logp = grad.to(in.logp.scalar_type()).view(in.logp.sizes());
  at::NoGradGuard no_grad;
  double sums[kStatCount] = {};
  sums[kStatActive] = m.sum().item<double>();
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high;
  at::Tensor low = ratio<lo, high = ratio> hi;
  if (o.policy_loss == PolicyLoss::kClip) {
    low = low & (adv < 0);
    high = high & (adv > 0);
  }
  auto masked_sum = [&](const at::Tensor& x) { return at::where(on, m * x, at::zeros_like(m)).sum().item<double>(); };
  sums[kStatClipLow] = masked_sum(low.to(cdt));
  sums[kStatClipHigh] = masked_sum(high.to(cdt));
  if (kl.defined()) sums[kStatKl] = masked_sum(kl.detach());
  sums[kStatRatio] = masked_sum(ratio.detach());
  sums[kStatAbsLogRatio] = masked_sum(token_log_ratio.detach().abs());
  if (in.entropy.defined()) sums[kStatEntropy] = masked_sum(in.entropy.to(cdt));
  r.stats = StatsFromSums(sums, in.ref_logp.defined(), in.entropy.defined());
  SetSequenceClipStats(seq_log_ratio.detach(), seq_active, in.advantages, o, r.stats);
  at::Tensor bad = on & ~at::isfinite(lp.detach());
  if (bad.any().item<bool>()) {
    const int64_t first = bad.nonzero().min().item<int64_t>();
    throw ArgumentError("grpo.loss", "logp", "finite at every unmasked token",
                        std::to_string(bad.sum().item<int64_t>()) + " non-finite values (first at token " +
                            std::to_string(first) + ")");
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Fused CPU: one pass over fixed chunks of tokens (parallel, deterministic: each chunk's partial
// sums land in its own slot and are added in chunk order, whatever the thread count).
// ---------------------------------------------------------------------------------------------
namespace {

constexpr int64_t kChunkTokens = 16384;

// Per-row inputs of the token pass: the lossType's weight, and at the 'sequence' level each row's
// mean log-ratio and gradient factor (ComputeSequenceRatios); null at the 'token' level.
struct RowTerms {
  const double* scale = nullptr;
  const double* log_ratio = nullptr;
  const double* grad_factor = nullptr;
};

template <typename T, typename M>
void FusedLossCpu(const LossInputs& in, const LossOptions& o, const RowTerms& rows_in, T* grad,
                  std::vector<double>& partials, std::vector<int64_t>& first_bad) {
  using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const T* lp = in.logp.data_ptr<T>();
  const T* old = in.old_logp.defined() ? in.old_logp.data_ptr<T>() : nullptr;
  const T* ref = in.ref_logp.defined() ? in.ref_logp.data_ptr<T>() : nullptr;
  const M* mask = in.mask.defined() ? in.mask.data_ptr<M>() : nullptr;
  const acc_t* ent = in.entropy.defined() ? in.entropy.data_ptr<acc_t>() : nullptr;
  const acc_t* isw = in.is_weights.defined() ? in.is_weights.data_ptr<acc_t>() : nullptr;
  const double* row_scale = rows_in.scale;
  const double* row_lr = rows_in.log_ratio;
  const double* row_gf = rows_in.grad_factor;
  const bool cispo = o.policy_loss == PolicyLoss::kCispo;
  const acc_t delta = o.delta ? static_cast<acc_t>(*o.delta) : std::numeric_limits<acc_t>::infinity();
  const acc_t* adv = in.advantages.data_ptr<acc_t>();
  const int64_t* off = in.offsets.data_ptr<int64_t>();
  const int64_t rows = in.advantages.numel();
  const int64_t n = in.logp.numel();
  const int64_t chunks = (n + kChunkTokens - 1) / kChunkTokens;
  const acc_t lo = static_cast<acc_t>(1.0 - o.eps_low), hi = static_cast<acc_t>(1.0 + o.eps_high);
  const acc_t beta = static_cast<acc_t>(o.beta), clampv = static_cast<acc_t>(kLogRatioClamp);
  const KlEstimator kl_kind = o.kl;
  partials.assign(chunks * kStatCount, 0.0);
  first_bad.assign(chunks, kNoIndex);

  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t begin = c * kChunkTokens, end = std::min(n, begin + kChunkTokens);
      int64_t row = std::upper_bound(off, off + rows + 1, begin) - off - 1;
      double s[kStatCount] = {};
      for (int64_t i = begin; i < end; ++i) {
        while (i >= off[row + 1]) ++row;
        const acc_t m = mask ? static_cast<acc_t>(mask[i]) : acc_t(1);
        if (m == 0) {
          grad[i] = T(0);
          continue;
        }
        const acc_t x = static_cast<acc_t>(lp[i]);
        if (!std::isfinite(x)) {
          if (first_bad[c] == kNoIndex) first_bad[c] = i;
          s[kStatNonFinite] += 1;
          grad[i] = T(0);
          continue;
        }
        const acc_t token_log_ratio = old ? x - static_cast<acc_t>(old[i]) : acc_t(0);
        const acc_t log_ratio = row_lr ? static_cast<acc_t>(row_lr[row]) : token_log_ratio;
        const bool in_range = log_ratio >= -clampv && log_ratio <= clampv;
        const acc_t rho = std::exp(std::min(std::max(log_ratio, -clampv), clampv));
        const acc_t a = adv[row];
        const acc_t clipped = std::min(std::max(rho, lo), hi);
        const acc_t wi = isw ? isw[i] : acc_t(1);
        acc_t g, ell;
        if (cispo) {
          // The clipped weight is a constant (stop-gradient): d/dlogp of -w A logp is -w A.
          g = -clipped * a * wi;
          ell = -clipped * a * x * wi;
        } else {
          const acc_t s1 = std::min(rho, delta) * a, s2 = clipped * a;
          // d min(s1, s2) / d log-ratio: rho A where the unclipped (and uncapped) term is the
          // minimum (ties included: inside the clip range both terms are equal and carry rho A).
          const acc_t d = (s1 <= s2 && in_range && rho <= delta) ? -a * rho : acc_t(0);
          // Token level: the log-ratio is this token's. Sequence level: every token of the row
          // carries the row's loss, and the mean hands d back to each token scaled by S_b / M_b.
          g = row_lr ? d * static_cast<acc_t>(row_gf[row]) : d * wi;
          ell = -std::min(s1, s2) * wi;
        }
        acc_t kl = 0;
        if (ref) {
          const acc_t d = static_cast<acc_t>(ref[i]) - x;
          acc_t gkl;
          if (kl_kind == KlEstimator::kK1) {
            kl = -d;
            gkl = 1;
          } else if (kl_kind == KlEstimator::kK2) {
            kl = d * d / 2;
            gkl = -d;
          } else {
            const acc_t e = std::exp(d);
            kl = e - d - 1;
            gkl = 1 - e;
          }
          if (beta > 0) {
            ell += beta * kl;
            g += beta * gkl;
          }
        }
        const acc_t w = m * static_cast<acc_t>(row_scale[row]);
        grad[i] = static_cast<T>(w * g);
        s[kStatLoss] += static_cast<double>(w * ell);
        s[kStatActive] += m;
        s[kStatClipLow] += (rho < lo && (cispo || a < 0)) ? m : 0;
        s[kStatClipHigh] += (rho > hi && (cispo || a > 0)) ? m : 0;
        s[kStatKl] += m * kl;
        s[kStatRatio] += m * rho;
        s[kStatAbsLogRatio] += m * std::abs(token_log_ratio);
        if (ent) s[kStatEntropy] += m * ent[i];
      }
      std::copy(s, s + kStatCount, partials.begin() + c * kStatCount);
    }
  });
}

}  // namespace

LossResult GrpoLossFused(const LossInputs& raw, const LossOptions& o) {
  CheckLossInputs(raw, o, "grpo.loss");
  NvtxRange range("medgr2.grpo_loss");
  LossInputs in = raw;
  const auto dt = raw.logp.scalar_type();
  const auto acc = dt == at::kDouble ? at::kDouble : at::kFloat;
  in.logp = raw.logp.contiguous();
  in.old_logp = SameDtype(raw.old_logp, in.logp);
  in.ref_logp = SameDtype(raw.ref_logp, in.logp);
  in.advantages = raw.advantages.to(acc).contiguous();
  in.entropy = raw.entropy.defined() ? raw.entropy.to(acc).contiguous() : raw.entropy;
  in.is_weights = raw.is_weights.defined() ? raw.is_weights.to(acc).contiguous() : raw.is_weights;
  if (raw.mask.defined()) {
    const auto mt = raw.mask.scalar_type();
    in.mask = (mt == at::kByte || mt == at::kBool) ? raw.mask.to(at::kByte).contiguous()
                                                   : raw.mask.to(at::kFloat).contiguous();
  }
  in.offsets = raw.offsets.to(at::kLong).contiguous();
  at::Tensor row_scale = LossRowScales(in, o).contiguous();
  // One reduction over the rows first when the loss or the statistics need sequence ratios.
  const bool sequence = o.level == ImportanceSamplingLevel::kSequence;
  SequenceRatios seq;
  if (sequence || in.old_logp.defined()) seq = ComputeSequenceRatios(in);
  RowTerms row_terms;
  row_terms.scale = row_scale.data_ptr<double>();
  if (sequence) {
    row_terms.log_ratio = seq.log_ratio.data_ptr<double>();
    row_terms.grad_factor = seq.grad_factor.data_ptr<double>();
  }
  at::Tensor grad = at::empty_like(in.logp);
  std::vector<double> sums(kStatCount, 0.0);
  int64_t first_bad = kNoIndex;

#ifdef MEDGR2_WITH_CUDA
  if (in.logp.is_cuda()) {
    c10::cuda::CUDAGuard guard(in.logp.device());
    TORCH_CHECK(dt == at::kFloat || dt == at::kBFloat16, "grpo_loss CUDA: logp must be f32 or bf16, got ", dt);
    const int64_t rows = in.advantages.numel();
    const int64_t max_len = rows ? (in.offsets.slice(0, 1) - in.offsets.slice(0, 0, rows)).max().item<int64_t>() : 0;
    kernels::GrpoLossParams p{};
    p.logp = in.logp.data_ptr();
    p.old_logp = in.old_logp.defined() ? in.old_logp.data_ptr() : nullptr;
    p.ref_logp = in.ref_logp.defined() ? in.ref_logp.data_ptr() : nullptr;
    p.advantages = in.advantages.data_ptr<float>();
    p.mask = in.mask.defined() ? in.mask.data_ptr() : nullptr;
    p.mask_kind = !in.mask.defined() ? 0 : in.mask.scalar_type() == at::kByte ? 1 : 2;
    p.offsets = in.offsets.data_ptr<int64_t>();
    p.row_scale = row_terms.scale;
    p.entropy = in.entropy.defined() ? in.entropy.data_ptr<float>() : nullptr;
    p.is_weights = in.is_weights.defined() ? in.is_weights.data_ptr<float>() : nullptr;
    p.row_log_ratio = row_terms.log_ratio;
    p.row_grad_factor = row_terms.grad_factor;
    p.delta = o.delta ? static_cast<float>(*o.delta) : INFINITY;
    p.policy_loss = o.policy_loss;
    p.grad = grad.data_ptr();
    p.rows = rows;
    p.max_row_len = max_len;
    p.eps_low = static_cast<float>(o.eps_low);
    p.eps_high = static_cast<float>(o.eps_high);
    p.beta = static_cast<float>(o.beta);
    p.kl = o.kl;
    p.bf16 = dt == at::kBFloat16;
    at::Tensor workspace =
        at::empty({kernels::GrpoLossWorkspaceDoubles(rows, max_len)}, in.logp.options().dtype(at::kDouble));
    at::Tensor out = at::empty({kStatCount + 1}, in.logp.options().dtype(at::kDouble));
    cudaError_t st = kernels::GrpoLossForwardBackward(p, workspace.data_ptr<double>(), out.data_ptr<double>(),
                                                      c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(st == cudaSuccess, "grpo_loss kernel launch failed: ", cudaGetErrorString(st));
    at::Tensor host = out.cpu();
    std::copy(host.data_ptr<double>(), host.data_ptr<double>() + kStatCount, sums.begin());
    first_bad = static_cast<int64_t>(host.data_ptr<double>()[kStatCount]);
  } else
#endif
  {
    TORCH_CHECK(in.logp.device().is_cpu(), "grpo_loss: no fused kernel for device ", in.logp.device());
    std::vector<double> partials;
    std::vector<int64_t> bad;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dt, "grpo_loss_cpu", [&] {
      if (!in.mask.defined())
        FusedLossCpu<scalar_t, uint8_t>(in, o, row_terms, grad.data_ptr<scalar_t>(), partials, bad);
      else if (in.mask.scalar_type() == at::kByte)
        FusedLossCpu<scalar_t, uint8_t>(in, o, row_terms, grad.data_ptr<scalar_t>(), partials, bad);
      else
        FusedLossCpu<scalar_t, float>(in, o, row_terms, grad.data_ptr<scalar_t>(), partials, bad);
    });
    for (size_t c = 0; c < bad.size(); ++c) {
      for (int k = 0; k < kStatCount; ++k) sums[k] += partials[c * kStatCount + k];
      if (first_bad == kNoIndex && bad[c] != kNoIndex) first_bad = bad[c];
    }
  }
  if (sums[kStatNonFinite] > 0) {
    throw ArgumentError("grpo.loss", "logp", "finite at every unmasked token",
                        std::to_string(static_cast<int64_t>(sums[kStatNonFinite])) +
                            " non-finite values (first at token " + std::to_string(first_bad) + ")");
  }
  LossResult r;
  r.loss = sums[kStatLoss];
  r.grad_logp = grad.view(raw.logp.sizes());
  r.stats = StatsFromSums(sums.data(), in.ref_logp.defined(), in.entropy.defined());
  if (seq.active.defined()) SetSequenceClipStats(seq.log_ratio, seq.active, in.advantages, o, r.stats);
  return r;
}

LossResult GrpoLoss(const LossInputs& in, const LossOptions& o, Impl impl) {
  return impl == Impl::kReference ? GrpoLossReference(in, o) : GrpoLossFused(in, o);
}

// ---------------------------------------------------------------------------------------------
// Autograd: the forward pass already computed d loss / d logp, so backward only scales it.
// ---------------------------------------------------------------------------------------------
namespace {

struct GrpoLossFunction : public torch::autograd::Function<GrpoLossFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logp, const LossInputs* in,
                            const LossOptions* opts, LossStats* stats) {
    LossInputs detached = *in;
    detached.logp = logp.detach();
    LossResult r = GrpoLossFused(detached, *opts);
    if (stats) *stats = r.stats;
    ctx->save_for_backward({r.grad_logp});
    return at::scalar_tensor(r.loss, logp.options().dtype(at::kFloat));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    at::Tensor grad = ctx->get_saved_variables()[0];
    return {grad * grad_out[0].to(grad.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor GrpoLossAutograd(const LossInputs& in, const LossOptions& opts, LossStats* stats) {
  return GrpoLossFunction::apply(in.logp, &in, &opts, stats);
}

}  // namespace medgr2::ops
