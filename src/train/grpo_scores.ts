// What every rank must know of every group of a GRPO step -- its rewards and the numbers the metrics
// describe -- without its tokens. On one process these come straight from the groups; on several
// ranks each rank scores the groups it generated and one all-reduce gives every rank all of them, so
// that every rank takes the same decisions (which groups dynamic sampling keeps, the advantages, the
// loss's global denominators) and rank 0 logs the global metrics.
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import { accuracyScore } from './rewards';
import type { RolloutGroup } from './grpo_rollout';

export interface GroupScores {
  /** Weighted totals, one per completion (NaN: unscorable). */
  rewards: number[];
  /** [completion][reward term]. */
  terms: number[][];
  /** The benchmark's accuracy of each completion (0 or 1). */
  accuracy: number[];
  /** Completion tokens (stop token included). */
  lengths: number[];
  truncated: boolean[];
}

export function scoresOf(g: RolloutGroup): GroupScores {
  return {
    rewards: g.rewards,
    terms: g.terms,
    accuracy: g.texts.map((t) => accuracyScore(t, g.prompt.sample)),
    lengths: g.tokens.map((t) => t.length),
    truncated: g.truncated,
  };
}

/**
 * The scores of a round's `count` groups on every rank. `local` holds the groups this rank scored, by
 * position in the round; each position is scored by exactly one rank. Each completion travels as
 * [reward, accuracy, length, truncated, ...terms] in one float64 all-reduce (a position's other ranks
 * add zeros, so NaN rewards survive the sum).
 */
export async function shareScores(
  group: ProcessGroup | undefined,
  count: number,
  local: ReadonlyMap<number, GroupScores>,
  groupSize: number,
  terms: number,
): Promise<GroupScores[]> {
  if (!group || group.worldSize === 1) {
    return Array.from({ length: count }, (_, j) => {
      const s = local.get(j);
      if (!s) throw new Error(`grpo: group ${j} of the round was not scored`);
      return s;
    });
  }
  const width = 4 + terms;
  const flat = new Array<number>(count * groupSize * width).fill(0);
  for (const [j, s] of local) {
    for (let k = 0; k < groupSize; k++) {
      const at = (j * groupSize + k) * width;
      flat[at] = s.rewards[k];
      flat[at + 1] = s.accuracy[k];
      flat[at + 2] = s.lengths[k];
      flat[at + 3] = s.truncated[k] ? 1 : 0;
      for (let t = 0; t < terms; t++) flat[at + 4 + t] = s.terms[k][t];
    }
  }
  const all = await allReduceNumbers(group, flat);
  return Array.from({ length: count }, (_, j) => {
    const s: GroupScores = { rewards: [], terms: [], accuracy: [], lengths: [], truncated: [] };
    for (let k = 0; k < groupSize; k++) {
      const at = (j * groupSize + k) * width;
      s.rewards.push(all[at]);
      s.accuracy.push(all[at + 1]);
      s.lengths.push(all[at + 2]);
      s.truncated.push(all[at + 3] > 0);
      s.terms.push(all.slice(at + 4, at + 4 + terms));
    }
    return s;
  });
}
