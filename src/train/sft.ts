// Supervised fine-tuning of any of the three roles (policy, generator, reward model): the same loop
// on generic (images, user, reply) examples, cross-entropy on the reply tokens only.
//
// Batching: every example is encoded once (images decoded once and cached for the run), then each
// epoch's examples are packed into micro-batches of at most `tokenBudget` tokens by planBatches with
// a seed derived from (seed, epoch): the data order is a pure function of (seed, epoch), which is what
// makes resume exact. Consecutive micro-batches are grouped into one optimizer step until they hold
// at least `globalTokens` target tokens; every micro-batch's loss is divided by the step's total
// target count (numItems), so the accumulated gradient is that of the true per-token mean over the
// step, whatever the split into micro-batches. A step never spans two epochs.
//
// Resume restores weights, AdamW state, the schedule position (= the step count; lr_schedule.ts is a
// pure function of it) and the data position (epoch, next micro-batch). There is no dropout and no
// sampling in SFT, so nothing else is random: a resumed run repeats the uninterrupted one's losses.
//
// A step whose loss or gradient norm is NaN or infinite updates nothing (nonfinite_guard.ts): it is
// counted (train/skipped_steps) and said on stderr, and `maxSkippedSteps` of them in a row stop the
// run with an error naming the step and the quantity. The step count and the data position still
// advance past a skipped step: its batch would give the same NaN again (SFT is deterministic), and
// the schedule and data order stay the pure functions of the step that resume relies on.
import { hashString } from '../util/prng';
import { assembleBatch, planBatches, type PackSample } from '../data/packing';
import type { Sample } from '../data/proto';
import { TextTokenizer } from '../data/tokenizer';
import { ADAMW_DEFAULTS, type Model } from '../model/model';
import { MetricsLogger } from '../report/metrics';
import { Progress } from '../report/progress';
import { DecodedImages, encodeConversation, toModelBatch } from '../model/encode';
import type { ProcessorOptions } from '../data/images/processor';
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import { describeMemoryPerRank, memoryPlanOf, type ZeroStage } from '../dist/zero_memory';
import { lrAt, warmupStepsFor, type LrSchedule } from './lr_schedule';

import { NonFiniteGuard, lossIsUsable } from './nonfinite_guard';
import { useLoraAdapter } from './lora_training';
import type { LoraSpec } from '../model/lora';
import { resumeRun, saveRunCheckpoint, TRAINER_STATE_VERSION, type TrainerState } from './run_state';
import { POLICY_SYSTEM, policyPrompt, policyReply, type PromptStyle } from '../eval/policy_prompt';

/** One training example: the images, the user turn, the reply to learn (and an optional system turn). */
export interface SftExample {
  images: string[];
  user: string;
  reply: string;
  system?: string;
}

