// The cycle's report: OUT/report.md (tables + charts) and OUT/report.json, from the files the
// stages wrote (round-*/round.json, eval/*.json). The charts (specs in ./report_charts.ts) are
// written as plots/NAME.png for report.md and plots/NAME.svg beside them.
import * as path from 'node:path';
import type { GroupScore } from '../eval/scorer';
import { writeChart } from '../report/charts';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic_write';
import { renderTable } from '../util/table';
import { TEST_SETS, type EvalRecord, type RoundRecord, type TestSetName } from './cycle';
import { cycleCharts } from './report_charts';
import type { SelectionPrecision } from './selection_precision';
import type { CardCounts } from './task_cards';
import { efficiencyClaim, heldOutSeries, mechanismClaims, type Claim, type EfficiencyRow } from './mechanism_claims';

export type { EfficiencyRow } from './mechanism_claims';

export type ArmTable = Record<string, Record<TestSetName, number | null>>;

export interface CycleReport {
  rounds: Array<{
    round: number;
    candidates: number;
    valid: number;
    kept: number;
    /** Valid candidates answered with their description's fact (absent in older round records). */
    grounded?: number;
    /** The candidates the task cards wrote (absent without cards). */
    taskCards?: CardCounts;
    generatorValidity: number;
    /** histogram: valid candidates per 0.1-wide reward bin; histogramKept: the kept ones among them
     *  (absent when the round record predates rewardsKept). */
    reward: { mean: number; p10: number; p50: number; p90: number; histogram: number[]; histogramKept?: number[] };
    judge: { accuracy: number; auc: number; pairs: number };
    /** Measured against MedSynth's truth (never used to select); absent for other data. */
    selectionPrecision?: SelectionPrecision;
    policy: Record<
      string,
      { overall: number | null; byModality: Record<string, number>; byTask: Record<string, number> }
    >;
  }>;
  final: ArmTable;
  /** The paper's two headline claims. */
  claims: Claim[];
  /** The method's own mechanisms (mechanism_claims.ts), and with --study the data-efficiency claim. */
  mechanisms: Claim[];
  /** `cycle --study`: top-k by reward vs random subsets of the same sizes. */
  efficiency?: EfficiencyRow[];
  /** Questions in the held-out-task test set (absent in older reports). */
  heldOutTaskQuestions?: number;
  seconds?: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

function accOf(e: EvalRecord | undefined, s: TestSetName): number | null {
  return e?.sets[s] ? e.sets[s]!.overall.accuracy : null;
}

/** Valid / all of the candidates the generator wrote (the task cards' are not its work). */
export function generatorValidity(r: Pick<RoundRecord, 'candidates' | 'valid' | 'taskCards'>): number {
  const candidates = r.candidates - (r.taskCards?.candidates ?? 0);
  return candidates ? (r.valid - (r.taskCards?.valid ?? 0)) / candidates : 0;
}

/** The report's data, from the round records and evaluations. `arms` maps report arm names to evals. */
export function buildCycleReport(
  rounds: RoundRecord[],
  arms: Record<string, EvalRecord | undefined>,
  perRoundEvals: EvalRecord[],
  seconds?: number,
  efficiency?: EfficiencyRow[],
): CycleReport {
  const final: ArmTable = {};
  for (const [name, e] of Object.entries(arms)) {
    if (!e) continue;
    final[name] = Object.fromEntries(TEST_SETS.map((s) => [s, accOf(e, s)])) as Record<TestSetName, number | null>;
  }
  const out: CycleReport = {
    rounds: [],
    final,
    claims: [],
    mechanisms: [],
    seconds,
    ...(efficiency ? { efficiency } : {}),
  };
  for (const r of rounds) {
    const sorted = [...r.rewardsValid].sort((a, b) => a - b);
    const histogramOf = (rewards: number[]) => {
      const hist = new Array<number>(10).fill(0);
      for (const x of rewards) hist[Math.min(9, Math.floor(x * 10))]++;
      return hist;
    };
    const policy: CycleReport['rounds'][number]['policy'] = {};
    for (const e of perRoundEvals.filter((x) => x.round === r.round)) {
      // a modality (or task) can occur in several test sets (CT in inDomain and heldOutTask): its
      // accuracy pools the questions of all of them
      type Counts = Pick<GroupScore, 'correct' | 'total'>;
      const modalityCounts = new Map<string, Counts>();
      const taskCounts = new Map<string, Counts>();
      const add = (m: Map<string, Counts>, k: string, g: Counts) => {
        const c = m.get(k) ?? { correct: 0, total: 0 };
        m.set(k, { correct: c.correct + g.correct, total: c.total + g.total });
      };
      let correct = 0;
      let total = 0;
      for (const s of TEST_SETS) {
        const sc = e.sets[s];
        if (!sc) continue;
        correct += sc.overall.correct;
        total += sc.overall.total;
        for (const [k, g] of Object.entries(sc.byModality)) add(modalityCounts, k, g);
        for (const [k, g] of Object.entries(sc.byTask))
          add(taskCounts, `${k}${s === 'heldOutModality' ? ' (held-out modalities)' : ''}`, g);
      }
      const rates = (m: Map<string, Counts>) =>
        Object.fromEntries([...m].map(([k, c]) => [k, c.total ? c.correct / c.total : 0]));
      policy[e.arm] = {
        overall: total ? correct / total : null,
        byModality: rates(modalityCounts),
        byTask: rates(taskCounts),
      };
    }
    out.rounds.push({
      round: r.round,
      candidates: r.candidates,
      valid: r.valid,
      kept: r.kept,
      grounded: r.grounded,
      taskCards: r.taskCards,
      generatorValidity: generatorValidity(r),
      reward: {
        mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
        p10: quantile(sorted, 0.1),
        p50: quantile(sorted, 0.5),
        p90: quantile(sorted, 0.9),
        histogram: histogramOf(r.rewardsValid),
        ...(r.rewardsKept ? { histogramKept: histogramOf(r.rewardsKept) } : {}),
      },
      judge: r.judge,
      selectionPrecision: r.selectionPrecision,
      policy,
    });
  }
  out.claims = paperClaims(final);
  const heldOutTaskQuestions = arms.sftCycle?.sets.heldOutTask?.overall.total;
  if (heldOutTaskQuestions) out.heldOutTaskQuestions = heldOutTaskQuestions;
  out.mechanisms = mechanismClaims({
    final,
    heldOutByRound: heldOutSeries(perRoundEvals),
    rounds: out.rounds,
    heldOutTaskQuestions,
  });
  if (efficiency?.length) out.mechanisms.push(efficiencyClaim(efficiency));
  return out;
}

/** Per (task, seed or held-out modalities): "right/kept · right/dropped" in each round; undefined when no
 *  round has counts by group. Where a group's right candidates come from at all, and where none do. */
export function precisionByGroupTable(perRound: readonly (SelectionPrecision | undefined)[]): string | undefined {
  const groups = [...new Set(perRound.flatMap((p) => Object.keys(p?.byGroup ?? {})))].sort();
  if (groups.length === 0) return undefined;
  return renderTable(
    ['task (modalities)', ...perRound.map((_, k) => `round ${k + 1}: kept · dropped`)],
    groups.map((g) => [
      g,
      ...perRound.map((p) => {
        const c = p?.byGroup?.[g];
        return c ? `${c.keptCorrect}/${c.kept} · ${c.droppedCorrect}/${c.dropped}` : '-';
      }),
    ]),
    'markdown',
  );
}

/** The paper's two headline claims on a final table (one run's, or the mean of several seeds': `scope`). */
export function paperClaims(final: ArmTable, scope = 'in this run'): Claim[] {
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const claim = (name: string, a: string, b: string, sets: TestSetName[]): Claim => {
    const mean = (arm: string) => {
      const v = sets.map((s) => final[arm]?.[s] ?? null).filter((x): x is number => x !== null);
      return v.length ? v.reduce((p, q) => p + q, 0) / v.length : null;
    };
    const ma = mean(a);
    const mb = mean(b);
    const holds = ma === null || mb === null ? null : ma > mb;
    const where = sets.length === 1 ? sets[0] : `the mean over ${sets.join(', ')}`;
    const detail =
      holds === null
        ? `cannot be checked: ${a} or ${b} was not evaluated on ${where}`
        : `${a} ${pct(ma)} vs ${b} ${pct(mb)} on ${where}: the claim ${holds ? 'holds' : 'does NOT hold'} ${scope}`;
    return { name, holds, detail };
  };
  return [
    claim('SFT on the cycle data beats SFT on the seed', 'sftCycle', 'sftSeed', [...TEST_SETS]),
    claim('GRPO on the cycle data beats SFT on it on held-out modalities', 'grpoCycle', 'sftCycle', [
      'heldOutModality',
    ]),
  ];
}

function verdict(c: Claim): string {
  return c.holds === null ? 'cannot be checked' : c.holds ? 'holds' : 'does NOT hold';
}

function pct(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : (100 * x).toFixed(1);
}

/** Writes OUT/report.md, OUT/report.json and the charts (plots/*.png + .svg); returns the markdown. */
export async function writeCycleReport(out: string, report: CycleReport): Promise<string> {
  const arms = Object.keys(report.final);
  const charts = cycleCharts(report);
  for (const c of charts) await writeChart(path.join(out, 'plots', `${c.name}.png`), c.spec);
  const image = (name: string) => {
    const c = charts.find((x) => x.name === name);
    return c ? [`![${c.alt}](plots/${c.name}.png)`, ''] : [];
  };
  const md: string[] = ['# MedGR² cycle report', ''];
  if (report.seconds !== undefined) md.push(`Run time: ${report.seconds.toFixed(0)} s.`, '');
  md.push('## Final comparison (accuracy %)', '');
  md.push(
    renderTable(
      ['arm', ...TEST_SETS],
      arms.map((a) => [a, ...TEST_SETS.map((s) => pct(report.final[a][s]))]),
      'markdown',
    ),
    '',
  );
  md.push(...image('final'));
  md.push("## The paper's claims on this run", '');
  for (const c of report.claims) md.push(`- **${c.name}**: ${c.detail}.`);
  md.push('');
  md.push("## The method's mechanisms on this run", '');
  for (const c of report.mechanisms) md.push(`- **${c.name}** — ${verdict(c)}: ${c.detail}.`);
  md.push('');
  if (report.efficiency?.length) {
    md.push('## Data efficiency: top-k by reward vs random subsets (accuracy %)', '');
    md.push(
      renderTable(
        ['generated samples', 'ranking', ...TEST_SETS.map((s) => `SFT ${s}`), ...TEST_SETS.map((s) => `GRPO ${s}`)],
        report.efficiency.map((r) => [
          String(r.size),
          r.ranking,
          ...TEST_SETS.map((s) => pct(r.sft[s])),
          ...TEST_SETS.map((s) => pct(r.grpo[s])),
        ]),
        'markdown',
      ),
      '',
      'Each arm: SFT of the initial weights on the seed plus that many samples of round 1 (ranked by the round-1 reward model, or a seeded random draw from the same valid candidates; with balanced selection both arms take the same number from each (modality, task) group), then GRPO on them.',
      '',
    );
    md.push(...image('efficiency'));
  }
  md.push('## Per round', '');
  md.push(
    renderTable(
      [
        'round',
        'candidates',
        'valid',
        'kept',
        'grounded',
        'generator validity %',
        'reward mean',
        'reward p10/p50/p90',
        'judge accuracy %',
        'judge AUC',
        'correct: kept / dropped %',
      ],
      report.rounds.map((r) => [
        String(r.round),
        String(r.candidates),
        String(r.valid),
        String(r.kept),
        r.grounded === undefined ? '-' : String(r.grounded),
        pct(r.generatorValidity),
        r.reward.mean.toFixed(3),
        `${r.reward.p10.toFixed(2)}/${r.reward.p50.toFixed(2)}/${r.reward.p90.toFixed(2)}`,
        pct(r.judge.accuracy),
        Number.isFinite(r.judge.auc) ? r.judge.auc.toFixed(3) : '-',
        r.selectionPrecision
          ? `${pct(r.selectionPrecision.keptCorrect / Math.max(1, r.selectionPrecision.kept))} / ${pct(r.selectionPrecision.droppedCorrect / Math.max(1, r.selectionPrecision.dropped))}`
          : '-',
      ]),
      'markdown',
    ),
    '',
  );
  if (report.rounds.some((r) => r.grounded)) {
    md.push(
      '"grounded": valid candidates whose answer is the fact the pretrained model\'s description of the image states, where the generator had answered another (src/cycle/grounding.ts).',
      '',
    );
  }
  const carded = report.rounds.filter((r) => r.taskCards);
  if (carded.length) {
    md.push(
      'Tasks the seed lacks (task cards, src/cycle/task_cards.ts): ' +
        carded
          .map(
            (r) =>
              `round ${r.round}: ${r.taskCards!.candidates} candidates written by their cards (${r.taskCards!.valid} valid, ${r.taskCards!.kept} kept; counted in the table above, but not in the generator's validity)`,
          )
          .join('; ') +
        '.',
      '',
    );
  }
  if (report.rounds.some((r) => r.selectionPrecision)) {
    md.push(
      '"correct: kept / dropped": of the valid candidates, how many kept and how many dropped ones name the right answer, checked against MedSynth\'s truth.jsonl after selection (for this report only; selection never reads it).',
      '',
    );
  }
  const byGroup = precisionByGroupTable(report.rounds.map((r) => r.selectionPrecision));
  if (byGroup)
    md.push('Right / all candidates by task and side of the seed, kept and dropped, per round:', '', byGroup, '');
  md.push(...image('rounds'), ...image('judge'), ...image('policy'));
  md.push('Reward histogram of valid candidates (deciles 0.0–0.1 … 0.9–1.0):', '');
  md.push(
    renderTable(
      ['round', ...Array.from({ length: 10 }, (_, i) => `${i / 10}`)],
      report.rounds.map((r) => [String(r.round), ...r.reward.histogram.map(String)]),
      'markdown',
    ),
    '',
  );
  md.push(...image('rewards'));
  for (const r of report.rounds) {
    for (const [arm, p] of Object.entries(r.policy)) {
      md.push(`### Round ${r.round}, ${arm}: accuracy % by modality and task`, '');
      md.push(
        renderTable(
          ['modality', 'accuracy %'],
          Object.entries(p.byModality).map(([k, v]) => [k, pct(v)]),
          'markdown',
        ),
        '',
      );
      md.push(
        renderTable(
          ['task', 'accuracy %'],
          Object.entries(p.byTask).map(([k, v]) => [k, pct(v)]),
          'markdown',
        ),
        '',
      );
    }
  }
  const text = md.join('\n');
  await writeFileAtomic(path.join(out, 'report.md'), text);
  await writeJsonAtomic(path.join(out, 'report.json'), report);
  return text;
}

/** The final table as terminal text. */
export function formatFinalTable(report: CycleReport): string {
  const arms = Object.keys(report.final);
  return renderTable(
    ['arm', ...TEST_SETS.map((s) => `${s} %`)],
    arms.map((a) => [a, ...TEST_SETS.map((s) => pct(report.final[a][s]))]),
    'text',
  );
}
