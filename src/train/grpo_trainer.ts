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
// checkpoints/step-N/ through run_state.ts (every saveEvery steps and at the end, keepLast kept).
// Resume restores weights, AdamW state and the prompt sampler's position; everything random is a pure
// function of the seed: the prompt order of (seed, epoch) and each completion's sampling stream of
// (seed, step, round, prompt position, completion), and the lr of the optimizer step count, so a
// resumed run repeats the uninterrupted one.
// The reference model (beta > 0) is a frozen copy of the policy as passed in, before the checkpoint's
// weights are loaded: resume with the same starting model (--model and its init seed).
//
// Several ranks (opts.dist): every rank draws the same prompts; the round's group j is generated and
// scored on rank j mod worldSize (its completions seeded by position, so they are what one process
// would sample), and one all-reduce shares every group's rewards and metric inputs (grpo_scores.ts).
// So every rank keeps the same groups, computes the same advantages and the same global denominators
// (dapo's numItemsInBatch is the all-reduced completion token count), and trains on its own groups;
// the gradients are summed over the ranks before the optimizer step (ZeRO-1/2 as in SFT). Each rank
// holds its own reference model; rank 0 logs the global metrics and writes the checkpoints.
import { adapterOffReference, useLoraAdapter, type ReferenceLogprobs } from './lora_training';
import { hashString } from '../util/prng';
import { grpo } from '../ops/grpo_ops';
import { Model, type ModelDtype, type ModelDevice } from '../model/model';
import { MetricsLogger } from '../report/metrics';
import { Progress } from '../report/progress';
import { lrAt, type LrSchedule } from './lr_schedule';
import { scoreGroup, type GrpoPrompt, type Reward } from './rewards';
import { scoresOf, shareScores, type GroupScores } from './grpo_scores';
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import { describeMemoryPerRank, memoryPlanOf, type ZeroStage } from '../dist/zero_memory';
import { resumeRun, saveRunCheckpoint, TRAINER_STATE_VERSION, type TrainerState } from './run_state';
import { GRPO_DEFAULTS, LATER_OPTIONS, RESUMABLE_CHANGES, resolveGrpoOptions, type GrpoOptions } from './grpo_options';
import { NonFiniteGuard, lossIsUsable } from './nonfinite_guard';
import { OVERLONG_TERM, overlongPenalty } from './overlong';
import { truncatedIsWeights } from './grpo_logprob_terms';
import { completionKl, rolloutMismatch } from './grpo_logprob_passes';
import { StepWarnings } from './grpo_warnings';
import {
  PromptSampler,
  isDegenerate,
  seedFor,
  encodePrompts,
  generateRollouts,
  type RolloutGroup,
} from './grpo_rollout';
import { microBatchShare, trainingMicroBatches } from './grpo_batches';
import { flattenMetrics, meanStd, type GrpoStepMetrics, type MeanStd } from './grpo_metrics';

export interface GrpoHooks {
  onStep?(metrics: GrpoStepMetrics): void | Promise<void>;
  /** Asked after each step (after its checkpoint): true ends the run there (resumable). */
  shouldStop?(step: number): boolean;
  /** Called once when a run continues from a checkpoint (its folder and step). */
  onResume?(dir: string, step: number): void | Promise<void>;
  /** Every step's kept groups (completions, rewards), e.g. to write rollouts to disk. */
  onRollouts?(step: number, groups: readonly RolloutGroup[]): void | Promise<void>;
  /** A warning line (zero reward variance, truncation, clipping, skipped updates); default stderr. */
  onWarning?(line: string): void;
}

/** The Model dtype of a native dtype name ("Float", "BFloat16", ... as torch prints them). */
function modelDtype(native: string): ModelDtype {
  const names: Record<string, ModelDtype> = {
    float: 'float32',
    float32: 'float32',
    bfloat16: 'bfloat16',
    half: 'float16',
    float16: 'float16',
    double: 'float64',
    float64: 'float64',
  };
  const d = names[native.toLowerCase()];
  if (!d) throw new Error(`grpo: the policy's dtype ${native} has no Model dtype`);
  return d;
}

