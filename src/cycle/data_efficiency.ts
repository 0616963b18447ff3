// `cycle --study`'s data-efficiency comparison (the paper's "top-K by reward vs a random subset"):
// round 1's scored candidates, cut to N samples by the round-1 reward model (top-k) or by a seeded
// random draw from the same valid, de-duplicated, uncontradicted candidates, at three sizes; each
// subset trains a policy like a round does (SFT of the initial weights on seed + subset, then GRPO)
// and both policies are evaluated. Same selection rules, same training: only the ranking differs.
// With the cycle's `balance` (the default), both arms take the same number from each (modality, task)
// group, as the cycle's own per-group selection and its random ablation do, so the comparison is of
// the reward model's ranking within groups. A global top-k let the ranking across groups decide the
// mix instead: the judge scores the held-out modalities' (right) modality names near 0, and its top-k
// subsets held almost none of them (session 8: top-k lost to random at every size, held-out modality
// 9.7-29.9 % against 31.3-43.8 %).
import type { ScoredCandidate } from '../data/proto';
import { readMessageFile } from '../data/record_files';
import { TEST_SETS, type Cycle, type EvalRecord, type TestSetName } from './cycle';
import type { EfficiencyRow } from './mechanism_claims';
import { selectCandidates, type SelectOptions } from './select';

/** A quarter, a half and all of what round 1 kept (at least 1 each, distinct, ascending). */
export function efficiencySizes(keptInRound1: number): number[] {
  const sizes = [Math.round(keptInRound1 / 4), Math.round(keptInRound1 / 2), keptInRound1].filter((n) => n >= 1);
  return [...new Set(sizes)];
}

/** The `size` samples of one ranking: the same select() the rounds use, cut to `size` (per group with balance). */
export function efficiencySubset(
  scored: readonly ScoredCandidate[],
  size: number,
  ranking: EfficiencyRow['ranking'],
  opts: { balance: boolean; seed: number; statedFact?: SelectOptions['statedFact'] },
): ScoredCandidate[] {
  return selectCandidates(scored, {
    statedFact: opts.statedFact,
    ...(opts.balance ? { topKByGroup: size } : { topK: size }),
    rankBy: ranking === 'top-k' ? 'reward' : 'random',
    seed: opts.seed,
  }).filter((s) => s.selected);
}

function accuracies(e: EvalRecord): Record<TestSetName, number | null> {
  return Object.fromEntries(TEST_SETS.map((s) => [s, e.sets[s]?.overall.accuracy ?? null])) as Record<
    TestSetName,
    number | null
  >;
}

/** Runs every (size, ranking) arm on a chain that has finished round 1; returns the report's rows. */
export async function runDataEfficiency(chain: Cycle, log: (line: string) => void): Promise<EfficiencyRow[]> {
  const { cfg, p } = chain;
  const scored = readMessageFile<ScoredCandidate>(p.scored(1), { expect: 'medgr2.ScoredCandidate' }).messages;
  const kept = readMessageFile<ScoredCandidate>(p.selected(1), { expect: 'medgr2.ScoredCandidate' }).messages.filter(
    (s) => s.selected,
  ).length;
  const sizes = efficiencySizes(kept);
  log(`[study] data efficiency: top-k by reward vs random, ${sizes.join(' / ')} generated samples of round 1`);
  const rows: EfficiencyRow[] = [];
  for (const size of sizes) {
    for (const ranking of ['top-k', 'random'] as const) {
      const subset = efficiencySubset(scored, size, ranking, {
        balance: cfg.select.balance,
        seed: cfg.seed + 101,
        statedFact: chain.statedFact,
      });
      const name = `${ranking === 'top-k' ? 'top' : 'random'}${size}`;
      const { sft, grpo } = await chain.policyArm(
        name,
        subset.map((s) => s.candidate.sample),
        'judge-1',
      );
      rows.push({ size, ranking, sft: accuracies(sft), grpo: accuracies(grpo) });
    }
  }
  return rows;
}
