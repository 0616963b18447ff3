#include "ops/fused_logprob.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

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

#include "kernels/fused_logprob.h"
#endif

namespace medgr2::ops {

namespace {

std::string Sizes(const at::Tensor& t) {
  return ShapeText(t.sizes());
}

// Logit bytes one chunk may hold: the budget that bounds peak memory (a few chunk-sized buffers).
constexpr int64_t kCpuChunkBytes = int64_t(64) << 20;
constexpr int64_t kCudaChunkBytes = int64_t(256) << 20;
constexpr int64_t kCudaVocabTile = 16384;

at::ScalarType ComputeDtype(const at::Tensor& hidden) {
  return hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace

void CheckLogprobArgs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                      const LogprobOptions& opts, const char* where) {
  if (hidden.dim() != 2) throw ArgumentError(where, "hidden", "a [N, H] tensor", Sizes(hidden));
  if (weight.dim() != 2 || weight.size(1) != hidden.size(1)) {
    throw ArgumentError(where, "weight", "a [V, H] tensor with H = " + std::to_string(hidden.size(1)), Sizes(weight));
  }
  if (targets.dim() != 1 || targets.size(0) != hidden.size(0)) {
    throw ArgumentError(where, "targets", "a [N] tensor with N = " + std::to_string(hidden.size(0)), Sizes(targets));
  }
  if (!at::isFloatingType(hidden.scalar_type()))
    throw ArgumentError(where, "hidden", "floating point", c10::toString(hidden.scalar_type()));
  if (weight.scalar_type() != hidden.scalar_type()) {
    throw ArgumentError(where, "weight", std::string("of hidden's dtype ") + c10::toString(hidden.scalar_type()),
                        c10::toString(weight.scalar_type()));
  }
  if (targets.scalar_type() != at::kLong && targets.scalar_type() != at::kInt) {
    throw ArgumentError(where, "targets", "int32 or int64", c10::toString(targets.scalar_type()));
  }
  if (weight.device() != hidden.device() || targets.device() != hidden.device()) {
    throw ArgumentError(where, "weight/targets", "on hidden's device " + hidden.device().str(),
                        weight.device().str() + "/" + targets.device().str());
  }
  if (!(opts.temperature > 0) || !std::isfinite(opts.temperature)) {
    throw ArgumentError(where, "temperature", "a finite number > 0", std::to_string(opts.temperature));
  }
  if (opts.chunk_tokens < 0) throw ArgumentError(where, "chunkTokens", ">= 0", std::to_string(opts.chunk_tokens));
  if (opts.vocab_tile < 0) throw ArgumentError(where, "vocabTile", ">= 0", std::to_string(opts.vocab_tile));
  if (targets.numel() > 0) {
    const int64_t hi = targets.max().item<int64_t>();
    if (hi >= weight.size(0)) {
      throw ArgumentError(where, "targets", "< the vocabulary size " + std::to_string(weight.size(0)),
                          "a target " + std::to_string(hi));
    }
  }
}

int64_t LogprobChunkTokens(int64_t n, int64_t vocab_tile, const LogprobOptions& opts, bool cuda) {
  if (opts.chunk_tokens > 0) return std::min<int64_t>(opts.chunk_tokens, std::max<int64_t>(n, 1));
  const int64_t budget = cuda ? kCudaChunkBytes : kCpuChunkBytes;
  const int64_t per_token = std::max<int64_t>(vocab_tile, 1) * 4;
  return std::max<int64_t>(1, std::min<int64_t>(std::max<int64_t>(n, 1), budget / per_token));
}

// ---------------------------------------------------------------------------------------------
// Reference
// ---------------------------------------------------------------------------------------------
namespace {

struct ReferenceGraph {
  at::Tensor h, w, logp, entropy, lse;
};

ReferenceGraph BuildReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                              const LogprobOptions& opts, bool with_grad) {
  const auto cdt = ComputeDtype(hidden);
  ReferenceGraph g;
  g.h = hidden.to(cdt).detach().requires_grad_(with_grad);
  g.w = weight.to(cdt).detach().requires_grad_(with_grad);
  at::Tensor logits = at::matmul(g.h, g.w.t()) / opts.temperature;
  at::Tensor logsm = at::log_softmax(logits, -1);
  at::Tensor y = targets.to(at::kLong);
  at::Tensor valid = y >= 0;
  at::Tensor picked = logsm.gather(1, y.clamp_min(0).unsqueeze(1)).squeeze(1);
  g.logp = at::where(valid, picked, at::zeros_like(picked));
  g.entropy = -(at::softmax(logits, -1) * logsm).sum(-1);
  g.lse = at::logsumexp(logits, -1);
  return g;
}

}  // namespace

LogprobResult FusedLogprobReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                    const LogprobOptions& opts) {
  CheckLogprobArgs(hidden, weight, targets, opts, "grpo.fusedLogprob");
  at::NoGradGuard no_grad;
  ReferenceGraph g = BuildReference(hidden, weight, targets, opts, false);
  return {g.logp, g.entropy, g.lse};
}

