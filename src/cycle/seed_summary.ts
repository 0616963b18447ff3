// Several finished runs of one cycle configuration on different world seeds, summarized (`medgr2
// summarize`): each arm's accuracy per test set as mean ± sd over the seeds beside each seed's value, the
// main chain's held-out-modality accuracy and the judge's AUC per round, the data-efficiency rows, and
// every claim of the report judged again on the means, with the number of seeds it holds on alone. One
// world seed's 144 held-out-modality questions give a binomial standard error of about 4 points: a gap
// of that size in one run may be luck, so the method's claims are read on several seeds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic_write';
import { renderTable } from '../util/table';
import { readJson, TEST_SETS, type EvalRecord, type TestSetName } from './cycle';
import {
  efficiencyClaim,
  heldOutSeries,
  meanOfSets,
  mechanismClaims,
  type Claim,
  type EfficiencyRow,
  type MechanismInputs,
} from './mechanism_claims';
import { paperClaims, type ArmTable, type CycleReport } from './report';
import type { SelectionCounts } from './selection_precision';

/** One finished run: its folder, world seed, configuration, report and per-round held-out accuracies. */
export interface SeedRun {
  dir: string;
  seed: number;
  config: Record<string, unknown>;
  report: CycleReport;
  heldOutByRound: Record<string, (number | null)[]>;
}

/** A number over the seeds: each seed's value (in run order), their mean and sample standard deviation. */
export interface SeedStat {
  values: number[];
  mean: number;
  sd: number;
}

/** A claim judged on the means, and on how many of the seeds it holds alone (of those it could be checked on). */
export interface SummaryClaim extends Claim {
  seedsHolding: number;
  seedsChecked: number;
}

export interface SeedSummary {
  runs: { dir: string; seed: number }[];
  /** arm -> test set (and 'mean' of the three) -> stat; null where a run did not evaluate it. */
  final: Record<string, Record<TestSetName | 'mean', SeedStat | null>>;
  /** arm -> held-out-modality stat of rounds 1, 2, ... */
  heldOutByRound: Record<string, (SeedStat | null)[]>;
  judgeAuc: SeedStat[];
  /** Grounded candidates of rounds 1, 2, ... (--ground-answers); null where a run's round record has no count. */
  grounded: (SeedStat | null)[];
  /** The data-efficiency arms by size rank (a quarter, half, all of round 1's kept): each seed's size. */
  efficiency: { sizes: number[]; ranking: EfficiencyRow['ranking']; sft: SeedStat | null; grpo: SeedStat | null }[];
  claims: SummaryClaim[];
}

/** Config fields that differ between the runs of one summary by design. */
const PER_RUN_FIELDS = new Set(['out', 'seed', 'resume']);

function readRunFile<T>(file: string, what: string): T {
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (${what})`);
  try {
    return readJson<T>(file);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
}

/** Reads a finished `medgr2 cycle` run folder. */
export function readSeedRun(dir: string): SeedRun {
  const config = readRunFile<Record<string, unknown>>(path.join(dir, 'config.json'), 'not a cycle run folder');
  const report = readRunFile<CycleReport>(path.join(dir, 'report.json'), 'the run has not finished; --resume it');
  if (typeof config.seed !== 'number') throw new Error(`${path.join(dir, 'config.json')}: no numeric "seed"`);
  const rounds = typeof config.rounds === 'number' ? config.rounds : report.rounds.length;
  const evals: EvalRecord[] = [];
  for (let r = 1; r <= rounds; r++)
    for (const arm of ['sftCycle', 'grpoCycle'])
      evals.push(readRunFile(path.join(dir, 'eval', `${arm}-round-${r}.json`), `round ${r}'s evaluation of ${arm}`));
  return { dir, seed: config.seed, config, report, heldOutByRound: heldOutSeries(evals) };
}

/** Runs may differ only in their world seed (and folder): anything else would mix two experiments. */
export function checkComparable(runs: readonly SeedRun[]): void {
  if (runs.length === 0) throw new Error('summarize: no runs given');
  const [first] = runs;
  for (const run of runs.slice(1)) {
    const keys = new Set([...Object.keys(first.config), ...Object.keys(run.config)]);
    for (const k of [...keys].sort()) {
      if (PER_RUN_FIELDS.has(k)) continue;
      if (JSON.stringify(first.config[k]) !== JSON.stringify(run.config[k]))
        throw new Error(
          `${run.dir}: its config differs from ${first.dir}'s in "${k}" (a summary compares world seeds of one configuration)`,
        );
    }
    const twin = runs.find((r) => r !== run && r.seed === run.seed);
    if (twin)
      throw new Error(`${run.dir} and ${twin.dir}: the same world seed ${run.seed} (a summary needs distinct seeds)`);
  }
}

/** Mean and sample standard deviation (n - 1; 0 for one value). */
export function seedStat(values: readonly number[]): SeedStat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const ss = values.reduce((a, b) => a + (b - mean) ** 2, 0);
  return { values: [...values], mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : 0 };
}

