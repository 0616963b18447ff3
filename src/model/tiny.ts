// The tiny models used by tests and the embedded default: configs/models/tiny-*.json (hub
// format), sized for the project's tokenizer (configs/tokenizer: 768 tokens, specials 757..767).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseModelConfig } from './config';
import type { ModelConfig } from '../native/model_config';

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

export const TINY_CONFIG_DIR = path.resolve(__dirname, '..', '..', '..', 'configs', 'models');

/** The tiny config of `kind` ('qwen2' = the qwen2_vl text model without its vision tower). */
export function tinyConfig(
  kind: 'qwen2_vl' | 'qwen2_5_vl' | 'qwen2' = 'qwen2_vl',
  over: { tie?: boolean } = {},
): ModelConfig {
  const file = path.join(TINY_CONFIG_DIR, kind === 'qwen2_5_vl' ? 'tiny-qwen2.5-vl.json' : 'tiny-qwen2-vl.json');
  const cfg = parseModelConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file);
  const out: ModelConfig = { ...cfg, text: { ...cfg.text, tieWordEmbeddings: over.tie ?? cfg.text.tieWordEmbeddings } };
  if (kind === 'qwen2') {
    out.modelType = 'qwen2';
    out.vision = null;
    out.text = { ...out.text, mropeSection: null };
    out.raw = {};
  }
  return out;
}