export interface SftOptions {
  // ---- optimization (AdamW, linear warm-up + cosine decay) ----
  /** Peak learning rate. */
  lr: number;
  /** Warm-up as a fraction of all steps (used when warmupSteps is 0). */
  warmupRatio: number;
  /** Warm-up steps; > 0 overrides warmupRatio. */
  warmupSteps: number;
  /** The cosine ends at minLrRatio · lr. */
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm clip; 0: none. */
  maxGradNorm: number;
  /** A step with a non-finite loss or gradient norm is skipped; this many in a row stop the run. */
  maxSkippedSteps: number;
  // ---- length ----
  epochs: number;
  /** > 0: exactly this many optimizer steps (epochs repeat as needed; `epochs` is ignored). */
  maxSteps: number;
  // ---- batching ----
  /** Most tokens in one micro-batch (one forward/backward). */
  tokenBudget: number;
  /** Target (reply) tokens per optimizer step: micro-batches accumulate until at least this many;
   *  0: one micro-batch per step. */
  globalTokens: number;
  /** Seed of the data order (and of nothing else: SFT has no other randomness). */
  seed: number;
  // ---- what trains ----
  freezeVision: boolean;
  freezeMerger: boolean;
  freezeLm: boolean;
  /** LoRA: train an adapter only (the base frozen; a model that already carries an adapter trains it
   *  even without this). See src/model/lora.ts. */
  lora?: LoraSpec;
  /** Recompute each layer's activations in backward (less memory, ~1/3 more compute). */
  recomputeActivations: boolean;
  // ---- evaluation, checkpoints, logs ----
  /** Held-out loss (and hooks.evaluate) every N steps and at the end; 0: only at the end. */
  evalEvery: number;
  /** A checkpoint every N steps and at the end; 0: only at the end. Needs `out`. */
  saveEvery: number;
  /** Checkpoints kept (newest); 0: all. */
  keepLast: number;
  /** Metrics every N steps. */
  logEvery: number;
  /** Run folder (metrics.jsonl, tensorboard/, checkpoints/). Absent: nothing is written. */
  out?: string;
  /** Continue from a checkpoint of `out`: true / "latest", a step number, or a checkpoint folder. */
  resume?: boolean | string;
  /** Held-out examples for the eval loss. */
  evalExamples?: SftExample[];
  /** Relative image paths resolve against this folder. */
  imageRoot?: string;
  /** Image resize bounds and patch rule (default Qwen2-VL's processor defaults). */
  imageOptions?: ProcessorOptions;
  /** Default: the shipped tokenizer (configs/tokenizer). */
  tokenizer?: TextTokenizer;
  /** Tokenizer files copied into each checkpoint. */
  tokenizerDir?: string;
  /** Progress line on stderr (default true). */
  progress?: boolean;
  /** Data parallelism: the process group of the ranks. Every rank runs trainSft with the same data and
   *  options; micro-batch b of a step goes to rank (b - step.start) % worldSize, the gradients are
   *  summed over the ranks before the optimizer step. Only rank 0 writes metrics and the weights, and
   *  evaluates. Absent or world size 1: a single process. */
  dist?: ProcessGroup;
  /** With `dist`: 0 = every rank keeps the whole optimizer and takes the same step (DDP); 1 / 2 =
   *  ZeRO: the optimizer state is sharded over the ranks (native/train/zero_adamw.h) and each rank
   *  writes its slices into the checkpoints. Ignored on one rank. */
  zero: ZeroStage;
}

/** The defaults, one commented place (the CLI's flags and config keys come from these names). */
export const SFT_DEFAULTS: SftOptions = {
  lr: 1e-5, // Qwen2-VL full fine-tuning range; tiny models from scratch want ~1e-3..3e-3
  warmupRatio: 0.03,
  warmupSteps: 0,
  minLrRatio: 0.0,
  weightDecay: ADAMW_DEFAULTS.weightDecay,
  beta1: ADAMW_DEFAULTS.beta1,
  beta2: ADAMW_DEFAULTS.beta2,
  eps: ADAMW_DEFAULTS.eps,
  maxGradNorm: 1.0,
  // 3: one or two bad batches in a row (an overflow on an outlier) are survived by skipping them;
  // a third means the weights themselves give non-finite values on whatever batch comes (a skipped
  // step never changes them), and going on would only spend compute on a run that trains nothing.
  maxSkippedSteps: 3,
  epochs: 1,
  maxSteps: 0,
  tokenBudget: 4096,
  globalTokens: 0,
  seed: 0,
  freezeVision: false,
  freezeMerger: false,
  freezeLm: false,
  recomputeActivations: false,
  evalEvery: 0,
  saveEvery: 0,
  keepLast: 2,
  logEvery: 1,
  zero: 0,
};

export interface SftStepReport {
  /** 1-based: the optimizer step just taken. */
  step: number;
  totalSteps: number;
  epoch: number;
  /** Per-token mean cross-entropy over the step's target tokens (before the update). */
  loss: number;
  lr: number;
  gradNorm: number;
  /** True when the update was skipped (a non-finite loss or gradient norm): the weights did not change. */
  skipped: boolean;
  targetTokens: number;
  microBatches: number;
  sequences: number;
  seconds: number;
}

export interface SftEvalReport {
  step: number;
  loss: number;
  /** What hooks.evaluate returned (e.g. accuracy). */
  metrics: Record<string, number>;
}

export interface SftHooks {
  onStep?(report: SftStepReport): void | Promise<void>;
  /** Extra held-out metrics at each evaluation (e.g. accuracy through evaluatePolicy). */
  evaluate?(model: Model, step: number): Promise<Record<string, number>>;
  onEval?(report: SftEvalReport): void | Promise<void>;
  /** Asked after each step (after its checkpoint): true ends the run there (resumable). With
   *  options.dist, give it on every rank or on none: any rank's true stops all of them. */
  shouldStop?(step: number): boolean;
}

