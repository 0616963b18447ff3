// The GRPO loop (docs/GRPO.md): prompts -> G rollouts each -> rewards -> group
// advantages -> token-level GRPO loss against the rollout's log-probs (and a frozen reference when
// beta > 0) -> numIterations passes of updates. TypeScript holds the loop; the model does the math.
//
// One step:
//   rollout   prompts (images + chat template) repeated G times, one generateBatch per chunk; each
//             completion keeps its stop token (<|im_end|> or <|endoftext|>) and its per-token
//             log-probs under softmax(logits / temperature);
//   reward    decoded completions (stop token removed) through every reward term; weighted total;
//             DAPO dynamic sampling drops groups whose rewards are all equal and draws again;
//   logprob   sequences prompt + completion, labels on the completion tokens only; old log-probs are
//             the rollout's (or recomputed), reference log-probs from the frozen copy (beta > 0);
//   update    numIterations x (backwardGrpo over micro-batches of at most tokenBudget tokens, then
//             optimizerStep). dapo's N = completion tokens of the whole step's batch.
//
// With beta = 0 a sequence whose advantage is 0 has exactly zero gradient: it is not run through the
// model (it still counts in dapo's N). Loss statistics (clip fractions, ratio, entropy) are therefore
// over the sequences that were trained on.
//
// Loss normalization across micro-batches is exact for every loss type: 'dapo' through
// numItemsInBatch (the generation batch's completion tokens); 'grpo' and 'dr_grpo' through lossScale =
// sequences in the micro-batch / sequences in the generation batch (and dr_grpo's length fixed to
// maxNewTokens); 'bnpo' through lossScale = label tokens here / completion tokens of the batch.
// Sequences skipped for a zero advantage still count in these denominators, as in one big batch.
//
// Run folder (opts.out): metrics.jsonl + tensorboard/ through MetricsLogger (tags as flattenMetrics),
// checkpoints/step-N/ through run_checkpoint.ts (every saveEvery steps and at the end, keepLast kept).
// Resume restores weights, AdamW state and the prompt sampler's position; everything random is a pure
// function of the seed: the prompt order of (seed, epoch) and the rollout sampling seed of (seed, step,
// round, chunk), and the lr of the optimizer step count, so a resumed run repeats the uninterrupted one.
// The reference model (beta > 0) is a frozen copy of the policy as passed in, before the checkpoint's
// weights are loaded: resume with the same starting model (--model and its init seed).
import type { PackSample } from '../data/packing';
import { assembleBatch } from '../data/packing';
import { hashString, Prng } from '../util/prng';
import type { Sample } from '../data/proto';
import type { TextTokenizer } from '../data/tokenizer';
import { grpo } from '../ops/grpo';
import { ADAMW_DEFAULTS, Model, type ModelBatch, type ModelDtype, type ModelDevice } from '../model/model';
import { MetricsLogger } from '../report/metrics';
import { Progress } from '../report/progress';
import { lrAt, type LrSchedule } from './lr_schedule';
import { encodeConversation, loadImages, toModelBatch, type ImageOptions } from '../model/encode';

import { accuracyScore, scoreCompletion, type GrpoPrompt, type Reward } from './rewards';
import {
  resumeRun,
  saveRunCheckpoint,
  TRAINER_STATE_VERSION,
  type TrainerState,
} from './run_state';
import { POLICY_SYSTEM, policyPrompt, type PromptStyle } from '../eval/policy_prompt';

export type { GrpoPrompt, Reward, RewardFn } from './rewards';

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
  /** A checkpoint every N steps and at the end (needs `out`); 0: only at the end. */
  saveEvery: 0,
  /** Checkpoints kept (newest); 0: all. */
  keepLast: 2,
};

/** Options that may change between a run and its resume (they do not change what is computed). */
const RESUMABLE_CHANGES = new Set<string>(['saveEvery', 'keepLast']);

