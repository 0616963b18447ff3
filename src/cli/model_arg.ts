// `--model` as the training and evaluation commands take it, and the tokenizer that goes with it:
//   a model folder (config.json + safetensors)       -> Model.load
//   a config.json file                               -> a randomly initialized model (seeded)
//   tiny-qwen2-vl / tiny-qwen2.5-vl                  -> the shipped tiny configs, random init
//   a PEFT LoRA adapter folder (adapter_config.json) -> its base, loaded as above, with the adapter
// The tokenizer: --tokenizer when given, else the model folder's tokenizer.json, else the shipped one
// (configs/tokenizer, which the tiny configs are sized for).
// The image processor and the generation defaults: a folder's preprocessor_config.json and
// generation_config.json (src/model/folder_settings.ts); transformers' defaults for the others.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../data/tokenizer';
import {
  readModelSettings,
  settingsWithoutFolder,
  type GenerationSettings,
  type ModelSettings,
  type ProcessorSettings,
} from '../model/folder_settings';
import { Model, type ModelDevice, type ModelDtype } from '../model/model';
import { tinyConfig } from '../model/tiny';
import {
  ADAPTER_CONFIG_FILE,
  adapterBaseModel,
  applyAdapter,
  isAdapterFolder,
  loadAdapter,
} from '../model/peft_adapter';
import { QWEN2VL_SIZE_RULE } from '../data/images/smart_resize';
import { Option } from 'commander';
import type { ConfigSchema } from './config';
import { parseIntOption } from './options';

export const TINY_MODEL_NAMES = ['tiny-qwen2-vl', 'tiny-qwen2.5-vl'] as const;

/** `--min-pixels` / `--max-pixels` of the commands that read images with a model: they override the
 *  bounds of its preprocessor_config.json (withPixelBounds). */
export const PIXEL_BOUNDS_SCHEMA: ConfigSchema = [
  {
    key: 'minPixels',
    type: 'int',
    min: 1,
    help: `smallest image area after resize (default: the model folder's preprocessor_config.json, else ${QWEN2VL_SIZE_RULE.minPixels})`,
  },
  {
    key: 'maxPixels',
    type: 'int',
    min: 1,
    help: `largest image area after resize (default: the model folder's preprocessor_config.json, else ${QWEN2VL_SIZE_RULE.maxPixels})`,
  },
];

/** `--min-pixels` / `--max-pixels` as commander options of the commands without a config schema;
 *  `whose` names the folder whose preprocessor_config.json they override ("the generator's"). */
export function pixelBoundOptions(whose: string): [Option, Option] {
  return [
    new Option(
      '--min-pixels <n>',
      `smallest image area after resize (default: ${whose} preprocessor_config.json)`,
    ).argParser(parseIntOption('--min-pixels', 1)),
    new Option(
      '--max-pixels <n>',
      `largest image area after resize, which bounds an image's tokens (default: ${whose} preprocessor_config.json)`,
    ).argParser(parseIntOption('--max-pixels', 1)),
  ];
}

export interface ModelArg {
  model: Model;
  /** Where the tokenizer files are (copied next to saved weights). */
  tokenizerDir: string;
  tokenizer: TextTokenizer;
  /** How the model was made, for logs. */
  origin: 'loaded' | 'random';
  /** How images are resized and patched for this model (before any --min-pixels/--max-pixels). */
  processor: ProcessorSettings;
  /** The folder's generation_config.json (empty without one): stop tokens and decoding defaults. */
  generation: GenerationSettings;
}

/**
 * A PEFT adapter folder as --model: its base (adapter_config.json's base_model_name_or_path: a model
 * folder, a config.json or a tiny name, as --model takes them) with the adapter applied, which then
 * trains on (LoRA) or generates. The adapter folder's own tokenizer files win over the base's.
 */
async function loadAdapterArg(dir: string, opts: LoadModelArgOptions): Promise<ModelArg> {
  const base = adapterBaseModel(dir);
  if (base === null) throw new Error(`--model ${dir}: ${ADAPTER_CONFIG_FILE} names no base_model_name_or_path`);
  if (isAdapterFolder(base)) throw new Error(`--model ${dir}: its base ${base} is itself an adapter folder`);
  const ownTokenizer = fs.existsSync(path.join(dir, 'tokenizer.json')) ? dir : undefined;
  const arg = await loadModelArg(base, { ...opts, tokenizer: opts.tokenizer ?? ownTokenizer });
  try {
    await applyAdapter(arg.model, await loadAdapter(dir, arg.model.config));
  } catch (e) {
    await arg.model.dispose();
    throw new Error(`--model ${dir}: ${(e as Error).message}`);
  }
  return arg;
}

interface LoadModelArgOptions {
  device?: string;
  dtype?: ModelDtype;
  seed?: number;
  tokenizer?: string;
  allowRandom?: boolean;
}

export async function loadModelArg(spec: string, opts: LoadModelArgOptions = {}): Promise<ModelArg> {
  const device = (opts.device ?? 'cpu') as ModelDevice;
  let model: Model;
  let origin: ModelArg['origin'];
  let ownTokenizer: string | undefined;
  let settings: ModelSettings | undefined;
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
  } else if (isAdapterFolder(spec)) {
    return loadAdapterArg(spec, opts);
  } else if (fs.statSync(spec).isDirectory()) {
    if (!fs.existsSync(path.join(spec, 'config.json')))
      throw new Error(`--model ${spec}: not a model folder (no config.json)`);
    model = await Model.load(spec, { device, dtype: opts.dtype });
    try {
      settings = readModelSettings(spec, model.config.vision);
    } catch (e) {
      await model.dispose();
      throw e;
    }
    origin = 'loaded';
    if (fs.existsSync(path.join(spec, 'tokenizer.json'))) ownTokenizer = spec;
  } else {
    random();
    model = await Model.create(spec, { device, dtype: opts.dtype, seed: opts.seed ?? 0 });
    origin = 'random';
  }
  settings ??= settingsWithoutFolder(model.config.vision);
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
    ...settings,
  };
}
