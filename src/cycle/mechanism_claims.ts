// The method's own mechanisms, stated as claims with this run's numbers, holding or not (issue 17):
// reward filtering, co-evolution, improvement round over round, the held-out task, and (with --study)
// top-k against random data at equal size. Where the run includes the ablation arms (--no-reward-filter,
// --no-co-evolve, --study) a mechanism is judged against its ablation on held-out modalities and on the
// mean of the three test sets; without them the claim says what the run alone shows (selection
// precision, the judge's AUC) and that the ablation was not run. Nothing here reads MedSynth's truth:
// the numbers come from the report's inputs.
import { TEST_SETS, type EvalRecord, type TestSetName } from './cycle';
import type { SelectionPrecision } from './selection_precision';

export interface Claim {
  name: string;
  /** null: cannot be checked on this run (an arm or a round missing). */
  holds: boolean | null;
  detail: string;
}

/** What the claims read: final accuracies by arm, the main chain's held-out-modality accuracy per
 *  round (heldOutSeries) and its rounds. */
export interface MechanismInputs {
  final: Record<string, Record<TestSetName, number | null>>;
  /** arm -> held-out-modality accuracy of rounds 1, 2, ... (null: not evaluated on that set). */
  heldOutByRound: Record<string, readonly (number | null)[]>;
  rounds: readonly {
    round: number;
    judge: { auc: number };
    selectionPrecision?: SelectionPrecision;
  }[];
  /** Questions in the held-out-task test set (over several seeds: all of them); absent in reports
   *  written before it was recorded, when "above chance" is read without a test. */
  heldOutTaskQuestions?: number;
}

/** One data-efficiency arm of `cycle --study`: `size` generated samples ranked by the reward model
 *  ('top-k') or drawn at random ('random'), each policy's accuracy per test set. */
export interface EfficiencyRow {
  size: number;
  ranking: 'top-k' | 'random';
  sft: Record<TestSetName, number | null>;
  grpo: Record<TestSetName, number | null>;
}

/** Chance on MedSynth's four-option questions. */
export const CHANCE = 0.25;

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;

