// `medgr2 grpo --model M --data FILE --out DIR [--resume] [--config FILE] [...]`: GRPO of the policy
// on multiple-choice samples with verifiable rewards (src/train/grpo_trainer.ts, src/train/rewards.ts).
// Writes into DIR: config.json (the resolved options, readable back by --config), metrics.jsonl,
// tensorboard/, checkpoints/step-N/, final/ (a Hugging Face model folder with the tokenizer files).
// Options: defaults < --config FILE (JSON or YAML) < flags (src/cli/config.ts).
import type { Command } from 'commander';
import { trainGrpo } from '../train/grpo_trainer';

import { defaultRewards, loadRewardModule, parseRewardWeights } from '../train/rewards';
import type { ModelDtype } from '../model/model';
import { addConfigOptions, resolveConfig, type ConfigSchema } from './config';
import { runTrainingCommand } from './training_command';
import { LORA_SCHEMA, loraSpecFromCli, type LoraCliConfig } from './lora_options';
import { RANKS_SCHEMA, withRanks, type RanksConfig } from './ranks';
import { loadSampleData } from './sample_data';
import { type PromptStyle } from '../eval/policy_prompt';
import { GRPO_DEFAULTS, resolveGrpoOptions, type ResolvedGrpoOptions } from '../train/grpo_options';
import { grpoPromptsFromSamples } from '../train/grpo_rollout';
import { type GrpoStepMetrics } from '../train/grpo_metrics';
import { PIXEL_BOUNDS_SCHEMA } from './model_arg';
import { stopTokensOf } from '../model/folder_settings';

const D = GRPO_DEFAULTS;