LogprobGrads FusedLogprobReferenceBackward(const at::Tensor& hidden, const at::Tensor& weight,
                                           const at::Tensor& targets, const at::Tensor& grad_logp,
                                           const at::Tensor& grad_entropy, const LogprobOptions& opts) {
  CheckLogprobArgs(hidden, weight, targets, opts, "grpo.fusedLogprobBackward");
  at::AutoGradMode grad_on(true);
  ReferenceGraph g = BuildReference(hidden, weight, targets, opts, true);
  at::Tensor objective = (g.logp * grad_logp.to(g.logp.scalar_type())).sum();
  if (grad_entropy.defined()) objective = objective + (g.entropy * grad_entropy.to(g.entropy.scalar_type())).sum();
  auto grads = torch::autograd::grad({objective}, {g.h, g.w});
  return {grads[0].to(hidden.scalar_type()), grads[1].to(weight.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// Fused CPU: loops over one [rows, cols] logits tile; the same online algorithm as the CUDA kernels.
// ---------------------------------------------------------------------------------------------
namespace {

// The online state of a row: m (max), s = sum e^(z-m), u = sum e^(z-m) (z-m). u is relative to the
// max so that entropy = log s - u/s has no cancellation between two large numbers.
template <typename acc_t>
void CpuTileStats(const acc_t* z, int64_t rows, int64_t cols, int64_t vocab_offset, const int64_t* targets,
                  acc_t inv_temp, acc_t* m, acc_t* s, acc_t* u, acc_t* zt) {
  constexpr acc_t kNegInf = -std::numeric_limits<acc_t>::infinity();
  at::parallel_for(0, rows, 16, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const acc_t* zr = z + r * cols;
      acc_t tm = kNegInf;
      for (int64_t c = 0; c < cols; ++c) tm = std::max(tm, zr[c] * inv_temp);
      acc_t ts = 0, tu = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const acc_t d = zr[c] * inv_temp - tm;
        const acc_t e = std::exp(d);
        ts += e;
        tu += e * d;
      }
      // Merge (m, s, u) of the earlier tiles with this tile's (tm, ts, tu).
      if (m[r] == kNegInf) {
        m[r] = tm;
        s[r] = ts;
        u[r] = tu;
      } else {
        const acc_t mn = std::max(m[r], tm);
        const acc_t ea = std::exp(m[r] - mn), eb = std::exp(tm - mn);
        u[r] = ea * (u[r] + (m[r] - mn) * s[r]) + eb * (tu + (tm - mn) * ts);
        s[r] = ea * s[r] + eb * ts;
        m[r] = mn;
      }
      const int64_t y = targets[r] - vocab_offset;
      if (y >= 0 && y < cols) zt[r] = zr[y] * inv_temp;
    }
  });
}

template <typename acc_t>
void CpuTileGrad(acc_t* z, int64_t rows, int64_t cols, int64_t vocab_offset, const int64_t* targets, const acc_t* lse,
                 const acc_t* entropy, const acc_t* g_logp, const acc_t* g_ent, acc_t inv_temp) {
  at::parallel_for(0, rows, 16, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      acc_t* zr = z + r * cols;
      const acc_t l = lse[r], h = entropy[r];  // z - E[z] = (z - lse) + entropy
      const bool has_target = targets[r] >= 0;
      const acc_t g = has_target ? g_logp[r] : acc_t(0);
      const acc_t gh = g_ent ? g_ent[r] : acc_t(0);
      for (int64_t c = 0; c < cols; ++c) {
        const acc_t zc = zr[c] * inv_temp;
        const acc_t p = std::exp(zc - l);
        zr[c] = (-g * p - gh * p * ((zc - l) + h)) * inv_temp;
      }
      const int64_t y = targets[r] - vocab_offset;
      if (has_target && y >= 0 && y < cols) zr[y] += g * inv_temp;
    }
  });
}

