// LoRA adapters on disk in PEFT's format, so PeftModel.from_pretrained and vLLM's LoRA loader read
// what medgr2 writes and medgr2 reads what they write:
//
//   <dir>/adapter_config.json         LoraConfig.to_dict(): peft_type "LORA", r, lora_alpha, ...
//   <dir>/adapter_model.safetensors   base_model.model.<module path>.lora_A.weight / .lora_B.weight
//
// Each file is written atomically (temp, fsync, rename), the config last, so a reader that finds
// adapter_config.json finds the weights it describes. A folder with an adapter_config.json is an
// "adapter folder": loadModelArg loads its base (base_model_name_or_path, or --model) and applies it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../native/model_config';
import type { Tensor } from '../native/types';
import { readTensors, writeTensors } from './tensor_files';
import { copyFileAtomic, writeJsonAtomic } from '../util/atomic_write';
import { COMPANION_FILES } from './hf_folder';
import {
  canonicalAdapterName,
  DECODER_PROJECTIONS,
  LoraError,
  loraScale,
  peftModulePath,
  peftTargets,
  peftTensorName,
  targetModulesPattern,
  type LoraSpec,
  type PeftLayout,
} from './lora';
import type { Model } from './model';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** Whether `dir` is a PEFT adapter folder. */
export function isAdapterFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, ADAPTER_CONFIG_FILE));
}

export interface SaveAdapterOptions {
  spec: LoraSpec;
  /** base_model_name_or_path: the base model's folder or hub id. */
  baseModel: string;
  /** Module paths of transformers >= 4.52 ('current', default) or older ('legacy'). */
  layout?: PeftLayout;
  /** Copy the tokenizer / processor / generation files from this folder (as PEFT's trainers save
   *  the tokenizer beside the adapter), so the adapter folder names how its prompts are encoded. */
  sourceDir?: string;
}

/** LoraConfig's fields as PEFT writes them (defaults for what medgr2 does not use). */
export function adapterConfig(spec: LoraSpec, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    r: spec.rank,
    lora_alpha: spec.alpha,
    lora_dropout: spec.dropout,
    target_modules: targetModulesPattern(spec),
    exclude_modules: null,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: spec.rsLora,
    use_dora: false,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    lora_bias: false,
  };
}

/** Writes the model's adapter (its lora_A / lora_B tensors) as a PEFT adapter folder. */
export async function saveAdapter(model: Model, dir: string, opts: SaveAdapterOptions): Promise<void> {
  const layout = opts.layout ?? 'current';
  const own = model.loraParameters();
  if (Object.keys(own).length === 0) throw new LoraError(`saveAdapter ${dir}: the model has no LoRA adapter`);
  const named: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(own)) named[peftTensorName(name, model.config, layout)] = t;
  await fs.promises.mkdir(dir, { recursive: true });
  await writeTensors(path.join(dir, ADAPTER_WEIGHTS_FILE), named);
  if (opts.sourceDir && path.resolve(opts.sourceDir) !== path.resolve(dir)) {
    for (const name of COMPANION_FILES) {
      const src = path.join(opts.sourceDir, name);
      if (fs.existsSync(src)) await copyFileAtomic(src, path.join(dir, name));
    }
  }
  await writeJsonAtomic(path.join(dir, ADAPTER_CONFIG_FILE), adapterConfig(opts.spec, opts.baseModel));
}

export interface LoadedAdapter {
  spec: LoraSpec;
  baseModel: string | null;
  /** Canonical adapter tensor names (M.lora_A.weight) -> tensors; dispose them when done. */
  tensors: Map<string, Tensor>;
}

/** base_model_name_or_path of an adapter folder (null when it names none). */
export function adapterBaseModel(dir: string): string | null {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LoraError(`${file}: ${(e as Error).message}`);
  }
  const base = (raw as Record<string, unknown>)?.base_model_name_or_path;
  return typeof base === 'string' && base.length > 0 ? base : null;
}

/** The LoraConfig fields medgr2 cannot honour, as "field: value" (an adapter using one is refused
 *  rather than applied differently from PEFT). */
