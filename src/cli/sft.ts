// `medgr2 sft --model M --data FILE --out DIR [--eval-data FILE] [--resume] [--config FILE] [...]`:
// supervised fine-tuning of the policy on labelled samples (src/train/sft.ts). Writes into DIR:
// config.json (the resolved options), metrics.jsonl, tensorboard/, checkpoints/step-N/, final/ (a
// Hugging Face model folder with the tokenizer files).
import type { Command } from 'commander';
import { evaluatePolicy } from '../eval/evaluate';

import { SFT_DEFAULTS, sftExamplesFromSamples, trainSft, type SftOptions } from '../train/sft';
import { addConfigOptions, resolveConfig, type ConfigSchema } from './config';
import { runTrainingCommand } from './training_command';
import { loadSampleData, requireLabels } from './sample_data';
import { type PromptStyle } from '../eval/policy_prompt';
import { DecodedImages } from '../model/encode';
import type { ProcessGroup } from '../dist/process_group';
import { LORA_SCHEMA, loraSpecFromCli, type LoraCliConfig } from './lora_options';
import { RANKS_SCHEMA, withRanks, type RanksConfig } from './ranks';
import { PIXEL_BOUNDS_SCHEMA } from './model_arg';
import { stopTokensOf } from '../model/folder_settings';

const D = SFT_DEFAULTS;

