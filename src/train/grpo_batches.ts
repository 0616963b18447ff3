// GRPO's training micro-batches: prompt + completion packed by token budget, labels on the completions,
// and each micro-batch's share of the generation batch's loss (exact normalization for every loss type).
import type { PackSample } from '../data/packing';
import { assembleBatch } from '../data/packing';
import { type ModelBatch } from '../model/model';
import { toModelBatch } from '../model/encode';
import { type RolloutGroup } from './grpo_rollout';

/** The share of one micro-batch in the generation batch's loss (see the note at the top). */
export function microBatchShare(
  lossType: string,
  mb: Pick<TrainingMicroBatch, 'advantages' | 'tokens'>,
  sequences: number,
  completionTokens: number,
): number {
  if (lossType === 'grpo' || lossType === 'dr_grpo') return mb.advantages.length / Math.max(sequences, 1);
  if (lossType === 'bnpo') return mb.tokens / Math.max(completionTokens, 1);
  return 1;
}

/** One training micro-batch: packed prompt+completion sequences with labels on the completions. */
export interface TrainingMicroBatch {
  batch: ModelBatch;
  labels: Int32Array;
  /** [N] rollout log-probs aligned with labels (0 where labels < 0). */
  oldLogp: Float32Array;
  refLogp?: Float32Array;
  /** [S] one per sequence. */
  advantages: Float32Array;
  /** [S] each sequence's completion, as g * groupSize + k of the groups passed in. */
  completions: number[];
  /** [N] the rollout's log-probs when oldLogp holds recomputed ones (truncated IS, mismatch). */
  rolloutLogp?: Float32Array;
  /** [N] truncated importance-sampling weights of the policy term (tisCap). */
  isWeights?: Float32Array;
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
  const seqs: { sample: PackSample; old: Float32Array; adv: number; completion: number }[] = [];
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
      seqs.push({
        sample: { ids, targetMask, images: grp.encoded.images },
        old,
        adv: advantages[g * grp.tokens.length + k],
        completion: g * grp.tokens.length + k,
      });
    });
  });
  const out: TrainingMicroBatch[] = [];
  let cur: number[] = [];
  let used = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    const pb = assembleBatch(
      seqs.map((s) => s.sample),
      cur,
    );
    const { batch, labels } = toModelBatch(pb);
    const oldLogp = new Float32Array(pb.numTokens);
    let off = 0;
    for (const i of cur) {
      oldLogp.set(seqs[i].old, off);
      off += seqs[i].old.length;
    }
    let tokens = 0;
    for (const l of labels) if (l >= 0) tokens++;
    out.push({
      batch,
      labels,
      oldLogp,
      advantages: Float32Array.from(cur, (i) => seqs[i].adv),
      completions: cur.map((i) => seqs[i].completion),
      tokens,
    });
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