function unsupportedFields(cfg: Record<string, unknown>): string[] {
  const out: string[] = [];
  const nonEmpty = (v: unknown) =>
    v !== undefined && v !== null && !(typeof v === 'object' && Object.keys(v).length === 0);
  if (cfg.use_dora === true) out.push('use_dora: true');
  if (cfg.fan_in_fan_out === true) out.push('fan_in_fan_out: true');
  if (cfg.bias !== undefined && cfg.bias !== 'none') out.push(`bias: ${JSON.stringify(cfg.bias)}`);
  if (cfg.lora_bias === true) out.push('lora_bias: true');
  for (const key of ['rank_pattern', 'alpha_pattern', 'modules_to_save', 'layers_to_transform', 'exclude_modules'])
    if (nonEmpty(cfg[key])) out.push(`${key}: ${JSON.stringify(cfg[key])}`);
  return out;
}

function configNumber(cfg: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new LoraError(`${file}: "${key}" must be a number, got ${JSON.stringify(cfg[key])}`);
  return v;
}

/** Reads a PEFT LoRA adapter folder written by medgr2, PEFT or any tool following it. */
export async function loadAdapter(dir: string, cfg: ModelConfig): Promise<LoadedAdapter> {
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new LoraError(`${configFile}: ${(e as Error).message}`);
  }
  if (raw.peft_type !== 'LORA')
    throw new LoraError(`${configFile}: peft_type is ${JSON.stringify(raw.peft_type)}, only "LORA" is supported`);
  const unsupported = unsupportedFields(raw);
  if (unsupported.length) throw new LoraError(`${configFile}: not supported by medgr2: ${unsupported.join(', ')}`);
  const targets = raw.target_modules;
  if (!(typeof targets === 'string' || (Array.isArray(targets) && targets.every((t) => typeof t === 'string'))))
    throw new LoraError(`${configFile}: "target_modules" must be a string or a list of strings`);

  const weightsFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(weightsFile))
    throw new LoraError(`${dir}: no ${ADAPTER_WEIGHTS_FILE} beside ${ADAPTER_CONFIG_FILE}`);
  const read = await readTensors(weightsFile);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, t] of Object.entries(read)) {
      const canonical = canonicalAdapterName(name);
      if (canonical === null)
        throw new LoraError(
          `${weightsFile}: tensor "${name}" is not a LoRA weight of an adaptable module of this model`,
        );
      const module = canonical.slice(0, canonical.lastIndexOf('.lora_'));
      // PEFT adapts what target_modules selects in the model it loads into; whichever layout the
      // adapter was trained in, its tensors must belong to modules the pattern selects.
      const selected = (['current', 'legacy'] as const).some((l) =>
        peftTargets(targets, peftModulePath(module, cfg, l)),
      );
      if (!selected)
        throw new LoraError(`${weightsFile}: tensor "${name}" is on a module that target_modules does not select`);
      if (tensors.has(canonical)) throw new LoraError(`${weightsFile}: "${canonical}" appears twice (both layouts?)`);
      tensors.set(canonical, t);
    }
  } catch (e) {
    for (const t of Object.values(read)) t.dispose();
    throw e;
  }
  const modules = [...tensors.keys()].map((n) => n.slice(0, n.lastIndexOf('.lora_')));
  const spec: LoraSpec = {
    rank: configNumber(raw, 'r', configFile),
    alpha: configNumber(raw, 'lora_alpha', configFile, 8), // PEFT's default
    dropout: configNumber(raw, 'lora_dropout', configFile, 0),
    // What the tensors adapt, so that saving this adapter again writes the same selection.
    targets: DECODER_PROJECTIONS.filter((t) => modules.some((m) => m.startsWith('model.') && m.endsWith('.' + t))),
    vision: modules.some((m) => m.startsWith('visual.blocks.')),
    merger: modules.some((m) => m.startsWith('visual.merger.')),
    rsLora: raw.use_rslora === true,
  };
  const base = typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null;
  return { spec, baseModel: base, tensors };
}

/** Puts a loaded adapter on `model` (replacing adapter tensors of the same modules) with PEFT's
 *  scale; the adapter's tensors are disposed. */
export async function applyAdapter(model: Model, adapter: LoadedAdapter): Promise<void> {
  try {
    await model.setLoraTensors(Object.fromEntries(adapter.tensors));
  } finally {
    for (const t of adapter.tensors.values()) t.dispose();
  }
  model.setLora({ scale: loraScale(adapter.spec), dropout: adapter.spec.dropout, enabled: true });
  model.loraSpec = adapter.spec;
}
