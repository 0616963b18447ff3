// The GRPO step's extra forward passes over its completions: the rollout/trainer mismatch check of
// the first micro-batch, and each completion's summed KL to the reference for KL in the reward.
// Both are global over the ranks (one all-reduce each), as every rank must log and decide the same.
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import type { Model } from '../model/model';
import { trainingMicroBatches, type TrainingMicroBatch } from './grpo_batches';
import { klPerSequence, mismatchSums } from './grpo_logprob_terms';
import type { GroupScores } from './grpo_scores';
import type { ResolvedGrpoOptions } from './grpo_options';
import type { RolloutGroup } from './grpo_rollout';
import type { ReferenceLogprobs } from './lora_training';

export interface Mismatch {
  /** Max and mean |trainer - rollout| log-prob over the label tokens; NaN with nothing to check. */
  maxAbs: number;
  meanAbs: number;
  /** Mean k3 estimate of KL(rollout || trainer). */
  kl: number;
}

/**
 * The first micro-batch's rollout log-probs against the trainer's own, before any update: with
 * oldLogp 'recompute' those are already in `mb.oldLogp` (the rollout's kept in `mb.rolloutLogp`),
 * otherwise one forward pass computes them here.
 */
export async function rolloutMismatch(
  policy: Model,
  mb: TrainingMicroBatch | undefined,
  temperature: number,
  dist?: ProcessGroup,
): Promise<Mismatch> {
  let s = { sumAbs: 0, maxAbs: 0, sumKl: 0, tokens: 0 };
  if (mb) {
    const rollout = mb.rolloutLogp ?? mb.oldLogp;
    const trainer = mb.rolloutLogp
      ? mb.oldLogp
      : (await policy.tokenLogprobs(mb.batch, { labels: mb.labels, temperature })).logp;
    s = mismatchSums(rollout, trainer, mb.labels);
  }
  if (dist) {
    [s.sumAbs, s.sumKl, s.tokens] = await allReduceNumbers(dist, [s.sumAbs, s.sumKl, s.tokens]);
    [s.maxAbs] = await allReduceNumbers(dist, [s.maxAbs], 'max');
  }
  if (s.tokens === 0) return { maxAbs: NaN, meanAbs: NaN, kl: NaN };
  return { maxAbs: s.maxAbs, meanAbs: s.sumAbs / s.tokens, kl: s.sumKl / s.tokens };
}

/**
 * Each kept completion's KL to the reference summed over its tokens (estimator o.kl, from the
 * rollout's log-probs), indexed g * G + k over `kept` (every rank's groups: each rank computes its
 * own and one all-reduce gives all).
 */
export async function completionKl(
  ref: ReferenceLogprobs,
  kept: readonly { scores: GroupScores; local?: RolloutGroup }[],
  G: number,
  o: Pick<ResolvedGrpoOptions, 'kl' | 'tokenBudget' | 'temperature'>,
  dist?: ProcessGroup,
): Promise<number[]> {
  const local: RolloutGroup[] = [];
  const globalIndex: number[] = [];
  kept.forEach((k, g) => {
    if (!k.local) return;
    local.push(k.local);
    globalIndex.push(g);
  });
  let sums = new Array<number>(kept.length * G).fill(0);
  const mbs = trainingMicroBatches(local, new Float32Array(local.length * G), o.tokenBudget);
  for (const mb of mbs) {
    const refLogp = (await ref.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: o.temperature })).logp;
    const perSeq = klPerSequence(o.kl, mb.oldLogp, refLogp, mb.labels, mb.batch.cuSeqlens as Int32Array);
    mb.completions.forEach((c, j) => {
      const g = Math.floor(c / G);
      sums[globalIndex[g] * G + (c % G)] = perSeq[j];
    });
  }
  if (dist) sums = await allReduceNumbers(dist, sums);
  return sums;
}
