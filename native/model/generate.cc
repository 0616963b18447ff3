// QwenVL::Generate: batched sampling with a KV cache. The prompts (with their images) are
// prefilled as one packed batch; then every step feeds one token per sequence. Log-probs are those
// of softmax(logits / temperature) -- the distribution the GRPO loss's fused logprob sees -- and not
// of the top-k / top-p truncated one, nor of the repetition-penalized one: the GRPO trainer recomputes
// log-probs without a penalty, so a rollout sampled with one is (mildly) off-policy, as in TRL with vLLM.
#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "common/argument_error.h"
#include "common/nvtx.h"
#include "model/decoder.h"
#include "model/layers.h"
#include "model/qwen_vl.h"
#include "model/rope.h"
#include "model/seeded_generator.h"

namespace medgr2::model {

namespace {

// Zeroes probabilities outside the top k and outside the smallest set with mass >= top_p.
at::Tensor Truncate(at::Tensor probs, int64_t top_k, double top_p) {
  if (top_k > 0 && top_k < probs.size(-1)) {
    at::Tensor kth = std::get<0>(probs.topk(top_k, -1)).narrow(-1, top_k - 1, 1);
    probs = probs.masked_fill(probs < kth, 0.0);
  }
  if (top_p < 1.0) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    at::Tensor before = sorted.cumsum(-1) - sorted;     // mass strictly before each token
    sorted = sorted.masked_fill(before >= top_p, 0.0);  // the first token always stays
    probs = at::zeros_like(probs).scatter(-1, order, sorted);
  }
  return probs;
}

// A uniform in [0, 1) that depends only on (seed, step): splitmix64 of the pair.
double CounterUniform(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// Inverse-CDF sampling with one uniform per row: the first token whose cumulative probability exceeds
// u times the row's total (tokens of probability 0 can never be chosen). The CDF in float64 so that
// 150k-token vocabularies keep the tail's resolution.
at::Tensor SampleWithUniforms(const at::Tensor& probs, const std::vector<uint64_t>& seeds, int64_t step) {
  const int64_t rows = probs.size(0), vocab = probs.size(1);
  at::Tensor u = at::empty({rows}, at::kDouble);
  double* up = u.data_ptr<double>();
  for (int64_t i = 0; i < rows; ++i) up[i] = CounterUniform(seeds[i], step);
  at::Tensor cdf = probs.to(at::kDouble).cumsum(-1);
  at::Tensor target = (u.to(cdf.device()) * cdf.select(1, vocab - 1)).unsqueeze(1);
  at::Tensor idx = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).squeeze(1);
  return idx.clamp_max(vocab - 1);
}

// [S, V] true where token v already occurs in sequence i's prompt.
at::Tensor PromptTokenMask(const at::Tensor& input_ids, const at::Tensor& cu, int64_t vocab, const at::Device& device) {
  const int64_t s = cu.numel() - 1;
  at::Tensor lengths = cu.slice(0, 1) - cu.slice(0, 0, s);
  at::Tensor rows = at::repeat_interleave(at::arange(s, at::kLong), lengths).to(device);
  at::Tensor cols = input_ids.to(device, at::kLong);
  at::Tensor seen = at::zeros({s, vocab}, at::TensorOptions().dtype(at::kBool).device(device));
  seen.index_put_({rows, cols}, at::ones({}, seen.options()));
  return seen;
}

// transformers' repetition penalty on raw logits: seen tokens' logits divided by `penalty` when
// positive, multiplied when negative (so a penalty > 1 always makes them less likely).
at::Tensor PenalizeRepeats(const at::Tensor& logits, const at::Tensor& seen, double penalty) {
  at::Tensor penalized = at::where(logits < 0, logits * penalty, logits / penalty);
  return at::where(seen, penalized, logits);
}

}  // namespace