/** The stat of a value every run has; null when one of them lacks it. */
function statOf(values: readonly (number | null | undefined)[]): SeedStat | null {
  return values.every((v): v is number => typeof v === 'number' && Number.isFinite(v)) ? seedStat(values) : null;
}

/** The arms every run evaluated, in the first run's order. */
function commonArms(runs: readonly SeedRun[]): string[] {
  return Object.keys(runs[0].report.final).filter((arm) => runs.every((r) => r.report.final[arm]));
}

function efficiencyBySize(runs: readonly SeedRun[]): SeedSummary['efficiency'] {
  const out: SeedSummary['efficiency'] = [];
  for (const ranking of ['top-k', 'random'] as const) {
    const perRun = runs.map((r) =>
      (r.report.efficiency ?? []).filter((e) => e.ranking === ranking).sort((a, b) => a.size - b.size),
    );
    const n = Math.min(...perRun.map((rows) => rows.length));
    for (let k = 0; k < n; k++) {
      const rows = perRun.map((p) => p[k]);
      out.push({
        sizes: rows.map((row) => row.size),
        ranking,
        sft: statOf(rows.map((row) => meanOfSets(row.sft))),
        grpo: statOf(rows.map((row) => meanOfSets(row.grpo))),
      });
    }
  }
  return out.sort((a, b) => a.sizes[0] - b.sizes[0] || a.ranking.localeCompare(b.ranking));
}

/** One round's selection counts summed over the seeds; undefined unless every seed measured them. */
function pooledPrecision(perSeed: readonly (SelectionCounts | undefined)[]): SelectionCounts | undefined {
  const sum: SelectionCounts = { kept: 0, keptCorrect: 0, dropped: 0, droppedCorrect: 0 };
  for (const p of perSeed) {
    if (!p) return undefined;
    sum.kept += p.kept;
    sum.keptCorrect += p.keptCorrect;
    sum.dropped += p.dropped;
    sum.droppedCorrect += p.droppedCorrect;
  }
  return sum;
}

/** The held-out-task questions of all the seeds (the mean's accuracy is over all of them); undefined
 *  when a report predates the count. */
function pooledQuestions(runs: readonly SeedRun[]): number | undefined {
  const n = runs.map((r) => r.report.heldOutTaskQuestions);
  return n.every((x): x is number => typeof x === 'number') ? n.reduce((a, b) => a + b, 0) : undefined;
}

/** The claims of a report, judged on the seeds' means (accuracies averaged; selection counts pooled). */
function claimsOnMeans(runs: readonly SeedRun[], s: Omit<SeedSummary, 'claims' | 'runs'>): Claim[] {
  const final: ArmTable = {};
  for (const [arm, sets] of Object.entries(s.final))
    final[arm] = Object.fromEntries(TEST_SETS.map((t) => [t, sets[t]?.mean ?? null])) as Record<
      TestSetName,
      number | null
    >;
  const heldOutByRound = Object.fromEntries(
    Object.entries(s.heldOutByRound).map(([arm, series]) => [arm, series.map((x) => x?.mean ?? null)]),
  );
  const rounds: MechanismInputs['rounds'] = s.judgeAuc.map((auc, k) => {
    const selectionPrecision = pooledPrecision(runs.map((r) => r.report.rounds[k]?.selectionPrecision));
    return { round: k + 1, judge: { auc: auc.mean }, selectionPrecision };
  });
  const claims = [
    ...paperClaims(final, 'on the mean of the seeds'),
    ...mechanismClaims({ final, heldOutByRound, rounds, heldOutTaskQuestions: pooledQuestions(runs) }),
  ];
  const rows: EfficiencyRow[] = s.efficiency.map((e) => {
    const size = Math.round(seedStat(e.sizes).mean);
    const setsOf = (x: SeedStat | null) =>
      Object.fromEntries(TEST_SETS.map((t) => [t, x?.mean ?? null])) as Record<TestSetName, number | null>;
    // the mean of the sets is all the claim reads: every set carries it
    return { size, ranking: e.ranking, sft: setsOf(e.sft), grpo: setsOf(e.grpo) };
  });
  if (rows.length) claims.push(efficiencyClaim(rows));
  return claims;
}