/** Mean accuracy over the test sets an arm was evaluated on; null when none. */
export function meanOfSets(accs: Record<TestSetName, number | null> | undefined): number | null {
  if (!accs) return null;
  const v = TEST_SETS.map((s) => accs[s]).filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/** Full method vs an ablation (arms `<ablation>SftCycle` / `<ablation>GrpoCycle`), for both policies, on
 *  held-out modalities and on the mean of the three sets: holds when the full method is ahead in all four. */
function versusAblation(name: string, ablation: string, final: MechanismInputs['final']): Claim | undefined {
  const pairs = (['Sft', 'Grpo'] as const).map((kind) => ({
    full: final[`${kind.toLowerCase()}Cycle`],
    ablated: final[`${ablation}${kind}Cycle`],
    label: `${kind.toLowerCase()}Cycle`,
  }));
  if (pairs.some((x) => !x.ablated || !x.full)) return undefined;
  const parts: string[] = [];
  let holds = true;
  for (const { full, ablated, label } of pairs) {
    for (const [what, a, b] of [
      ['held-out modalities', full!.heldOutModality, ablated!.heldOutModality],
      ['the mean of the three sets', meanOfSets(full), meanOfSets(ablated)],
    ] as const) {
      if (a === null || b === null) return { name, holds: null, detail: `${label}: ${what} not evaluated` };
      holds &&= a > b;
      parts.push(`${label} ${pct(a)} vs ${pct(b)} on ${what}`);
    }
  }
  return { name, holds, detail: `${parts.join('; ')} (full method vs ${ablation})` };
}

function rewardFiltering(i: MechanismInputs): Claim {
  const vs = versusAblation('reward filtering beats random selection', 'noRewardFilter', i.final);
  if (vs) return vs;
  const measured = i.rounds.filter((r) => r.selectionPrecision && r.selectionPrecision.kept > 0);
  const name = 'the reward model keeps right samples more often than it drops them';
  if (measured.length === 0)
    return { name, holds: null, detail: 'no selection precision (not a MedSynth world); the ablation was not run' };
  const rate = (c: number, n: number) => (n ? c / n : 0);
  const rows = measured.map((r) => {
    const sp = r.selectionPrecision!;
    return { round: r.round, kept: rate(sp.keptCorrect, sp.kept), dropped: rate(sp.droppedCorrect, sp.dropped) };
  });
  return {
    name,
    holds: rows.every((r) => r.kept > r.dropped),
    detail: `${rows.map((r) => `round ${r.round}: ${pct(r.kept)} of kept vs ${pct(r.dropped)} of dropped candidates right`).join('; ')} (the random-selection ablation was not run: --no-reward-filter or --study)`,
  };
}

function coEvolution(i: MechanismInputs): Claim {
  const vs = versusAblation('co-evolution beats a frozen generator and judge', 'noCoEvolve', i.final);
  if (vs) return vs;
  const name = 'the co-evolved judge ranks held-out pairs better than round 1';
  if (i.rounds.length < 2) return { name, holds: null, detail: 'one round only; the ablation was not run' };
  const first = i.rounds[0].judge.auc;
  const last = i.rounds[i.rounds.length - 1].judge.auc;
  return {
    name,
    holds: last > first,
    detail: `judge AUC on held-out pairs ${i.rounds.map((r) => `round ${r.round} ${r.judge.auc.toFixed(3)}`).join(', ')} (the frozen ablation was not run: --no-co-evolve or --study)`,
  };
}

/** Per arm of the rounds, its held-out-modality accuracy in round order (the claims' heldOutByRound). */
export function heldOutSeries(perRound: readonly EvalRecord[]): Record<string, (number | null)[]> {
  const out: Record<string, (number | null)[]> = {};
  for (const e of [...perRound].sort((a, b) => a.round - b.round))
    (out[e.arm] ??= []).push(e.sets.heldOutModality?.overall.accuracy ?? null);
  return out;
}

function roundOverRound(i: MechanismInputs): Claim {
  const name = 'each round improves held-out-modality accuracy';
  const series = ['sftCycle', 'grpoCycle'].map((arm) => ({ arm, accs: i.heldOutByRound[arm] ?? [] }));
  if (series.some((s) => s.accs.length < 2 || s.accs.includes(null)))
    return { name, holds: null, detail: 'fewer than two evaluated rounds' };
  const holds = series.every((s) => s.accs.every((a, k) => k === 0 || a! >= s.accs[k - 1]!));
  return {
    name,
    holds,
    detail: series.map((s) => `${s.arm} ${s.accs.map((a) => pct(a)).join(' -> ')}`).join('; ') + ' (rounds 1, 2, ...)',
  };
}

/** P(X >= k) for X ~ Binomial(n, p): how often guessing alone scores k of n or more. */
export function binomialTail(k: number, n: number, p: number): number {
  // the terms in logs: (1 - p)^n alone underflows past a few thousand questions
  let logTerm = n * Math.log(1 - p); // log P(X = 0)
  let tail = k <= 0 ? Math.exp(logTerm) : 0;
  for (let x = 1; x <= n; x++) {
    logTerm += Math.log((n - x + 1) / x) + Math.log(p / (1 - p));
    if (x >= k) tail += Math.exp(logTerm);
  }
  return Math.min(1, tail);
}

/** The significance level "above chance" is read at (one-sided). */
export const ABOVE_CHANCE_LEVEL = 0.05;

function heldOutTask(i: MechanismInputs): Claim {
  const name = `the held-out task rises above chance (${pct(CHANCE)}) and above sftSeed`;
  const seed = i.final.sftSeed?.heldOutTask ?? null;
  const arms = ['sftCycle', 'grpoCycle'].map((arm) => ({ arm, acc: i.final[arm]?.heldOutTask ?? null }));
  if (seed === null || arms.some((a) => a.acc === null))
    return { name, holds: null, detail: 'the held-out task was not evaluated' };
  // a few dozen questions: 30 % can be luck, so "above chance" means beyond what guessing scores one
  // time in twenty
  const n = i.heldOutTaskQuestions;
  const pOf = (acc: number) => (n ? binomialTail(Math.round(acc * n), n, CHANCE) : undefined);
  const aboveChance = (acc: number) => acc > CHANCE && (pOf(acc) ?? 0) < ABOVE_CHANCE_LEVEL;
  const shown = (a: { arm: string; acc: number | null }) => {
    const p = pOf(a.acc!);
    return `${a.arm} ${pct(a.acc)}${p === undefined ? '' : ` (${Math.round(a.acc! * n!)}/${n}, p = ${p.toFixed(3)} against guessing)`}`;
  };
  return {
    name,
    holds: arms.every((a) => aboveChance(a.acc!) && a.acc! > seed),
    detail: `${arms.map(shown).join(', ')} vs sftSeed ${pct(seed)}`,
  };
}

/** The four mechanism claims, in the report's order. */
export function mechanismClaims(i: MechanismInputs): Claim[] {
  return [rewardFiltering(i), coEvolution(i), roundOverRound(i), heldOutTask(i)];
}

/** `cycle --study`'s data-efficiency claim: at every size, top-k by reward beats a random subset (SFT and
 *  GRPO, on the mean of the three test sets). */
export function efficiencyClaim(rows: readonly EfficiencyRow[]): Claim {
  const name = 'the top-k samples by reward beat a random subset of the same size';
  const sizes = [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b);
  const parts: string[] = [];
  let holds: boolean | null = true;
  for (const size of sizes) {
    const top = rows.find((r) => r.size === size && r.ranking === 'top-k');
    const rnd = rows.find((r) => r.size === size && r.ranking === 'random');
    for (const kind of ['sft', 'grpo'] as const) {
      const a = meanOfSets(top?.[kind]);
      const b = meanOfSets(rnd?.[kind]);
      if (a === null || b === null) {
        holds = null;
        continue;
      }
      if (holds !== null) holds &&= a > b;
      parts.push(`${size} ${kind}: ${(100 * a).toFixed(1)}% vs ${(100 * b).toFixed(1)}%`);
    }
  }
  return { name, holds, detail: `${parts.join('; ')} (top-k vs random, mean of the three sets)` };
}
