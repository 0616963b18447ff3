// The LoRA options every training command takes (`medgr2 sft`, `medgr2 grpo`, `medgr2 cycle`):
// --lora-rank > 0 trains adapters only, written in PEFT's format (src/model/peft_adapter.ts).
import { DECODER_PROJECTIONS, resolveLoraSpec, type LoraSpec, type PeftLayout } from '../model/lora';
import type { ConfigSchema } from './config';

export const LORA_SCHEMA: ConfigSchema = [
  {
    key: 'loraRank',
    type: 'int',
    default: 0,
    min: 0,
    help: 'LoRA rank r: > 0 trains adapters only (the base frozen) and saves them in PEFT format; 0: full fine-tuning',
  },
  {
    key: 'loraAlpha',
    type: 'number',
    min: 0,
    help: 'LoRA alpha; the update is scaled by alpha / r (default: 2 x rank)',
  },
  { key: 'loraDropout', type: 'number', default: 0, min: 0, max: 0.99, help: "dropout on the adapters' input" },
  {
    key: 'loraTargets',
    type: 'string',
    default: DECODER_PROJECTIONS.join(','),
    valueName: '<names>',
    help: 'decoder projections given adapters (comma-separated)',
  },
  { key: 'loraVision', type: 'boolean', default: false, help: "also adapt the vision blocks' linears" },
  { key: 'loraMerger', type: 'boolean', default: false, help: "also adapt the vision-language merger's linears" },
  {
    key: 'merge',
    type: 'boolean',
    default: false,
    help: 'with --lora-rank: also write OUT/merged, the whole model with the adapter folded in',
  },
  {
    key: 'adapterLayout',
    type: 'string',
    default: 'current',
    choices: ['current', 'legacy'],
    help: "module paths in saved adapters: transformers >= 4.52 ('current') or older ('legacy')",
  },
];

export interface LoraCliConfig {
  loraRank: number;
  loraAlpha?: number;
  loraDropout: number;
  loraTargets: string;
  loraVision: boolean;
  loraMerger: boolean;
  merge: boolean;
  adapterLayout: PeftLayout;
}

/** The LoRA spec the flags ask for, or undefined without --lora-rank. Errors name the flag. */
export function loraSpecFromCli(cfg: LoraCliConfig): LoraSpec | undefined {
  if (!(cfg.loraRank > 0)) return undefined;
  const targets = cfg.loraTargets
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  try {
    return resolveLoraSpec({
      rank: cfg.loraRank,
      alpha: cfg.loraAlpha ?? 2 * cfg.loraRank,
      dropout: cfg.loraDropout,
      targets,
      vision: cfg.loraVision,
      merger: cfg.loraMerger,
    });
  } catch (e) {
    throw new Error(`--lora-*: ${(e as Error).message}`);
  }
}
