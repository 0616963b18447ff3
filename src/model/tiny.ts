// Normalized configs of the tiny models used by tests and the embedded default, sized for the
// project's tokenizer (configs/tokenizer: 768 tokens, specials at 757..767).
import type { ModelConfig } from './config_types';

export const TINY_TOKENS = {
  vocabSize: 768,
  endOfText: 757,
  imStart: 758,
  imEnd: 759,
  visionStart: 760,
  visionEnd: 761,
  imagePad: 762,
  videoPad: 763,
} as const;

export function tinyConfig(kind: 'qwen2_vl' | 'qwen2_5_vl' | 'qwen2' = 'qwen2_vl', over: { tie?: boolean } = {}): ModelConfig {
  const t = TINY_TOKENS;
  return {
    modelType: kind,
    text: {
      vocabSize: t.vocabSize, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16,
      rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 4096, tieWordEmbeddings: over.tie ?? false,
      mropeSection: kind === 'qwen2' ? null : [2, 3, 3], hiddenAct: 'silu',
    },
    vision: kind === 'qwen2' ? null : {
      kind, depth: 2, embedDim: 32, numHeads: 2, mlpHiddenDim: kind === 'qwen2_vl' ? 128 : 64,
      hiddenAct: kind === 'qwen2_vl' ? 'quick_gelu' : 'silu', inChannels: 3, patchSize: 14, temporalPatchSize: 2,
      spatialMergeSize: 2, outHiddenSize: 64, windowSize: 56, fullAttBlockIndexes: kind === 'qwen2_5_vl' ? [1] : [],
    },
    imageTokenId: t.imagePad, videoTokenId: t.videoPad, visionStartTokenId: t.visionStart, visionEndTokenId: t.visionEnd,
    bosTokenId: null, eosTokenIds: [t.imEnd, t.endOfText], torchDtype: 'float32', raw: {},
  };
}
