// config.json <-> ModelConfig: the Hugging Face configuration of a qwen2 / qwen2_vl / qwen2_5_vl
// model, read in either of its two published forms and written back in the form it was read in.
//
// - Flat (the hub's Qwen2-VL / Qwen2.5-VL releases, transformers < 4.5x): text fields at the top
//   level, `vision_config` beside them, `rope_scaling: {type: "mrope", mrope_section}`, `torch_dtype`.
// - Nested (transformers >= 4.5x): text fields under `text_config`, `dtype` instead of `torch_dtype`,
//   and in transformers 5 `rope_parameters` (holding `rope_theta` too) instead of `rope_scaling`.
//
// Defaults are those of transformers' config classes (Qwen2Config, Qwen2VLConfig, Qwen2_5_VLConfig),
// so that a config.json HF accepts means the same model here. What medgr2 cannot run (sliding-window
// attention, RoPE scaling other than M-RoPE) is an error rather than a silent difference.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig, ModelType, TextConfig, VisionConfig } from '../native/model_config';

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

type Json = Record<string, unknown>;

const MODEL_TYPES: readonly ModelType[] = ['qwen2', 'qwen2_vl', 'qwen2_5_vl'];
const DTYPES = ['float32', 'bfloat16', 'float16'] as const;

/** The model class of each type, as save_pretrained writes it in `architectures`. */
const ARCHITECTURES: Record<ModelType, string> = {
  qwen2: 'Qwen2ForCausalLM',
  qwen2_vl: 'Qwen2VLForConditionalGeneration',
  qwen2_5_vl: 'Qwen2_5_VLForConditionalGeneration',
};

/** The sequence-classification class of each type (a score head on the last token). transformers
 *  has Qwen2ForSequenceClassification; the VL names follow its pattern for our reward models. */
const CLASSIFICATION_ARCHITECTURES: Record<ModelType, string> = {
  qwen2: 'Qwen2ForSequenceClassification',
  qwen2_vl: 'Qwen2VLForSequenceClassification',
  qwen2_5_vl: 'Qwen2_5_VLForSequenceClassification',
};
const CLASSIFICATION_SUFFIX = 'ForSequenceClassification';
/** PretrainedConfig's num_labels when config.json gives neither num_labels nor id2label. */
const HF_DEFAULT_NUM_LABELS = 2;

/** Text defaults of transformers' Qwen2Config (qwen2) and Qwen2VLTextConfig / Qwen2_5_VLTextConfig (both VL). */
const TEXT_DEFAULTS = {
  qwen2: {
    vocab: 151936,
    hidden: 4096,
    inter: 22016,
    layers: 32,
    heads: 32,
    kv: 32,
    maxPos: 32768,
    eps: 1e-6,
    theta: 10000,
  },
  vl: { vocab: 152064, hidden: 8192, inter: 29568, layers: 80, heads: 64, kv: 8, maxPos: 32768, eps: 1e-5, theta: 1e6 },
};
/** Qwen2VLConfig / Qwen2_5_VLConfig token defaults (the Qwen2 tokenizer's ids). */
const TOKEN_DEFAULTS = { image: 151655, video: 151656, visionStart: 151652, visionEnd: 151653 };

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Where a field is looked up: an object and the prefix its fields are named with in errors. */
interface Source {
  obj: Json;
  prefix: string;
}

/** Typed field access in which every failure names the file, the field and what was expected. */
class FieldReader {
  constructor(readonly file: string) {}

  error(field: string, expected: string, got: unknown): ModelConfigError {
    return new ModelConfigError(`${this.file}: field "${field}" must be ${expected}, got ${describe(got)}`);
  }

  /** The first source that has `key` with a value other than null/undefined. */
  find(sources: Source[], key: string): { value: unknown; field: string } | undefined {
    for (const s of sources) {
      const v = s.obj[key];
      if (v !== undefined && v !== null) return { value: v, field: s.prefix + key };
    }
    return undefined;
  }

  int(sources: Source[], key: string, dflt: number, min = 1): number {
    const f = this.find(sources, key);
    if (!f) return dflt;
    if (typeof f.value !== 'number' || !Number.isInteger(f.value) || f.value < min) {
      throw this.error(f.field, min === 1 ? 'a positive integer' : `an integer >= ${min}`, f.value);
    }
    return f.value;
  }

