// `medgr2 eval --model DIR --benchmark FILE --out PREDICTIONS.jsonl [--style think|answer] [--json]`:
// greedy answers of a policy on a benchmark (src/eval/evaluate.ts), written as predictions JSONL
// (question_id, model_answer, raw) that `medgr2 eval score` reads, and the score table printed.
// Images go through the model folder's preprocessor_config.json (--min-pixels/--max-pixels override);
// replies stop at generation_config.json's eos ids.
import type { Command } from 'commander';
import { setNumThreads } from '../index';
import { evaluatePolicy, writePredictions } from '../eval/evaluate';

import { formatScoreTable } from '../eval/scorer';
import { addConfigOptions, resolveConfig, type ConfigSchema } from './config';
import { loadModelArg, PIXEL_BOUNDS_SCHEMA } from './model_arg';
import { stopTokensOf, withPixelBounds } from '../model/folder_settings';
import { loadSampleData } from './sample_data';
import { type PromptStyle } from '../eval/policy_prompt';

export const EVAL_SCHEMA: ConfigSchema = [
  { key: 'model', type: 'string', required: true, valueName: '<dir>', help: 'the policy: a model folder' },
  {
    key: 'benchmark',
    type: 'string',
    required: true,
    valueName: '<file>',
    help: 'benchmark samples: a record file or any importable JSON/JSONL',
  },
  { key: 'out', type: 'string', required: true, valueName: '<file>', help: 'predictions JSONL to write' },
  {
    key: 'style',
    type: 'string',
    default: 'answer',
    choices: ['answer', 'think'],
    help: 'prompt format: answer-only, or think first',
  },
  {
    key: 'maxNewTokens',
    type: 'int',
    default: 0,
    min: 0,
    help: 'most generated tokens per answer (0: 16 answer-only, 256 think)',
  },
  {
    key: 'repetitionPenalty',
    type: 'number',
    min: 0,
    help: "HF's repetition penalty, > 0 (default: the model folder's generation_config.json, else 1: off)",
  },
  { key: 'batchSize', type: 'int', default: 16, min: 1, help: 'prompts per generate call' },
  {
    key: 'imageRoot',
    type: 'string',
    valueName: '<dir>',
    help: "relative image paths resolve here (default: the benchmark file's folder)",
  },
  ...PIXEL_BOUNDS_SCHEMA,
  {
    key: 'tokenizer',
    type: 'string',
    valueName: '<dir>',
    help: "tokenizer folder (default: the model folder's, else configs/tokenizer)",
  },
  { key: 'task', type: 'string', valueName: '<names>', help: 'only these tasks (comma-separated)' },
  { key: 'modality', type: 'string', valueName: '<names>', help: 'only these modalities (comma-separated)' },
  { key: 'limit', type: 'int', default: 0, min: 0, help: 'only the first N samples (0: all)' },
  { key: 'device', type: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  { key: 'threads', type: 'int', default: 0, min: 0, help: 'libtorch intra-op threads (0: its default)' },
  { key: 'json', type: 'boolean', default: false, help: 'print the score as one JSON object' },
  { key: 'markdown', type: 'boolean', default: false, help: 'print markdown tables' },
];

interface EvalCliConfig {
  model: string;
  benchmark: string;
  out: string;
  style: PromptStyle;
  maxNewTokens: number;
  repetitionPenalty?: number;
  batchSize: number;
  imageRoot?: string;
  minPixels?: number;
  maxPixels?: number;
  tokenizer?: string;
  task?: string;
  modality?: string;
  limit: number;
  device: string;
  threads: number;
  json: boolean;
  markdown: boolean;
}

export async function runEval(cfg: EvalCliConfig): Promise<void> {
  if (cfg.json && cfg.markdown) throw new Error('--json and --markdown exclude each other');
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  if (cfg.repetitionPenalty !== undefined && !(cfg.repetitionPenalty > 0))
    throw new Error(`--repetition-penalty must be > 0 (1: off), got ${cfg.repetitionPenalty}`);
  const samples = loadSampleData(cfg.benchmark, {
    flag: '--benchmark',
    imageRoot: cfg.imageRoot,
    task: cfg.task,
    modality: cfg.modality,
    limit: cfg.limit,
  });
  const { model, tokenizer, processor, generation } = await loadModelArg(cfg.model, {
    device: cfg.device,
    tokenizer: cfg.tokenizer,
    allowRandom: false,
  });
  try {
    const { predictions, score } = await evaluatePolicy(model, samples, {
      style: cfg.style,
      maxNewTokens: cfg.maxNewTokens || undefined,
      batchSize: cfg.batchSize,
      tokenizer,
      progress: true,
      imageOptions: withPixelBounds(processor, cfg),
      // Greedy whatever generation_config.json's sampling says (benchmark accuracy must not depend on a
      // draw), but with its stop tokens and repetition penalty, which shape the greedy reply itself.
      stopTokens: stopTokensOf(generation, [tokenizer.special.imEnd, tokenizer.special.endOfText]),
      repetitionPenalty: cfg.repetitionPenalty ?? generation.repetitionPenalty,
    });
    writePredictions(cfg.out, predictions);
    process.stdout.write(
      (cfg.json ? JSON.stringify(score) : formatScoreTable(score, cfg.markdown ? 'markdown' : 'text')) + '\n',
    );
  } finally {
    await model.dispose();
  }
}

/** Adds the options and action of `medgr2 eval` itself (its subcommands, e.g. `score`, stay as they are). */
export function registerEvalRun(evalCmd: Command): void {
  addConfigOptions(evalCmd, EVAL_SCHEMA);
  evalCmd.action(async () => {
    await runEval(resolveConfig<EvalCliConfig>(evalCmd, EVAL_SCHEMA));
  });
}
