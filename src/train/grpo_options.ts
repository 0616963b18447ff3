// GRPO's options: the defaults, one per line (the CLI and config files override them), and their checks.
import type { LoraSpec } from '../model/lora';
import type { TextTokenizer } from '../data/tokenizer';
import { ADAMW_DEFAULTS, Model } from '../model/model';
import { type ImageOptions } from '../model/encode';
import type { ProcessGroup } from '../dist/process_group';
import type { ZeroStage } from '../dist/zero_memory';

/** The defaults, one per line (the CLI and config files override them). */
export const GRPO_DEFAULTS = {
  steps: 100,
  /** Groups (distinct prompts) per step. */
  promptsPerStep: 8,
  /** Rollouts per prompt (G). */
  groupSize: 8,
  maxNewTokens: 256,
  temperature: 1.0,
  /** 1 = off. */
  topP: 1.0,
  /** 0 = off. */
  topK: 0,
  /** HF's repetition penalty on the rollouts; 1 = off. The returned log-probs are unpenalized (what the
   *  loss recomputes), so a penalty makes the rollouts mildly off-policy, as with vLLM in TRL. */
  repetitionPenalty: 1,
  seed: 0,
  lr: 1e-6,
  /** Linear warm-up over this many optimizer steps. */
  warmupSteps: 0,
  schedule: 'constant' as 'constant' | 'cosine',
  /** Cosine decays to lr * minLrRatio. */
  minLrRatio: 0,
  weightDecay: ADAMW_DEFAULTS.weightDecay,
  adamBeta1: ADAMW_DEFAULTS.beta1,
  /** Not AdamW's 0.999: policy-gradient scales drift as the rewards move, and a second moment that
   *  forgets over ~100 steps instead of ~1000 follows them (the cycle's GRPO was tuned with it). */
  adamBeta2: 0.99,
  maxGradNorm: 1.0,
  /** KL coefficient; 0 (the default, as in TRL and DAPO) loads no reference model. */
  beta: 0,
  kl: 'k3' as 'k1' | 'k2' | 'k3',
  lossType: 'dapo' as 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo',
  epsLow: 0.2,
  /** DAPO's clip-higher uses 0.28; default = epsLow. */
  epsHigh: 0.2,
  /** Passes of updates over each step's rollouts (mu in the GRPO paper). */
  numIterations: 1,
  advantageScale: 'group' as 'group' | 'batch' | 'none',
  advantageEps: 1e-4,
  /** Most tokens in one training micro-batch. */
  tokenBudget: 8192,
  /** Most sequences in one generateBatch call. */
  generationBatch: 64,
  dynamicSampling: false,
  /** Generation rounds per step at most when dynamicSampling (the first included). */
  maxSamplingRounds: 4,
  /** 'rollout': the generation's log-probs are the old ones; 'recompute': one extra forward pass. */
  oldLogp: 'rollout' as 'rollout' | 'recompute',
  /** The loss's variants (docs/GRPO.md): GSPO's sequence-level ratio, two-sided clipping (0: off), CISPO. */
  importanceSamplingLevel: 'token' as 'token' | 'sequence',
  delta: 0,
  policyLoss: 'clip' as 'clip' | 'cispo',
  /** DAPO's overlong filtering: a completion cut by maxNewTokens (no stop token) gets no loss. */
  maskTruncatedCompletions: false,
  /** DAPO's soft overlong penalty over the last overlongBuffer tokens before maxNewTokens (0: off), a
   *  reward term named 'overlong' weighted by overlongPenaltyFactor. */
  overlongBuffer: 0,
  overlongPenaltyFactor: 1,
  /** verl's use_kl_in_reward: each completion's reward loses klInReward x its summed KL to the
   *  reference (estimator `kl`) before the advantages; 0: off. Loads the reference like beta > 0. */
  klInReward: 0,
  /** Entropy bonus: the loss gains -entropyCoef x the weighted mean entropy. */
  entropyCoef: 0,
  /** Only the completion tokens whose entropy is in the top q of each micro-batch get policy gradient
   *  ("80/20"); 1: all. */
  entropyTopQuantile: 1,
  /** Truncated importance sampling: the policy term of each token is weighted by
   *  min(exp(recomputed old - rollout log-prob), tisCap); needs oldLogp 'recompute'; 0: off. */
  tisCap: 0,
  /** Consecutive updates skipped for a non-finite loss or gradient norm that stop the run. */
  maxSkippedSteps: 3,
  /** A warning (zero reward variance, truncation, clipping) is repeated at most once per this many steps. */
  warnEvery: 10,
  /** A checkpoint every N steps and at the end (needs `out`); 0: only at the end. */
  saveEvery: 0,
  /** Checkpoints kept (newest); 0: all. */
  keepLast: 2,
};