  positive(sources: Source[], key: string, dflt: number): number {
    const f = this.find(sources, key);
    if (!f) return dflt;
    if (typeof f.value !== 'number' || !Number.isFinite(f.value) || f.value <= 0) {
      throw this.error(f.field, 'a positive number', f.value);
    }
    return f.value;
  }

  bool(sources: Source[], key: string, dflt: boolean): boolean {
    const f = this.find(sources, key);
    if (!f) return dflt;
    if (typeof f.value !== 'boolean') throw this.error(f.field, 'true or false', f.value);
    return f.value;
  }

  oneOf<T extends string>(sources: Source[], key: string, allowed: readonly T[], dflt: T): T {
    const f = this.find(sources, key);
    if (!f) return dflt;
    if (typeof f.value !== 'string' || !allowed.includes(f.value as T)) {
      throw this.error(f.field, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, f.value);
    }
    return f.value as T;
  }

  intList(value: unknown, field: string, min: number): number[] {
    if (!Array.isArray(value) || !value.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min)) {
      throw this.error(field, `a list of integers >= ${min}`, value);
    }
    return value as number[];
  }
}

/** Parses a config.json object (already JSON-decoded) read from `sourcePath` (named in errors). */
export function parseModelConfig(json: unknown, sourcePath: string): ModelConfig {
  const r = new FieldReader(sourcePath);
  if (!isObject(json)) throw new ModelConfigError(`${sourcePath}: must hold a JSON object, got ${describe(json)}`);
  const root = json;
  const modelType = root.model_type;
  if (typeof modelType !== 'string' || !MODEL_TYPES.includes(modelType as ModelType)) {
    throw r.error('model_type', `one of ${MODEL_TYPES.map((t) => `"${t}"`).join(', ')}`, modelType);
  }
  const type = modelType as ModelType;
  const rootSrc: Source = { obj: root, prefix: '' };
  let textSources = [rootSrc];
  if (root.text_config !== undefined && root.text_config !== null) {
    if (!isObject(root.text_config)) throw r.error('text_config', 'an object', root.text_config);
    // Nested form: text_config wins; top-level copies (written by some versions for compatibility) fill gaps.
    textSources = [{ obj: root.text_config, prefix: 'text_config.' }, rootSrc];
  }
  const text = parseText(r, type, textSources);
  const vision = type === 'qwen2' ? null : parseVision(r, type, root.vision_config, text);

  const anywhere = [rootSrc, ...textSources.slice(0, -1)];
  const tokenId = (key: string, dflt: number): number => {
    const id = r.int(anywhere, key, dflt, 0);
    if (type !== 'qwen2' && id >= text.vocabSize) {
      throw r.error(r.find(anywhere, key)?.field ?? key, `a token id below vocab_size (${text.vocabSize})`, id);
    }
    return id;
  };
  const imageTokenId = tokenId('image_token_id', TOKEN_DEFAULTS.image);
  const videoTokenId = tokenId('video_token_id', TOKEN_DEFAULTS.video);
  const visionStartTokenId = tokenId('vision_start_token_id', TOKEN_DEFAULTS.visionStart);
  const visionEndTokenId = tokenId('vision_end_token_id', TOKEN_DEFAULTS.visionEnd);

  const bos = r.find(anywhere, 'bos_token_id');
  if (bos && !(typeof bos.value === 'number' && Number.isInteger(bos.value) && bos.value >= 0)) {
    throw r.error(bos.field, 'a token id (integer >= 0) or null', bos.value);
  }
  const eos = r.find(anywhere, 'eos_token_id');
  let eosTokenIds: number[] = [];
  if (eos)
    eosTokenIds =
      typeof eos.value === 'number' ? r.intList([eos.value], eos.field, 0) : r.intList(eos.value, eos.field, 0);

  // transformers >= 4.56 writes `dtype`; older versions `torch_dtype`. Absent means float32 (HF's default).
  const dtypeField = r.find(anywhere, 'dtype') ?? r.find(anywhere, 'torch_dtype');
  let torchDtype = 'float32';
  if (dtypeField) {
    if (typeof dtypeField.value !== 'string' || !(DTYPES as readonly string[]).includes(dtypeField.value)) {
      throw r.error(dtypeField.field, `one of ${DTYPES.map((d) => `"${d}"`).join(', ')}`, dtypeField.value);
    }
    torchDtype = dtypeField.value;
  }

  return {
    modelType: type,
    text,
    vision,
    imageTokenId,
    videoTokenId,
    visionStartTokenId,
    visionEndTokenId,
    bosTokenId: bos ? (bos.value as number) : null,
    eosTokenIds,
    torchDtype,
    scoreLabels: parseScoreLabels(r, root),
    raw: structuredClone(root),
  };
}