int64_t VocabTile(const at::Tensor& weight, const LogprobOptions& opts, bool cuda) {
  const int64_t v = weight.size(0);
  if (opts.vocab_tile > 0) return std::min(opts.vocab_tile, v);
  return cuda ? std::min(kCudaVocabTile, v) : v;
}

}  // namespace

LogprobResult FusedLogprobForward(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                  const LogprobOptions& opts) {
  CheckLogprobArgs(hidden, weight, targets, opts, "grpo.fusedLogprob");
  NvtxRange range("medgr2.fused_logprob.forward");
  at::NoGradGuard no_grad;
  const bool cuda = hidden.is_cuda();
  const int64_t n = hidden.size(0), v = weight.size(0);
  const int64_t tile = VocabTile(weight, opts, cuda);
  const int64_t chunk = LogprobChunkTokens(n, tile, opts, cuda);
  at::Tensor y = targets.to(at::kLong).contiguous();
  const auto cdt = cuda ? at::kFloat : ComputeDtype(hidden);
  const auto f = hidden.options().dtype(cdt);
  at::Tensor m = at::full({n}, -std::numeric_limits<double>::infinity(), f);
  at::Tensor s = at::zeros({n}, f), t = at::zeros({n}, f), zt = at::zeros({n}, f);
  at::Tensor logp = at::empty({n}, f), entropy = at::empty({n}, f), lse = at::empty({n}, f);
  // CPU GEMMs run in the compute dtype; CUDA GEMMs in the input dtype (bf16 tensor cores).
  at::Tensor h = cuda ? hidden.contiguous() : hidden.to(cdt).contiguous();
  at::Tensor w = cuda ? weight.contiguous() : weight.to(cdt).contiguous();
  const double inv_temp = 1.0 / opts.temperature;

  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t rows = std::min(chunk, n - n0);
    at::Tensor hc = h.narrow(0, n0, rows);
    for (int64_t v0 = 0; v0 < v; v0 += tile) {
      const int64_t cols = std::min(tile, v - v0);
      at::Tensor z = at::mm(hc, w.narrow(0, v0, cols).t());  // [rows, cols], contiguous
#ifdef MEDGR2_WITH_CUDA
      if (cuda) {
        kernels::LogitsTile lt{z.data_ptr(), cols, rows, cols, v0, z.scalar_type() == at::kBFloat16};
        TORCH_CHECK(z.scalar_type() == at::kFloat || z.scalar_type() == at::kBFloat16,
                    "fused_logprob CUDA: hidden must be f32 or bf16");
        cudaError_t st =
            kernels::LogprobTileStats(lt, y.data_ptr<int64_t>() + n0, static_cast<float>(inv_temp),
                                      m.data_ptr<float>() + n0, s.data_ptr<float>() + n0, t.data_ptr<float>() + n0,
                                      zt.data_ptr<float>() + n0, c10::cuda::getCurrentCUDAStream());
        TORCH_CHECK(st == cudaSuccess, "fused_logprob stats kernel failed: ", cudaGetErrorString(st));
        continue;
      }
#endif
      AT_DISPATCH_FLOATING_TYPES(cdt, "fused_logprob_stats", [&] {
        CpuTileStats<scalar_t>(z.data_ptr<scalar_t>(), rows, cols, v0, y.data_ptr<int64_t>() + n0,
                               static_cast<scalar_t>(inv_temp), m.data_ptr<scalar_t>() + n0,
                               s.data_ptr<scalar_t>() + n0, t.data_ptr<scalar_t>() + n0, zt.data_ptr<scalar_t>() + n0);
      });
    }
  }
