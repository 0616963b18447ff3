#include "model/qwen_vl.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "common/argument_error.h"
#include "common/nvtx.h"
#include "model/decoder.h"
#include "model/rope.h"
#include "model/layers.h"
#include "model/vision.h"
#include "ops/fused_logprob.h"

namespace medgr2::model {

namespace {

// Row of each sequence's last token in a packed batch: cu_seqlens[i+1] - 1 (where a
// sequence-classification head reads, as HF's does on unpadded input). Throws for an empty sequence,
// which has no last token.
at::Tensor LastTokenRows(const at::Tensor& cu_seqlens) {
  at::Tensor cu = cu_seqlens.to(at::kCPU, at::kLong);
  at::Tensor lengths = cu.slice(0, 1) - cu.slice(0, 0, -1);
  if ((lengths < 1).any().item<bool>())
    throw ArgumentError("model", "cuSeqlens", "sequences of at least one token (a score reads the last one)");
  return cu.slice(0, 1) - 1;
}

}  // namespace

QwenVL::QwenVL(ModelConfig cfg, at::Device device, at::ScalarType dtype)
    : cfg_(std::move(cfg)), device_(device), dtype_(dtype) {
  ValidateConfig(cfg_);
}

std::vector<ParamSpec> QwenVL::ParameterSpecs() const {
  const TextConfig& t = cfg_.text;
  std::vector<ParamSpec> s;
  const int64_t h = t.hidden_size, q = t.num_heads * t.head_dim, kv = t.num_kv_heads * t.head_dim;
  s.push_back({"model.embed_tokens.weight", {t.vocab_size, h}});
  for (int64_t i = 0; i < t.num_layers; ++i) {
    const std::string b = "model.layers." + std::to_string(i) + ".";
    s.push_back({b + "self_attn.q_proj.weight", {q, h}});
    s.push_back({b + "self_attn.q_proj.bias", {q}});
    s.push_back({b + "self_attn.k_proj.weight", {kv, h}});
    s.push_back({b + "self_attn.k_proj.bias", {kv}});
    s.push_back({b + "self_attn.v_proj.weight", {kv, h}});
    s.push_back({b + "self_attn.v_proj.bias", {kv}});
    s.push_back({b + "self_attn.o_proj.weight", {h, q}});
    s.push_back({b + "mlp.gate_proj.weight", {t.intermediate_size, h}});
    s.push_back({b + "mlp.up_proj.weight", {t.intermediate_size, h}});
    s.push_back({b + "mlp.down_proj.weight", {h, t.intermediate_size}});
    s.push_back({b + "input_layernorm.weight", {h}});
    s.push_back({b + "post_attention_layernorm.weight", {h}});
  }
  s.push_back({"model.norm.weight", {h}});
  if (!t.tie_word_embeddings) s.push_back({"lm_head.weight", {t.vocab_size, h}});
  // Last of the language model's tensors: the forward's last op, so the first gradient backward makes.
  if (cfg_.score_labels > 0) s.push_back({"score.weight", {cfg_.score_labels, h}});
  if (cfg_.vision.present) {
    const VisionConfig& v = cfg_.vision;
    const int64_t e = v.embed_dim, m = v.mlp_hidden_dim, ctx = e * v.MergeUnit();
    s.push_back(
        {"visual.patch_embed.proj.weight", {e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size}});
    for (int64_t i = 0; i < v.depth; ++i) {
      const std::string b = "visual.blocks." + std::to_string(i) + ".";
      s.push_back({b + "norm1.weight", {e}});
      if (!v.qwen25) s.push_back({b + "norm1.bias", {e}});
      s.push_back({b + "norm2.weight", {e}});
      if (!v.qwen25) s.push_back({b + "norm2.bias", {e}});
      s.push_back({b + "attn.qkv.weight", {3 * e, e}});
      s.push_back({b + "attn.qkv.bias", {3 * e}});
      s.push_back({b + "attn.proj.weight", {e, e}});
      s.push_back({b + "attn.proj.bias", {e}});
      if (v.qwen25) {
        for (const char* n : {"gate_proj", "up_proj"}) {
          s.push_back({b + "mlp." + n + ".weight", {m, e}});
          s.push_back({b + "mlp." + n + ".bias", {m}});
        }
        s.push_back({b + "mlp.down_proj.weight", {e, m}});
        s.push_back({b + "mlp.down_proj.bias", {e}});
      } else {
        s.push_back({b + "mlp.fc1.weight", {m, e}});
        s.push_back({b + "mlp.fc1.bias", {m}});
        s.push_back({b + "mlp.fc2.weight", {e, m}});
        s.push_back({b + "mlp.fc2.bias", {e}});
      }
    }
    s.push_back({"visual.merger.ln_q.weight", {e}});
    if (!v.qwen25) s.push_back({"visual.merger.ln_q.bias", {e}});
    s.push_back({"visual.merger.mlp.0.weight", {ctx, ctx}});
    s.push_back({"visual.merger.mlp.0.bias", {ctx}});
    s.push_back({"visual.merger.mlp.2.weight", {v.out_hidden_size, ctx}});
    s.push_back({"visual.merger.mlp.2.bias", {v.out_hidden_size}});
  }
  return s;
}

void QwenVL::InitRandom(uint64_t seed, double std) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  for (const ParamSpec& spec : ParameterSpecs()) {
    const std::string& n = spec.name;
    const bool norm = n.find("norm") != std::string::npos || n.find("ln_q") != std::string::npos;
    const bool bias = n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0;
    at::Tensor t = at::empty(spec.shape, at::kFloat);
    if (bias)
      t.zero_();
    else if (norm)
      t.fill_(1.0);
    else
      t.normal_(0.0, std, gen);
    params_.Set(n, t.to(device_, dtype_));
  }
}