GenerateResult QwenVL::Generate(const PackedBatch& prompts, const GenerateOptions& o) const {
  NvtxRange range("medgr2.generate");
  at::NoGradGuard no_grad;
  CheckBatch(prompts);
  if (o.max_new_tokens < 0) throw ArgumentError("generate", "maxNewTokens", ">= 0");
  if (!(o.temperature >= 0)) throw ArgumentError("generate", "temperature", ">= 0");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw ArgumentError("generate", "topP", "in (0, 1]");
  if (!(o.repetition_penalty > 0)) throw ArgumentError("generate", "repetitionPenalty", "> 0");
  const int64_t s = prompts.Sequences();
  if (!o.sequence_seeds.empty() && static_cast<int64_t>(o.sequence_seeds.size()) != s) {
    throw ArgumentError("generate", "seeds", "one per sequence (" + std::to_string(s) + ")",
                        std::to_string(o.sequence_seeds.size()));
  }
  at::Tensor cu = prompts.cu_seqlens.to(at::kCPU, at::kLong);
  int64_t longest = 0;
  for (int64_t i = 0; i < s; ++i) {
    const int64_t len = cu[i + 1].item<int64_t>() - cu[i].item<int64_t>();
    if (len == 0)
      throw ArgumentError("generate", "prompts", "non-empty", "an empty prompt at index " + std::to_string(i));
    longest = std::max(longest, len);
  }
  GenerateResult out;
  out.tokens.resize(s);
  out.logprobs.resize(s);
  if (o.max_new_tokens == 0) return out;

  RopeIndex rope = ComputeRopeIndex(prompts.input_ids, cu, prompts.image_grids, cfg_);
  KvCache cache =
      AllocateKvCache(cfg_, s, longest + o.max_new_tokens, at::TensorOptions().dtype(dtype_).device(device_));
  at::Tensor hidden = DecoderForward(InferenceWeights(), cfg_, Embed(prompts, rope.image_positions), rope.position_ids,
                                     cu, false, &cache);
  at::Tensor last = hidden.index_select(0, (cu.slice(0, 1) - 1).to(device_));  // [S, H]
  std::vector<int64_t> next = rope.next_position;
  std::vector<bool> done(s, false);
  at::Generator gen = SeededGenerator(device_, o.seed);
  const at::Tensor& head = HeadWeight();
  const at::Tensor& embed = params_.Get("model.embed_tokens.weight");
  const double tau = o.temperature > 0 ? o.temperature : 1.0;
  const bool penalize = o.repetition_penalty != 1.0;
  at::Tensor seen = penalize ? PromptTokenMask(prompts.input_ids, cu, head.size(0), device_) : at::Tensor();

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    at::Tensor raw = at::matmul(last, head.t()).to(AccType(dtype_));  // [S, V]
    at::Tensor logp_all = at::log_softmax(raw / tau, -1);
    at::Tensor logits = penalize ? PenalizeRepeats(raw, seen, o.repetition_penalty) / tau : raw / tau;
    at::Tensor chosen;
    if (o.temperature == 0) {
      chosen = logits.argmax(-1);
    } else {
      at::Tensor probs = Truncate(penalize ? at::softmax(logits, -1) : logp_all.exp(), o.top_k, o.top_p);
      chosen = o.sequence_seeds.empty() ? at::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(1)
                                        : SampleWithUniforms(probs, o.sequence_seeds, step);
    }
    at::Tensor lp = logp_all.gather(1, chosen.unsqueeze(1)).squeeze(1).to(at::kCPU, at::kFloat);
    if (penalize) seen.scatter_(1, chosen.unsqueeze(1), true);
    at::Tensor tok = chosen.cpu();
    bool all_done = true;
    for (int64_t i = 0; i < s; ++i) {
      if (done[i]) continue;
      const int64_t t = tok[i].item<int64_t>();
      out.tokens[i].push_back(t);
      out.logprobs[i].push_back(lp[i].item<float>());
      if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t) != o.stop_tokens.end()) done[i] = true;
      all_done = all_done && done[i];
    }
    if (all_done || step + 1 == o.max_new_tokens) break;
    last = DecoderStep(InferenceWeights(), cfg_, at::embedding(embed, chosen.to(device_)), next, cache);
    for (auto& p : next) ++p;
  }
  return out;
}

}  // namespace medgr2::model