export interface SftResult {
  /** Optimizer steps done in all (including those before a resume). */
  steps: number;
  totalSteps: number;
  /** The steps this call ran. */
  history: SftStepReport[];
  evals: SftEvalReport[];
  /** The step this call started from (0, or the resumed checkpoint's). */
  resumedFrom: number;
  /** Whether the run reached totalSteps (false when hooks.shouldStop ended it). */
  completed: boolean;
  /** Updates skipped for a non-finite loss or gradient norm (with those before a resume). */
  skippedSteps: number;
  lastCheckpoint?: string;
}

/** Policy examples (question + lettered options -> "<answer> X </answer>", after a rationale in think
 *  style). With `answer: 'text'` the reply names the option's text instead of its letter: the scorer
 *  accepts both, and a tiny model from scratch learns image -> name far sooner than the extra hop
 *  name -> letter (see test/train/sft.test.ts). */
export function sftExamplesFromSamples(
  samples: readonly Sample[],
  style: PromptStyle,
  opts: { answer?: 'letter' | 'text' } = {},
): SftExample[] {
  return samples.map((s, i) => {
    if (!s.answer) throw new Error(`sample ${i} ('${s.id}') has no answer: SFT needs labelled samples`);
    if (!s.options.includes(s.answer))
      throw new Error(`sample ${i} ('${s.id}'): answer "${s.answer}" is not among its options`);
    const reply = policyReply(s, style, opts.answer ?? 'letter');
    return { images: s.images, user: policyPrompt(s, style), reply, system: POLICY_SYSTEM };
  });
}

export interface EncodedExamples {
  samples: PackSample[];
  /** Target tokens of each example. */
  targets: number[];
}

/** Encodes examples (chat template, images); errors name the example. */
export async function encodeExamples(
  examples: readonly SftExample[],
  tok: TextTokenizer,
  images: DecodedImages,
  what = 'example',
  progress?: Progress,
): Promise<EncodedExamples> {
  const samples: PackSample[] = [];
  const targets: number[] = [];
  for (const [i, ex] of examples.entries()) {
    if (typeof ex.reply !== 'string' || ex.reply.length === 0)
      throw new Error(`sft: ${what} ${i} has an empty reply (nothing to learn)`);
    let s: PackSample;
    try {
      s = encodeConversation(tok, await images.get(ex.images ?? []), ex.user, { system: ex.system, reply: ex.reply });
    } catch (e) {
      throw new Error(`sft: ${what} ${i}: ${(e as Error).message}`);
    }
    samples.push(s);
    let n = 0;
    for (const m of s.targetMask) n += m;
    targets.push(n);
    progress?.update(i + 1);
  }
  progress?.done();
  return { samples, targets };
}

interface StepPlan {
  /** Micro-batches [start, end) of the epoch's plan. */
  start: number;
  end: number;
  targetTokens: number;
}

interface EpochPlan {
  batches: number[][];
  steps: StepPlan[];
}

/** The micro-batches of an epoch (a pure function of seed and epoch) grouped into optimizer steps. */
export function planEpoch(
  enc: EncodedExamples,
  o: Pick<SftOptions, 'tokenBudget' | 'globalTokens' | 'seed'>,
  epoch: number,
): EpochPlan {
  const batches = planBatches(
    enc.samples.map((s) => s.ids.length),
    { tokenBudget: o.tokenBudget, seed: hashString(`sft/seed${o.seed}/epoch${epoch}`) },
  );
  const steps: StepPlan[] = [];
  let start = 0;
  let tokens = 0;
  for (let b = 0; b < batches.length; b++) {
    for (const i of batches[b]) tokens += enc.targets[i];
    if (tokens >= o.globalTokens || b === batches.length - 1) {
      steps.push({ start, end: b + 1, targetTokens: tokens });
      start = b + 1;
      tokens = 0;
    }
  }
  return { batches, steps };
}

/** Per-token mean loss of `enc` under the model (no gradient). */
export async function evalLoss(model: Model, enc: EncodedExamples, tokenBudget: number): Promise<number> {
  const total = enc.targets.reduce((a, b) => a + b, 0);
  if (total === 0) return NaN;
  let loss = 0;
  for (const idx of planBatches(
    enc.samples.map((s) => s.ids.length),
    { tokenBudget, seed: 0 },
  )) {
    const { batch, labels } = toModelBatch(assembleBatch(enc.samples, idx));
    loss += await model.sftLoss(batch, { labels, numItems: total });
  }
  return loss;
}