#ifdef MEDGR2_WITH_CUDA
  if (cuda) {
    cudaError_t st = kernels::LogprobFinalize(
        m.data_ptr<float>(), s.data_ptr<float>(), t.data_ptr<float>(), zt.data_ptr<float>(), y.data_ptr<int64_t>(), n,
        logp.data_ptr<float>(), entropy.data_ptr<float>(), lse.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(st == cudaSuccess, "fused_logprob finalize kernel failed: ", cudaGetErrorString(st));
    return {logp, entropy, lse};
  }
#endif
  lse = m + s.log();
  entropy = s.log() - t / s;
  logp = at::where(y >= 0, zt - lse, at::zeros_like(lse));
  return {logp, entropy, lse};
}

LogprobGrads FusedLogprobBackward(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                  const at::Tensor& lse_in, const at::Tensor& entropy_in, const at::Tensor& grad_logp,
                                  const at::Tensor& grad_entropy, const LogprobOptions& opts) {
  CheckLogprobArgs(hidden, weight, targets, opts, "grpo.fusedLogprobBackward");
  const int64_t n = hidden.size(0), v = weight.size(0);
  for (auto [t, name] :
       {std::pair{grad_logp, "gradLogp"}, std::pair{lse_in, "lse"}, std::pair{entropy_in, "entropy"}}) {
    if (!t.defined() || t.dim() != 1 || t.size(0) != n) {
      throw ArgumentError("grpo.fusedLogprobBackward", name, "a [N] tensor with N = " + std::to_string(n),
                          t.defined() ? Sizes(t) : "none");
    }
  }
  if (grad_entropy.defined() && (grad_entropy.dim() != 1 || grad_entropy.size(0) != n)) {
    throw ArgumentError("grpo.fusedLogprobBackward", "gradEntropy", "a [N] tensor with N = " + std::to_string(n),
                        Sizes(grad_entropy));
  }
  NvtxRange range("medgr2.fused_logprob.backward");
  at::NoGradGuard no_grad;
  const bool cuda = hidden.is_cuda();
  const int64_t tile = VocabTile(weight, opts, cuda);
  const int64_t chunk = LogprobChunkTokens(n, tile, opts, cuda);
  const auto cdt = cuda ? at::kFloat : ComputeDtype(hidden);
  at::Tensor y = targets.to(at::kLong).contiguous();
  at::Tensor lse = lse_in.to(cdt).contiguous(), ent = entropy_in.to(cdt).contiguous();
  at::Tensor g = grad_logp.to(cdt).contiguous();
  at::Tensor gh = grad_entropy.defined() ? grad_entropy.to(cdt).contiguous() : at::Tensor();
  at::Tensor h = cuda ? hidden.contiguous() : hidden.to(cdt).contiguous();
  at::Tensor w = cuda ? weight.contiguous() : weight.to(cdt).contiguous();
  // Gradients accumulate in float32 (float64 for float64 inputs), whatever the GEMM dtype.
  at::Tensor grad_h = at::zeros({n, hidden.size(1)}, hidden.options().dtype(cdt));
  at::Tensor grad_w = at::zeros({v, hidden.size(1)}, hidden.options().dtype(cdt));
  const double inv_temp = 1.0 / opts.temperature;

  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t rows = std::min(chunk, n - n0);
    at::Tensor hc = h.narrow(0, n0, rows);
    for (int64_t v0 = 0; v0 < v; v0 += tile) {
      const int64_t cols = std::min(tile, v - v0);
      at::Tensor wt = w.narrow(0, v0, cols);
      at::Tensor dz = at::mm(hc, wt.t());  // logits, overwritten in place by d loss / d (h W^T)
#ifdef MEDGR2_WITH_CUDA
      if (cuda) {
        kernels::LogitsTile lt{dz.data_ptr(), cols, rows, cols, v0, dz.scalar_type() == at::kBFloat16};
        cudaError_t st = kernels::LogprobTileGrad(lt, y.data_ptr<int64_t>() + n0, lse.data_ptr<float>() + n0,
                                                  ent.data_ptr<float>() + n0, g.data_ptr<float>() + n0,
                                                  gh.defined() ? gh.data_ptr<float>() + n0 : nullptr,
                                                  static_cast<float>(inv_temp), c10::cuda::getCurrentCUDAStream());
        TORCH_CHECK(st == cudaSuccess, "fused_logprob grad kernel failed: ", cudaGetErrorString(st));
        grad_h.narrow(0, n0, rows).add_(at::mm(dz, wt));
        grad_w.narrow(0, v0, cols).add_(at::mm(dz.t(), hc));
        continue;
      }
#endif
      AT_DISPATCH_FLOATING_TYPES(cdt, "fused_logprob_grad", [&] {
        CpuTileGrad<scalar_t>(dz.data_ptr<scalar_t>(), rows, cols, v0, y.data_ptr<int64_t>() + n0,
                              lse.data_ptr<scalar_t>() + n0, ent.data_ptr<scalar_t>() + n0, g.data_ptr<scalar_t>() + n0,
                              gh.defined() ? gh.data_ptr<scalar_t>() + n0 : nullptr, static_cast<scalar_t>(inv_temp));
      });
      grad_h.narrow(0, n0, rows).addmm_(dz, wt);
      grad_w.narrow(0, v0, cols).addmm_(dz.t(), hc);
    }
  }
  return {grad_h.to(hidden.scalar_type()), grad_w.to(weight.scalar_type())};
}