/** The summary of runs that differ only in their world seed. */
export function summarizeSeeds(runs: readonly SeedRun[]): SeedSummary {
  checkComparable(runs);
  const final: SeedSummary['final'] = {};
  for (const arm of commonArms(runs)) {
    const sets = Object.fromEntries(TEST_SETS.map((t) => [t, statOf(runs.map((r) => r.report.final[arm][t]))]));
    final[arm] = {
      ...sets,
      mean: statOf(runs.map((r) => meanOfSets(r.report.final[arm]))),
    } as SeedSummary['final'][string];
  }
  const heldOutByRound: SeedSummary['heldOutByRound'] = {};
  for (const arm of ['sftCycle', 'grpoCycle']) {
    const n = Math.min(...runs.map((r) => r.heldOutByRound[arm]?.length ?? 0));
    heldOutByRound[arm] = Array.from({ length: n }, (_, k) => statOf(runs.map((r) => r.heldOutByRound[arm][k])));
  }
  const nRounds = Math.min(...runs.map((r) => r.report.rounds.length));
  const judgeAuc = Array.from({ length: nRounds }, (_, k) => seedStat(runs.map((r) => r.report.rounds[k].judge.auc)));
  const grounded = Array.from({ length: nRounds }, (_, k) => statOf(runs.map((r) => r.report.rounds[k].grounded)));
  const body = { final, heldOutByRound, judgeAuc, grounded, efficiency: efficiencyBySize(runs) };
  const claims = claimsOnMeans(runs, body).map((c) => {
    const alone = runs.map((r) => [...r.report.claims, ...r.report.mechanisms].find((x) => x.name === c.name));
    return {
      ...c,
      seedsHolding: alone.filter((x) => x?.holds === true).length,
      seedsChecked: alone.filter((x) => x && x.holds !== null).length,
    };
  });
  return { runs: runs.map((r) => ({ dir: r.dir, seed: r.seed })), ...body, claims };
}

const pct = (x: number) => (100 * x).toFixed(1);

/** "60.4 ± 6.7 (63.2 / 65.3 / 52.8)": percentages, mean ± sd, then each seed's value. */
function cell(x: SeedStat | null, scale: (v: number) => string = pct): string {
  if (!x) return '-';
  return `${scale(x.mean)} ± ${scale(x.sd)} (${x.values.map(scale).join(' / ')})`;
}

/** summary.md: the tables and the claims. */
export function formatSeedSummary(s: SeedSummary): string {
  const seeds = s.runs.map((r) => r.seed).join(', ');
  const md: string[] = [
    `# MedGR² cycle over ${s.runs.length} world seeds (${seeds})`,
    '',
    ...s.runs.map((r) => `- seed ${r.seed}: \`${r.dir}\``),
    '',
    `Every cell: mean ± sample standard deviation over the seeds, then each seed's value in the order above.`,
    '',
    '## Final accuracy (%)',
    '',
    renderTable(
      ['arm', ...TEST_SETS, 'mean of the sets'],
      Object.entries(s.final).map(([arm, sets]) => [arm, ...TEST_SETS.map((t) => cell(sets[t])), cell(sets.mean)]),
      'markdown',
    ),
    '',
    '## Held-out modalities by round (%, main chain)',
    '',
  ];
  const nRounds = Math.max(0, ...Object.values(s.heldOutByRound).map((x) => x.length));
  const roundHeader = Array.from({ length: nRounds }, (_, k) => `round ${k + 1}`);
  md.push(
    renderTable(
      ['arm', ...roundHeader],
      Object.entries(s.heldOutByRound).map(([arm, series]) => [arm, ...series.map((x) => cell(x))]),
      'markdown',
    ),
    '',
    renderTable(
      ['judge', ...roundHeader],
      [['held-out AUC', ...s.judgeAuc.map((x) => cell(x, (v) => v.toFixed(3)))]],
      'markdown',
    ),
  );
  // how often the round's answers needed grounding: falls when the co-evolved generator learns the copy
  if (s.grounded.some((x) => x && x.mean > 0))
    md.push(
      '',
      renderTable(
        ['generator', ...roundHeader],
        [['grounded candidates', ...s.grounded.map((x) => cell(x, (v) => v.toFixed(0)))]],
        'markdown',
      ),
    );
  if (s.efficiency.length) {
    md.push(
      '',
      '## Data efficiency (%, mean of the three sets)',
      '',
      renderTable(
        ['samples (per seed)', 'ranking', 'SFT', 'GRPO'],
        s.efficiency.map((e) => [e.sizes.join(' / '), e.ranking, cell(e.sft), cell(e.grpo)]),
        'markdown',
      ),
    );
  }
  md.push('', '## Claims on the means', '');
  for (const c of s.claims) {
    const verdict = c.holds === null ? 'cannot be checked' : c.holds ? 'holds' : 'does NOT hold';
    md.push(
      `- **${c.name}**: ${verdict} on the mean; alone on ${c.seedsHolding} of ${c.seedsChecked} seeds. ${c.detail}`,
    );
  }
  return md.join('\n') + '\n';
}

/** Writes DIR/summary.md and DIR/summary.json (atomically); returns the markdown. */
export async function writeSeedSummary(dir: string, summary: SeedSummary): Promise<string> {
  const text = formatSeedSummary(summary);
  fs.mkdirSync(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, 'summary.md'), text);
  await writeJsonAtomic(path.join(dir, 'summary.json'), summary);
  return text;
}