function checkOptions(o: SftOptions): void {
  const positive = ['lr', 'tokenBudget', 'beta1', 'beta2', 'eps'] as const;
  for (const k of positive) if (!(o[k] > 0)) throw new Error(`sft: ${k} must be > 0, got ${o[k]}`);
  const nonNeg = [
    'warmupRatio',
    'warmupSteps',
    'minLrRatio',
    'weightDecay',
    'maxGradNorm',
    'epochs',
    'maxSteps',
    'globalTokens',
    'evalEvery',
    'saveEvery',
    'keepLast',
  ] as const;
  for (const k of nonNeg) if (!(o[k] >= 0)) throw new Error(`sft: ${k} must be >= 0, got ${o[k]}`);
  if (o.maxSteps === 0 && !(o.epochs > 0)) throw new Error('sft: set epochs > 0 or maxSteps > 0');
  if (!(Number.isInteger(o.maxSkippedSteps) && o.maxSkippedSteps >= 1))
    throw new Error(`sft: maxSkippedSteps must be a whole number >= 1, got ${o.maxSkippedSteps}`);
  if (!(o.logEvery >= 1)) throw new Error(`sft: logEvery must be >= 1, got ${o.logEvery}`);
  if (o.resume && !o.out) throw new Error('sft: resume needs the run folder (out)');
  if (![0, 1, 2].includes(o.zero)) throw new Error(`sft: zero must be 0, 1 or 2, got ${o.zero}`);
  if (o.freezeVision && o.freezeMerger && o.freezeLm)
    throw new Error('sft: freezeVision, freezeMerger and freezeLm all set: nothing would train');
  if (o.lora && (o.freezeVision || o.freezeMerger || o.freezeLm))
    throw new Error(
      'sft: freezeVision / freezeMerger / freezeLm do not apply with LoRA (the base is frozen; choose the adapted modules instead)',
    );
}

