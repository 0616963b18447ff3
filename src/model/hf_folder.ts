// Hugging Face model folders in and out: config.json + model.safetensors, or shards with
// model.safetensors.index.json, in the hub's (old) or the newer (model.language_model.*) layout.
//
// Loading checks every header against the config's expected parameters before any tensor is made
// (a missing, unexpected or mis-shaped tensor is reported with the file and both shapes), then
// maps each file once and makes the tensors (no copy unless a dtype conversion is asked for).
// Saving always writes hub names, so any HF-compatible tool loads what medgr2 trained.
//
// NaN or infinite weights are refused both ways (finite_weights.ts): saving writes nothing, loading
// names the tensor and its file. Model.load / Model.save turn the scan here off and ask the native
// model instead, which checks every weight in one fast pass on its device.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadAddon } from '../native/loader';
import type { DtypeName, NativeTensorLocation, Tensor } from '../native/types';
import { copyFileAtomic, fsyncDir, linkOrCopyFile, writeFileAtomic } from '../util/atomic_write';
import { loadModelConfig, modelConfigToJson } from './config';
import type { ModelConfig, ParameterSpec } from '../native/model_config';
import { canonicalName, expectedParameters } from './parameters';
import { PROCESSOR_CONFIG_FILE, processorConfigForTower } from './folder_settings';
import { findNonFiniteTensor, nonFiniteLoadMessage, refuseToWrite } from './finite_weights';
import {
  buildSafetensorsHeader,
  DEFAULT_MAX_SHARD_BYTES,
  formatSafetensorsIndex,
  INDEX_FILE,
  parseByteSize,
  planShards,
  readSafetensorsHeader,
  readSafetensorsIndex,
  SAFETENSORS_DTYPES,
  safetensorsDtypeOf,
  SINGLE_FILE,
  type SafetensorsDtype,
  type TensorDescriptor,
} from './safetensors';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Parameter dtypes: the addon's names or torch's. */
export type CheckpointDtype = 'f32' | 'bf16' | 'f16' | 'f64' | 'float32' | 'bfloat16' | 'float16' | 'float64';

const FLOAT_DTYPES: Record<CheckpointDtype, DtypeName> = {
  f32: 'f32',
  float32: 'f32',
  bf16: 'bf16',
  bfloat16: 'bf16',
  f16: 'f16',
  float16: 'f16',
  f64: 'f64',
  float64: 'f64',
};
const TORCH_DTYPE_NAME: Partial<Record<DtypeName, string>> = {
  f32: 'float32',
  bf16: 'bfloat16',
  f16: 'float16',
  f64: 'float64',
};

function floatDtype(d: string, what: string): DtypeName {
  const n = FLOAT_DTYPES[d as CheckpointDtype];
  if (!n)
    throw new CheckpointError(
      `${what} must be one of float32, bfloat16, float16, float64 (or f32, bf16, f16, f64), got ${JSON.stringify(d)}`,
    );
  return n;
}

/** Files besides the weights that make a folder loadable by HF tools; copied by saveCheckpoint. */
export const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.json',
  'chat_template.jinja',
  'video_preprocessor_config.json',
];

const shapeText = (s: number[]) => `[${s.join(', ')}]`;
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** One tensor as found (in a file, or given to save), under its canonical name. */
interface Found {
  original: string;
  shape: number[];
  dtype: DtypeName;
  /** Where it is, for messages: a file name or "the tensors given". */
  where: string;
}

/**
 * Checks `found` (canonical name -> tensor) against the config's parameters; returns the problems,
 * each a sentence naming the tensor, its file and both shapes. A tied model's lm_head.weight of the
 * right shape is removed from `found` (it duplicates the embedding).
 */