/**
 * The score head's label count: 0 unless architectures[0] is a *ForSequenceClassification class;
 * then num_labels, else the size of id2label (what save_pretrained writes), else HF's default 2.
 */
function parseScoreLabels(r: FieldReader, root: Json): number {
  const arch = Array.isArray(root.architectures) ? root.architectures[0] : undefined;
  if (typeof arch !== 'string' || !arch.endsWith(CLASSIFICATION_SUFFIX)) return 0;
  const src = [{ obj: root, prefix: '' }];
  if (r.find(src, 'num_labels')) return r.int(src, 'num_labels', HF_DEFAULT_NUM_LABELS);
  const id2label = r.find(src, 'id2label');
  if (!id2label) return HF_DEFAULT_NUM_LABELS;
  if (!isObject(id2label.value) || Object.keys(id2label.value).length === 0)
    throw r.error(id2label.field, 'an object with one entry per label', id2label.value);
  return Object.keys(id2label.value).length;
}

/** HF's labels for `n` classes: id2label {"0": "LABEL_0", ...} and label2id its inverse. */
function defaultLabels(n: number): { id2label: Record<string, string>; label2id: Record<string, number> } {
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    id2label[String(i)] = `LABEL_${i}`;
    label2id[`LABEL_${i}`] = i;
  }
  return { id2label, label2id };
}

/** architectures, num_labels, id2label and label2id for the score head (or their removal without one). */
function writeScoreHead(cfg: ModelConfig, out: Json): void {
  const arch = Array.isArray(out.architectures) ? out.architectures[0] : undefined;
  const wasClassifier = typeof arch === 'string' && arch.endsWith(CLASSIFICATION_SUFFIX);
  if (cfg.scoreLabels > 0) {
    out.architectures = [CLASSIFICATION_ARCHITECTURES[cfg.modelType]];
    out.num_labels = cfg.scoreLabels;
    // Labels named in the config read are kept when they still fit; otherwise HF's defaults.
    const named = isObject(out.id2label) && Object.keys(out.id2label).length === cfg.scoreLabels;
    if (!named || !isObject(out.label2id)) Object.assign(out, defaultLabels(cfg.scoreLabels));
  } else if (wasClassifier) {
    out.architectures = [ARCHITECTURES[cfg.modelType]];
    delete out.num_labels;
    delete out.id2label;
    delete out.label2id;
  }
}

