#include "model/config.h"

#include <numeric>
#include <stdexcept>

namespace medgr2::model {

namespace {
void Require(bool ok, const std::string& field, const std::string& expected) {
  if (!ok) throw std::invalid_argument("model config: " + field + " must be " + expected);
}
}  // namespace

void ValidateConfig(const ModelConfig& c) {
  const TextConfig& t = c.text;
  Require(t.vocab_size > 0, "text.vocabSize", "positive");
  Require(t.hidden_size > 0, "text.hiddenSize", "positive");
  Require(t.num_layers >= 0, "text.numLayers", ">= 0");
  Require(t.num_heads > 0 && t.num_kv_heads > 0 && t.num_heads % t.num_kv_heads == 0, "text.numHeads / numKvHeads",
          "positive with numHeads a multiple of numKvHeads");
  Require(t.head_dim > 0 && t.head_dim % 2 == 0, "text.headDim", "positive and even");
  if (!t.mrope_section.empty()) {
    const int64_t sum = std::accumulate(t.mrope_section.begin(), t.mrope_section.end(), int64_t(0));
    Require(t.mrope_section.size() == 3 && sum == t.head_dim / 2, "text.mropeSection",
            "three sections summing to headDim / 2 = " + std::to_string(t.head_dim / 2));
  }
  Require(c.score_labels >= 0, "scoreLabels", ">= 0 (0: no score head)");
  if (c.vision.present) {
    const VisionConfig& v = c.vision;
    Require(v.depth >= 0, "vision.depth", ">= 0");
    Require(v.embed_dim > 0 && v.num_heads > 0 && v.embed_dim % v.num_heads == 0, "vision.embedDim / numHeads",
            "positive with embedDim a multiple of numHeads");
    Require((v.embed_dim / v.num_heads) % 4 == 0, "vision head dim (embedDim / numHeads)",
            "a multiple of 4 (2-D rotary)");
    Require(v.out_hidden_size == t.hidden_size, "vision.outHiddenSize",
            "text.hiddenSize = " + std::to_string(t.hidden_size));
    Require(c.image_token_id >= 0 && c.image_token_id < t.vocab_size, "imageTokenId", "a token id < vocabSize");
    Require(c.vision_start_token_id >= 0 && c.vision_start_token_id < t.vocab_size, "visionStartTokenId",
            "a token id < vocabSize");
    if (v.qwen25) {
      const int64_t unit = v.spatial_merge_size * v.patch_size;
      Require(v.window_size > 0 && v.window_size % unit == 0, "vision.windowSize",
              "a positive multiple of spatialMergeSize x patchSize = " + std::to_string(unit));
    }
  }
}

}  // namespace medgr2::model
