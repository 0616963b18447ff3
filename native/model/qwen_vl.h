// The one model class behind the generator, the reward model and the policy: Qwen2-VL /
// Qwen2.5-VL (or a text-only Qwen2) over packed, padding-free batches.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/params.h"
#include "ops/grpo_common.h"
#include "ops/grpo_loss.h"

namespace medgr2::model {

// A packed batch: S sequences laid end to end, and the images they contain (in token order).
struct PackedBatch {
  at::Tensor input_ids;     // [N] int64
  at::Tensor cu_seqlens;    // [S+1] int64, CPU
  at::Tensor pixel_values;  // [P, C*Tp*p*p] or undefined
  at::Tensor image_grids;   // [I, 3] int64 (t, h, w in patches) or undefined
  int64_t Sequences() const { return cu_seqlens.numel() - 1; }
};

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  // transformers' RepetitionPenaltyLogitsProcessor: the raw logit of every token already in the
  // sequence (prompt included) is divided by this when positive, multiplied when negative. 1: off.
  double repetition_penalty = 1.0;
  uint64_t seed = 0;
  // One seed per sequence (or empty): sequence i then draws its tokens from its own counter-based
  // stream, so its completion does not depend on what else is in the batch (distributed GRPO samples
  // a prompt's rollouts on whichever rank holds it). Empty: one generator for the batch from `seed`.
  std::vector<uint64_t> sequence_seeds;
  std::vector<int64_t> stop_tokens;
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // per sequence, stop token included when hit
  std::vector<std::vector<float>> logprobs;  // log p(token) under softmax(logits / temperature)
};

struct SftLoss {
  at::Tensor labels;                // [N] next-token ids, < 0 where there is no loss
  std::optional<double> num_items;  // divide by this (a global token count) instead of the local one
  double temperature = 1.0;
};

struct GrpoLossSpec {
  at::Tensor labels;      // [N] next-token ids on completion tokens, < 0 elsewhere
  at::Tensor old_logp;    // [N] or undefined
  at::Tensor ref_logp;    // [N] or undefined
  at::Tensor advantages;  // [S]
  ops::LossOptions options;
  double temperature = 1.0;
  // Multiplies the loss (and so its gradient): the share of this micro-batch in a generation batch
  // split over several micro-batches, for the loss types normalized per batch (grpo, bnpo, dr_grpo).
  double loss_scale = 1.0;
  at::Tensor is_weights;  // [N] or undefined: detached weights of the policy term (truncated IS)
  // Entropy bonus: the loss gains -entropy_coef * sum_t w_t H_t (w: the lossType's token weights).
  double entropy_coef = 0.0;
  // Only tokens whose entropy is in the top q of this micro-batch's completion tokens get policy
  // gradient (their isWeights are zeroed otherwise); 1: every token.
  double entropy_top_quantile = 1.0;
};

struct LossReport {
  double loss = 0;
  double tokens = 0;
  ops::LossStats stats;  // GRPO only
  double entropy_mean = 0;
  // GRPO with entropy_top_quantile < 1: mean entropy of the tokens kept, and their share.
  double entropy_kept_mean = 0;
  double entropy_kept_fraction = 1;
};

class QwenVL {
 public:
  QwenVL(ModelConfig cfg, at::Device device, at::ScalarType dtype);