function parseText(r: FieldReader, type: ModelType, src: Source[]): TextConfig {
  const d = type === 'qwen2' ? TEXT_DEFAULTS.qwen2 : TEXT_DEFAULTS.vl;
  const hiddenSize = r.int(src, 'hidden_size', d.hidden);
  const numHeads = r.int(src, 'num_attention_heads', d.heads);
  const numKvHeads = r.int(src, 'num_key_value_heads', d.kv);
  if (numHeads % numKvHeads !== 0) {
    throw r.error(
      r.find(src, 'num_key_value_heads')?.field ?? 'num_key_value_heads',
      `a divisor of num_attention_heads (${numHeads})`,
      numKvHeads,
    );
  }
  const headDimField = r.find(src, 'head_dim');
  if (!headDimField && hiddenSize % numHeads !== 0) {
    throw r.error(
      r.find(src, 'hidden_size')?.field ?? 'hidden_size',
      `a multiple of num_attention_heads (${numHeads}) when head_dim is not given`,
      hiddenSize,
    );
  }
  const headDim = r.int(src, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0)
    throw r.error(headDimField?.field ?? 'head_dim', 'even (rotary embeddings pair dimensions)', headDim);
  r.oneOf(src, 'hidden_act', ['silu'] as const, 'silu');
  const sliding = r.find(src, 'use_sliding_window');
  if (sliding && sliding.value !== false) {
    throw r.error(sliding.field, 'false (medgr2 has no sliding-window attention)', sliding.value);
  }

  // RoPE: `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x, which also holds rope_theta).
  const ropeField = r.find(src, 'rope_scaling') ?? r.find(src, 'rope_parameters');
  let ropeTheta = r.positive(src, 'rope_theta', d.theta);
  let mropeSection: number[] | null = null;
  if (ropeField) {
    if (!isObject(ropeField.value)) throw r.error(ropeField.field, 'an object or null', ropeField.value);
    const rope = ropeField.value;
    const ropeSrc = [{ obj: rope, prefix: `${ropeField.field}.` }];
    const kind = r.find(ropeSrc, 'rope_type') ?? r.find(ropeSrc, 'type');
    if (kind && kind.value !== 'mrope' && kind.value !== 'default') {
      throw r.error(kind.field, '"mrope" or "default" (medgr2 implements no other RoPE scaling)', kind.value);
    }
    ropeTheta = r.positive(ropeSrc, 'rope_theta', ropeTheta);
    const section = r.find(ropeSrc, 'mrope_section');
    if (section && type !== 'qwen2') {
      const s = r.intList(section.value, section.field, 1);
      if (s.length !== 3 || s[0] + s[1] + s[2] !== headDim / 2) {
        throw r.error(
          section.field,
          `3 positive integers (temporal, height, width) summing to head_dim/2 = ${headDim / 2}`,
          s,
        );
      }
      mropeSection = s;
    }
  }
  if (type !== 'qwen2' && !mropeSection) {
    throw r.error(
      `${ropeField?.field ?? 'rope_scaling'}.mrope_section`,
      `given for ${type} (3 integers summing to head_dim/2 = ${headDim / 2}, e.g. [16, 24, 24] for head_dim 128)`,
      undefined,
    );
  }

  return {
    vocabSize: r.int(src, 'vocab_size', d.vocab),
    hiddenSize,
    intermediateSize: r.int(src, 'intermediate_size', d.inter),
    numLayers: r.int(src, 'num_hidden_layers', d.layers),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.positive(src, 'rms_norm_eps', d.eps),
    ropeTheta,
    maxPositionEmbeddings: r.int(src, 'max_position_embeddings', d.maxPos),
    tieWordEmbeddings: r.bool(src, 'tie_word_embeddings', false),
    mropeSection,
    hiddenAct: 'silu',
  };
}

