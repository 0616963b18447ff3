// `medgr2 grpo --model M --data FILE --out DIR [...]`: GRPO of the policy on multiple-choice samples
// with verifiable rewards (src/cycle/grpo.ts, src/cycle/rewards.ts). Writes DIR/config.json (the
// resolved options), DIR/metrics.jsonl (one line per step), TensorBoard events in DIR, and the
// trained model in DIR/final. Options: defaults < --config FILE (JSON or YAML) < flags.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import YAML from 'yaml';
import { flattenMetrics, GRPO_DEFAULTS, grpoPromptsFromSamples, plainLineLogger, resolveGrpoOptions, trainGrpo } from '../cycle/grpo';
import type { PromptStyle } from '../cycle/prompts';
import { defaultRewards, loadRewardModule, parseRewardWeights } from '../cycle/rewards';
import { loadSampleFile } from '../data/sample_files';
import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../data/tokenizer';
import { Model, type ModelDevice, type ModelDtype } from '../model/model';
import { TensorBoardWriter } from '../report/tensorboard';
import { parseIntOption } from './options';

function parseNumber(flag: string): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} expects a number, got "${v}"`);
    return n;
  };
}

function oneOf<T extends string>(flag: string, values: readonly T[]): (v: string) => T {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) throw new InvalidArgumentError(`${flag} must be one of ${values.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** Everything the command takes besides the trainer's own options (GRPO_DEFAULTS). */
const CLI_DEFAULTS = {
  model: '',
  data: '',
  out: '',
  tokenizer: '',
  imageRoot: '',
  style: 'answer' as PromptStyle,
  rewardWeights: 'accuracy=1,format=0.5',
  rewardModule: '',
  /** Use only the first N samples (0 = all). */
  limit: 0,
  device: 'cpu' as ModelDevice,
  dtype: '' as ModelDtype | '',
};

type GrpoCliOptions = typeof CLI_DEFAULTS & typeof GRPO_DEFAULTS;

/** A config file's keys are the options' camelCase names; unknown keys are an error naming them. */
function readConfigFile(file: string): Partial<GrpoCliOptions> {
  let value: unknown;
  try {
    const text = fs.readFileSync(file, 'utf8');
    value = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`--config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`--config ${file}: expected an object of options`);
  const known = new Set([...Object.keys(CLI_DEFAULTS), ...Object.keys(GRPO_DEFAULTS)]);
  const unknown = Object.keys(value).filter((k) => !known.has(k));
  if (unknown.length) throw new Error(`--config ${file}: unknown option(s) ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  for (const [k, v] of Object.entries(value)) {
    const want = typeof ({ ...CLI_DEFAULTS, ...GRPO_DEFAULTS } as Record<string, unknown>)[k];
    if (typeof v !== want) throw new Error(`--config ${file}: '${k}' must be a ${want}, got ${JSON.stringify(v)}`);
  }
  return value as Partial<GrpoCliOptions>;
}

export function registerGrpo(program: Command): void {
  const num = parseNumber;
  const int = (f: string) => parseIntOption(f, 1);
  program
    .command('grpo')
    .description('GRPO of a policy on multiple-choice samples: G rollouts per prompt, verifiable rewards (accuracy, format), group advantages')
    .option('--model <dir|config.json>', 'a Hugging Face model folder, or a config.json for a randomly initialized model (tiny configs: configs/models)')
    .option('--data <file>', 'samples: a record file or any importable JSON/JSONL')
    .option('--out <dir>', 'output folder: config.json, metrics.jsonl, TensorBoard events, final/')
    .option('--config <file>', 'options as JSON or YAML (camelCase keys); flags override it')
    .option('--tokenizer <dir>', 'tokenizer folder (default: the model folder, or configs/tokenizer for a config.json)')
    .option('--image-root <dir>', 'relative image paths resolve here (default: the data file\'s folder)')
    .option('--style <style>', 'prompt style: think (<think> then <answer>) or answer (answer only); default answer', oneOf('--style', ['think', 'answer'] as const))
    .option('--group-size <G>', `rollouts per prompt (default ${GRPO_DEFAULTS.groupSize})`, int('--group-size'))
    .option('--prompts-per-step <P>', `prompts (groups) per step (default ${GRPO_DEFAULTS.promptsPerStep})`, int('--prompts-per-step'))
    .option('--steps <N>', `steps (default ${GRPO_DEFAULTS.steps})`, int('--steps'))
    .option('--lr <x>', `peak learning rate (default ${GRPO_DEFAULTS.lr})`, num('--lr'))
    .option('--warmup-steps <n>', 'linear warm-up optimizer steps (default 0)', parseIntOption('--warmup-steps'))
    .option('--schedule <s>', 'constant or cosine (default constant)', oneOf('--schedule', ['constant', 'cosine'] as const))
    .option('--max-grad-norm <x>', `global gradient-norm clip, 0 = off (default ${GRPO_DEFAULTS.maxGradNorm})`, num('--max-grad-norm'))
    .option('--weight-decay <x>', 'AdamW weight decay (default 0)', num('--weight-decay'))
    .option('--beta <x>', 'KL coefficient; 0 loads no reference model (default 0)', num('--beta'))
    .option('--kl <k>', 'KL estimator k1, k2 or k3 (default k3)', oneOf('--kl', ['k1', 'k2', 'k3'] as const))
    .option('--loss-type <t>', 'grpo, bnpo, dr_grpo or dapo (default dapo)', oneOf('--loss-type', ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const))
    .option('--eps-low <x>', 'clip range below 1 (default 0.2)', num('--eps-low'))
    .option('--eps-high <x>', 'clip range above 1 (default: --eps-low; DAPO uses 0.28)', num('--eps-high'))
    .option('--num-iterations <n>', 'update passes over each step\'s rollouts (default 1)', int('--num-iterations'))
    .option('--advantage-scale <s>', 'group, batch or none (Dr. GRPO) (default group)', oneOf('--advantage-scale', ['group', 'batch', 'none'] as const))
    .option('--temperature <x>', 'sampling temperature (default 1)', num('--temperature'))
    .option('--top-p <x>', 'nucleus sampling (default 1 = off)', num('--top-p'))
    .option('--top-k <n>', 'top-k sampling (default 0 = off)', parseIntOption('--top-k'))
    .option('--max-new-tokens <n>', `completion length limit (default ${GRPO_DEFAULTS.maxNewTokens})`, int('--max-new-tokens'))
    .option('--token-budget <n>', `most tokens in one training micro-batch (default ${GRPO_DEFAULTS.tokenBudget})`, int('--token-budget'))
    .option('--generation-batch <n>', `most sequences in one generation call (default ${GRPO_DEFAULTS.generationBatch})`, int('--generation-batch'))
    .option('--dynamic-sampling', 'DAPO: drop groups whose rewards are all equal and draw more prompts')
    .option('--max-sampling-rounds <n>', `generation rounds per step at most with --dynamic-sampling (default ${GRPO_DEFAULTS.maxSamplingRounds})`, int('--max-sampling-rounds'))
    .option('--old-logp <how>', 'rollout (the generation\'s log-probs) or recompute (one more forward)', oneOf('--old-logp', ['rollout', 'recompute'] as const))
    .option('--reward-weights <list>', 'weights by reward name, e.g. accuracy=1,format=0.5 (0 drops a term; also weights --reward-module terms)')
    .option('--reward-module <file>', 'a JS module exporting reward functions (default or named): (completion, prompt) => number')
    .option('--limit <n>', 'use only the first N samples', parseIntOption('--limit'))
    .option('--seed <s>', 'seed of prompt order, sampling and model init', parseIntOption('--seed', -(2 ** 31)))
    .option('--device <d>', 'cpu, cuda or cuda:N (default cpu)')
    .option('--dtype <t>', 'float32, bfloat16, float16 (default: the checkpoint\'s)', oneOf('--dtype', ['float32', 'bfloat16', 'float16', 'float64'] as const))
    .action(async (flags: Partial<GrpoCliOptions> & { config?: string; dynamicSampling?: boolean }) => {
      const { config, ...given } = flags;
      const fromFile = config ? readConfigFile(config) : {};
      const o = { ...CLI_DEFAULTS, ...GRPO_DEFAULTS, ...fromFile } as GrpoCliOptions;
      for (const [k, v] of Object.entries(given)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
      if (fromFile.epsHigh === undefined && given.epsHigh === undefined) o.epsHigh = o.epsLow;
      for (const k of ['model', 'data', 'out'] as const) if (!o[k]) throw new Error(`--${k} is required (or '${k}' in --config)`);
      await runGrpo(o);
    });
}

async function runGrpo(o: GrpoCliOptions): Promise<void> {
  const trainer = resolveGrpoOptions(Object.fromEntries(Object.keys(GRPO_DEFAULTS).map((k) => [k, (o as Record<string, unknown>)[k]])));
  const weights = parseRewardWeights(o.rewardWeights);
  const rewards = defaultRewards(o.style, weights);
  if (o.rewardModule) rewards.push(...(await loadRewardModule(o.rewardModule, weights)));
  if (rewards.length === 0) throw new Error('--reward-weights: every reward term has weight 0');

  let samples = loadSampleFile(o.data);
  if (o.limit > 0) samples = samples.slice(0, o.limit);
  const bad = samples.filter((s) => s.options.length < 2);
  if (bad.length) throw new Error(`${o.data}: ${bad.length} sample(s) have no answer options (GRPO needs multiple choice), e.g. '${bad[0].id}'`);
  const prompts = grpoPromptsFromSamples(samples, o.style);

  const isConfig = /\.json$/i.test(o.model) && fs.existsSync(o.model) && fs.statSync(o.model).isFile();
  const dtype = o.dtype || undefined;
  const model = isConfig ? await Model.create(o.model, { seed: o.seed, device: o.device, dtype }) : await Model.load(o.model, { device: o.device, dtype });
  const tokDir = o.tokenizer || (isConfig ? DEFAULT_TOKENIZER_DIR : o.model);
  const tok = TextTokenizer.load(tokDir);
  if (tok.vocabSize > model.config.text.vocabSize) {
    throw new Error(`${tokDir}: the tokenizer has ${tok.vocabSize} tokens, the model's vocabulary only ${model.config.text.vocabSize}`);
  }

  fs.mkdirSync(o.out, { recursive: true });
  const resolved = { ...o, ...trainer, rewards: rewards.map((r) => ({ name: r.name, weight: r.weight })), prompts: prompts.length };
  fs.writeFileSync(path.join(o.out, 'config.json'), JSON.stringify(resolved, null, 2) + '\n');
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  fs.writeFileSync(metricsFile, '');
  const tb = new TensorBoardWriter(o.out);
  const line = plainLineLogger(undefined, trainer.steps);
  process.stderr.write(`medgr2 grpo: ${prompts.length} prompts, ${trainer.steps} steps x ${trainer.promptsPerStep} prompts x ${trainer.groupSize} rollouts, rewards ${rewards.map((r) => `${r.name}=${r.weight}`).join(',')}\n`);
  try {
    await trainGrpo(model, prompts, rewards, { ...trainer, tokenizer: tok, images: { imageRoot: o.imageRoot || path.dirname(path.resolve(o.data)) } }, {
      onStep: async (m) => {
        const flat = flattenMetrics(m);
        fs.appendFileSync(metricsFile, JSON.stringify(m) + '\n');
        tb.scalars(flat, m.step);
        tb.flush();
        await line.onStep?.(m);
      },
    });
  } finally {
    tb.close();
  }
  const finalDir = path.join(o.out, 'final');
  await model.save(finalDir, { sourceDir: isConfig ? tokDir : undefined });
  process.stderr.write(`medgr2 grpo: saved ${finalDir}\n`);
  await model.dispose();
}
