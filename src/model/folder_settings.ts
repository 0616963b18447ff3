// What a Hugging Face model folder says besides its weights, read as transformers reads it:
//   preprocessor_config.json -> how images are resized and patched (Qwen2VLImageProcessor's fields);
//   generation_config.json   -> stop tokens and the default decoding (GenerationConfig's fields).
// A folder without one of these files gets transformers' class defaults. A field of the wrong type
// or a value medgr2 cannot honour is an error naming the file and the field, never a silent default.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLIP_MEAN, CLIP_STD, QWEN2VL_PATCH_RULE, type PatchRule } from '../data/images/patchify';
import type { ProcessorOptions } from '../data/images/processor';
import { QWEN2VL_SIZE_RULE } from '../data/images/smart_resize';
import type { VisionConfig } from '../native/model_config';

export const PROCESSOR_CONFIG_FILE = 'preprocessor_config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';

type Json = Record<string, unknown>;
/** The vision tower's sizes the image processor must agree with. */
type TowerSizes = Pick<VisionConfig, 'patchSize' | 'spatialMergeSize' | 'temporalPatchSize'>;

/** Image settings of a folder: resize bounds and the patch rule, and the file they came from. */
export interface ProcessorSettings extends Required<Pick<ProcessorOptions, 'minPixels' | 'maxPixels' | 'patch'>> {
  /** The file read, or undefined for transformers' defaults. */
  source?: string;
}

/** Decoding defaults of a folder (undefined: the file does not set it). */
export interface GenerationSettings {
  /** Every id that ends a reply (eos_token_id as a number or a list); empty when unset. */
  eosTokenIds: number[];
  padTokenId?: number;
  /** false: greedy decoding, as transformers does when do_sample is false or absent. */
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
  source?: string;
}

export class FolderSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderSettingsError';
  }
}

function readJson(file: string): Json | undefined {
  if (!fs.existsSync(file)) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FolderSettingsError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new FolderSettingsError(`${file}: expected a JSON object`);
  return doc as Json;
}

/** Field readers that name the file and the field in their errors. */
function fieldsOf(file: string, doc: Json) {
  const fail = (key: string, want: string): never => {
    throw new FolderSettingsError(`${file}: field "${key}" must be ${want}, got ${JSON.stringify(doc[key])}`);
  };
  const present = (key: string) => doc[key] !== undefined && doc[key] !== null;
  return {
    present,
    number(key: string, ok: (v: number) => boolean = () => true, want = 'a number'): number | undefined {
      if (!present(key)) return undefined;
      const v = doc[key];
      return typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : fail(key, want);
    },
    integer(key: string, min: number): number | undefined {
      if (!present(key)) return undefined;
      const v = doc[key];
      return Number.isInteger(v) && (v as number) >= min ? (v as number) : fail(key, `an integer >= ${min}`);
    },
    boolean(key: string): boolean | undefined {
      if (!present(key)) return undefined;
      return typeof doc[key] === 'boolean' ? (doc[key] as boolean) : fail(key, 'true or false');
    },
    triple(key: string): number[] | undefined {
      if (!present(key)) return undefined;
      const v = doc[key];
      if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
      return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))
        ? (v as number[])
        : fail(key, 'a number or a list of 3 numbers (one per RGB channel)');
    },
    fail,
  };
}

/** preprocessor_config.json's settings, or transformers' Qwen2VLImageProcessor defaults without it. */
export function readProcessorSettings(dir: string): ProcessorSettings {
  const file = path.join(dir, PROCESSOR_CONFIG_FILE);
  const doc = readJson(file);
  if (!doc) return { ...defaultProcessorSettings() };
  const f = fieldsOf(file, doc);
  // transformers: min_pixels / max_pixels win over size.shortest_edge / size.longest_edge.
  let minPixels = QWEN2VL_SIZE_RULE.minPixels;
  let maxPixels = QWEN2VL_SIZE_RULE.maxPixels;
  if (f.present('size')) {
    const size = doc.size as Json;
    const edge = (k: string) => {
      const v = size?.[k];
      if (!Number.isInteger(v) || (v as number) <= 0)
        f.fail('size', 'an object with integer "shortest_edge" and "longest_edge" (pixel areas)');
      return v as number;
    };
    minPixels = edge('shortest_edge');
    maxPixels = edge('longest_edge');
  }
  minPixels = f.integer('min_pixels', 1) ?? minPixels;
  maxPixels = f.integer('max_pixels', 1) ?? maxPixels;
  if (maxPixels < minPixels)
    throw new FolderSettingsError(`${file}: max_pixels (${maxPixels}) is smaller than min_pixels (${minPixels})`);
  for (const [key, want] of [
    ['do_resize', true],
    ['do_rescale', true],
    ['do_normalize', true],
    ['do_convert_rgb', true],
  ] as const) {
    if (f.boolean(key) === false) f.fail(key, `${want} (medgr2 always ${key.slice(3).replace('_', ' ')}s)`);
  }
  const rescale = f.number('rescale_factor');
  if (rescale !== undefined && Math.abs(rescale - 1 / 255) > 1e-12)
    f.fail('rescale_factor', '1/255 (0.00392156862745098)');
  const patch: PatchRule = {
    patchSize: f.integer('patch_size', 1) ?? QWEN2VL_PATCH_RULE.patchSize,
    mergeSize: f.integer('merge_size', 1) ?? QWEN2VL_PATCH_RULE.mergeSize,
    temporalPatchSize: f.integer('temporal_patch_size', 1) ?? QWEN2VL_PATCH_RULE.temporalPatchSize,
    mean: f.triple('image_mean') ?? [...CLIP_MEAN],
    std: f.triple('image_std') ?? [...CLIP_STD],
  };
  if (patch.std.some((s) => s <= 0)) f.fail('image_std', 'positive');
  return { minPixels, maxPixels, patch, source: file };
}