/** Every option of `medgr2 sft`, flat, with its default: also the keys of a --config file. */
export const SFT_SCHEMA: ConfigSchema = [
  // what to train, on what, where
  {
    key: 'model',
    type: 'string',
    required: true,
    valueName: '<dir|config.json|tiny-qwen2-vl>',
    help: 'model folder, a config.json (random init), or tiny-qwen2-vl / tiny-qwen2.5-vl',
  },
  {
    key: 'data',
    type: 'string',
    required: true,
    valueName: '<file>',
    help: 'training samples: a record file or any importable JSON/JSONL',
  },
  {
    key: 'evalData',
    type: 'string',
    valueName: '<file>',
    help: 'held-out samples for the eval loss (and accuracy with --eval-accuracy)',
  },
  {
    key: 'out',
    type: 'string',
    required: true,
    valueName: '<dir>',
    help: 'run folder: config.json, metrics.jsonl, tensorboard/, checkpoints/, final/',
  },
  { key: 'resume', type: 'boolean', default: false, help: 'continue from the newest checkpoint in --out' },
  {
    key: 'resumeFrom',
    type: 'string',
    valueName: '<dir|step>',
    help: 'continue from this checkpoint folder or step of --out',
  },
  {
    key: 'imageRoot',
    type: 'string',
    valueName: '<dir>',
    help: "relative image paths resolve here (default: each data file's folder)",
  },
  ...PIXEL_BOUNDS_SCHEMA,
  {
    key: 'tokenizer',
    type: 'string',
    valueName: '<dir>',
    help: "tokenizer folder (default: the model folder's, else configs/tokenizer)",
  },
  {
    key: 'task',
    type: 'string',
    valueName: '<names>',
    help: 'train and evaluate only on these tasks (comma-separated)',
  },
  {
    key: 'modality',
    type: 'string',
    valueName: '<names>',
    help: 'train and evaluate only on these modalities (comma-separated)',
  },
  {
    key: 'style',
    type: 'string',
    default: 'answer',
    choices: ['answer', 'think'],
    help: 'reply format taught: answer-only, or a rationale in <think> first',
  },
  {
    key: 'answer',
    type: 'string',
    default: 'letter',
    choices: ['letter', 'text'],
    help: "inside <answer>: the option's letter, or its text",
  },
  { key: 'device', type: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  { key: 'initSeed', type: 'int', default: 0, help: 'seed of the random init when --model is a config' },
  { key: 'threads', type: 'int', default: 0, min: 0, help: 'libtorch intra-op threads (0: its default)' },
  // several ranks (src/cli/ranks.ts)
  ...RANKS_SCHEMA,
  // LoRA (src/cli/lora_options.ts)
  ...LORA_SCHEMA,
  // optimization
  { key: 'lr', type: 'number', default: D.lr, min: 0, help: 'peak learning rate (AdamW)' },
  {
    key: 'warmupRatio',
    type: 'number',
    default: D.warmupRatio,
    min: 0,
    max: 1,
    help: 'linear warm-up as a fraction of all steps',
  },
  {
    key: 'warmupSteps',
    type: 'int',
    default: D.warmupSteps,
    min: 0,
    help: 'warm-up steps (> 0 overrides --warmup-ratio)',
  },
  {
    key: 'minLrRatio',
    type: 'number',
    default: D.minLrRatio,
    min: 0,
    max: 1,
    help: 'cosine decay ends at this fraction of --lr',
  },
  { key: 'weightDecay', type: 'number', default: D.weightDecay, min: 0, help: 'AdamW weight decay' },
  { key: 'beta1', type: 'number', default: D.beta1, min: 0, max: 1, help: 'AdamW beta1' },
  { key: 'beta2', type: 'number', default: D.beta2, min: 0, max: 1, help: 'AdamW beta2' },
  { key: 'eps', type: 'number', default: D.eps, min: 0, help: 'AdamW epsilon' },
  { key: 'maxGradNorm', type: 'number', default: D.maxGradNorm, min: 0, help: 'global gradient-norm clip (0: none)' },
  {
    key: 'maxSkippedSteps',
    type: 'int',
    default: D.maxSkippedSteps,
    min: 1,
    help: 'updates with a NaN/infinite loss or gradient norm are skipped; this many in a row stop the run',
  },
  // length and batching
  { key: 'epochs', type: 'int', default: D.epochs, min: 0, help: 'passes over the data' },
  { key: 'maxSteps', type: 'int', default: D.maxSteps, min: 0, help: 'optimizer steps (> 0 overrides --epochs)' },
  { key: 'tokenBudget', type: 'int', default: D.tokenBudget, min: 1, help: 'most tokens in one packed micro-batch' },
  {
    key: 'globalTokens',
    type: 'int',
    default: D.globalTokens,
    min: 0,
    help: 'target tokens per optimizer step (micro-batches accumulate; 0: one micro-batch per step)',
  },
  { key: 'seed', type: 'int', default: D.seed, help: 'seed of the data order' },
  // what trains
  { key: 'freezeVision', type: 'boolean', default: D.freezeVision, help: 'freeze the vision tower' },
  { key: 'freezeMerger', type: 'boolean', default: D.freezeMerger, help: 'freeze the vision-language merger' },
  { key: 'freezeLm', type: 'boolean', default: D.freezeLm, help: 'freeze the language model' },
  {
    key: 'recomputeActivations',
    type: 'boolean',
    default: D.recomputeActivations,
    help: 'recompute layer activations in backward (saves memory)',
  },
  // evaluation, checkpoints, logs
  { key: 'evalEvery', type: 'int', default: D.evalEvery, min: 0, help: 'evaluate every N steps (0: only at the end)' },
  {
    key: 'evalAccuracy',
    type: 'boolean',
    default: false,
    help: 'also generate answers on --eval-data and log accuracy',
  },
  { key: 'evalLimit', type: 'int', default: 0, min: 0, help: 'use only the first N eval samples (0: all)' },
  {
    key: 'maxNewTokens',
    type: 'int',
    default: 0,
    min: 0,
    help: 'generation length for --eval-accuracy (0: 16 answer-only, 256 think)',
  },
  { key: 'evalBatchSize', type: 'int', default: 16, min: 1, help: 'prompts per generate call for --eval-accuracy' },
  {
    key: 'saveEvery',
    type: 'int',
    default: D.saveEvery,
    min: 0,
    help: 'checkpoint every N steps (0: only at the end)',
  },
  { key: 'keepLast', type: 'int', default: D.keepLast, min: 0, help: 'checkpoints kept (0: all)' },
  { key: 'logEvery', type: 'int', default: D.logEvery, min: 1, help: 'metrics every N steps' },
];

export interface SftCliConfig extends RanksConfig, LoraCliConfig {
  model: string;
  data: string;
  evalData?: string;
  out: string;
  resume: boolean;
  resumeFrom?: string;
  imageRoot?: string;
  minPixels?: number;
  maxPixels?: number;
  tokenizer?: string;
  task?: string;
  modality?: string;
  style: PromptStyle;
  answer: 'letter' | 'text';
  device: string;
  initSeed: number;
  threads: number;
  evalAccuracy: boolean;
  evalLimit: number;
  maxNewTokens: number;
  evalBatchSize: number;
  [key: string]: unknown;
}

export async function runSft(cfg: SftCliConfig): Promise<void> {
  const trainSamples = loadSampleData(cfg.data, {
    flag: '--data',
    imageRoot: cfg.imageRoot,
    task: cfg.task,
    modality: cfg.modality,
  });
  requireLabels(trainSamples, cfg.data, '--data');
  const evalSamples = cfg.evalData
    ? loadSampleData(cfg.evalData, {
        flag: '--eval-data',
        imageRoot: cfg.imageRoot,
        task: cfg.task,
        modality: cfg.modality,
        limit: cfg.evalLimit,
      })
    : undefined;
  if (evalSamples) requireLabels(evalSamples, cfg.evalData as string, '--eval-data');
  if (cfg.evalAccuracy && !evalSamples) throw new Error('--eval-accuracy needs --eval-data');

  await withRanks('sft', cfg, (c, dist) => runSftIn(c, trainSamples, evalSamples, dist));
}

async function runSftIn(
  cfg: SftCliConfig,
  trainSamples: ReturnType<typeof loadSampleData>,
  evalSamples: ReturnType<typeof loadSampleData> | undefined,
  dist: ProcessGroup | undefined,
): Promise<void> {
  const lora = loraSpecFromCli(cfg); // checked before the model loads
  await runTrainingCommand(
    'sft',
    cfg,
    cfg,
    async ({ model, tokenizer, tokenizerDir, say, origin, processor, generation }) => {
      say(
        `${origin}; ${trainSamples.length} training samples${evalSamples ? `, ${evalSamples.length} eval samples` : ''}`,
      );
      const images = new DecodedImages(undefined, processor);
      const opts: Partial<SftOptions> = {};
      for (const k of Object.keys(SFT_DEFAULTS) as (keyof SftOptions)[])
        if (cfg[k] !== undefined) (opts as Record<string, unknown>)[k] = cfg[k];
      const result = await trainSft(
        model,
        sftExamplesFromSamples(trainSamples, cfg.style, { answer: cfg.answer }),
        {
          ...opts,
          out: cfg.out,
          resume: cfg.resumeFrom ?? (cfg.resume ? true : undefined),
          evalExamples: evalSamples
            ? sftExamplesFromSamples(evalSamples, cfg.style, { answer: cfg.answer })
            : undefined,
          imageOptions: processor,
          tokenizer,
          tokenizerDir,
          dist,
          lora,
        },
        {
          evaluate:
            cfg.evalAccuracy && evalSamples
              ? async (m) => {
                  const { score } = await evaluatePolicy(m, evalSamples, {
                    style: cfg.style,
                    maxNewTokens: cfg.maxNewTokens || undefined,
                    batchSize: cfg.evalBatchSize,
                    tokenizer,
                    images,
                    // as `medgr2 eval` decodes: greedy, the folder's stop tokens and repetition penalty
                    stopTokens: stopTokensOf(generation, [tokenizer.special.imEnd, tokenizer.special.endOfText]),
                    repetitionPenalty: generation.repetitionPenalty,
                  });
                  return { accuracy: score.overall.accuracy, invalid: score.invalid, macro_f1: score.macroF1 };
                }
              : undefined,
          onEval: (r) => {
            const parts = [`step ${r.step}`];
            if (Number.isFinite(r.loss)) parts.push(`eval loss ${r.loss.toFixed(4)}`);
            for (const [k, v] of Object.entries(r.metrics))
              parts.push(`${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
            say(parts.join(', '));
          },
        },
      );
      const last = result.history[result.history.length - 1];
      const lastEval = result.evals[result.evals.length - 1];
      return {
        steps: result.steps,
        resumedFrom: result.resumedFrom,
        skippedSteps: result.skippedSteps,
        trainLoss: last?.loss ?? null,
        evalLoss: lastEval && Number.isFinite(lastEval.loss) ? lastEval.loss : null,
        ...(lastEval ? Object.fromEntries(Object.entries(lastEval.metrics).map(([k, v]) => [`eval_${k}`, v])) : {}),
        ...(dist ? { worldSize: dist.worldSize } : {}),
      };
    },
    { dist },
  );
}

export function registerSft(program: Command): void {
  const cmd = program
    .command('sft')
    .description(
      'supervised fine-tuning of the policy on labelled samples (packed batches, AdamW, warm-up + cosine, checkpoints, exact resume)',
    );
  addConfigOptions(cmd, SFT_SCHEMA);
  cmd.action(async () => {
    await runSft(resolveConfig<SftCliConfig>(cmd, SFT_SCHEMA));
  });
}