function parseVision(r: FieldReader, type: 'qwen2_vl' | 'qwen2_5_vl', value: unknown, text: TextConfig): VisionConfig {
  if (value !== undefined && value !== null && !isObject(value)) throw r.error('vision_config', 'an object', value);
  // Absent: transformers builds the vision tower from its defaults, and so do we.
  const src = [{ obj: (value ?? {}) as Json, prefix: 'vision_config.' }];
  const common = {
    depth: r.int(src, 'depth', 32),
    numHeads: r.int(src, 'num_heads', 16),
    // The hub's configs say `in_chans`; transformers' class reads `in_channels` (both 3 in practice).
    inChannels: r.int(src, 'in_channels', r.int(src, 'in_chans', 3)),
    patchSize: r.int(src, 'patch_size', 14),
    temporalPatchSize: r.int(src, 'temporal_patch_size', 2),
    spatialMergeSize: r.int(src, 'spatial_merge_size', 2),
  };
  let vision: VisionConfig;
  if (type === 'qwen2_vl') {
    const embedDim = r.int(src, 'embed_dim', 1280);
    const ratio = r.positive(src, 'mlp_ratio', 4);
    vision = {
      kind: 'qwen2_vl',
      ...common,
      embedDim,
      mlpHiddenDim: Math.trunc(embedDim * ratio), // int(embed_dim * mlp_ratio), as in Qwen2VLVisionBlock
      hiddenAct: r.oneOf(src, 'hidden_act', ['quick_gelu', 'silu', 'gelu'] as const, 'quick_gelu'),
      // Qwen2VLVisionConfig.hidden_size is the merger's output width (the LM's hidden size).
      outHiddenSize: r.int(src, 'hidden_size', 3584),
      windowSize: 0,
      fullAttBlockIndexes: [],
    };
  } else {
    const depth = common.depth;
    const full = r.find(src, 'fullatt_block_indexes');
    const fullAttBlockIndexes = full ? r.intList(full.value, full.field, 0) : [7, 15, 23, 31];
    for (const i of fullAttBlockIndexes) {
      if (i >= depth)
        throw r.error(
          full?.field ?? 'vision_config.fullatt_block_indexes',
          `block indexes below depth (${depth})`,
          fullAttBlockIndexes,
        );
    }
    vision = {
      kind: 'qwen2_5_vl',
      ...common,
      embedDim: r.int(src, 'hidden_size', 3584),
      mlpHiddenDim: r.int(src, 'intermediate_size', 3420),
      hiddenAct: r.oneOf(src, 'hidden_act', ['silu', 'quick_gelu', 'gelu'] as const, 'silu'),
      outHiddenSize: r.int(src, 'out_hidden_size', 3584),
      windowSize: r.int(src, 'window_size', 112),
      fullAttBlockIndexes,
      tokensPerSecond: r.positive(src, 'tokens_per_second', 4),
    };
    const mergedPatch = vision.patchSize * vision.spatialMergeSize;
    if (Math.floor(vision.windowSize / mergedPatch) < 1) {
      throw r.error(
        'vision_config.window_size',
        `at least patch_size * spatial_merge_size (${mergedPatch})`,
        vision.windowSize,
      );
    }
  }
  const headField = type === 'qwen2_vl' ? 'vision_config.embed_dim' : 'vision_config.hidden_size';
  if (vision.embedDim % vision.numHeads !== 0 || (vision.embedDim / vision.numHeads) % 4 !== 0) {
    // 2D rotary positions give a quarter of each head's dimensions to height and a quarter to width.
    throw r.error(headField, `a multiple of 4 * num_heads (${4 * vision.numHeads})`, vision.embedDim);
  }
  if (vision.outHiddenSize !== text.hiddenSize) {
    throw r.error(
      type === 'qwen2_vl' ? 'vision_config.hidden_size' : 'vision_config.out_hidden_size',
      `the language model's hidden_size (${text.hiddenSize}): the merger feeds the decoder`,
      vision.outHiddenSize,
    );
  }
  return vision;
}

/**
 * The config.json object for `cfg`: `cfg.raw` (every field we do not model kept) with our fields
 * written back where they were read from (flat or nested), so that load -> save round-trips.
 */