// ---------------------------------------------------------------------------------------------
// Autograd
// ---------------------------------------------------------------------------------------------
namespace {

struct FusedLogprobFunction : public torch::autograd::Function<FusedLogprobFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                                                const at::Tensor& weight, const at::Tensor& targets,
                                                const LogprobOptions* opts) {
    LogprobResult r = FusedLogprobForward(hidden, weight, targets, *opts);
    ctx->save_for_backward({hidden, weight, targets, r.lse, r.entropy});
    ctx->saved_data["temperature"] = opts->temperature;
    ctx->saved_data["chunk_tokens"] = opts->chunk_tokens;
    ctx->saved_data["vocab_tile"] = opts->vocab_tile;
    ctx->mark_non_differentiable({r.lse});
    return {r.logp, r.entropy};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    LogprobOptions opts;
    opts.temperature = ctx->saved_data["temperature"].toDouble();
    opts.chunk_tokens = ctx->saved_data["chunk_tokens"].toInt();
    opts.vocab_tile = ctx->saved_data["vocab_tile"].toInt();
    at::Tensor g = grads[0].defined() ? grads[0] : at::zeros_like(saved[3]);
    LogprobGrads out = FusedLogprobBackward(saved[0], saved[1], saved[2], saved[3], saved[4], g, grads[1], opts);
    return {out.grad_hidden, out.grad_weight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> FusedLogprobAutograd(const at::Tensor& hidden, const at::Tensor& weight,
                                             const at::Tensor& targets, const LogprobOptions& opts) {
  return FusedLogprobFunction::apply(hidden, weight, targets, &opts);
}

}  // namespace medgr2::ops