/** Options that may change between a run and its resume (they do not change what is computed). */
export const RESUMABLE_CHANGES = new Set<string>(['saveEvery', 'keepLast', 'maxSkippedSteps', 'warnEvery']);

/** Options added after checkpoints were first written: at their defaults a fingerprint leaves them
 *  out, so a checkpoint from before them still resumes. */
export const LATER_OPTIONS = new Set<string>([
  'repetitionPenalty',
  'importanceSamplingLevel',
  'delta',
  'policyLoss',
  'maskTruncatedCompletions',
  'overlongBuffer',
  'overlongPenaltyFactor',
  'klInReward',
  'entropyCoef',
  'entropyTopQuantile',
  'tisCap',
]);

export interface GrpoOptions extends Partial<typeof GRPO_DEFAULTS> {
  tokenizer: TextTokenizer;
  /** Image loading (relative paths resolve against imageRoot; min/max pixels). */
  images?: ImageOptions;
  /** Tokens that end a completion (default <|im_end|> and <|endoftext|>; the CLI: generation_config.json's eos). */
  stopTokens?: number[];
  /** A reference model to use instead of a frozen copy of the policy (beta > 0). */
  reference?: Model;
  /** LoRA: train an adapter only (the base frozen); a policy that already carries an adapter trains
   *  it even without this. The reference (beta > 0) is then the base with the adapter switched off. */
  lora?: LoraSpec;
  /** Run folder (metrics.jsonl, tensorboard/, checkpoints/). Absent: nothing is written. */
  out?: string;
  /** Continue from a checkpoint of `out`: true / "latest", a step number, or a checkpoint folder. */
  resume?: boolean | string | number;
  /** Tokenizer files copied into each checkpoint. */
  tokenizerDir?: string;
  /** Progress line on stderr (default true). */
  progress?: boolean;
  /** Several ranks (see trainGrpo): every rank calls trainGrpo with the same prompts and options. */
  dist?: ProcessGroup;
  /** With `dist`: 0 = every rank holds the optimizer; 1 / 2 = ZeRO (as SftOptions.zero). */
  zero?: ZeroStage;
}

export type ResolvedGrpoOptions = typeof GRPO_DEFAULTS;

export function resolveGrpoOptions(opts: Partial<ResolvedGrpoOptions>): ResolvedGrpoOptions {
  const o = { ...GRPO_DEFAULTS } as ResolvedGrpoOptions;
  for (const [k, v] of Object.entries(opts))
    if (v !== undefined && k in GRPO_DEFAULTS) (o as Record<string, unknown>)[k] = v;
  if (opts.epsHigh === undefined) o.epsHigh = o.epsLow;
  const positiveInt = [
    'steps',
    'promptsPerStep',
    'groupSize',
    'maxNewTokens',
    'numIterations',
    'tokenBudget',
    'generationBatch',
    'maxSamplingRounds',
  ] as const;
  for (const k of positiveInt)
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`grpo: ${k} must be a whole number >= 1, got ${o[k]}`);
  for (const k of ['saveEvery', 'keepLast', 'warmupSteps', 'topK', 'overlongBuffer'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`grpo: ${k} must be a whole number >= 0, got ${o[k]}`);
  }
  if (o.groupSize < 2)
    throw new Error(`grpo: groupSize must be >= 2 (advantages compare completions of one prompt), got ${o.groupSize}`);
  if (!(o.temperature > 0))
    throw new Error(
      `grpo: temperature must be > 0 (sampling; the old log-probs are under softmax(logits / temperature)), got ${o.temperature}`,
    );
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`grpo: topP must be in (0, 1], got ${o.topP}`);
  if (!(o.repetitionPenalty > 0))
    throw new Error(`grpo: repetitionPenalty must be > 0 (1: off), got ${o.repetitionPenalty}`);
  if (!(o.lr >= 0)) throw new Error(`grpo: lr must be >= 0, got ${o.lr}`);
  if (!(o.beta >= 0)) throw new Error(`grpo: beta must be >= 0, got ${o.beta}`);
  if (!(o.epsLow >= 0 && o.epsHigh >= 0)) throw new Error('grpo: epsLow and epsHigh must be >= 0');
  if (!['grpo', 'bnpo', 'dr_grpo', 'dapo'].includes(o.lossType))
    throw new Error(`grpo: lossType must be grpo, bnpo, dr_grpo or dapo, got ${o.lossType}`);
  if (!['group', 'batch', 'none'].includes(o.advantageScale))
    throw new Error(`grpo: advantageScale must be group, batch or none, got ${o.advantageScale}`);
  if (!['constant', 'cosine'].includes(o.schedule))
    throw new Error(`grpo: schedule must be constant or cosine, got ${o.schedule}`);
  if (!['k1', 'k2', 'k3'].includes(o.kl)) throw new Error(`grpo: kl must be k1, k2 or k3, got ${o.kl}`);
  if (!['rollout', 'recompute'].includes(o.oldLogp))
    throw new Error(`grpo: oldLogp must be rollout or recompute, got ${o.oldLogp}`);
  checkLossVariants(o);
  checkLengths(o);
  return o;
}