/** Fine-tunes `model` on `examples`; see the file comment for batching and resume. */
export async function trainSft(
  model: Model,
  examples: readonly SftExample[],
  options: Partial<SftOptions> = {},
  hooks: SftHooks = {},
): Promise<SftResult> {
  const o: SftOptions = { ...SFT_DEFAULTS, ...stripUndefined(options) };
  checkOptions(o);
  if (examples.length === 0) throw new Error('sft: no training examples');
  const tok = o.tokenizer ?? TextTokenizer.load();
  const images = new DecodedImages(o.imageRoot, o.imageOptions);
  const dist = o.dist && o.dist.worldSize > 1 ? o.dist : undefined;
  const rank = dist?.rank ?? 0;
  const worldSize = dist?.worldSize ?? 1;
  const isMain = rank === 0;
  const showProgress = o.progress !== false && isMain;

  const encodeProgress =
    showProgress && examples.length >= 200
      ? new Progress({ label: 'sft: encode', total: examples.length, unit: 'ex' })
      : undefined;
  const train = await encodeExamples(examples, tok, images, 'example', encodeProgress);
  const held = o.evalExamples?.length ? await encodeExamples(o.evalExamples, tok, images, 'eval example') : undefined;
  train.samples.forEach((s, i) => {
    if (s.ids.length > o.tokenBudget)
      throw new Error(
        `sft: example ${i} has ${s.ids.length} tokens, more than tokenBudget ${o.tokenBudget} (raise --token-budget)`,
      );
  });
  held?.samples.forEach((s, i) => {
    if (s.ids.length > o.tokenBudget)
      throw new Error(
        `sft: eval example ${i} has ${s.ids.length} tokens, more than tokenBudget ${o.tokenBudget} (raise --token-budget)`,
      );
  });

  const plans = new Map<number, EpochPlan>();
  const planOf = (epoch: number): EpochPlan => {
    let p = plans.get(epoch);
    if (!p) {
      p = planEpoch(train, o, epoch);
      plans.set(epoch, p);
      if (plans.size > 2) plans.delete(Math.min(...plans.keys()));
    }
    return p;
  };
  let totalSteps = o.maxSteps;
  if (totalSteps === 0) for (let e = 0; e < o.epochs; e++) totalSteps += planOf(e).steps.length;
  const sched: LrSchedule = {
    lr: o.lr,
    totalSteps,
    warmupSteps: warmupStepsFor(totalSteps, o.warmupRatio, o.warmupSteps),
    minLrRatio: o.minLrRatio,
  };

  // What a resume must find unchanged for its losses to be the uninterrupted run's.
  const fingerprint = {
    examples: train.samples.length,
    data: hashString(
      train.samples
        .map((s, i) => `${s.ids.length}:${train.targets[i]}:${hashString(Array.from(s.ids).join(','))}`)
        .join('|'),
    ),
    seed: o.seed,
    tokenBudget: o.tokenBudget,
    globalTokens: o.globalTokens,
    totalSteps,
  };

  if (!useLoraAdapter(model, o.lora, o.seed))
    model.setTrainable({ vision: !o.freezeVision, merger: !o.freezeMerger, languageModel: !o.freezeLm });
  model.setRecomputeActivations(o.recomputeActivations);
  const zero: ZeroStage = dist ? o.zero : 0;
  const ranks = dist ? { group: dist, zeroStage: zero } : undefined;
  // Sharded before the resume: the checkpoint's slices load into the sharded optimizer.
  if (zero > 0) model.shardOptimizer(dist as ProcessGroup, { stage: zero as 1 | 2 });
  if (dist && showProgress)
    process.stderr.write(`sft: ${describeMemoryPerRank(memoryPlanOf(model.info, worldSize, zero))}\n`);

  let step = 0;
  let epoch = 0;
  let batchIndex = 0;
  let tokensSeen = 0;
  let samplesSeen = 0;
  let skippedBefore = 0;
  if (o.resume) {
    const { state } = await resumeRun(
      o.out as string,
      o.resume === true ? 'latest' : o.resume,
      model,
      'sft',
      fingerprint,
      'the same data and batching options',
      ranks,
    );
    ({ step, epoch, batchIndex, tokensSeen, samplesSeen } = state);
    skippedBefore = Number(state.extra?.skippedSteps ?? 0);
  }
  const guard = new NonFiniteGuard({
    trainer: 'sft',
    maxConsecutive: o.maxSkippedSteps,
    skippedBefore,
    warn: (line) => void (isMain && process.stderr.write(line + '\n')),
  });
  const resumedFrom = step;
  // Every rank starts from rank 0's weights (a random init or a checkpoint that differs would
  // otherwise drift apart silently: the ranks only ever exchange gradients).
  if (dist) await model.broadcastParameters(dist, 0);

  const metrics = o.out && isMain ? new MetricsLogger(o.out, { resumeStep: o.resume ? step : undefined }) : undefined;
  const progress =
    showProgress && step < totalSteps
      ? new Progress({ label: 'sft', total: totalSteps, unit: 'step', start: step })
      : undefined;
  const history: SftStepReport[] = [];
  const evals: SftEvalReport[] = [];
  let lastCheckpoint: string | undefined;
  let lastLoss = NaN;

  const runEval = async (): Promise<void> => {
    const loss = held ? await evalLoss(model, held, o.tokenBudget) : NaN;
    const extra = hooks.evaluate ? await hooks.evaluate(model, step) : {};
    const report: SftEvalReport = { step, loss, metrics: extra };
    evals.push(report);
    const values: Record<string, number> = {};
    if (held) values['eval/loss'] = loss;
    for (const [k, v] of Object.entries(extra)) values[`eval/${k}`] = v;
    if (Object.keys(values).length) metrics?.log(step, values);
    await hooks.onEval?.(report);
  };

  const save = async (): Promise<void> => {
    // Under ZeRO every rank writes its optimizer slices; otherwise rank 0 writes everything.
    if (!o.out || (!isMain && zero === 0)) return;
    const state: TrainerState = {
      version: TRAINER_STATE_VERSION,
      trainer: 'sft',
      step,
      epoch,
      batchIndex,
      seed: o.seed,
      scheduler: { step, totalSteps, warmupSteps: sched.warmupSteps, lr: o.lr, minLrRatio: o.minLrRatio },
      tokensSeen,
      samplesSeen,
      fingerprint,
      metrics: { 'train/loss': lastLoss },
      extra: { skippedSteps: guard.skippedSteps },
      savedAt: new Date().toISOString(),
    };
    metrics?.flush();
    lastCheckpoint = await saveRunCheckpoint(o.out, model, state, {
      keepLast: o.keepLast,
      tokenizerDir: o.tokenizerDir,
      ranks,
    });
  };

  let completed = step >= totalSteps;
  try {
    while (step < totalSteps) {
      const plan = planOf(epoch);
      if (batchIndex >= plan.batches.length) {
        epoch++;
        batchIndex = 0;
        continue;
      }
      const sp = plan.steps.find((s) => s.start === batchIndex);
      if (!sp)
        throw new Error(
          `resume: micro-batch ${batchIndex} of epoch ${epoch} does not start an optimizer step (the checkpoint does not fit this data)`,
        );
      const t0 = Date.now();
      let loss = 0;
      let sequences = 0;
      const mine: number[] = [];
      for (let b = sp.start; b < sp.end; b++) {
        sequences += plan.batches[b].length;
        if ((b - sp.start) % worldSize === rank) mine.push(b);
      }
      // Data parallel: the last backward of the step sums the gradients over the ranks while it runs
      // (a rank without a micro-batch in this step takes part through allReduceGradients). numItems is
      // the step's global target count, so the sum over ranks is the step's mean. Under ZeRO the
      // optimizer step reduces the gradients itself.
      const ddp = dist && zero === 0 ? dist : undefined;
      for (const [n, b] of mine.entries()) {
        const { batch, labels } = toModelBatch(assembleBatch(train.samples, plan.batches[b]));
        const reduce = ddp && n === mine.length - 1 ? { dist: ddp } : undefined;
        loss += (await model.backwardSft(batch, { labels, numItems: sp.targetTokens }, reduce)).loss;
      }
      if (ddp && mine.length === 0) await model.allReduceGradients(ddp);
      if (dist) [loss] = await allReduceNumbers(dist, [loss]);
      const lr = lrAt(step, sched);
      // The ranks agree on skipping without another collective: `loss` is already the sum over the
      // ranks, and a NaN or infinity on any rank makes that sum non-finite on all of them.
      const stepped = await model.optimizerStep({
        lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: o.weightDecay,
        maxGradNorm: o.maxGradNorm,
        skip: !lossIsUsable(loss),
      });
      const gradNorm = stepped.gradNorm;
      // Past maxSkippedSteps in a row the guard throws; the step's metrics are logged first.
      let stop: unknown = undefined;
      let skipped = true;
      try {
        skipped = guard.record({ step: step + 1, loss, gradNorm, skipped: stepped.skipped });
      } catch (err) {
        stop = err;
      }
      step++;
      batchIndex = sp.end;
      if (batchIndex >= plan.batches.length) {
        epoch++;
        batchIndex = 0;
      }
      tokensSeen += sp.targetTokens;
      samplesSeen += sequences;
      lastLoss = loss;
      const seconds = (Date.now() - t0) / 1000;
      const report: SftStepReport = {
        step,
        totalSteps,
        epoch: epoch + batchIndex / Math.max(1, planOf(epoch).batches.length),
        loss,
        lr,
        gradNorm,
        skipped,
        targetTokens: sp.targetTokens,
        microBatches: sp.end - sp.start,
        sequences,
        seconds,
      };
      history.push(report);
      if (step % o.logEvery === 0 || step === totalSteps || skipped) {
        metrics?.log(step, {
          'train/skipped_steps': guard.skippedSteps,
          'train/loss': loss,
          'train/lr': lr,
          'train/grad_norm': gradNorm,
          'train/target_tokens': sp.targetTokens,
          'train/micro_batches': sp.end - sp.start,
          'train/epoch': report.epoch,
          'train/tokens_per_s': seconds > 0 ? sp.targetTokens / seconds : 0,
        });
      }
      // No checkpoint, eval or hook after a stop: the weights are those of the last good step, and
      // the newest checkpoint is the place to resume from (with a lower lr).
      if (stop !== undefined) throw stop;
      progress?.update(step, { loss, lr, epoch: Number(report.epoch.toFixed(2)) });
      await hooks.onStep?.(report);
      if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === totalSteps) {
        if (isMain && (held || hooks.evaluate)) await runEval();
      }
      if ((o.saveEvery > 0 && step % o.saveEvery === 0) || step === totalSteps) await save();
      if (step < totalSteps && hooks.shouldStop) {
        let stop = hooks.shouldStop(step);
        if (dist) {
          // The ranks stop together (one that went on alone would wait forever in its next collective):
          // any rank's stop stops all. Every rank must then pass shouldStop, or none.
          stop = (await allReduceNumbers(dist, [stop ? 1 : 0], 'max'))[0] > 0;
        }
        if (stop) break;
      }
    }
    completed = step >= totalSteps;
  } finally {
    progress?.done();
    metrics?.close();
    if (zero > 0) model.shardOptimizer(null); // the slices are in the checkpoints; the model goes back to one process
  }
  return {
    steps: step,
    totalSteps,
    history,
    evals,
    resumedFrom,
    completed,
    lastCheckpoint,
    skippedSteps: guard.skippedSteps,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