export function modelConfigToJson(cfg: ModelConfig): Record<string, unknown> {
  const out = structuredClone(cfg.raw) as Json;
  out.model_type = cfg.modelType;
  // transformers' pipelines and vLLM pick the model class from `architectures`.
  if (!Array.isArray(out.architectures) || out.architectures.length === 0)
    out.architectures = [ARCHITECTURES[cfg.modelType]];
  writeScoreHead(cfg, out);
  const nested = isObject(out.text_config);
  const text = (nested ? out.text_config : out) as Json;
  // Nested configs may also carry top-level copies of text fields: keep those consistent too.
  const put = (key: string, value: unknown) => {
    text[key] = value;
    if (nested && key in out) out[key] = value;
  };
  const t = cfg.text;
  put('vocab_size', t.vocabSize);
  put('hidden_size', t.hiddenSize);
  put('intermediate_size', t.intermediateSize);
  put('num_hidden_layers', t.numLayers);
  put('num_attention_heads', t.numHeads);
  put('num_key_value_heads', t.numKvHeads);
  if ('head_dim' in text || t.headDim * t.numHeads !== t.hiddenSize) put('head_dim', t.headDim);
  put('hidden_act', t.hiddenAct);
  put('rms_norm_eps', t.rmsNormEps);
  put('max_position_embeddings', t.maxPositionEmbeddings);
  put('tie_word_embeddings', t.tieWordEmbeddings);

  const ropeKey = isObject(text.rope_scaling)
    ? 'rope_scaling'
    : isObject(text.rope_parameters)
      ? 'rope_parameters'
      : null;
  const rope = ropeKey ? { ...(text[ropeKey] as Json) } : null;
  if (rope && 'rope_theta' in rope) rope.rope_theta = t.ropeTheta;
  if (!rope || !('rope_theta' in rope) || 'rope_theta' in text) put('rope_theta', t.ropeTheta);
  if (t.mropeSection) {
    const r = rope ?? { type: 'mrope' };
    r.mrope_section = [...t.mropeSection];
    put(ropeKey ?? 'rope_scaling', r);
  } else if (rope) {
    put(ropeKey as string, rope);
  }

  if (cfg.modelType !== 'qwen2' || 'image_token_id' in out) {
    out.image_token_id = cfg.imageTokenId;
    out.video_token_id = cfg.videoTokenId;
    out.vision_start_token_id = cfg.visionStartTokenId;
    out.vision_end_token_id = cfg.visionEndTokenId;
  }
  const putRootOrText = (key: string, value: unknown) => {
    if (nested && key in text) text[key] = value;
    if (!nested || key in out || !(key in text)) out[key] = value;
  };
  if (cfg.bosTokenId !== null || 'bos_token_id' in out || 'bos_token_id' in text)
    putRootOrText('bos_token_id', cfg.bosTokenId);
  const rawEos = out.eos_token_id ?? text.eos_token_id;
  if (cfg.eosTokenIds.length > 0 || rawEos !== undefined) {
    putRootOrText(
      'eos_token_id',
      cfg.eosTokenIds.length === 1 && !Array.isArray(rawEos)
        ? cfg.eosTokenIds[0]
        : cfg.eosTokenIds.length === 0
          ? null
          : [...cfg.eosTokenIds],
    );
  }
  const dtypeKey = 'dtype' in out || (nested && 'dtype' in text) ? 'dtype' : 'torch_dtype';
  putRootOrText(dtypeKey, cfg.torchDtype);

  if (cfg.vision) {
    const v = cfg.vision;
    const vc = isObject(out.vision_config) ? { ...out.vision_config } : {};
    vc.depth = v.depth;
    vc.num_heads = v.numHeads;
    vc.in_channels = v.inChannels;
    if ('in_chans' in vc) vc.in_chans = v.inChannels;
    vc.patch_size = v.patchSize;
    if ('spatial_patch_size' in vc) vc.spatial_patch_size = v.patchSize;
    vc.temporal_patch_size = v.temporalPatchSize;
    vc.spatial_merge_size = v.spatialMergeSize;
    vc.hidden_act = v.hiddenAct;
    if (v.kind === 'qwen2_vl') {
      vc.embed_dim = v.embedDim;
      vc.mlp_ratio = v.mlpHiddenDim / v.embedDim;
      vc.hidden_size = v.outHiddenSize;
    } else {
      vc.hidden_size = v.embedDim;
      vc.intermediate_size = v.mlpHiddenDim;
      vc.out_hidden_size = v.outHiddenSize;
      vc.window_size = v.windowSize;
      vc.fullatt_block_indexes = [...v.fullAttBlockIndexes];
      if (v.tokensPerSecond !== undefined) vc.tokens_per_second = v.tokensPerSecond;
    }
    out.vision_config = vc;
  }
  return out;
}

/** Parses JSON text read from `file`, naming the file when it is not JSON. */
export function parseJsonFile(textContent: string, file: string): unknown {
  try {
    return JSON.parse(textContent);
  } catch (err) {
    throw new ModelConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Reads and parses the config of a model folder (`dir/config.json`), or a config file given by path
 * (a `.json` file: the tiny configs under configs/models/).
 */
export async function loadModelConfig(dirOrFile: string): Promise<ModelConfig> {
  let file = dirOrFile;
  const stat = await fsp.stat(dirOrFile).catch(() => null);
  if (!stat) throw new ModelConfigError(`${dirOrFile}: no such model folder or config file`);
  if (stat.isDirectory()) file = path.join(dirOrFile, 'config.json');
  const content = await fsp.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new ModelConfigError(
        `${dirOrFile}: no config.json (a Hugging Face model folder holds config.json and *.safetensors)`,
      );
    }
    throw new ModelConfigError(`${file}: cannot be read (${err.message})`);
  });
  return parseModelConfig(parseJsonFile(content, file), file);
}