function checkLossVariants(o: ResolvedGrpoOptions): void {
  if (!['token', 'sequence'].includes(o.importanceSamplingLevel))
    throw new Error(`grpo: importanceSamplingLevel must be token or sequence, got ${o.importanceSamplingLevel}`);
  if (!['clip', 'cispo'].includes(o.policyLoss))
    throw new Error(`grpo: policyLoss must be clip or cispo, got ${o.policyLoss}`);
  if (o.delta !== 0) {
    if (!(o.delta > 1 + o.epsHigh))
      throw new Error(`grpo: delta must be > 1 + epsHigh = ${1 + o.epsHigh} (0: off), got ${o.delta}`);
    if (o.policyLoss !== 'clip') throw new Error(`grpo: delta applies to policyLoss clip only, got ${o.policyLoss}`);
  }
  for (const k of ['klInReward', 'tisCap', 'overlongPenaltyFactor'] as const)
    if (!(o[k] >= 0 && Number.isFinite(o[k]))) throw new Error(`grpo: ${k} must be a finite number >= 0, got ${o[k]}`);
  if (!Number.isFinite(o.entropyCoef))
    throw new Error(`grpo: entropyCoef must be a finite number, got ${o.entropyCoef}`);
  if (!(o.entropyTopQuantile > 0 && o.entropyTopQuantile <= 1))
    throw new Error(`grpo: entropyTopQuantile must be in (0, 1] (1: every token), got ${o.entropyTopQuantile}`);
  if (o.tisCap > 0 && o.tisCap < 1)
    throw new Error(
      `grpo: tisCap must be >= 1 (a cap below 1 down-weights every on-policy token) or 0, got ${o.tisCap}`,
    );
  if (o.tisCap > 0 && o.oldLogp !== 'recompute')
    throw new Error(
      "grpo: tisCap corrects the rollout's log-probs by the trainer's: it needs oldLogp 'recompute' (got oldLogp 'rollout')",
    );
  for (const k of ['maxSkippedSteps', 'warnEvery'] as const)
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`grpo: ${k} must be a whole number >= 1, got ${o[k]}`);
}

/** Lengths that leave room for a completion, checked before any work. */
function checkLengths(o: ResolvedGrpoOptions): void {
  if (o.overlongBuffer >= o.maxNewTokens)
    throw new Error(
      `grpo: overlongBuffer (${o.overlongBuffer}) must be < maxNewTokens (${o.maxNewTokens}): the penalty ramps over the last overlongBuffer tokens`,
    );
  if (o.tokenBudget <= o.maxNewTokens)
    throw new Error(
      `grpo: tokenBudget (${o.tokenBudget}) must exceed maxNewTokens (${o.maxNewTokens}): a micro-batch holds a prompt and its whole completion`,
    );
}