function checkTensors(cfg: ModelConfig, specs: ParameterSpec[], found: Map<string, Found>): string[] {
  const problems: string[] = [];
  const lm = found.get('lm_head.weight');
  if (cfg.text.tieWordEmbeddings && lm) {
    const want = [cfg.text.vocabSize, cfg.text.hiddenSize];
    if (sameShape(lm.shape, want)) found.delete('lm_head.weight');
    else
      problems.push(
        `tensor "${lm.original}" in ${lm.where} has shape ${shapeText(lm.shape)} but the config expects ${shapeText(want)} (a tied head equal to model.embed_tokens.weight)`,
      );
  }
  const expected = new Map(specs.map((s) => [s.name, s.shape]));
  for (const s of specs) {
    const f = found.get(s.name);
    if (!f) {
      problems.push(`tensor "${s.name}" is missing (expected shape ${shapeText(s.shape)})`);
    } else if (!sameShape(f.shape, s.shape)) {
      problems.push(
        `tensor "${f.original}" in ${f.where} has shape ${shapeText(f.shape)} but the config expects ${shapeText(s.shape)}`,
      );
    } else if (!['f32', 'bf16', 'f16', 'f64'].includes(f.dtype)) {
      problems.push(
        `tensor "${f.original}" in ${f.where} has dtype ${f.dtype}; parameters must be floating point (F32, BF16, F16, F64)`,
      );
    }
  }
  for (const [name, f] of found) {
    if (!expected.has(name) && !(name === 'lm_head.weight' && cfg.text.tieWordEmbeddings)) {
      problems.push(
        `tensor "${f.original}" in ${f.where} is not a parameter of this ${cfg.modelType} model ` +
          `(${cfg.text.numLayers} layers${cfg.vision ? `, ${cfg.vision.depth} vision blocks` : ''}, tie_word_embeddings ${cfg.text.tieWordEmbeddings})`,
      );
    }
  }
  return problems;
}