  const ModelConfig& config() const { return cfg_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  ParamMap& params() { return params_; }
  const ParamMap& params() const { return params_; }

  // Every base tensor of the model with its hub name and shape (lm_head absent when tied). LoRA
  // adapters are not listed (AdapterSpecs); params() holds both.
  std::vector<ParamSpec> ParameterSpecs() const;
  // Normal(0, std) weights, zero biases, unit norms; deterministic for a seed.
  void InitRandom(uint64_t seed, double std = 0.02);
  // Which base weights train: the vision blocks + patch embedding, the merger, the language model.
  // LoRA adapters always train.
  void SetTrainable(bool vision, bool merger, bool language_model);
  int64_t ParameterCount() const;
  int64_t TrainableCount() const;  // elements of the parameters that require grad
  // The parameters that require grad in about the order backward produces their gradients: the
  // reverse of the forward's (vision tower, merger, embedding, decoder layers, norm, head), each
  // module's LoRA A and B right after its weight. Every rank gets the same list (the order gradient
  // buckets are reduced in).
  std::vector<at::Tensor> TrainableInBackwardOrder() const;
  bool checkpoint_layers = false;

  // Token embeddings with each image's merged features placed at its block's tokens
  // (`image_positions` from the rope index).
  at::Tensor Embed(const PackedBatch& b, const std::vector<int64_t>& image_positions) const;
  // Final-norm hidden states [N, H].
  at::Tensor Hidden(const PackedBatch& b) const;
  const at::Tensor& HeadWeight() const;
  // Full logits [N, V] in float32 (inference and tests; training never materializes them).
  at::Tensor Logits(const PackedBatch& b) const;
  // Per-token log p(labels) and entropy [N] through the fused logprob op (no gradient).
  std::pair<at::Tensor, at::Tensor> TokenLogprobs(const PackedBatch& b, const at::Tensor& labels,
                                                  double temperature) const;

  // The SFT loss without gradients (evaluation, finite-difference checks).
  double SftLossValue(const PackedBatch& b, const SftLoss& spec) const;
  // Loss forward + backward: gradients accumulate into the parameters' .grad.
  LossReport BackwardSft(const PackedBatch& b, const SftLoss& spec);
  LossReport BackwardGrpo(const PackedBatch& b, const GrpoLossSpec& spec);

  // The sequence-classification head (config().score_labels > 0): HF's score.weight applied to the
  // final-norm hidden state of each sequence's last token. The reward model's scalar is label 0.
  bool HasScoreHead() const { return cfg_.score_labels > 0; }
  // Scores [S, L] in AccType (float32, float64 for a float64 model), without gradient.
  at::Tensor Scores(const PackedBatch& b) const;
  // Loss = sum over rows and labels of (score - target)^2 / num_items (default S * L), computed in
  // AccType; backward accumulates into .grad. targets: S * L values ([S] or [S, L]). tokens = S.
  LossReport BackwardScoreMse(const PackedBatch& b, const at::Tensor& targets, std::optional<double> num_items);
  // Gives the model a fresh head of `labels` rows, Normal(0, std) from `seed`, on the model's device
  // and dtype, training when the language model does. Throws when it already has one.
  void AddScoreHead(int64_t labels, uint64_t seed, double std = 0.02);

  GenerateResult Generate(const PackedBatch& prompts, const GenerateOptions& opts) const;

  // ----- LoRA adapters (model/lora.h): M.lora_A.weight [r, in], M.lora_B.weight [out, r] -----
  // The linear modules an adapter may target, each with its weight's [out, in]: the decoder layers'
  // q/k/v/o and gate/up/down projections, the vision blocks' attn.qkv, attn.proj and MLP, the
  // merger's mlp.0 and mlp.2 (not the embedding, LM head, score head, patch embedding or norms).
  std::map<std::string, std::vector<int64_t>> ProjectableModules() const;
  // Fresh adapters of `rank` on `modules` (full names without ".weight"), as PEFT initializes them:
  // A ~ Uniform(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)) drawn in float32 from a
  // CPU generator seeded with `seed`, module after module in the given order; B = 0. They train.
  // ArgumentError naming the module: unknown, not projectable, already adapted, another rank than
  // the adapters the model has; or rank < 1.
  void AddLora(const std::vector<std::string>& modules, int64_t rank, uint64_t seed);
  // Checks adapter tensors by full name (see SetLoraTensors) without changing anything;
  // ArgumentError naming the tensor.
  void CheckLoraTensors(const std::map<std::string, at::Tensor>& tensors) const;
  // Adds or replaces adapter tensors (copied into the model's dtype and device, training): each named
  // M.lora_A.weight / M.lora_B.weight of a projectable M, A [r, in], B [out, r], a module's two given
  // together or the other one already there with the same r, every module of the same r.
  void SetLoraTensors(const std::map<std::string, at::Tensor>& tensors);
  // Drops every adapter; returns the names of the tensors dropped.
  std::vector<std::string> RemoveLora();
  // W += scale * B A for every adapted module, computed in AccType and cast to W's dtype (whether or
  // not adapters are enabled: merging is explicit), then drops the adapters. Returns the merged
  // modules.
  std::vector<std::string> MergeLora();
  // Modules with an adapter (sorted) and their rank (0 without any).
  std::vector<std::string> LoraModules() const;
  int64_t LoraRank() const;
  // The adapter tensors' names and shapes, by module (A then B).
  std::vector<ParamSpec> AdapterSpecs() const;
  const LoraSettings& lora() const { return lora_; }
  void SetLora(const LoraSettings& s) { lora_ = s; }
  // Restarts the adapter-dropout streams: training forward n (n = 0, 1, ... from this call) draws
  // module M's mask from (seed, n, M), so two runs from the same seed drop the same elements, with
  // activation recomputation or without.
  void SeedLoraDropout(uint64_t seed) {
    dropout_seed_ = seed;
    training_forwards_ = 0;
  }

 private:
  void CheckBatch(const PackedBatch& b) const;
  // The weights as an inference forward reads them (no dropout).
  ForwardWeights InferenceWeights() const;
  // As a training backward's forward reads them: dropout on, with this forward's own seed.
  ForwardWeights TrainingWeights();
  at::Tensor EmbedWith(const ForwardWeights& w, const PackedBatch& b,
                       const std::vector<int64_t>& image_positions) const;
  at::Tensor HiddenWith(const ForwardWeights& w, const PackedBatch& b) const;
  // A module's adapter rank from whichever of its tensors exists (0: none).
  int64_t AdapterRank(const std::string& module) const;
  // The head's weight; an ArgumentError naming scoreLabels when the model has none.
  const at::Tensor& ScoreWeight() const;
  // Scores [S, L] in AccType from final-norm hidden states [N, H] at rows `last` (differentiable).
  at::Tensor ScoresAt(const at::Tensor& hidden, const at::Tensor& last) const;
  ModelConfig cfg_;
  at::Device device_;
  at::ScalarType dtype_;
  ParamMap params_;
  LoraSettings lora_;
  uint64_t dropout_seed_ = 0;
  uint64_t training_forwards_ = 0;
};

// The completion tokens (active) whose entropy is among the ceil(q n) highest of the n active
// ones (ties at the threshold kept): the "80/20" rule's policy-gradient mask. Bool [N].
at::Tensor HighEntropyTokens(const at::Tensor& entropy, const at::Tensor& active, double q);

// Next-token labels for packed sequences: labels[t] = ids[t+1] inside a sequence, -100 at each
// sequence's last token.
at::Tensor NextTokenLabels(const at::Tensor& ids, const at::Tensor& cu_seqlens);

}  // namespace medgr2::model