export interface GrpoOptions extends Partial<typeof GRPO_DEFAULTS> {
  tokenizer: TextTokenizer;
  /** Image loading (relative paths resolve against imageRoot; min/max pixels). */
  images?: ImageOptions;
  /** A reference model to use instead of a frozen copy of the policy (beta > 0). */
  reference?: Model;
  /** Run folder (metrics.jsonl, tensorboard/, checkpoints/). Absent: nothing is written. */
  out?: string;
  /** Continue from a checkpoint of `out`: true / "latest", a step number, or a checkpoint folder. */
  resume?: boolean | string | number;
  /** Tokenizer files copied into each checkpoint. */
  tokenizerDir?: string;
  /** Progress line on stderr (default true). */
  progress?: boolean;
}

export type ResolvedGrpoOptions = typeof GRPO_DEFAULTS;

export interface MeanStd {
  mean: number;
  std: number;
}

export interface GrpoStepMetrics {
  step: number;
  lr: number;
  /** Summed over micro-batches, averaged over iterations. */
  loss: number;
  gradNorm: number;
  /** Weighted total reward over every completion generated this step, dropped groups included (NaN ones left out). */
  reward: MeanStd;
  /** Each reward term by name (non-NaN completions). */
  rewards: Record<string, MeanStd>;
  /** Fraction of completions that name the key option (whatever the reward terms are). */
  accuracy: number;
  /** Completions whose total reward was NaN. */
  unscorable: number;
  kl: number;
  clipLow: number;
  clipHigh: number;
  /** Mean ratio on the first iteration (1 up to generation/training numerics). */
  ratio: number;
  entropy: number;
  completionLength: { mean: number; max: number; truncatedFraction: number };
  groups: { kept: number; dropped: number; degenerate: number; samplingRounds: number; underfilled: number };
  /** Completion tokens of the kept groups (dapo's N) and those trained on. */
  tokens: { completion: number; trained: number };
  /** Seconds. */
  time: { rollout: number; reward: number; logprobRef: number; logprobOld: number; lossBackward: number; optimizer: number; total: number };
}

export interface RolloutGroup {
  prompt: GrpoPrompt;
  encoded: PackSample;
  /** Per completion: tokens (stop token kept), log-probs, decoded text (stop token dropped). */
  tokens: Int32Array[];
  logprobs: Float32Array[];
  texts: string[];
  truncated: boolean[];
  /** [completion][term] and the weighted totals. */
  terms: number[][];
  rewards: number[];
}

export interface GrpoHooks {
  onStep?(metrics: GrpoStepMetrics): void | Promise<void>;
  /** Asked after each step (after its checkpoint): true ends the run there (resumable). */
  shouldStop?(step: number): boolean;
  /** Called once when a run continues from a checkpoint (its folder and step). */
  onResume?(dir: string, step: number): void | Promise<void>;
  /** Every step's kept groups (completions, rewards), e.g. to write rollouts to disk. */
  onRollouts?(step: number, groups: readonly RolloutGroup[]): void | Promise<void>;
}

/** The policy's GRPO prompts for samples: question + lettered options + the style's instruction. */
export function grpoPromptsFromSamples(samples: readonly Sample[], style: PromptStyle, system: string = POLICY_SYSTEM): GrpoPrompt[] {
  return samples.map((s) => ({ id: s.id, images: [...s.images], user: policyPrompt(s, style), system, sample: s }));
}

/** Shuffled passes over the prompts, reshuffled each epoch; the order of epoch e is a pure function
 *  of (seed, e), so `state()` (epochs started, position in the current one) is all a resume needs. */
export class PromptSampler {
  private order: number[] = [];
  private pos = 0;
  private epoch = 0;
  constructor(private readonly count: number, private readonly seed: number) {
    if (count <= 0) throw new Error('grpo: no prompts');
  }
  private shuffled(epoch: number): number[] {
    return new Prng(`grpo/prompts/${this.seed}/${epoch}`).shuffle(Array.from({ length: this.count }, (_, i) => i));
  }
  next(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      if (this.pos >= this.order.length) {
        this.order = this.shuffled(this.epoch++);
        this.pos = 0;
      }
      out.push(this.order[this.pos++]);
    }
    return out;
  }
  /** `epoch`: shuffles drawn so far (the current one is epoch - 1); `pos`: the next index in it. */
  state(): { epoch: number; pos: number } {
    return { epoch: this.epoch, pos: this.pos };
  }
  restore(s: { epoch: number; pos: number }): void {
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.pos) && s.pos >= 0 && s.pos <= this.count)) {
      throw new Error(`grpo: bad prompt sampler state ${JSON.stringify(s)}`);
    }
    this.epoch = s.epoch;
    this.order = s.epoch > 0 ? this.shuffled(s.epoch - 1) : [];
    this.pos = s.epoch > 0 ? s.pos : 0;
  }
}

