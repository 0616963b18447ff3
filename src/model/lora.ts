// LoRA's settings and names: which linear modules get an adapter, and how PEFT names them.
//
// An adapter on module M (weight W [out, in]) adds scale * B·A·x with A [r, in], B [out, r] and
// scale = alpha / r (alpha / sqrt(r) with rsLoRA). The native model holds A and B beside W as
// `M.lora_A.weight` / `M.lora_B.weight` (canonical, old-layout module names); this file turns a
// LoraSpec into the module list, and module names into PEFT's file names and target pattern.
//
// PEFT conventions followed (peft.tuners.lora, peft.utils.save_and_load):
// - a saved adapter names tensors `base_model.model.<module path>.lora_A.weight` (the adapter name
//   "default" is dropped), where <module path> is the module's name inside the transformers model;
// - `target_modules` as a list matches a module whose name equals an entry or ends with "." + entry;
//   as a string it is a regular expression that must match the whole module name (re.fullmatch).
// Qwen2-VL / Qwen2.5-VL module paths depend on the transformers version: >= 4.52 (and 5.x) nest the
// decoder as `model.language_model.layers.N` and the vision tower as `model.visual`, older versions
// use `model.layers.N` and `visual`. Adapters are written in the current layout by default (what
// today's PEFT and vLLM load); 'legacy' writes the old one. Text-only Qwen2 has one layout.
import type { ModelConfig } from '../native/model_config';
import { canonicalName, expectedParameters } from './parameters';

/** The decoder projections LoRA targets by default (LLaMA-Factory's and TRL's usual "all linear"
 *  of a Qwen2 decoder, lm_head excluded). */
export const DECODER_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const ATTENTION_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

export interface LoraSpec {
  /** r: the adapter's rank. */
  rank: number;
  /** lora_alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA). */
  alpha: number;
  /** lora_dropout on the adapter's input, training only. */
  dropout: number;
  /** Decoder projections to adapt, by short name (DECODER_PROJECTIONS or a subset). */
  targets: string[];
  /** Also adapt every linear of the vision blocks (attn.qkv, attn.proj and the MLP). */
  vision: boolean;
  /** Also adapt the merger's two linears (mlp.0, mlp.2). */
  merger: boolean;
  /** PEFT's use_rslora: scale alpha / sqrt(r). */
  rsLora: boolean;
}

export const LORA_DEFAULTS: Readonly<LoraSpec> = {
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: DECODER_PROJECTIONS,
  vision: false,
  merger: false,
  rsLora: false,
};

export type PeftLayout = 'current' | 'legacy';

export class LoraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoraError';
  }
}

/** The adapter's multiplier on B·A·x. */
export function loraScale(spec: Pick<LoraSpec, 'rank' | 'alpha' | 'rsLora'>): number {
  return spec.rsLora ? spec.alpha / Math.sqrt(spec.rank) : spec.alpha / spec.rank;
}