/** Every option of `medgr2 grpo`, flat, with its default: also the keys of a --config file. */
export const GRPO_SCHEMA: ConfigSchema = [
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
    help: 'multiple-choice samples: a record file or any importable JSON/JSONL',
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
    help: "relative image paths resolve here (default: the data file's folder)",
  },
  ...PIXEL_BOUNDS_SCHEMA,
  {
    key: 'tokenizer',
    type: 'string',
    valueName: '<dir>',
    help: "tokenizer folder (default: the model folder's, else configs/tokenizer)",
  },
  { key: 'task', type: 'string', valueName: '<names>', help: 'train only on these tasks (comma-separated)' },
  { key: 'modality', type: 'string', valueName: '<names>', help: 'train only on these modalities (comma-separated)' },
  { key: 'limit', type: 'int', default: 0, min: 0, help: 'use only the first N samples (0: all)' },
  {
    key: 'style',
    type: 'string',
    default: 'answer',
    choices: ['answer', 'think'],
    help: 'prompt style: answer-only, or <think> then <answer>',
  },
  {
    key: 'rewardWeights',
    type: 'string',
    default: 'accuracy=1,format=0.5',
    valueName: '<list>',
    help: 'weights by reward name (0 drops a term; also weights --reward-module terms)',
  },
  {
    key: 'rewardModule',
    type: 'string',
    valueName: '<file>',
    help: 'a JS module exporting reward functions (default or named): (completion, prompt) => number',
  },
  { key: 'device', type: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  // several ranks (src/cli/ranks.ts)
  ...RANKS_SCHEMA,
  // LoRA (src/cli/lora_options.ts)
  ...LORA_SCHEMA,
  {
    key: 'dtype',
    type: 'string',
    choices: ['float32', 'bfloat16', 'float16', 'float64'],
    valueName: '<t>',
    help: "weights' dtype (default: the checkpoint's)",
  },
  { key: 'initSeed', type: 'int', default: 0, help: 'seed of the random init when --model is a config' },
  { key: 'threads', type: 'int', default: 0, min: 0, help: 'libtorch intra-op threads (0: its default)' },
  // length, groups, sampling: the trainer's own defaults, not generation_config.json's, as TRL and verl
  // sample (a chat model's top_k 1 / temperature 0.1 would make every completion of a group the same)
  { key: 'steps', type: 'int', default: D.steps, min: 1, help: 'GRPO steps' },
  { key: 'promptsPerStep', type: 'int', default: D.promptsPerStep, min: 1, help: 'prompts (groups) per step' },
  { key: 'groupSize', type: 'int', default: D.groupSize, min: 2, help: 'rollouts per prompt (G)' },
  { key: 'maxNewTokens', type: 'int', default: D.maxNewTokens, min: 1, help: 'completion length limit' },
  { key: 'temperature', type: 'number', default: D.temperature, help: 'sampling temperature (> 0)' },
  { key: 'topP', type: 'number', default: D.topP, min: 0, max: 1, help: 'nucleus sampling (1: off)' },
  { key: 'topK', type: 'int', default: D.topK, min: 0, help: 'top-k sampling (0: off)' },
  {
    key: 'repetitionPenalty',
    type: 'number',
    default: D.repetitionPenalty,
    min: 0,
    help: "HF's repetition penalty on the rollouts (1: off; > 0)",
  },
  { key: 'seed', type: 'int', default: D.seed, help: 'seed of the prompt order and the rollout sampling' },
  {
    key: 'dynamicSampling',
    type: 'boolean',
    default: D.dynamicSampling,
    help: 'DAPO: drop groups whose rewards are all equal and draw more prompts',
  },
  {
    key: 'maxSamplingRounds',
    type: 'int',
    default: D.maxSamplingRounds,
    min: 1,
    help: 'generation rounds per step at most with --dynamic-sampling',
  },
  {
    key: 'generationBatch',
    type: 'int',
    default: D.generationBatch,
    min: 1,
    help: 'most sequences in one generation call',
  },
  // optimization
  { key: 'lr', type: 'number', default: D.lr, min: 0, help: 'peak learning rate (AdamW)' },
  { key: 'warmupSteps', type: 'int', default: D.warmupSteps, min: 0, help: 'linear warm-up optimizer steps' },
  {
    key: 'schedule',
    type: 'string',
    default: D.schedule,
    choices: ['constant', 'cosine'],
    help: 'lr after the warm-up',
  },
  {
    key: 'minLrRatio',
    type: 'number',
    default: D.minLrRatio,
    min: 0,
    max: 1,
    help: 'cosine decays to this fraction of --lr',
  },
  { key: 'weightDecay', type: 'number', default: D.weightDecay, min: 0, help: 'AdamW weight decay' },
  { key: 'adamBeta1', type: 'number', default: D.adamBeta1, min: 0, max: 1, help: 'AdamW beta1' },
  { key: 'adamBeta2', type: 'number', default: D.adamBeta2, min: 0, max: 1, help: 'AdamW beta2' },
  { key: 'maxGradNorm', type: 'number', default: D.maxGradNorm, min: 0, help: 'global gradient-norm clip (0: none)' },
  // the loss
  { key: 'beta', type: 'number', default: D.beta, min: 0, help: 'KL coefficient; 0 loads no reference model' },
  { key: 'kl', type: 'string', default: D.kl, choices: ['k1', 'k2', 'k3'], help: 'KL estimator' },
  {
    key: 'lossType',
    type: 'string',
    default: D.lossType,
    choices: ['grpo', 'bnpo', 'dr_grpo', 'dapo'],
    help: 'loss normalization',
  },
  { key: 'epsLow', type: 'number', default: D.epsLow, min: 0, help: 'clip range below 1' },
  { key: 'epsHigh', type: 'number', min: 0, help: 'clip range above 1 (default: --eps-low; DAPO uses 0.28)' },
  {
    key: 'numIterations',
    type: 'int',
    default: D.numIterations,
    min: 1,
    help: "update passes over each step's rollouts",
  },
  {
    key: 'advantageScale',
    type: 'string',
    default: D.advantageScale,
    choices: ['group', 'batch', 'none'],
    help: 'advantage std normalization (none: Dr. GRPO)',
  },
  {
    key: 'advantageEps',
    type: 'number',
    default: D.advantageEps,
    min: 0,
    help: 'added to the std of the advantage normalization',
  },
  { key: 'tokenBudget', type: 'int', default: D.tokenBudget, min: 1, help: 'most tokens in one training micro-batch' },
  {
    key: 'oldLogp',
    type: 'string',
    default: D.oldLogp,
    choices: ['rollout', 'recompute'],
    help: "old log-probs: the generation's, or one more forward",
  },
  // the loss's variants (docs/GRPO.md)
  {
    key: 'importanceSamplingLevel',
    type: 'string',
    default: D.importanceSamplingLevel,
    choices: ['token', 'sequence'],
    help: 'importance ratio per token, or per sequence (GSPO)',
  },
  {
    key: 'delta',
    type: 'number',
    default: D.delta,
    min: 0,
    help: 'two-sided clipping: cap the ratio at delta (> 1 + eps-high; 0: off)',
  },
  {
    key: 'policyLoss',
    type: 'string',
    default: D.policyLoss,
    choices: ['clip', 'cispo'],
    help: "PPO's clipped surrogate, or CISPO's clipped importance weight",
  },
  // overlong completions (DAPO), entropy, KL in the reward, rollout/trainer mismatch
  {
    key: 'maskTruncatedCompletions',
    type: 'boolean',
    default: D.maskTruncatedCompletions,
    help: 'a completion cut by --max-new-tokens gets no loss (DAPO overlong filtering)',
  },
  {
    key: 'overlongBuffer',
    type: 'int',
    default: D.overlongBuffer,
    min: 0,
    help: 'soft overlong penalty over the last N tokens before --max-new-tokens (0: off)',
  },
  {
    key: 'overlongPenaltyFactor',
    type: 'number',
    default: D.overlongPenaltyFactor,
    min: 0,
    help: 'weight of the overlong penalty in the reward',
  },
  {
    key: 'klInReward',
    type: 'number',
    default: D.klInReward,
    min: 0,
    help: "subtract this x each completion's summed KL to the reference from its reward (0: off)",
  },
  { key: 'entropyCoef', type: 'number', default: D.entropyCoef, help: 'entropy bonus coefficient (0: off)' },
  {
    key: 'entropyTopQuantile',
    type: 'number',
    default: D.entropyTopQuantile,
    min: 0,
    max: 1,
    help: 'only the top-q tokens by entropy get policy gradient (1: all; 0.2: the 80/20 rule)',
  },
  {
    key: 'tisCap',
    type: 'number',
    default: D.tisCap,
    min: 0,
    help: 'truncated importance sampling: weight tokens by min(exp(old - rollout), cap); needs --old-logp recompute (0: off)',
  },
  {
    key: 'maxSkippedSteps',
    type: 'int',
    default: D.maxSkippedSteps,
    min: 1,
    help: 'consecutive updates skipped for a non-finite loss or gradient norm that stop the run',
  },
  {
    key: 'warnEvery',
    type: 'int',
    default: D.warnEvery,
    min: 1,
    help: 'repeat a warning (zero reward variance, truncation, clipping) at most once per N steps',
  },
  // checkpoints
  {
    key: 'saveEvery',
    type: 'int',
    default: D.saveEvery,
    min: 0,
    help: 'checkpoint every N steps (0: only at the end)',
  },
  { key: 'keepLast', type: 'int', default: D.keepLast, min: 0, help: 'checkpoints kept (0: all)' },
];