void QwenVL::SetTrainable(bool vision, bool merger, bool language_model) {
  for (auto& [name, t] : params_.All()) {
    if (ParseLoraName(name)) continue;  // adapters always train
    bool train = language_model;
    if (name.rfind("visual.merger.", 0) == 0)
      train = merger;
    else if (name.rfind("visual.", 0) == 0)
      train = vision;
    t.requires_grad_(train);
  }
}

int64_t QwenVL::ParameterCount() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_.All()) n += t.numel();
  return n;
}

std::vector<at::Tensor> QwenVL::TrainableInBackwardOrder() const {
  // ParameterSpecs lists the language model first and the vision tower after it; the forward runs
  // the vision tower first. A module's adapter runs right after its weight.
  std::vector<std::string> forward;
  auto add = [&](const std::string& name) {
    forward.push_back(name);
    const std::string weight = ".weight";
    if (name.size() <= weight.size() || name.compare(name.size() - weight.size(), weight.size(), weight) != 0) return;
    const std::string module = name.substr(0, name.size() - weight.size());
    for (const std::string& adapter : {LoraAName(module), LoraBName(module)})
      if (params_.Has(adapter)) forward.push_back(adapter);
  };
  for (const auto& spec : ParameterSpecs())
    if (spec.name.rfind("visual.", 0) == 0) add(spec.name);
  for (const auto& spec : ParameterSpecs())
    if (spec.name.rfind("visual.", 0) != 0) add(spec.name);
  std::vector<at::Tensor> out;
  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    const at::Tensor& p = params_.Get(*it);
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

int64_t QwenVL::TrainableCount() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_.All()) n += t.requires_grad() ? t.numel() : 0;
  return n;
}

const at::Tensor& QwenVL::HeadWeight() const {
  return cfg_.text.tie_word_embeddings ? params_.Get("model.embed_tokens.weight") : params_.Get("lm_head.weight");
}

