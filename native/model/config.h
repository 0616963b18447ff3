// The model configuration as the native model uses it: the C++ twin of src/native/model_config.ts
// (TypeScript parses config.json; the bridge copies the normalized object into this struct).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medgr2::model {

enum class ModelKind { kQwen2, kQwen2VL, kQwen25VL };
enum class VisionAct { kQuickGelu, kSilu, kGelu };

struct TextConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  bool tie_word_embeddings = false;
  std::vector<int64_t> mrope_section;  // empty: plain 1-D RoPE
};

struct VisionConfig {
  bool present = false;
  bool qwen25 = false;  // RMSNorm + SwiGLU + window attention (else LayerNorm + fc1/fc2)
  int64_t depth = 0;
  int64_t embed_dim = 0;
  int64_t num_heads = 0;
  int64_t mlp_hidden_dim = 0;
  VisionAct act = VisionAct::kQuickGelu;
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t spatial_merge_size = 2;
  int64_t out_hidden_size = 0;
  int64_t window_size = 112;
  std::vector<int64_t> full_att_block_indexes;

  int64_t PatchDim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t MergeUnit() const { return spatial_merge_size * spatial_merge_size; }
};

struct ModelConfig {
  ModelKind kind = ModelKind::kQwen2;
  TextConfig text;
  VisionConfig vision;
  int64_t image_token_id = -1;
  int64_t video_token_id = -1;
  int64_t vision_start_token_id = -1;
  int64_t vision_end_token_id = -1;
  // Labels of the sequence-classification head `score.weight` [score_labels, hidden] (HF's
  // *ForSequenceClassification: a bias-free linear on each sequence's last token); 0: no head.
  int64_t score_labels = 0;
};

// Throws std::invalid_argument naming the field when the numbers do not fit together.
void ValidateConfig(const ModelConfig& c);

}  // namespace medgr2::model