export function resolveGrpoOptions(opts: Partial<ResolvedGrpoOptions>): ResolvedGrpoOptions {
  const o = { ...GRPO_DEFAULTS } as ResolvedGrpoOptions;
  for (const [k, v] of Object.entries(opts)) if (v !== undefined && k in GRPO_DEFAULTS) (o as Record<string, unknown>)[k] = v;
  if (opts.epsHigh === undefined) o.epsHigh = o.epsLow;
  const positiveInt = ['steps', 'promptsPerStep', 'groupSize', 'maxNewTokens', 'numIterations', 'tokenBudget', 'generationBatch', 'maxSamplingRounds'] as const;
  for (const k of positiveInt) if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`grpo: ${k} must be a whole number >= 1, got ${o[k]}`);
  for (const k of ['saveEvery', 'keepLast', 'warmupSteps', 'topK'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`grpo: ${k} must be a whole number >= 0, got ${o[k]}`);
  }
  if (o.groupSize < 2) throw new Error(`grpo: groupSize must be >= 2 (advantages compare completions of one prompt), got ${o.groupSize}`);
  if (!(o.temperature > 0)) throw new Error(`grpo: temperature must be > 0 (sampling; the old log-probs are under softmax(logits / temperature)), got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`grpo: topP must be in (0, 1], got ${o.topP}`);
  if (!(o.lr >= 0)) throw new Error(`grpo: lr must be >= 0, got ${o.lr}`);
  if (!(o.beta >= 0)) throw new Error(`grpo: beta must be >= 0, got ${o.beta}`);
  if (!(o.epsLow >= 0 && o.epsHigh >= 0)) throw new Error('grpo: epsLow and epsHigh must be >= 0');
  if (!['grpo', 'bnpo', 'dr_grpo', 'dapo'].includes(o.lossType)) throw new Error(`grpo: lossType must be grpo, bnpo, dr_grpo or dapo, got ${o.lossType}`);
  if (!['group', 'batch', 'none'].includes(o.advantageScale)) throw new Error(`grpo: advantageScale must be group, batch or none, got ${o.advantageScale}`);
  if (!['constant', 'cosine'].includes(o.schedule)) throw new Error(`grpo: schedule must be constant or cosine, got ${o.schedule}`);
  if (!['k1', 'k2', 'k3'].includes(o.kl)) throw new Error(`grpo: kl must be k1, k2 or k3, got ${o.kl}`);
  if (!['rollout', 'recompute'].includes(o.oldLogp)) throw new Error(`grpo: oldLogp must be rollout or recompute, got ${o.oldLogp}`);
  return o;
}

function meanStd(xs: readonly number[]): MeanStd {
  const v = xs.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return { mean: NaN, std: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

/** All non-NaN rewards of a group equal (or fewer than two of them): no learning signal. */
export function isDegenerate(rewards: readonly number[]): boolean {
  const v = rewards.filter((r) => !Number.isNaN(r));
  return v.length < 2 || v.every((r) => r === v[0]);
}

/** The sampling seed of (seed, step, round, chunk): a pure function, so a resumed run samples as an
 *  uninterrupted one would. */
export function seedFor(seed: number, ...parts: number[]): number {
  let h = seed >>> 0;
  for (const p of parts) h = (Math.imul(h ^ (p >>> 0), 0x9e3779b1) + 0x7f4a7c15) >>> 0;
  return h & 0x7fffffff;
}

/** Encodes prompts (images through the processor, chat template with the generation prompt). */
export async function encodePrompts(tok: TextTokenizer, prompts: readonly GrpoPrompt[], images: ImageOptions = {}): Promise<PackSample[]> {
  const out: PackSample[] = [];
  for (const p of prompts) {
    const imgs = await loadImages(p.images, images);
    out.push(encodeConversation(tok, imgs, p.user, { system: p.system }));
  }
  return out;
}

function withoutImages(batch: ModelBatch, numImages: number): ModelBatch {
  return numImages > 0 ? batch : { inputIds: batch.inputIds, cuSeqlens: batch.cuSeqlens };
}

/** G sampled completions for each prompt (one generateBatch per `generationBatch` sequences). */
export async function generateRollouts(
  policy: Model,
  tok: TextTokenizer,
  prompts: readonly GrpoPrompt[],
  encoded: readonly PackSample[],
  o: Pick<ResolvedGrpoOptions, 'groupSize' | 'maxNewTokens' | 'temperature' | 'topP' | 'topK' | 'generationBatch'>,
  seed: number,
): Promise<Omit<RolloutGroup, 'terms' | 'rewards'>[]> {
  const stops = [tok.special.imEnd, tok.special.endOfText];
  const G = o.groupSize;
  const flat: PackSample[] = [];
  for (const e of encoded) for (let k = 0; k < G; k++) flat.push(e);
  const tokens: Int32Array[] = [];
  const logprobs: Float32Array[] = [];
  for (let start = 0, chunk = 0; start < flat.length; start += o.generationBatch, chunk++) {
    const part = flat.slice(start, start + o.generationBatch);
    const pb = assembleBatch(part, part.map((_, i) => i));
    const { batch } = toModelBatch(pb);
    const res = await policy.generateBatch(withoutImages(batch, pb.numImages), {
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      topP: o.topP < 1 ? o.topP : undefined,
      topK: o.topK > 0 ? o.topK : undefined,
      seed: seedFor(seed, chunk),
      stopTokens: stops,
    });
    tokens.push(...res.tokens);
    logprobs.push(...res.logprobs);
  }
  return prompts.map((prompt, g) => {
    const tk = tokens.slice(g * G, (g + 1) * G);
    const stopped = tk.map((t) => t.length > 0 && stops.includes(t[t.length - 1]));
    return {
      prompt,
      encoded: encoded[g],
      tokens: tk,
      logprobs: logprobs.slice(g * G, (g + 1) * G),
      texts: tk.map((t, i) => tok.decode(stopped[i] ? t.subarray(0, t.length - 1) : t)),
      truncated: stopped.map((s) => !s),
    };
  });
}

/** One training micro-batch: packed prompt+completion sequences with labels on the completions. */
/** The share of one micro-batch in the generation batch's loss (see the note at the top). */
export function microBatchShare(lossType: string, mb: Pick<TrainingMicroBatch, 'advantages' | 'tokens'>, sequences: number, completionTokens: number): number {
  if (lossType === 'grpo' || lossType === 'dr_grpo') return mb.advantages.length / Math.max(sequences, 1);
  if (lossType === 'bnpo') return mb.tokens / Math.max(completionTokens, 1);
  return 1;
}

export interface TrainingMicroBatch {
  batch: ModelBatch;
  labels: Int32Array;
  /** [N] rollout log-probs aligned with labels (0 where labels < 0). */
  oldLogp: Float32Array;
  refLogp?: Float32Array;
  /** [S] one per sequence. */
  advantages: Float32Array;
  /** Label tokens in this micro-batch. */
  tokens: number;
}

/**
 * Packs completions into micro-batches of at most `tokenBudget` tokens (a longer sequence gets one
 * to itself), in order. `include(g, k)` chooses which completions are trained on.
 */
export function trainingMicroBatches(
  groups: readonly Pick<RolloutGroup, 'encoded' | 'tokens' | 'logprobs'>[],
  advantages: Float32Array,
  tokenBudget: number,
  include: (g: number, k: number) => boolean = () => true,
): TrainingMicroBatch[] {
  const seqs: { sample: PackSample; old: Float32Array; adv: number }[] = [];
  groups.forEach((grp, g) => {
    const P = grp.encoded.ids.length;
    grp.tokens.forEach((t, k) => {
      if (!include(g, k) || t.length === 0) return;
      const ids = new Int32Array(P + t.length);
      ids.set(grp.encoded.ids, 0);
      ids.set(t, P);
      const targetMask = new Uint8Array(ids.length);
      targetMask.fill(1, P);
      const old = new Float32Array(ids.length);
      old.set(grp.logprobs[k].subarray(0, t.length), P - 1);
      seqs.push({ sample: { ids, targetMask, images: grp.encoded.images }, old, adv: advantages[g * grp.tokens.length + k] });
    });
  });
  const out: TrainingMicroBatch[] = [];
  let cur: number[] = [];
  let used = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    const pb = assembleBatch(seqs.map((s) => s.sample), cur);
    const { batch, labels } = toModelBatch(pb);
    const oldLogp = new Float32Array(pb.numTokens);
    let off = 0;
    for (const i of cur) {
      oldLogp.set(seqs[i].old, off);
      off += seqs[i].old.length;
    }
    let tokens = 0;
    for (const l of labels) if (l >= 0) tokens++;
    out.push({ batch, labels, oldLogp, advantages: Float32Array.from(cur, (i) => seqs[i].adv), tokens });
    cur = [];
    used = 0;
  };
  seqs.forEach((s, i) => {
    if (cur.length > 0 && used + s.sample.ids.length > tokenBudget) flush();
    cur.push(i);
    used += s.sample.ids.length;
  });
  flush();
  return out;
}

/** The Model dtype of a native dtype name ("Float", "BFloat16", ... as torch prints them). */
function modelDtype(native: string): ModelDtype {
  const names: Record<string, ModelDtype> = { float: 'float32', float32: 'float32', bfloat16: 'bfloat16', half: 'float16', float16: 'float16', double: 'float64', float64: 'float64' };
  const d = names[native.toLowerCase()];
  if (!d) throw new Error(`grpo: the policy's dtype ${native} has no Model dtype`);
  return d;
}