void QwenVL::CheckBatch(const PackedBatch& b) const {
  if (b.input_ids.dim() != 1) throw ArgumentError("model", "inputIds", "a flat [N] tensor");
  if (b.cu_seqlens.numel() < 2) throw ArgumentError("model", "cuSeqlens", "at least one sequence ([0, N])");
  at::Tensor cu = b.cu_seqlens.to(at::kCPU, at::kLong);
  if (cu[0].item<int64_t>() != 0 || cu[-1].item<int64_t>() != b.input_ids.numel()) {
    throw ArgumentError("model", "cuSeqlens", "from 0 to the token count " + std::to_string(b.input_ids.numel()));
  }
  if ((cu.slice(0, 1) < cu.slice(0, 0, -1)).any().item<bool>())
    throw ArgumentError("model", "cuSeqlens", "non-decreasing");
  if (b.input_ids.numel() > 0) {
    const int64_t lo = b.input_ids.min().item<int64_t>(), hi = b.input_ids.max().item<int64_t>();
    if (lo < 0 || hi >= cfg_.text.vocab_size) {
      throw ArgumentError("model", "inputIds", "token ids in [0, " + std::to_string(cfg_.text.vocab_size) + ")",
                          "an id " + std::to_string(lo < 0 ? lo : hi));
    }
  }
  const bool has_images = b.pixel_values.defined() && b.pixel_values.numel() > 0;
  if (has_images) {
    if (!cfg_.vision.present) throw ArgumentError("model", "pixelValues", "absent for a text-only model");
    if (b.pixel_values.dim() != 2 || b.pixel_values.size(1) != cfg_.vision.PatchDim()) {
      throw ArgumentError("model", "pixelValues", "[P, " + std::to_string(cfg_.vision.PatchDim()) + "]");
    }
    if (!b.image_grids.defined() || b.image_grids.dim() != 2 || b.image_grids.size(1) != 3) {
      throw ArgumentError("model", "imageGrids", "[I, 3] (t, h, w) per image");
    }
    at::Tensor g = b.image_grids.to(at::kCPU, at::kLong);
    const int64_t patches = (g.select(1, 0) * g.select(1, 1) * g.select(1, 2)).sum().item<int64_t>();
    if (patches != b.pixel_values.size(0)) {
      throw ArgumentError("model", "pixelValues", "as many patches as the grids hold (" + std::to_string(patches) + ")",
                          std::to_string(b.pixel_values.size(0)));
    }
    const int64_t m = cfg_.vision.spatial_merge_size;
    if (((g.select(1, 1) % m) != 0).any().item<bool>() || ((g.select(1, 2) % m) != 0).any().item<bool>()) {
      throw ArgumentError("model", "imageGrids", "h and w multiples of spatialMergeSize " + std::to_string(m));
    }
  }
}

ForwardWeights QwenVL::InferenceWeights() const {
  ForwardWeights w;
  w.params = &params_;
  w.lora = lora_;
  return w;
}

ForwardWeights QwenVL::TrainingWeights() {
  ForwardWeights w = InferenceWeights();
  w.training = true;
  w.dropout_seed = MixSeed(dropout_seed_ ^ MixSeed(training_forwards_++));
  return w;
}

at::Tensor QwenVL::Embed(const PackedBatch& b, const std::vector<int64_t>& image_positions) const {
  return EmbedWith(InferenceWeights(), b, image_positions);
}

at::Tensor QwenVL::EmbedWith(const ForwardWeights& w, const PackedBatch& b,
                             const std::vector<int64_t>& image_positions) const {
  at::Tensor ids = b.input_ids.to(device_, at::kLong);
  at::Tensor x = at::embedding(params_.Get("model.embed_tokens.weight"), ids);
  if (b.pixel_values.defined() && b.pixel_values.numel() > 0) {
    at::Tensor image = VisionForward(w, cfg_, b.pixel_values.to(device_), b.image_grids, checkpoint_layers);
    at::Tensor where = at::tensor(image_positions, at::kLong).to(device_);
    if (where.numel() != image.size(0)) {
      throw ArgumentError("model", "inputIds",
                          std::to_string(image.size(0)) + " image tokens for the images' merged patches",
                          std::to_string(where.numel()));
    }
    x = x.index_put({where}, image.to(x.scalar_type()));
  }
  return x;
}

at::Tensor QwenVL::Hidden(const PackedBatch& b) const {
  return HiddenWith(InferenceWeights(), b);
}

at::Tensor QwenVL::HiddenWith(const ForwardWeights& w, const PackedBatch& b) const {
  CheckBatch(b);
  RopeIndex rope = ComputeRopeIndex(b.input_ids, b.cu_seqlens, b.image_grids, cfg_);
  return DecoderForward(w, cfg_, EmbedWith(w, b, rope.image_positions), rope.position_ids, b.cu_seqlens,
                        checkpoint_layers, nullptr);
}

at::Tensor QwenVL::Logits(const PackedBatch& b) const {
  return at::matmul(Hidden(b), HeadWeight().t()).to(AccType(dtype_));
}

double QwenVL::SftLossValue(const PackedBatch& b, const SftLoss& spec) const {
  at::NoGradGuard no_grad;
  auto [logp, entropy] = TokenLogprobs(b, spec.labels, spec.temperature);
  at::Tensor mask = (spec.labels.to(device_, at::kLong) >= 0).to(logp.scalar_type());
  const double tokens = mask.sum().item<double>();
  const double denom = spec.num_items ? *spec.num_items : std::max(tokens, 1.0);
  return -(logp * mask).sum().item<double>() / denom;
}