/** A complete spec from partial settings, every field checked (errors name the field). */
export function resolveLoraSpec(given: Partial<LoraSpec>, where = 'lora'): LoraSpec {
  const spec: LoraSpec = { ...LORA_DEFAULTS, ...stripUndefined(given) };
  if (!Number.isInteger(spec.rank) || spec.rank < 1)
    throw new LoraError(`${where}.rank must be an integer >= 1, got ${spec.rank}`);
  if (!Number.isFinite(spec.alpha) || spec.alpha <= 0)
    throw new LoraError(`${where}.alpha must be > 0, got ${spec.alpha}`);
  if (!(spec.dropout >= 0 && spec.dropout < 1))
    throw new LoraError(`${where}.dropout must be in [0, 1), got ${spec.dropout}`);
  if (spec.targets.length === 0 && !spec.vision && !spec.merger)
    throw new LoraError(`${where}.targets is empty and neither vision nor merger is targeted: nothing to adapt`);
  for (const t of spec.targets) {
    if (!DECODER_PROJECTIONS.includes(t))
      throw new LoraError(`${where}.targets: "${t}" is not a decoder projection (${DECODER_PROJECTIONS.join(', ')})`);
  }
  return spec;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const DECODER_MODULE = /^model\.layers\.\d+\.(?:self_attn|mlp)\.([a-z_]+)$/;
const VISION_BLOCK_MODULE =
  /^visual\.blocks\.\d+\.(?:attn\.(?:qkv|proj)|mlp\.(?:fc1|fc2|gate_proj|up_proj|down_proj))$/;
const MERGER_MODULE = /^visual\.merger\.mlp\.[02]$/;

/** Whether a canonical module name is a linear that LoRA may adapt (never lm_head, embeddings,
 *  the score head, the patch embedding or norms). */
export function isAdaptableModule(module: string): boolean {
  return DECODER_MODULE.test(module) || VISION_BLOCK_MODULE.test(module) || MERGER_MODULE.test(module);
}

function isSelected(module: string, spec: LoraSpec): boolean {
  const decoder = DECODER_MODULE.exec(module);
  if (decoder) return spec.targets.includes(decoder[1]);
  if (VISION_BLOCK_MODULE.test(module)) return spec.vision;
  return MERGER_MODULE.test(module) && spec.merger;
}

/** The canonical names of the modules `spec` adapts, in the model's parameter order. */
export function loraModules(cfg: ModelConfig, spec: LoraSpec): string[] {
  const out: string[] = [];
  for (const p of expectedParameters(cfg)) {
    if (!p.name.endsWith('.weight') || p.shape.length !== 2) continue;
    const module = p.name.slice(0, -'.weight'.length);
    if (isSelected(module, spec)) out.push(module);
  }
  return out;
}

/** A canonical module name as transformers names the module in `layout`. */
export function peftModulePath(module: string, cfg: ModelConfig, layout: PeftLayout): string {
  if (layout === 'legacy' || cfg.vision === null) return module;
  if (module.startsWith('model.')) return 'model.language_model.' + module.slice('model.'.length);
  if (module.startsWith('visual.')) return 'model.' + module;
  return module;
}

const PEFT_PREFIX = 'base_model.model.';
const ADAPTER_SUFFIX = /\.(lora_[AB])\.weight$/;

/** Whether a parameter name is a LoRA adapter tensor's ("<module>.lora_A.weight" / ".lora_B.weight"). */
export function isLoraParameter(name: string): boolean {
  return ADAPTER_SUFFIX.test(name);
}

/** PEFT's saved name of an adapter tensor (`M.lora_A.weight`, canonical M). */
export function peftTensorName(tensor: string, cfg: ModelConfig, layout: PeftLayout): string {
  const m = ADAPTER_SUFFIX.exec(tensor);
  if (!m) throw new LoraError(`"${tensor}" is not a LoRA tensor name (M.lora_A.weight / M.lora_B.weight)`);
  const module = tensor.slice(0, m.index);
  return `${PEFT_PREFIX}${peftModulePath(module, cfg, layout)}.${m[1]}.weight`;
}

/** The canonical adapter tensor name of a name in a PEFT file (either layout), or null when it is
 *  not an adapter of an adaptable module. */
export function canonicalAdapterName(peftName: string): string | null {
  if (!peftName.startsWith(PEFT_PREFIX)) return null;
  const rest = peftName.slice(PEFT_PREFIX.length);
  const m = ADAPTER_SUFFIX.exec(rest);
  if (!m) return null;
  const weight = canonicalName(rest.slice(0, m.index) + '.weight');
  if (weight === null) return null;
  const module = weight.slice(0, -'.weight'.length);
  return isAdaptableModule(module) ? `${module}.${m[1]}.weight` : null;
}

/**
 * PEFT's target_modules for `spec`: a regular expression that re.fullmatch()es exactly the adapted
 * modules under both transformers layouts. A plain list of short names would not do: PEFT matches
 * list entries by suffix, so "gate_proj" would also adapt the Qwen2.5-VL vision blocks' gate_proj.
 */
export function targetModulesPattern(spec: LoraSpec): string {
  const parts: string[] = [];
  if (spec.targets.length > 0) {
    const attn = spec.targets.filter((t) => ATTENTION_PROJECTIONS.includes(t));
    const mlp = spec.targets.filter((t) => !attn.includes(t));
    const alts = [
      ...(attn.length ? [`self_attn\\.(?:${attn.join('|')})`] : []),
      ...(mlp.length ? [`mlp\\.(?:${mlp.join('|')})`] : []),
    ];
    parts.push(`model\\.(?:language_model\\.)?layers\\.\\d+\\.(?:${alts.join('|')})`);
  }
  if (spec.vision)
    parts.push(
      '(?:model\\.)?visual\\.blocks\\.\\d+\\.(?:attn\\.(?:qkv|proj)|mlp\\.(?:fc1|fc2|gate_proj|up_proj|down_proj))',
    );
  if (spec.merger) parts.push('(?:model\\.)?visual\\.merger\\.mlp\\.(?:0|2)');
  return parts.length === 1 ? parts[0] : `(?:${parts.join('|')})`;
}

/** Whether PEFT's target_modules (list or full-match pattern) selects module `name`. */
export function peftTargets(targetModules: string | string[], name: string): boolean {
  if (typeof targetModules === 'string') return new RegExp(`^(?:${targetModules})$`).test(name);
  return targetModules.some((t) => name === t || name.endsWith('.' + t));
}