/** A frozen copy of the policy's current weights (same device and dtype). */
export async function frozenCopy(policy: Model): Promise<Model> {
  const { device, dtype } = policy.info;
  const ref = await Model.create(policy.config, { init: 'none', device: device as ModelDevice, dtype: modelDtype(dtype) });
  await ref.setParameters(policy.parameters());
  return ref;
}

/**
 * GRPO on `prompts` for `opts.steps` steps; returns every step's metrics. The policy is updated in
 * place (its optimizer state persists across calls). Rewards: see ./rewards.ts.
 */
export async function trainGrpo(
  policy: Model,
  prompts: readonly GrpoPrompt[],
  rewardFns: readonly Reward[],
  opts: GrpoOptions,
  hooks: GrpoHooks = {},
): Promise<GrpoStepMetrics[]> {
  const { tokenizer: tok, images = {}, reference, out, resume, tokenizerDir, progress: showProgress = true, ...rest } = opts;
  const o = resolveGrpoOptions(rest);
  if (resume !== undefined && resume !== false && !out) throw new Error('grpo: resume needs the run folder (out)');
  if (rewardFns.length === 0) throw new Error('grpo: no reward functions');
  const names = new Set<string>();
  for (const r of rewardFns) {
    if (names.has(r.name)) throw new Error(`grpo: two reward terms are named '${r.name}'`);
    names.add(r.name);
  }
  if (prompts.length === 0) throw new Error('grpo: no prompts');
  const sampler = new PromptSampler(prompts.length, o.seed);
  const totalOptSteps = o.steps * o.numIterations;
  const schedule: LrSchedule = { lr: o.lr, totalSteps: totalOptSteps, warmupSteps: o.warmupSteps, minLrRatio: o.minLrRatio, shape: o.schedule };

  // What a resume must find unchanged for its rewards and losses to be the uninterrupted run's.
  const fingerprint: TrainerState['fingerprint'] = {
    prompts: prompts.length,
    promptsHash: hashString(prompts.map((p) => `${p.id}\u0000${p.system ?? ''}\u0000${p.user}\u0000${p.images.join('\u0001')}`).join('\u0002')),
    rewards: rewardFns.map((r) => `${r.name}=${r.weight}`).join(','),
  };
  for (const [k, v] of Object.entries(o)) {
    if (RESUMABLE_CHANGES.has(k)) continue;
    if (k === 'steps' && o.schedule === 'constant') continue; // the lr does not depend on the run's length
    fingerprint[k] = v as string | number | boolean;
  }

  // The reference is the policy as given (before a checkpoint's weights replace it).
  const ref = o.beta > 0 ? (reference ?? (await frozenCopy(policy))) : undefined;
  let startStep = 0;
  let tokensSeen = 0;
  let samplesSeen = 0;
  const all: GrpoStepMetrics[] = [];
  let metrics: MetricsLogger | undefined;
  let progress: Progress | undefined;
  try {
    if (resume !== undefined && resume !== false) {
      const { dir, state } = await resumeRun(out as string, resume === true ? 'latest' : resume, policy, 'grpo', fingerprint, 'the same prompts, rewards and options');
      sampler.restore({ epoch: state.epoch, pos: state.batchIndex });
      ({ step: startStep, tokensSeen, samplesSeen } = state);
      await hooks.onResume?.(dir, startStep);
    }
    metrics = out ? new MetricsLogger(out, { resumeStep: resume !== undefined && resume !== false ? startStep : undefined }) : undefined;
    progress = showProgress && startStep < o.steps ? new Progress({ label: 'grpo', total: o.steps, unit: 'step', start: startStep }) : undefined;
    let lastFlat: Record<string, number> = {};
    const save = async (step: number): Promise<void> => {
      if (!out) return;
      const sp = sampler.state();
      const optStepNow = step * o.numIterations;
      const state: TrainerState = {
        version: TRAINER_STATE_VERSION,
        trainer: 'grpo',
        step,
        epoch: sp.epoch,
        batchIndex: sp.pos,
        seed: o.seed,
        rng: { rollout: 'seedFor(seed, step, round, chunk)', prompts: 'Prng(grpo/prompts/<seed>/<epoch>)' },
        scheduler: { step: optStepNow, totalSteps: totalOptSteps, warmupSteps: o.warmupSteps, lr: o.lr, minLrRatio: o.minLrRatio },
        tokensSeen,
        samplesSeen,
        fingerprint,
        metrics: Object.fromEntries(Object.entries(lastFlat).filter(([, v]) => Number.isFinite(v))),
        extra: { schedule: o.schedule, numIterations: o.numIterations },
        savedAt: new Date().toISOString(),
      };
      metrics?.flush();
      await saveRunCheckpoint(out, policy, state, { keepLast: o.keepLast, tokenizerDir });
    };
    let optStep = startStep * o.numIterations;
    for (let step = startStep + 1; step <= o.steps; step++) {
      const t0 = performance.now();
      const time = { rollout: 0, reward: 0, logprobRef: 0, logprobOld: 0, lossBackward: 0, optimizer: 0, total: 0 };
      const lap = async <T>(key: keyof typeof time, fn: () => Promise<T>): Promise<T> => {
        const s = performance.now();
        try {
          return await fn();
        } finally {
          time[key] += (performance.now() - s) / 1000;
        }
      };

      // ---- rollouts, rewards, dynamic sampling ----
      const kept: RolloutGroup[] = [];
      let dropped = 0;
      let degenerate = 0;
      let rounds = 0;
      const allScored: RolloutGroup[] = [];
      while (kept.length < o.promptsPerStep && rounds < (o.dynamicSampling ? o.maxSamplingRounds : 1)) {
        const idx = sampler.next(o.promptsPerStep - kept.length);
        samplesSeen += idx.length;
        const chosen = idx.map((i) => prompts[i]);
        const generated = await lap('rollout', async () => {
          const enc = await encodePrompts(tok, chosen, images);
          return generateRollouts(policy, tok, chosen, enc, o, seedFor(o.seed, step, rounds));
        });
        rounds++;
        const scored = await lap('reward', async () => {
          const out: RolloutGroup[] = [];
          for (const g of generated) {
            const terms: number[][] = [];
            const rewards: number[] = [];
            for (const text of g.texts) {
              const s = await scoreCompletion(rewardFns, text, g.prompt);
              terms.push(s.terms);
              rewards.push(s.total);
            }
            out.push({ ...g, terms, rewards });
          }
          return out;
        });
        for (const g of scored) {
          allScored.push(g);
          const flat = isDegenerate(g.rewards);
          if (flat) degenerate++;
          if (o.dynamicSampling && flat) dropped++;
          else kept.push(g);
        }
      }
      await hooks.onRollouts?.(step, kept);

      // ---- advantages and micro-batches ----
      const G = o.groupSize;
      const rewards = new Float32Array(kept.length * G);
      kept.forEach((g, i) => rewards.set(g.rewards, i * G));
      const advantages = kept.length > 0 ? grpo.advantages(rewards, G, { scale: o.advantageScale, eps: o.advantageEps }) : new Float32Array(0);
      let completionTokens = 0;
      for (const g of kept) for (const t of g.tokens) completionTokens += t.length;
      const include = (g: number, k: number): boolean => o.beta > 0 || advantages[g * G + k] !== 0;
      const mbs = trainingMicroBatches(kept, advantages, o.tokenBudget, include);
      const trainedTokens = mbs.reduce((a, m) => a + m.tokens, 0);
      tokensSeen += completionTokens;

      if (o.oldLogp === 'recompute') {
        await lap('logprobOld', async () => {
          for (const mb of mbs) mb.oldLogp = (await policy.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: o.temperature })).logp;
        });
      }
      if (ref) {
        await lap('logprobRef', async () => {
          for (const mb of mbs) mb.refLogp = (await ref.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: o.temperature })).logp;
        });
      }

      // ---- updates ----
      let lossSum = 0;
      let gradNorm = NaN;
      let lr = lrAt(optStep, schedule);
      const acc = { kl: 0, clipLow: 0, clipHigh: 0, entropy: 0, tokens: 0, ratio: 0, ratioTokens: 0 };
      for (let it = 0; it < o.numIterations; it++) {
        lr = lrAt(optStep, schedule);
        if (mbs.length === 0) {
          optStep++;
          continue; // nothing to learn from (every advantage 0): no update, weight decay included
        }
        await lap('lossBackward', async () => {
          for (const mb of mbs) {
            const rep = await policy.backwardGrpo(mb.batch, {
              labels: mb.labels,
              advantages: mb.advantages,
              oldLogp: mb.oldLogp,
              refLogp: mb.refLogp,
              lossType: o.lossType,
              epsLow: o.epsLow,
              epsHigh: o.epsHigh,
              beta: o.beta,
              kl: o.kl,
              numItemsInBatch: completionTokens,
              maxCompletionLength: o.maxNewTokens,
              lossScale: microBatchShare(o.lossType, mb, kept.length * G, completionTokens),
              temperature: o.temperature,
            });
            lossSum += rep.loss;
            const n = rep.stats?.activeTokens ?? rep.tokens;
            acc.kl += (rep.stats?.klMean ?? 0) * n;
            acc.clipLow += (rep.stats?.clipLowFraction ?? 0) * n;
            acc.clipHigh += (rep.stats?.clipHighFraction ?? 0) * n;
            acc.entropy += rep.entropyMean * n;
            acc.tokens += n;
            if (it === 0) {
              acc.ratio += (rep.stats?.ratioMean ?? 1) * n;
              acc.ratioTokens += n;
            }
          }
        });
        const res = await lap('optimizer', () =>
          policy.optimizerStep({ lr, beta1: o.adamBeta1, beta2: o.adamBeta2, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm }),
        );
        gradNorm = res.gradNorm;
        optStep++;
      }

      // ---- metrics ----
      // Rewards, accuracy and lengths describe everything the policy generated this step (dropped
      // groups included): what the policy does, not what dynamic sampling kept.
      const byTerm: Record<string, MeanStd> = {};
      rewardFns.forEach((r, j) => (byTerm[r.name] = meanStd(allScored.flatMap((g) => g.terms.map((t) => t[j])))));
      const lengths = allScored.flatMap((g) => g.tokens.map((t) => t.length));
      const truncated = allScored.flatMap((g) => g.truncated).filter(Boolean).length;
      const accs = allScored.flatMap((g) => g.texts.map((t) => accuracyScore(t, g.prompt.sample)));
      const totals = allScored.flatMap((g) => g.rewards);
      const per = (x: number, n: number): number => (n > 0 ? x / n : 0);
      time.total = (performance.now() - t0) / 1000;
      const m: GrpoStepMetrics = {
        step,
        lr,
        loss: per(lossSum, o.numIterations),
        gradNorm,
        reward: meanStd(totals),
        rewards: byTerm,
        accuracy: meanStd(accs).mean,
        unscorable: totals.filter((r) => Number.isNaN(r)).length,
        kl: per(acc.kl, acc.tokens),
        clipLow: per(acc.clipLow, acc.tokens),
        clipHigh: per(acc.clipHigh, acc.tokens),
        ratio: acc.ratioTokens > 0 ? acc.ratio / acc.ratioTokens : NaN,
        entropy: acc.tokens > 0 ? acc.entropy / acc.tokens : NaN,
        completionLength: {
          mean: lengths.length ? lengths.reduce((a, b) => a + b, 0) / lengths.length : 0,
          max: lengths.length ? Math.max(...lengths) : 0,
          truncatedFraction: per(truncated, lengths.length),
        },
        groups: { kept: kept.length, dropped, degenerate, samplingRounds: rounds, underfilled: o.promptsPerStep - kept.length },
        tokens: { completion: completionTokens, trained: trainedTokens },
        time,
      };
      all.push(m);
      lastFlat = flattenMetrics(m);
      metrics?.log(step, lastFlat);
      progress?.update(step, { reward: m.reward.mean, acc: m.accuracy, kl: m.kl, len: m.completionLength.mean });
      await hooks.onStep?.(m);
      if ((o.saveEvery > 0 && step % o.saveEvery === 0) || step === o.steps) await save(step);
      if (step < o.steps && hooks.shouldStop?.(step)) break;
    }
  } finally {
    progress?.done();
    metrics?.close();
    if (ref && ref !== reference) await ref.dispose();
  }
  return all;
}