std::pair<at::Tensor, at::Tensor> QwenVL::TokenLogprobs(const PackedBatch& b, const at::Tensor& labels,
                                                        double temperature) const {
  at::NoGradGuard no_grad;
  ops::LogprobOptions o;
  o.temperature = temperature;
  ops::LogprobResult r = ops::FusedLogprobForward(Hidden(b), HeadWeight(), labels.to(device_, at::kLong), o);
  return {r.logp, r.entropy};
}

LossReport QwenVL::BackwardSft(const PackedBatch& b, const SftLoss& spec) {
  NvtxRange range("medgr2.sft_step");
  at::AutoGradMode grad_on(true);
  at::Tensor labels = spec.labels.to(device_, at::kLong);
  ops::LogprobOptions o;
  o.temperature = spec.temperature;
  auto lp = ops::FusedLogprobAutograd(HiddenWith(TrainingWeights(), b), HeadWeight(), labels, o);
  const auto acc = lp[0].scalar_type();
  at::Tensor mask = (labels >= 0).to(acc);
  const double tokens = mask.sum().item<double>();
  const double denom = spec.num_items ? *spec.num_items : std::max(tokens, 1.0);
  at::Tensor loss = -(lp[0] * mask).sum() / denom;
  loss.backward();
  LossReport r;
  r.loss = loss.item<double>();
  r.tokens = tokens;
  r.entropy_mean = tokens > 0 ? (lp[1].detach() * mask).sum().item<double>() / tokens : 0;
  return r;
}

LossReport QwenVL::BackwardGrpo(const PackedBatch& b, const GrpoLossSpec& spec) {
  NvtxRange range("medgr2.grpo_step");
  at::AutoGradMode grad_on(true);
  at::Tensor labels = spec.labels.to(device_, at::kLong);
  ops::LogprobOptions o;
  o.temperature = spec.temperature;
  auto lp = ops::FusedLogprobAutograd(HiddenWith(TrainingWeights(), b), HeadWeight(), labels, o);
  ops::LossInputs in =
      ops::PackedLossInputs(lp[0], spec.old_logp.defined() ? spec.old_logp.to(device_) : spec.old_logp,
                            spec.ref_logp.defined() ? spec.ref_logp.to(device_) : spec.ref_logp,
                            spec.advantages.to(device_), (labels >= 0).to(at::kByte), b.cu_seqlens.to(device_));
  in.entropy = lp[1].detach();
  in.is_weights = spec.is_weights.defined() ? spec.is_weights.to(device_, at::kFloat) : spec.is_weights;
  LossReport r;
  const at::Tensor active = labels >= 0;
  if (spec.entropy_top_quantile < 1.0) {
    at::Tensor keep = HighEntropyTokens(in.entropy, active, spec.entropy_top_quantile);
    at::Tensor kept_weight = keep.to(at::kFloat);
    in.is_weights = in.is_weights.defined() ? in.is_weights * kept_weight : kept_weight;
    const double kept = keep.sum().item<double>(), all = active.sum().item<double>();
    r.entropy_kept_fraction = all > 0 ? kept / all : 1.0;
    r.entropy_kept_mean = kept > 0 ? (in.entropy.to(at::kDouble) * keep).sum().item<double>() / kept : 0.0;
  }
  at::Tensor loss = ops::GrpoLossAutograd(in, spec.options, &r.stats);
  if (spec.entropy_coef != 0) {
    // Weighted as the loss weighs its tokens, so the bonus keeps its size across lossTypes and
    // micro-batch splits; the gradient reaches the model through the fused op's entropy output.
    at::Tensor rows = at::repeat_interleave(at::arange(in.advantages.numel(), in.offsets.options()),
                                            in.offsets.slice(0, 1) - in.offsets.slice(0, 0, in.advantages.numel()));
    at::Tensor w = active.to(at::kDouble) * ops::LossRowScales(in, spec.options).index_select(0, rows);
    loss = loss - spec.entropy_coef * (w.to(lp[1].scalar_type()) * lp[1]).sum();
  }
  loss = loss * spec.loss_scale;
  loss.backward();
  r.loss = loss.item<double>();
  r.tokens = r.stats.active_tokens;
  r.entropy_mean = r.stats.entropy_mean;
  if (spec.entropy_top_quantile >= 1.0) r.entropy_kept_mean = r.entropy_mean;
  return r;
}

const at::Tensor& QwenVL::ScoreWeight() const {
  if (!HasScoreHead()) {
    throw ArgumentError("model", "scoreLabels",
                        "> 0: this model has no score head (addScoreHead gives it one; a folder whose architectures "
                        "name a *ForSequenceClassification class loads with one)",
                        "0");
  }
  return params_.Get("score.weight");
}