export interface GrpoCliConfig extends Partial<ResolvedGrpoOptions>, RanksConfig, LoraCliConfig {
  model: string;
  data: string;
  out: string;
  resume: boolean;
  resumeFrom?: string;
  imageRoot?: string;
  minPixels?: number;
  maxPixels?: number;
  tokenizer?: string;
  task?: string;
  modality?: string;
  limit: number;
  style: PromptStyle;
  rewardWeights: string;
  rewardModule?: string;
  dtype?: ModelDtype;
  initSeed: number;
  threads: number;
}

export async function runGrpo(cfg: GrpoCliConfig): Promise<void> {
  const trainer = resolveGrpoOptions(
    Object.fromEntries(Object.keys(GRPO_DEFAULTS).map((k) => [k, (cfg as unknown as Record<string, unknown>)[k]])),
  );
  const weights = parseRewardWeights(cfg.rewardWeights);
  const rewards = defaultRewards(cfg.style, weights);
  if (cfg.rewardModule) rewards.push(...(await loadRewardModule(cfg.rewardModule, weights)));
  if (rewards.length === 0) throw new Error('--reward-weights: every reward term has weight 0');

  const samples = loadSampleData(cfg.data, {
    flag: '--data',
    imageRoot: cfg.imageRoot,
    task: cfg.task,
    modality: cfg.modality,
    limit: cfg.limit,
  });
  const bad = samples.filter((s) => s.options.length < 2);
  if (bad.length)
    throw new Error(
      `--data ${cfg.data}: ${bad.length} sample(s) have no answer options (GRPO needs multiple choice), e.g. '${bad[0].id}'`,
    );
  const prompts = grpoPromptsFromSamples(samples, cfg.style);
  const lora = loraSpecFromCli(cfg); // checked before the model loads

  // Saved resolved: epsHigh filled in, so the file repeats this run exactly.
  await withRanks('grpo', cfg, (c, dist) =>
    runTrainingCommand(
      'grpo',
      c,
      { ...c, epsHigh: trainer.epsHigh },
      async ({ model, tokenizer, tokenizerDir, say, origin, processor, generation }) => {
        say(
          `${origin}; ${prompts.length} prompts, ${trainer.steps} steps x ${trainer.promptsPerStep} prompts x ${trainer.groupSize} rollouts; ` +
            `rewards ${rewards.map((r) => `${r.name}=${r.weight}`).join(',')}`,
        );
        let last: GrpoStepMetrics | undefined;
        let resumedFrom = 0;
        await trainGrpo(
          model,
          prompts,
          rewards,
          {
            ...trainer,
            images: processor,
            // the folder's eos ids end a completion; temperature / top-p / top-k stay the trainer's (above)
            stopTokens: stopTokensOf(generation, [tokenizer.special.imEnd, tokenizer.special.endOfText]),
            tokenizer,
            tokenizerDir,
            lora,
            out: cfg.out,
            resume: cfg.resumeFrom ?? (cfg.resume ? true : undefined),
            dist,
            zero: c.zero,
          },
          {
            onResume: (dir, step) => {
              resumedFrom = step;
              say(`resumed from ${dir} (step ${step})`);
            },
            onStep: (m) => void (last = m),
          },
        );
        const num = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null);
        return {
          steps: trainer.steps,
          resumedFrom,
          reward: num(last?.reward.mean),
          accuracy: num(last?.accuracy),
          kl: num(last?.kl),
          ...(dist ? { worldSize: dist.worldSize } : {}),
        };
      },
      { dist },
    ),
  );
}

export function registerGrpo(program: Command): void {
  const cmd = program
    .command('grpo')
    .description(
      'GRPO of a policy on multiple-choice samples: G rollouts per prompt, verifiable rewards (accuracy, format), group advantages, checkpoints, exact resume',
    );
  addConfigOptions(cmd, GRPO_SCHEMA);
  cmd.action(async () => {
    await runGrpo(resolveConfig<GrpoCliConfig>(cmd, GRPO_SCHEMA));
  });
}