function problemsError(subject: string, problems: string[]): CheckpointError {
  if (problems.length === 1) return new CheckpointError(`${subject}: ${problems[0]}`);
  const shown = problems.slice(0, 20).map((p) => `  - ${p}`);
  if (problems.length > 20) shown.push(`  ... and ${problems.length - 20} more`);
  return new CheckpointError(`${subject}: ${problems.length} problems:\n${shown.join('\n')}`);
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

/** The weight files of a folder: model.safetensors, else the index's shards (transformers' order). */
async function weightFiles(dir: string): Promise<{ files: string[]; index: Map<string, string> | null }> {
  if (await exists(path.join(dir, SINGLE_FILE))) return { files: [SINGLE_FILE], index: null };
  const indexPath = path.join(dir, INDEX_FILE);
  if (await exists(indexPath)) {
    const index = await readSafetensorsIndex(indexPath);
    const files = [...new Set(index.weightMap.values())].sort();
    for (const f of files) {
      if (!(await exists(path.join(dir, f))))
        throw new CheckpointError(`${indexPath}: names shard "${f}", which is not in ${dir}`);
    }
    return { files, index: index.weightMap };
  }
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const hint = names.some((n) => n.endsWith('.bin') || n.endsWith('.pt'))
    ? ' (found PyTorch .bin/.pt weights: medgr2 reads safetensors only; re-save with save_pretrained(safe_serialization=True))'
    : '';
  throw new CheckpointError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}${hint}`);
}

export interface LoadCheckpointOptions {
  /** Convert every parameter to this dtype (a copy); default: keep the file's dtypes (no copy). */
  dtype?: CheckpointDtype;
  /** Refuse weights with NaN or infinity (default true). Model.load sets false and asks the native
   *  model after copying them in, which is much faster than this scan. */
  checkFinite?: boolean;
}

export interface Checkpoint {
  config: ModelConfig;
  /** Canonical (hub) names -> tensors, in expectedParameters order. */
  tensors: Map<string, Tensor>;
  /** Canonical name -> the file of the folder it was read from (for messages). */
  files: Map<string, string>;
}

/** The error for a NaN / infinite weight found after loading `dir` (names the tensor and its file). */
export function nonFiniteWeightError(
  dir: string,
  files: Map<string, string>,
  bad: { name: string; count: number },
): CheckpointError {
  return new CheckpointError(nonFiniteLoadMessage(dir, files.get(bad.name), bad));
}

/** Loads a model folder: config.json and its safetensors, checked against the config. */
export async function loadCheckpoint(dir: string, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const target = options.dtype === undefined ? undefined : floatDtype(options.dtype, 'loadCheckpoint: options.dtype');
  const config = await loadModelConfig(dir);
  const specs = expectedParameters(config);
  const { files, index } = await weightFiles(dir);

  const problems: string[] = [];
  const found = new Map<string, Found & { desc: TensorDescriptor; file: string }>();
  for (const file of files) {
    const header = await readSafetensorsHeader(path.join(dir, file));
    const inHeader = new Set<string>();
    for (const desc of header.tensors) {
      inHeader.add(desc.name);
      if (index && index.get(desc.name) !== file) {
        problems.push(
          `tensor "${desc.name}" is in ${file} but ${INDEX_FILE} ${index.has(desc.name) ? `puts it in ${index.get(desc.name)}` : 'does not list it'}`,
        );
        continue;
      }
      const canonical = canonicalName(desc.name);
      if (canonical === null) {
        problems.push(`tensor "${desc.name}" in ${file} is not a tensor of a qwen2 / qwen2_vl / qwen2_5_vl model`);
        continue;
      }
      const prev = found.get(canonical);
      if (prev) {
        problems.push(
          `tensor "${canonical}" appears twice: as "${prev.original}" in ${prev.file} and as "${desc.name}" in ${file}`,
        );
        continue;
      }
      const dtype = SAFETENSORS_DTYPES[desc.dtype].native;
      found.set(canonical, { original: desc.name, shape: desc.shape, dtype, where: file, desc, file });
    }
    if (index) {
      for (const [name, f] of index) {
        if (f === file && !inHeader.has(name))
          problems.push(`${INDEX_FILE} puts tensor "${name}" in ${file}, which does not hold it`);
      }
    }
  }
  problems.push(...checkTensors(config, specs, found));
  if (problems.length > 0) throw problemsError(`checkpoint ${dir}`, problems);

  const st = loadAddon().safetensors;
  const byName = new Map<string, Tensor>();
  try {
    for (const file of files) {
      const descs: (NativeTensorLocation & { canonical: string })[] = [];
      for (const [canonical, f] of found) {
        if (f.file !== file) continue;
        const { name, shape, offset, nbytes } = f.desc;
        descs.push({ name, dtype: SAFETENSORS_DTYPES[f.desc.dtype].native, shape, offset, nbytes, canonical });
      }
      if (descs.length === 0) continue;
      const read = await st.readTensors(path.join(dir, file), descs, target ? { dtype: target } : {});
      for (const d of descs) byName.set(d.canonical, read[d.name]);
    }
  } catch (err) {
    for (const t of byName.values()) t.dispose();
    throw err;
  }
  const tensors = new Map<string, Tensor>();
  for (const s of specs) tensors.set(s.name, byName.get(s.name) as Tensor);
  const sources = new Map([...found].map(([canonical, f]) => [canonical, f.file]));
  if (options.checkFinite !== false) {
    const bad = await findNonFiniteTensor(tensors);
    if (bad) {
      for (const t of tensors.values()) t.dispose();
      throw nonFiniteWeightError(dir, sources, bad);
    }
  }
  return { config, tensors, files: sources };
}

export interface SaveCheckpointOptions {
  /** Largest shard (data bytes), a number or "5GB" / "500MiB"; default 5 GB as transformers. */
  maxShardBytes?: number | string;
  /** Write every parameter in this dtype (converted while writing); default: each tensor's own. */
  dtype?: CheckpointDtype;
  /** A model folder whose tokenizer / processor / generation files are copied alongside. */
  sourceDir?: string;
  /** Refuse (write nothing) when a tensor holds NaN or infinity (default true). Model.save sets
   *  false after asking the native model, which is much faster than this scan. */
  checkFinite?: boolean;
}

export interface SavedCheckpoint {
  dir: string;
  /** Weight files written (and the index when sharded), in the folder. */
  files: string[];
  /** Bytes of tensor data written. */
  totalBytes: number;
}

const WEIGHT_FILE = /^model(?:-\d{5}-of-\d{5})?\.safetensors$/;

/**
 * Saves `tensors` (canonical or newer-layout names) with `config` as a Hugging Face model folder:
 * config.json, model.safetensors or shards + index, all written atomically with hub names (and a
 * preprocessor_config.json for a tower with other patch sizes than transformers' defaults, when the
 * folder has none). Weight files of an earlier save that the new one does not use are removed afterwards.
 */
export async function saveCheckpoint(
  dir: string,
  config: ModelConfig,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  options: SaveCheckpointOptions = {},
): Promise<SavedCheckpoint> {
  const outDtype = options.dtype === undefined ? undefined : floatDtype(options.dtype, 'saveCheckpoint: options.dtype');
  const maxShard = options.maxShardBytes === undefined ? DEFAULT_MAX_SHARD_BYTES : parseByteSize(options.maxShardBytes);
  const specs = expectedParameters(config);
  const given = tensors instanceof Map ? [...tensors] : Object.entries(tensors);

  const problems: string[] = [];
  const found = new Map<string, Found & { tensor: Tensor }>();
  for (const [name, tensor] of given) {
    const canonical = canonicalName(name);
    if (canonical === null) {
      problems.push(`tensor "${name}" in the tensors given is not a tensor of a qwen2 / qwen2_vl / qwen2_5_vl model`);
    } else if (found.has(canonical)) {
      problems.push(`tensor "${canonical}" is given twice (as "${found.get(canonical)?.original}" and "${name}")`);
    } else {
      found.set(canonical, {
        original: name,
        shape: tensor.shape,
        dtype: tensor.dtype,
        where: 'the tensors given',
        tensor,
      });
    }
  }
  problems.push(...checkTensors(config, specs, found));
  if (problems.length > 0) throw problemsError(`saveCheckpoint ${dir}`, problems);
  if (options.checkFinite !== false) {
    // Before the folder is made: a refused save leaves nothing behind.
    const bad = await findNonFiniteTensor(
      specs.map((s) => [s.name, (found.get(s.name) as Found & { tensor: Tensor }).tensor]),
    );
    if (bad) throw refuseToWrite(dir, bad);
  }

  const entries = specs.map((s) => {
    const f = found.get(s.name) as Found & { tensor: Tensor };
    const dtype = safetensorsDtypeOf(outDtype ?? f.dtype);
    const nbytes = s.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[dtype].bytes;
    return { name: s.name, shape: s.shape, dtype, nbytes, tensor: f.tensor };
  });
  const plan = planShards(entries, maxShard);
  const byName = new Map(entries.map((e) => [e.name, e]));

  await fsp.mkdir(dir, { recursive: true });
  const st = loadAddon().safetensors;
  const written: string[] = [];
  let totalBytes = 0;
  for (const shard of plan) {
    const header = buildSafetensorsHeader(shard.names.map((n) => byName.get(n) as (typeof entries)[number]));
    const order = header.tensors.map((d) => byName.get(d.name) as (typeof entries)[number]);
    await st.writeSafetensors(
      path.join(dir, shard.file),
      header.bytes,
      order.map((e) => e.tensor),
      order.map((e) => ({
        name: e.name,
        dtype: SAFETENSORS_DTYPES[e.dtype as SafetensorsDtype].native,
        nbytes: e.nbytes,
      })),
    );
    written.push(shard.file);
    totalBytes += shard.bytes;
  }
  if (plan.length > 1) {
    const map: [string, string][] = plan.flatMap((s) => s.names.map((n): [string, string] => [n, s.file]));
    await writeFileAtomic(path.join(dir, INDEX_FILE), formatSafetensorsIndex(totalBytes, map));
    written.push(INDEX_FILE);
  }

  // config.json says the dtype the weights are in when they all share one.
  const dtypes = new Set(entries.map((e) => SAFETENSORS_DTYPES[e.dtype].native));
  const only = dtypes.size === 1 ? TORCH_DTYPE_NAME[[...dtypes][0]] : undefined;
  const saved: ModelConfig = { ...config, torchDtype: only && only !== 'float64' ? only : config.torchDtype };
  await writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(modelConfigToJson(saved), null, 2) + '\n');

  if (options.sourceDir && path.resolve(options.sourceDir) !== path.resolve(dir)) {
    for (const name of COMPANION_FILES) {
      const src = path.join(options.sourceDir, name);
      if (await exists(src)) await copyFileAtomic(src, path.join(dir, name));
    }
  }

  const processorFile = path.join(dir, PROCESSOR_CONFIG_FILE);
  const towerProcessor = config.vision ? processorConfigForTower(config.vision) : undefined;
  if (towerProcessor && !(await exists(processorFile)))
    await writeFileAtomic(processorFile, JSON.stringify(towerProcessor, null, 2) + '\n');

  // Only now drop what an earlier save left (other shard counts, a stale index): until here a
  // reader still found a complete older set.
  const keep = new Set(written);
  for (const name of await fsp.readdir(dir)) {
    if ((WEIGHT_FILE.test(name) || name === INDEX_FILE) && !keep.has(name))
      await fsp.rm(path.join(dir, name), { force: true });
  }
  return { dir, files: written, totalBytes };
}

/**
 * Copies a model folder's own files (config.json, the weights and their index, the tokenizer,
 * template, processor and generation files) into `dst` without rewriting them: weight files are hard
 * links where the filesystem allows (a 7B model's 15 GB is not copied), anything else is copied.
 * Other files of the folder (README.md, LICENSE, ...) are left out.
 */
export async function copyModelFolder(src: string, dst: string): Promise<string[]> {
  const { files, index } = await weightFiles(src);
  const names = ['config.json', ...files, ...(index ? [INDEX_FILE] : []), ...COMPANION_FILES];
  await fsp.mkdir(dst, { recursive: true });
  const copied: string[] = [];
  for (const name of [...new Set(names)]) {
    const from = path.join(src, name);
    if (!(await exists(from))) continue;
    await linkOrCopyFile(from, path.join(dst, name));
    copied.push(name);
  }
  await fsyncDir(dst);
  return copied;
}
