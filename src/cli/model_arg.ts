// `--model` as the training and evaluation commands take it, and the tokenizer that goes with it:
//   a model folder (config.json + safetensors)       -> Model.load
//   a config.json file                               -> a randomly initialized model (seeded)
//   tiny-qwen2-vl / tiny-qwen2.5-vl                  -> the shipped tiny configs, random init
// The tokenizer: --tokenizer when given, else the model folder's tokenizer.json, else the shipped one
// (configs/tokenizer, which the tiny configs are sized for).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../data/tokenizer';
import { Model, type ModelDevice, type ModelDtype } from '../model/model';
import { tinyConfig } from '../model/tiny';

export const TINY_MODEL_NAMES = ['tiny-qwen2-vl', 'tiny-qwen2.5-vl'] as const;

export interface ModelArg {
  model: Model;
  /** Where the tokenizer files are (copied next to saved weights). */
  tokenizerDir: string;
  tokenizer: TextTokenizer;
  /** How the model was made, for logs. */
  origin: 'loaded' | 'random';
}

export async function loadModelArg(
  spec: string,
  opts: { device?: string; dtype?: ModelDtype; seed?: number; tokenizer?: string; allowRandom?: boolean } = {},
): Promise<ModelArg> {
  const device = (opts.device ?? 'cpu') as ModelDevice;
  let model: Model;
  let origin: ModelArg['origin'];
  let ownTokenizer: string | undefined;
  const random = (): void => {
    if (opts.allowRandom === false)
      throw new Error(`--model ${spec}: a trained model folder is needed here, not a config`);
  };
  if ((TINY_MODEL_NAMES as readonly string[]).includes(spec)) {
    random();
    model = await Model.create(tinyConfig(spec === 'tiny-qwen2.5-vl' ? 'qwen2_5_vl' : 'qwen2_vl'), {
      device,
      dtype: opts.dtype,
      seed: opts.seed ?? 0,
    });
    origin = 'random';
  } else if (!fs.existsSync(spec)) {
    throw new Error(
      `--model ${spec}: no such file or folder (give a model folder, a config.json, or one of ${TINY_MODEL_NAMES.join(', ')})`,
    );
  } else if (fs.statSync(spec).isDirectory()) {
    if (!fs.existsSync(path.join(spec, 'config.json')))
      throw new Error(`--model ${spec}: not a model folder (no config.json)`);
    model = await Model.load(spec, { device, dtype: opts.dtype });
    origin = 'loaded';
    if (fs.existsSync(path.join(spec, 'tokenizer.json'))) ownTokenizer = spec;
  } else {
    random();
    model = await Model.create(spec, { device, dtype: opts.dtype, seed: opts.seed ?? 0 });
    origin = 'random';
  }
  const tokenizerDir = opts.tokenizer ?? ownTokenizer ?? DEFAULT_TOKENIZER_DIR;
  const tokenizer = TextTokenizer.load(tokenizerDir);
  const vocab = model.config.text.vocabSize;
  if (tokenizer.vocabSize > vocab) {
    await model.dispose();
    throw new Error(
      `--model ${spec}: its vocabulary has ${vocab} tokens but the tokenizer ${tokenizer.source} has ${tokenizer.vocabSize} (pass --tokenizer)`,
    );
  }
  return {
    model,
    tokenizerDir: fs.statSync(tokenizerDir).isDirectory() ? tokenizerDir : path.dirname(tokenizerDir),
    tokenizer,
    origin,
  };
}