/** Metrics as slash-grouped scalars for metrics.jsonl and TensorBoard: train/* (loss, lr, reward,
 *  accuracy, KL, clip fractions, ...), reward/<term> and reward/<term>_std, completion/*, groups/*,
 *  tokens/*, time/* (seconds). */
export function flattenMetrics(m: GrpoStepMetrics): Record<string, number> {
  const out: Record<string, number> = {
    'train/loss': m.loss,
    'train/lr': m.lr,
    'train/grad_norm': m.gradNorm,
    'train/reward': m.reward.mean,
    'train/reward_std': m.reward.std,
    'train/accuracy': m.accuracy,
    'train/unscorable': m.unscorable,
    'train/kl': m.kl,
    'train/clip_low': m.clipLow,
    'train/clip_high': m.clipHigh,
    'train/ratio': m.ratio,
    'train/entropy': m.entropy,
  };
  for (const [name, v] of Object.entries(m.rewards)) {
    out[`reward/${name}`] = v.mean;
    out[`reward/${name}_std`] = v.std;
  }
  Object.assign(out, {
    'completion/length_mean': m.completionLength.mean,
    'completion/length_max': m.completionLength.max,
    'completion/truncated_fraction': m.completionLength.truncatedFraction,
    'groups/kept': m.groups.kept,
    'groups/dropped': m.groups.dropped,
    'groups/degenerate': m.groups.degenerate,
    'groups/sampling_rounds': m.groups.samplingRounds,
    'groups/underfilled': m.groups.underfilled,
    'tokens/completion': m.tokens.completion,
    'tokens/trained': m.tokens.trained,
  });
  for (const [k, v] of Object.entries(m.time)) out[`time/${k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())}`] = v;
  return out;
}
