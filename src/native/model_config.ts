// The normalized model configuration that every part of medgr2 uses (TypeScript and the native
// model, which takes it as is: it is part of the addon's interface). src/model/config.ts turns any
// Hugging Face config.json we accept (qwen2, qwen2_vl, qwen2_5_vl; flat or nested `text_config`) into
// this, and back.

export type ModelType = 'qwen2' | 'qwen2_vl' | 'qwen2_5_vl';

export interface TextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** hiddenSize / numHeads unless config.json says otherwise (head_dim). */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** M-RoPE sections (temporal, height, width) in rotary half-dims, e.g. [16, 24, 24]; null for plain RoPE. */
  mropeSection: number[] | null;
  hiddenAct: 'silu';
}

export interface VisionConfig {
  /** qwen2_vl: LayerNorm + QuickGELU MLP (fc1/fc2); qwen2_5_vl: RMSNorm + SwiGLU (gate/up/down) + window attention. */
  kind: 'qwen2_vl' | 'qwen2_5_vl';
  depth: number;
  /** Width of the vision blocks (qwen2_vl: embed_dim; qwen2_5_vl: vision_config.hidden_size). */
  embedDim: number;
  numHeads: number;
  /** Hidden width of the block MLP (qwen2_vl: embed_dim * mlp_ratio; qwen2_5_vl: intermediate_size). */
  mlpHiddenDim: number;
  hiddenAct: 'quick_gelu' | 'silu' | 'gelu';
  inChannels: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  /** Width the merger projects to: the language model's hidden size. */
  outHiddenSize: number;
  /** qwen2_5_vl only: window attention size in pixels (112) and the full-attention blocks. */
  windowSize: number;
  fullAttBlockIndexes: number[];
  /** qwen2_5_vl only: video frames' temporal M-RoPE positions per second (vision_config.tokens_per_second). */
  tokensPerSecond?: number;
}

export interface ModelConfig {
  modelType: ModelType;
  text: TextConfig;
  vision: VisionConfig | null;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** "float32" | "bfloat16" | "float16" as written in config.json (torch_dtype / dtype). */
  torchDtype: string;
  /** Labels of the sequence-classification head `score.weight` [scoreLabels, hiddenSize] (HF's
   *  *ForSequenceClassification; the reward model's scalar is label 0); 0: no head. */
  scoreLabels: number;
  /** The config.json object as read, so that saving writes back every field we do not model. */
  raw: Record<string, unknown>;
}

/** One parameter of the model: its canonical (hub, old-layout) name and shape. */
export interface ParameterSpec {
  name: string;
  shape: number[];
}