/** A frozen copy of the policy's current weights (same device and dtype). */
export async function frozenCopy(policy: Model): Promise<Model> {
  const { device, dtype } = policy.info;
  const ref = await Model.create(policy.config, {
    init: 'none',
    device: device as ModelDevice,
    dtype: modelDtype(dtype),
  });
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
  const {
    tokenizer: tok,
    images = {},
    stopTokens,
    reference,
    lora,
    out,
    resume,
    tokenizerDir,
    progress: showProgressOpt = true,
    dist: distOpt,
    zero: zeroOpt = 0,
    ...rest
  } = opts;
  const o = resolveGrpoOptions(rest);
  const dist = distOpt && distOpt.worldSize > 1 ? distOpt : undefined;
  const rank = dist?.rank ?? 0;
  const worldSize = dist?.worldSize ?? 1;
  const isMain = rank === 0;
  const showProgress = showProgressOpt && isMain;
  if (![0, 1, 2].includes(zeroOpt)) throw new Error(`grpo: zero must be 0, 1 or 2, got ${zeroOpt}`);
  const zero: ZeroStage = dist ? zeroOpt : 0;
  const ranks = dist ? { group: dist, zeroStage: zero } : undefined;
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
  const schedule: LrSchedule = {
    lr: o.lr,
    totalSteps: totalOptSteps,
    warmupSteps: o.warmupSteps,
    minLrRatio: o.minLrRatio,
    shape: o.schedule,
  };

  // What a resume must find unchanged for its rewards and losses to be the uninterrupted run's.
  const fingerprint: TrainerState['fingerprint'] = {
    prompts: prompts.length,
    promptsHash: hashString(
      prompts
        .map((p) => `${p.id}\u0000${p.system ?? ''}\u0000${p.user}\u0000${p.images.join('\u0001')}`)
        .join('\u0002'),
    ),
    rewards: rewardFns.map((r) => `${r.name}=${r.weight}`).join(','),
  };
  for (const [k, v] of Object.entries(o)) {
    if (RESUMABLE_CHANGES.has(k)) continue;
    if (k === 'steps' && o.schedule === 'constant') continue; // the lr does not depend on the run's length
    // Off (at the values before the option existed): checkpoints from before it still resume.
    if (LATER_OPTIONS.has(k) && GRPO_DEFAULTS[k as keyof typeof GRPO_DEFAULTS] === v) continue;
    fingerprint[k] = v as string | number | boolean;
  }

  // A LoRA policy trains its adapter only (seeded like the run), before rank 0's weights go out.
  const adapter = useLoraAdapter(policy, lora, o.seed);
  // Every rank starts from rank 0's weights (the ranks only ever exchange gradients after this).
  if (dist) await policy.broadcastParameters(dist, 0);
  // The reference is the policy as given (before a checkpoint's weights replace it), or for a LoRA
  // policy the base with its adapter off; KL in the loss (beta) and KL in the reward (klInReward)
  // both need it.
  const needsRef = o.beta > 0 || o.klInReward > 0;
  const ownRef = needsRef && !reference && !adapter ? await frozenCopy(policy) : undefined;
  const ref: ReferenceLogprobs | undefined = needsRef
    ? (reference ?? ownRef ?? adapterOffReference(policy))
    : undefined;
  const termNames = [...rewardFns.map((r) => r.name), ...(o.overlongBuffer > 0 ? [OVERLONG_TERM] : [])];
  const warn = (line: string): void => {
    if (!isMain) return;
    if (hooks.onWarning) hooks.onWarning(line);
    else process.stderr.write(line + '\n');
  };
  const warnings = new StepWarnings(o.warnEvery, warn);
  // Sharded before the resume: the checkpoint's slices load into the sharded optimizer.
  if (zero > 0) policy.shardOptimizer(dist as ProcessGroup, { stage: zero as 1 | 2 });
  if (dist && showProgress)
    process.stderr.write(`grpo: ${describeMemoryPerRank(memoryPlanOf(policy.info, worldSize, zero))}\n`);
  let startStep = 0;
  let skippedBefore = 0;
  let tokensSeen = 0;
  let samplesSeen = 0;
  const all: GrpoStepMetrics[] = [];
  let metrics: MetricsLogger | undefined;
  let progress: Progress | undefined;
  try {
    if (resume !== undefined && resume !== false) {
      const { dir, state } = await resumeRun(
        out as string,
        resume === true ? 'latest' : resume,
        policy,
        'grpo',
        fingerprint,
        'the same prompts, rewards and options',
        ranks,
      );
      sampler.restore({ epoch: state.epoch, pos: state.batchIndex });
      ({ step: startStep, tokensSeen, samplesSeen } = state);
      skippedBefore = Number((state.extra as { skippedSteps?: number } | undefined)?.skippedSteps ?? 0);
      await hooks.onResume?.(dir, startStep);
    }
    const guard = new NonFiniteGuard({
      trainer: 'grpo',
      maxConsecutive: o.maxSkippedSteps,
      skippedBefore,
      warn,
      hint: 'lower --lr, or check the rewards and the data (--max-skipped-steps sets how many skips in a row stop a run)',
    });
    metrics =
      out && isMain
        ? new MetricsLogger(out, { resumeStep: resume !== undefined && resume !== false ? startStep : undefined })
        : undefined;
    progress =
      showProgress && startStep < o.steps
        ? new Progress({ label: 'grpo', total: o.steps, unit: 'step', start: startStep })
        : undefined;
    let lastFlat: Record<string, number> = {};
    const save = async (step: number): Promise<void> => {
      // Under ZeRO every rank writes its optimizer slices; otherwise rank 0 writes everything.
      if (!out || (!isMain && zero === 0)) return;
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
        scheduler: {
          step: optStepNow,
          totalSteps: totalOptSteps,
          warmupSteps: o.warmupSteps,
          lr: o.lr,
          minLrRatio: o.minLrRatio,
        },
        tokensSeen,
        samplesSeen,
        fingerprint,
        metrics: Object.fromEntries(Object.entries(lastFlat).filter(([, v]) => Number.isFinite(v))),
        extra: { schedule: o.schedule, numIterations: o.numIterations, skippedSteps: guard.skippedSteps },
        savedAt: new Date().toISOString(),
      };
      metrics?.flush();
      await saveRunCheckpoint(out, policy, state, { keepLast: o.keepLast, tokenizerDir, ranks });
    };
    let optStep = startStep * o.numIterations;
    for (let step = startStep + 1; step <= o.steps; step++) {
      const t0 = performance.now();
      const time = {
        rollout: 0,
        reward: 0,
        logprobRef: 0,
        logprobOld: 0,
        logprobCheck: 0,
        lossBackward: 0,
        optimizer: 0,
        total: 0,
      };
      const lap = async <T>(key: keyof typeof time, fn: () => Promise<T>): Promise<T> => {
        const s = performance.now();
        try {
          return await fn();
        } finally {
          time[key] += (performance.now() - s) / 1000;
        }
      };

      // ---- rollouts, rewards, dynamic sampling ----
      // Every rank draws the same prompts; rank r generates and scores the round's groups j with
      // j % worldSize === r (seeded by position, so no rollout depends on its rank), and every rank
      // learns every group's scores (shareScores). `kept` holds the global list; `local` its groups.
      const kept: { scores: GroupScores; local?: RolloutGroup }[] = [];
      let dropped = 0;
      let degenerate = 0;
      let rounds = 0;
      const allScores: GroupScores[] = [];
      while (kept.length < o.promptsPerStep && rounds < (o.dynamicSampling ? o.maxSamplingRounds : 1)) {
        const idx = sampler.next(o.promptsPerStep - kept.length);
        samplesSeen += idx.length;
        const mine = idx.map((_, j) => j).filter((j) => j % worldSize === rank);
        const chosen = mine.map((j) => prompts[idx[j]]);
        const round = rounds;
        const generated = await lap('rollout', async () => {
          const enc = await encodePrompts(tok, chosen, images);
          const seeds = mine.map((j) => seedFor(o.seed, step, round, j));
          return generateRollouts(policy, tok, chosen, enc, o, seeds, stopTokens);
        });
        rounds++;
        const local = new Map<number, RolloutGroup>();
        await lap('reward', async () => {
          for (const [i, g] of generated.entries()) {
            const terms: number[][] = [];
            const rewards: number[] = [];
            for (const [k, sc] of (await scoreGroup(rewardFns, g.texts, g.prompt)).entries()) {
              if (o.overlongBuffer > 0) {
                // DAPO's soft overlong punishment: a term of its own, on the completion's token count
                const pen = overlongPenalty(g.tokens[k].length, o.maxNewTokens, o.overlongBuffer);
                sc.terms.push(pen);
                sc.total += o.overlongPenaltyFactor * pen;
              }
              terms.push(sc.terms);
              rewards.push(sc.total);
            }
            local.set(mine[i], { ...g, terms, rewards });
          }
        });
        const localScores = new Map([...local].map(([j, g]) => [j, scoresOf(g)] as const));
        const scores = await shareScores(dist, idx.length, localScores, o.groupSize, termNames.length);
        scores.forEach((sc, j) => {
          allScores.push(sc);
          const flat = isDegenerate(sc.rewards);
          if (flat) degenerate++;
          if (o.dynamicSampling && flat) dropped++;
          else kept.push({ scores: sc, local: local.get(j) });
        });
      }
      // Only this rank's groups: on several ranks each rank sees the rollouts it generated.
      await hooks.onRollouts?.(
        step,
        kept.flatMap((k) => (k.local ? [k.local] : [])),
      );

      // ---- advantages and micro-batches ----
      const G = o.groupSize;
      const rewards = new Float32Array(kept.length * G);
      kept.forEach((k, i) => rewards.set(k.scores.rewards, i * G));
      let klRewardMean = NaN;
      if (ref && o.klInReward > 0 && kept.length > 0) {
        // verl's use_kl_in_reward: each completion's reward loses klInReward x its summed KL between
        // the rollout's log-probs and the reference's, before the advantages see it.
        const klSums = await lap('logprobRef', () => completionKl(ref, kept, G, o, dist));
        klSums.forEach((v, i) => (rewards[i] -= o.klInReward * v));
        klRewardMean = klSums.reduce((a, b) => a + b, 0) / Math.max(klSums.length, 1);
      }
      const advantages =
        kept.length > 0
          ? grpo.advantages(rewards, G, { scale: o.advantageScale, eps: o.advantageEps })
          : new Float32Array(0);
      // DAPO's overlong filtering: a truncated completion takes no part in the loss, its denominators
      // included (as if the token mean were over the completions that finished).
      const masked = (sc: GroupScores, c: number): boolean => o.maskTruncatedCompletions && sc.truncated[c];
      let completionTokens = 0;
      let lossTokens = 0;
      let lossSequences = 0;
      for (const k of kept)
        k.scores.lengths.forEach((n, c) => {
          completionTokens += n;
          if (masked(k.scores, c)) return;
          lossTokens += n;
          lossSequences++;
        });
      const include = (g: number, k: number): boolean =>
        !masked(kept[g].scores, k) && (o.beta > 0 || advantages[g * G + k] !== 0);
      // Whether any rank has a sequence to train on (then every rank takes part in the update).
      const anyToTrain = kept.some((k, g) => k.scores.lengths.some((n, c) => n > 0 && include(g, c)));
      const localKept: RolloutGroup[] = [];
      const localGlobal: number[] = []; // local group index -> kept index
      const localAdvantages: number[] = [];
      kept.forEach((k, g) => {
        if (!k.local) return;
        localKept.push(k.local);
        localGlobal.push(g);
        localAdvantages.push(...advantages.subarray(g * G, (g + 1) * G));
      });
      const localAdv = Float32Array.from(localAdvantages);
      const mbs = trainingMicroBatches(localKept, localAdv, o.tokenBudget, (g, k) => include(localGlobal[g], k));
      let trainedTokens = mbs.reduce((a, m) => a + m.tokens, 0);
      tokensSeen += completionTokens;

      if (o.oldLogp === 'recompute') {
        await lap('logprobOld', async () => {
          for (const mb of mbs) {
            mb.rolloutLogp = mb.oldLogp;
            mb.oldLogp = (await policy.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: o.temperature })).logp;
            if (o.tisCap > 0) mb.isWeights = truncatedIsWeights(mb.oldLogp, mb.rolloutLogp, mb.labels, o.tisCap);
          }
        });
      }
      // Rollout/trainer identity, every step: the first micro-batch's rollout log-probs against the
      // trainer's own recomputation before any update (the recompute above, or one forward here).
      const mismatch = await lap('logprobCheck', () => rolloutMismatch(policy, mbs[0], o.temperature, dist));
      // The loss's KL term needs the reference at every trained token; with beta 0 the reference
      // serves KL in the reward only (computed above), and a second forward here would go unused.
      if (ref && o.beta > 0) {
        await lap('logprobRef', async () => {
          for (const mb of mbs)
            mb.refLogp = (await ref.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: o.temperature })).logp;
        });
      }

      // ---- updates ----
      let lossSum = 0;
      let gradNorm = NaN;
      let skippedNow = 0;
      let lr = lrAt(optStep, schedule);
      const acc = {
        kl: 0,
        clipLow: 0,
        clipHigh: 0,
        entropy: 0,
        tokens: 0,
        ratio: 0,
        ratioTokens: 0,
        seqClipLow: 0,
        seqClipHigh: 0,
        sequences: 0,
        logRatioAbs: 0,
        entropyKept: 0,
        keptTokens: 0,
      };
      for (let it = 0; it < o.numIterations; it++) {
        lr = lrAt(optStep, schedule);
        if (!anyToTrain) {
          optStep++;
          continue; // nothing to learn from (every advantage 0): no update, weight decay included
        }
        // Data parallel: the last backward sums the gradients over the ranks while it runs (a rank with
        // no micro-batch takes part through allReduceGradients); under ZeRO the optimizer step does.
        const ddp = dist && zero === 0 ? dist : undefined;
        let iterLoss = 0;
        await lap('lossBackward', async () => {
          for (const [m, mb] of mbs.entries()) {
            const reduce = ddp && m === mbs.length - 1 ? { dist: ddp } : undefined;
            const rep = await policy.backwardGrpo(
              mb.batch,
              {
                labels: mb.labels,
                advantages: mb.advantages,
                oldLogp: mb.oldLogp,
                refLogp: mb.refLogp,
                lossType: o.lossType,
                epsLow: o.epsLow,
                epsHigh: o.epsHigh,
                beta: o.beta,
                kl: o.kl,
                importanceSamplingLevel: o.importanceSamplingLevel,
                delta: o.delta > 0 ? o.delta : undefined,
                policyLoss: o.policyLoss,
                isWeights: mb.isWeights,
                entropyCoef: o.entropyCoef,
                entropyTopQuantile: o.entropyTopQuantile,
                numItemsInBatch: Math.max(lossTokens, 1),
                maxCompletionLength: o.maxNewTokens,
                lossScale: microBatchShare(o.lossType, mb, lossSequences, lossTokens),
                temperature: o.temperature,
              },
              reduce,
            );
            iterLoss += rep.loss;
            const n = rep.stats?.activeTokens ?? rep.tokens;
            const seqs = mb.advantages.length;
            acc.seqClipLow += (rep.stats?.seqClipLowFraction ?? 0) * seqs;
            acc.seqClipHigh += (rep.stats?.seqClipHighFraction ?? 0) * seqs;
            acc.sequences += seqs;
            acc.logRatioAbs += (rep.stats?.logRatioAbsMean ?? 0) * n;
            const kept = n * (rep.stats?.entropyKeptFraction ?? 1);
            acc.entropyKept += (rep.stats?.entropyKeptMean ?? rep.entropyMean) * kept;
            acc.keptTokens += kept;
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
        // A non-finite loss anywhere skips the update on every rank (summed, NaN reaches them all).
        if (dist) iterLoss = (await allReduceNumbers(dist, [iterLoss]))[0];
        lossSum += iterLoss;
        const res = await lap('optimizer', async () => {
          if (ddp && mbs.length === 0) await policy.allReduceGradients(ddp);
          return policy.optimizerStep({
            lr,
            beta1: o.adamBeta1,
            beta2: o.adamBeta2,
            weightDecay: o.weightDecay,
            maxGradNorm: o.maxGradNorm,
            skip: !lossIsUsable(iterLoss),
          });
        });
        gradNorm = res.gradNorm;
        optStep++;
        if (guard.record({ step, loss: iterLoss, gradNorm: res.gradNorm, skipped: res.skipped })) skippedNow++;
      }

      // ---- metrics ----
      // Rewards, accuracy and lengths describe everything the policy generated this step (dropped
      // groups included): what the policy does, not what dynamic sampling kept.
      if (dist) {
        // The loss statistics are sums over this rank's tokens: summed over the ranks, rank 0 logs
        // the global means.
        // (lossSum is already global: each iteration's loss was summed over the ranks above.)
        const keys = Object.keys(acc) as (keyof typeof acc)[];
        const sums = await allReduceNumbers(dist, [...keys.map((k) => acc[k]), trainedTokens]);
        keys.forEach((k, i) => (acc[k] = sums[i]));
        trainedTokens = sums[keys.length];
      }
      const byTerm: Record<string, MeanStd> = {};
      termNames.forEach((name, j) => (byTerm[name] = meanStd(allScores.flatMap((g) => g.terms.map((t) => t[j])))));
      const lengths = allScores.flatMap((g) => g.lengths);
      const truncated = allScores.flatMap((g) => g.truncated).filter(Boolean).length;
      const accs = allScores.flatMap((g) => g.accuracy);
      const totals = allScores.flatMap((g) => g.rewards);
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
        seqClipLow: per(acc.seqClipLow, acc.sequences),
        seqClipHigh: per(acc.seqClipHigh, acc.sequences),
        logRatioAbs: per(acc.logRatioAbs, acc.tokens),
        entropyKept: {
          mean: acc.keptTokens > 0 ? acc.entropyKept / acc.keptTokens : NaN,
          fraction: per(acc.keptTokens, acc.tokens),
        },
        mismatch,
        klInReward: klRewardMean,
        skipped: { step: skippedNow, total: guard.skippedSteps },
        completionLength: {
          mean: lengths.length ? lengths.reduce((a, b) => a + b, 0) / lengths.length : 0,
          max: lengths.length ? Math.max(...lengths) : 0,
          truncatedFraction: per(truncated, lengths.length),
        },
        groups: {
          kept: kept.length,
          dropped,
          degenerate,
          samplingRounds: rounds,
          underfilled: o.promptsPerStep - kept.length,
        },
        tokens: { completion: completionTokens, trained: trainedTokens },
        time,
      };
      warnings.check(step, {
        degenerateGroups: degenerate,
        groups: allScores.length,
        truncatedFraction: m.completionLength.truncatedFraction,
        clipFraction: m.clipLow + m.clipHigh,
      });
      all.push(m);
      lastFlat = flattenMetrics(m);
      metrics?.log(step, lastFlat);
      progress?.update(step, { reward: m.reward.mean, acc: m.accuracy, kl: m.kl, len: m.completionLength.mean });
      await hooks.onStep?.(m);
      if ((o.saveEvery > 0 && step % o.saveEvery === 0) || step === o.steps) await save(step);
      if (step < o.steps && hooks.shouldStop) {
        let stop = hooks.shouldStop(step);
        // The ranks stop together: any rank's stop stops all (give shouldStop on every rank or none).
        if (dist) stop = (await allReduceNumbers(dist, [stop ? 1 : 0], 'max'))[0] > 0;
        if (stop) break;
      }
    }
  } finally {
    progress?.done();
    metrics?.close();
    if (ownRef) await ownRef.dispose();
    if (zero > 0) policy.shardOptimizer(null); // the slices are in the checkpoints
  }
  return all;
}