export function defaultProcessorSettings(): ProcessorSettings {
  return {
    minPixels: QWEN2VL_SIZE_RULE.minPixels,
    maxPixels: QWEN2VL_SIZE_RULE.maxPixels,
    patch: { ...QWEN2VL_PATCH_RULE },
  };
}

/**
 * preprocessor_config.json for a vision tower whose patch sizes are not transformers' defaults, or
 * undefined when they are (a folder without the file then reads right already). Written by
 * saveCheckpoint when no source folder gave one: otherwise a folder saved from a bare config.json
 * with patch_size 7 is refused on loading ("patch_size is 14 but config.json has 7"), by medgr2 as
 * by transformers, whose processor would cut the images into patches the tower cannot read.
 */
export function processorConfigForTower(vision: TowerSizes): Json | undefined {
  // What the model reads without a folder, so the saved folder reads back the same settings.
  const { patch, minPixels, maxPixels } = settingsWithoutFolder(vision).processor;
  const d = QWEN2VL_PATCH_RULE;
  if (
    patch.patchSize === d.patchSize &&
    patch.mergeSize === d.mergeSize &&
    patch.temporalPatchSize === d.temporalPatchSize
  )
    return undefined;
  return {
    image_processor_type: 'Qwen2VLImageProcessor',
    do_resize: true,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    do_convert_rgb: true,
    image_mean: patch.mean,
    image_std: patch.std,
    min_pixels: minPixels,
    max_pixels: maxPixels,
    patch_size: patch.patchSize,
    merge_size: patch.mergeSize,
    temporal_patch_size: patch.temporalPatchSize,
  };
}

/** The folder's settings with --min-pixels / --max-pixels applied; an error when they cross. */
export function withPixelBounds(
  s: ProcessorSettings,
  over: { minPixels?: number; maxPixels?: number },
  where = '--min-pixels/--max-pixels',
): ProcessorSettings {
  const out = { ...s, minPixels: over.minPixels ?? s.minPixels, maxPixels: over.maxPixels ?? s.maxPixels };
  if (!(out.minPixels > 0 && out.maxPixels >= out.minPixels))
    throw new FolderSettingsError(
      `${where}: need 0 < min pixels <= max pixels, got min ${out.minPixels}, max ${out.maxPixels}`,
    );
  return out;
}

/** generation_config.json's settings; empty (no stop ids, no defaults) without it. */
export function readGenerationSettings(dir: string): GenerationSettings {
  const file = path.join(dir, GENERATION_CONFIG_FILE);
  const doc = readJson(file);
  if (!doc) return { eosTokenIds: [] };
  const f = fieldsOf(file, doc);
  let eosTokenIds: number[] = [];
  if (f.present('eos_token_id')) {
    const v = doc.eos_token_id;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isInteger(x) && (x as number) >= 0))
      f.fail('eos_token_id', 'a token id or a list of token ids');
    eosTokenIds = list as number[];
  }
  const out: GenerationSettings = {
    eosTokenIds,
    padTokenId: f.integer('pad_token_id', 0),
    doSample: f.boolean('do_sample'),
    temperature: f.number('temperature', (v) => v >= 0, 'a number >= 0'),
    topP: f.number('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]'),
    topK: f.integer('top_k', 0),
    repetitionPenalty: f.number('repetition_penalty', (v) => v > 0, 'a number > 0'),
    maxNewTokens: f.integer('max_new_tokens', 1),
    source: file,
  };
  for (const k of Object.keys(out) as (keyof GenerationSettings)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Stop tokens of a reply: the folder's eos ids, else the chat template's end of turn and end of text. */
export function stopTokensOf(gen: GenerationSettings, fallback: readonly number[]): number[] {
  return gen.eosTokenIds.length > 0 ? [...new Set(gen.eosTokenIds)] : [...fallback];
}

/** Both settings of a model. */
export interface ModelSettings {
  processor: ProcessorSettings;
  generation: GenerationSettings;
}

/**
 * A model folder's settings, the processor's patch sizes checked against config.json's vision tower
 * (a mismatch would cut images into patches the tower cannot read): an error naming both files.
 */
export function readModelSettings(dir: string, vision: TowerSizes | null): ModelSettings {
  const processor = readProcessorSettings(dir);
  if (vision) {
    const file = processor.source ?? `${path.join(dir, PROCESSOR_CONFIG_FILE)} (absent: transformers' defaults)`;
    for (const [key, mine, tower, towerKey] of [
      ['patch_size', processor.patch.patchSize, vision.patchSize, 'patch_size'],
      ['merge_size', processor.patch.mergeSize, vision.spatialMergeSize, 'spatial_merge_size'],
      ['temporal_patch_size', processor.patch.temporalPatchSize, vision.temporalPatchSize, 'temporal_patch_size'],
    ] as const) {
      if (mine !== tower)
        throw new FolderSettingsError(
          `${file}: ${key} is ${mine} but ${path.join(dir, 'config.json')} has vision_config.${towerKey} ${tower}`,
        );
    }
  }
  return { processor, generation: readGenerationSettings(dir) };
}

/** Settings of a model without a folder (a tiny name, a config.json): transformers' defaults, patched
 *  as the model's vision tower is, and no generation_config (stop at the chat template's end of turn). */
export function settingsWithoutFolder(vision: TowerSizes | null): ModelSettings {
  const processor = defaultProcessorSettings();
  if (vision)
    processor.patch = {
      ...processor.patch,
      patchSize: vision.patchSize,
      mergeSize: vision.spatialMergeSize,
      temporalPatchSize: vision.temporalPatchSize,
    };
  return { processor, generation: { eosTokenIds: [] } };
}