at::Tensor QwenVL::ScoresAt(const at::Tensor& hidden, const at::Tensor& last) const {
  // Upcast before the product, as the LM head path does: bf16 rewards would be coarse.
  const at::ScalarType acc = AccType(dtype_);
  at::Tensor rows = hidden.index_select(0, last.to(device_));
  return at::matmul(rows.to(acc), ScoreWeight().to(acc).t());
}

at::Tensor QwenVL::Scores(const PackedBatch& b) const {
  at::NoGradGuard no_grad;
  ScoreWeight();  // a model without a head fails before the forward
  CheckBatch(b);
  return ScoresAt(Hidden(b), LastTokenRows(b.cu_seqlens));
}

LossReport QwenVL::BackwardScoreMse(const PackedBatch& b, const at::Tensor& targets, std::optional<double> num_items) {
  NvtxRange range("medgr2.score_step");
  ScoreWeight();
  CheckBatch(b);
  const int64_t rows = b.Sequences(), labels = cfg_.score_labels;
  if (!targets.defined() || targets.numel() != rows * labels) {
    throw ArgumentError("model", "targets",
                        std::to_string(rows * labels) + " values (" + std::to_string(rows) + " sequences x " +
                            std::to_string(labels) + " labels)",
                        targets.defined() ? std::to_string(targets.numel()) : "none");
  }
  if (num_items && !(*num_items > 0 && std::isfinite(*num_items)))
    throw ArgumentError("model", "numItems", "a finite number > 0", std::to_string(*num_items));
  const at::Tensor last = LastTokenRows(b.cu_seqlens);
  at::AutoGradMode grad_on(true);
  at::Tensor scores = ScoresAt(HiddenWith(TrainingWeights(), b), last);
  at::Tensor diff = scores - targets.to(device_, scores.scalar_type()).reshape({rows, labels});
  const double denom = num_items ? *num_items : static_cast<double>(rows * labels);
  at::Tensor loss = diff.pow(2).sum() / denom;
  loss.backward();
  LossReport r;
  r.loss = loss.item<double>();
  r.tokens = static_cast<double>(rows);
  return r;
}

void QwenVL::AddScoreHead(int64_t labels, uint64_t seed, double std) {
  if (labels < 1) throw ArgumentError("model", "labels", "an integer >= 1", std::to_string(labels));
  if (!(std >= 0 && std::isfinite(std)))
    throw ArgumentError("model", "std", "a finite number >= 0", std::to_string(std));
  if (HasScoreHead()) {
    throw ArgumentError("model", "scoreLabels", "0: the model already has a score head",
                        std::to_string(cfg_.score_labels) + " labels");
  }
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor w;
  {
    at::NoGradGuard no_grad;
    w = at::empty({labels, cfg_.text.hidden_size}, at::kFloat).normal_(0.0, std, gen).to(device_, dtype_);
  }
  // The head is part of the language model (SetTrainable): it trains when the LM does.
  const at::Tensor embed = params_.Find("model.embed_tokens.weight");
  w.requires_grad_(embed.defined() ? embed.requires_grad() : true);
  params_.Set("score.weight", w);
  cfg_.score_labels = labels;
}

at::Tensor HighEntropyTokens(const at::Tensor& entropy, const at::Tensor& active, double q) {
  at::Tensor keep = at::zeros_like(active);
  at::Tensor idx = active.nonzero().reshape({-1});
  const int64_t n = idx.numel();
  if (n == 0) return keep;
  // The ceil(q n) highest entropies; ties at the threshold are all kept.
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * static_cast<double>(n))));
  at::Tensor values = entropy.index_select(0, idx);
  const double threshold = std::get<0>(at::topk(values, k)).min().item<double>();
  keep.index_put_({idx}, values >= threshold);
  return keep;
}

at::Tensor NextTokenLabels(const at::Tensor& ids_in, const at::Tensor& cu_in) {
  at::Tensor ids = ids_in.to(at::kCPU, at::kLong).contiguous();
  at::Tensor cu = cu_in.to(at::kCPU, at::kLong).contiguous();
  at::Tensor labels = at::full_like(ids, -100);
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t* c = cu.data_ptr<int64_t>();
  int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t s = 0; s + 1 < cu.numel(); ++s)
    for (int64_t t = c[s]; t + 1 < c[s + 1]; ++t) l[t] = id[t + 1];
  return labels;
}

}  // namespace medgr2::model
