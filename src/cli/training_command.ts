// The frame every training command shares (`medgr2 sft`, `medgr2 grpo`): threads, the --model
// argument, the resolved config saved as OUT/config.json, the trained model saved as OUT/final
// (whole or not at all), one JSON summary line on stdout, and the native model freed on every path.
// In a data-parallel run (`dist`, world size > 1) rank 0 alone writes config.json, final/ and the
// summary (and says things on stderr); every rank loads, trains and disposes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveAdapter } from '../model/peft_adapter';
import type { PeftLayout } from '../model/lora';
import { setNumThreads } from '../index';
import type { TextTokenizer } from '../data/tokenizer';
import type { Model, ModelDtype } from '../model/model';
import { withPixelBounds, type GenerationSettings, type ProcessorSettings } from '../model/folder_settings';
import { replaceDirAtomic } from '../util/atomic_write';
import { assertFiniteWeights } from '../model/finite_weights';
import { saveResolvedConfig } from './config';
import { loadModelArg } from './model_arg';
import type { ProcessGroup } from '../dist/process_group';

export interface TrainingCommandConfig {
  model: string;
  out: string;
  device: string;
  initSeed: number;
  threads: number;
  tokenizer?: string;
  dtype?: ModelDtype;
  /** --min-pixels / --max-pixels: override the model's image processor. */
  minPixels?: number;
  maxPixels?: number;
  /** LoRA runs: also write OUT/merged, a whole model folder with the adapter folded in. */
  merge?: boolean;
  /** LoRA runs: module paths in the saved adapter (src/model/lora.ts). */
  adapterLayout?: PeftLayout;
}

export interface TrainingContext {
  model: Model;
  tokenizer: TextTokenizer;
  tokenizerDir: string;
  /** A progress line on stderr, prefixed with the command's name. */
  say: (message: string) => void;
  /** "loaded DIR (N parameters, device)" or "random-initialized NAME (…)", for the first line. */
  origin: string;
  /** The model's image processor (preprocessor_config.json, else transformers' defaults) with
   *  --min-pixels / --max-pixels applied. */
  processor: ProcessorSettings;
  /** The model folder's generation_config.json (empty without one). */
  generation: GenerationSettings;
}

/**
 * A LoRA run's results: OUT/final as a PEFT adapter folder (with the tokenizer files), and with
 * --merge OUT/merged, the base with the adapter folded in (any HF tool loads it without PEFT).
 */
async function saveLoraResult(
  model: Model,
  cfg: TrainingCommandConfig,
  tokenizerDir: string,
): Promise<{ merged?: string }> {
  const base = model.sourceDir ?? cfg.model;
  await replaceDirAtomic(path.join(cfg.out, 'final'), (tmp) =>
    saveAdapter(model, tmp, {
      spec: model.loraSpec,
      baseModel: path.isAbsolute(base) || !fs.existsSync(base) ? base : path.resolve(base),
      layout: cfg.adapterLayout,
      sourceDir: tokenizerDir,
    }),
  );
  if (!cfg.merge) return {};
  const merged = path.join(cfg.out, 'merged');
  await model.mergeLora();
  await replaceDirAtomic(merged, (tmp) => model.save(tmp, { sourceDir: tokenizerDir }));
  return { merged };
}

/** Runs `train` inside the frame; its summary is printed with `final` (the saved model's folder) added. */
export async function runTrainingCommand(
  name: string,
  cfg: TrainingCommandConfig,
  savedConfig: object,
  train: (ctx: TrainingContext) => Promise<Record<string, unknown>>,
  opts: { dist?: ProcessGroup } = {},
): Promise<void> {
  const isMain = (opts.dist?.rank ?? 0) === 0;
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const { model, tokenizer, tokenizerDir, origin, ...settings } = await loadModelArg(cfg.model, {
    device: cfg.device,
    seed: cfg.initSeed,
    tokenizer: cfg.tokenizer,
    dtype: cfg.dtype,
  });
  try {
    const processor = withPixelBounds(settings.processor, cfg);
    if (isMain) await saveResolvedConfig(cfg.out, savedConfig);
    const say = (m: string) => void (isMain && process.stderr.write(`${name}: ${m}\n`));
    const what = `${origin === 'loaded' ? 'loaded' : 'random-initialized'} ${cfg.model} (${model.info.parameterCount} parameters, ${model.info.device})`;
    const summary = await train({
      model,
      tokenizer,
      tokenizerDir,
      say,
      origin: what,
      processor,
      generation: settings.generation,
    });
    const finalDir = path.join(cfg.out, 'final');
    if (isMain) {
      await assertFiniteWeights(model, finalDir); // names final/, not the temp folder model.save would
      const written = model.hasLora
        ? await saveLoraResult(model, cfg, tokenizerDir)
        : await replaceDirAtomic(finalDir, (tmp) => model.save(tmp, { sourceDir: tokenizerDir })).then(() => ({}));
      process.stdout.write(JSON.stringify({ ...summary, final: finalDir, ...written }) + '\n');
    }
  } finally {
    await model.dispose();
  }
}
