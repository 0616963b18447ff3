// The cycle's report: OUT/report.md (tables + PNG charts) and OUT/report.json, from the files the
// stages wrote (round-*/round.json, eval/*.json). The charts are drawn here on a raw RGB canvas and
// encoded by sharp: a line chart (per-round curves) and a grouped bar chart (the final comparison).
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { GroupScore } from '../eval/scorer';
import { renderTable } from '../util/table';
import { TEST_SETS, type EvalRecord, type RoundRecord, type TestSetName } from './cycle';

export type ArmTable = Record<string, Record<TestSetName, number | null>>;

export interface CycleReport {
  rounds: Array<{
    round: number;
    candidates: number;
    valid: number;
    kept: number;
    generatorValidity: number;
    reward: { mean: number; p10: number; p50: number; p90: number; histogram: number[] };
    judge: { accuracy: number; auc: number; pairs: number };
    /** Measured against MedSynth's truth (never used to select); absent for other data. */
    selectionPrecision?: { kept: number; keptCorrect: number; dropped: number; droppedCorrect: number };
    policy: Record<string, { overall: number | null; byModality: Record<string, number>; byTask: Record<string, number> }>;
  }>;
  final: ArmTable;
  claims: { name: string; holds: boolean | null; detail: string }[];
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

/** The report's data, from the round records and evaluations. `arms` maps report arm names to evals. */
export function buildCycleReport(rounds: RoundRecord[], arms: Record<string, EvalRecord | undefined>, perRoundEvals: EvalRecord[], seconds?: number): CycleReport {
  const final: ArmTable = {};
  for (const [name, e] of Object.entries(arms)) {
    if (!e) continue;
    final[name] = Object.fromEntries(TEST_SETS.map((s) => [s, accOf(e, s)])) as Record<TestSetName, number | null>;
  }
  const out: CycleReport = { rounds: [], final, claims: [], seconds };
  for (const r of rounds) {
    const sorted = [...r.rewardsValid].sort((a, b) => a - b);
    const hist = new Array<number>(10).fill(0);
    for (const x of r.rewardsValid) hist[Math.min(9, Math.floor(x * 10))]++;
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
        for (const [k, g] of Object.entries(sc.byTask)) add(taskCounts, `${k}${s === 'heldOutModality' ? ' (held-out modalities)' : ''}`, g);
      }
      const rates = (m: Map<string, Counts>) => Object.fromEntries([...m].map(([k, c]) => [k, c.total ? c.correct / c.total : 0]));
      policy[e.arm] = { overall: total ? correct / total : null, byModality: rates(modalityCounts), byTask: rates(taskCounts) };
    }
    out.rounds.push({
      round: r.round,
      candidates: r.candidates,
      valid: r.valid,
      kept: r.kept,
      generatorValidity: r.candidates ? r.valid / r.candidates : 0,
      reward: { mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length), p10: quantile(sorted, 0.1), p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), histogram: hist },
      judge: r.judge,
      selectionPrecision: r.selectionPrecision,
      policy,
    });
  }
  const f = (arm: string, s: TestSetName) => final[arm]?.[s] ?? null;
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const claim = (name: string, a: string, b: string, sets: TestSetName[]) => {
    const mean = (arm: string) => {
      const v = sets.map((s) => f(arm, s)).filter((x): x is number => x !== null);
      return v.length ? v.reduce((p, q) => p + q, 0) / v.length : null;
    };
    const ma = mean(a);
    const mb = mean(b);
    const holds = ma === null || mb === null ? null : ma > mb;
    const where = sets.length === 1 ? sets[0] : `the mean over ${sets.join(', ')}`;
    const detail = holds === null
      ? `cannot be checked: ${a} or ${b} was not evaluated on ${where}`
      : `${a} ${pct(ma)} vs ${b} ${pct(mb)} on ${where}: the claim ${holds ? 'holds' : 'does NOT hold'} in this run`;
    out.claims.push({ name, holds, detail });
  };
  claim('SFT on the cycle data beats SFT on the seed', 'sftCycle', 'sftSeed', [...TEST_SETS]);
  claim('GRPO on the cycle data beats SFT on it on held-out modalities', 'grpoCycle', 'sftCycle', ['heldOutModality']);
  return out;
}

// ---- charts ----

type Rgb = [number, number, number];
const PALETTE: Rgb[] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75]];

class Canvas {
  readonly px: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    this.px.set(c, (y * this.w + x) * 3);
  }
  rect(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    for (let y = Math.round(Math.min(y0, y1)); y <= Math.round(Math.max(y0, y1)); y++) for (let x = Math.round(x0); x <= Math.round(x1); x++) this.set(x, y, c);
  }
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, width = 2): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      this.rect(x - width / 2, y - width / 2, x + width / 2, y + width / 2, c);
    }
  }
  async png(file: string): Promise<void> {
    await sharp(this.px, { raw: { width: this.w, height: this.h, channels: 3 } }).png().toFile(file);
  }
}

const W = 480;
const H = 300;
const M = 30; // margin
function axes(c: Canvas): void {
  const grey: Rgb = [200, 200, 200];
  for (let k = 0; k <= 4; k++) c.line(M, H - M - ((H - 2 * M) * k) / 4, W - M, H - M - ((H - 2 * M) * k) / 4, grey, 1); // 0, .25, .5, .75, 1
  c.line(M, M, M, H - M, [0, 0, 0], 1);
  c.line(M, H - M, W - M, H - M, [0, 0, 0], 1);
}

/** Lines over x = 0..n-1, y in [0, 1]; series in palette order (the markdown names them). */
export async function lineChart(file: string, series: (number | null)[][]): Promise<void> {
  const c = new Canvas(W, H);
  axes(c);
  const n = Math.max(2, ...series.map((s) => s.length));
  const X = (i: number) => M + ((W - 2 * M) * i) / (n - 1);
  const Y = (v: number) => H - M - (H - 2 * M) * Math.max(0, Math.min(1, v));
  series.forEach((s, k) => {
    const col = PALETTE[k % PALETTE.length];
    s.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      c.rect(X(i) - 3, Y(v) - 3, X(i) + 3, Y(v) + 3, col);
      const next = s[i + 1];
      if (next !== null && next !== undefined && Number.isFinite(next)) c.line(X(i), Y(v), X(i + 1), Y(next), col);
    });
  });
  await c.png(file);
}

/** Grouped bars: groups along x, one bar per series in each group, y in [0, 1]. */
export async function barChart(file: string, groups: (number | null)[][]): Promise<void> {
  const c = new Canvas(W, H);
  axes(c);
  const gw = (W - 2 * M) / Math.max(1, groups.length);
  groups.forEach((g, i) => {
    const bw = (gw * 0.8) / Math.max(1, g.length);
    g.forEach((v, k) => {
      if (v === null) return;
      const x0 = M + i * gw + gw * 0.1 + k * bw;
      c.rect(x0, H - M - (H - 2 * M) * v, x0 + bw - 2, H - M, PALETTE[k % PALETTE.length]);
    });
  });
  await c.png(file);
}

const COLOR_NAMES = ['blue', 'orange', 'green', 'red', 'purple', 'brown'];

function pct(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : (100 * x).toFixed(1);
}

/** Writes OUT/report.md, OUT/report.json and the PNG charts; returns the markdown. */
export async function writeCycleReport(out: string, report: CycleReport): Promise<string> {
  fs.mkdirSync(path.join(out, 'plots'), { recursive: true });
  const arms = Object.keys(report.final);
  await barChart(path.join(out, 'plots', 'final.png'), TEST_SETS.map((s) => arms.map((a) => report.final[a][s])));
  await lineChart(path.join(out, 'plots', 'rounds.png'), [
    report.rounds.map((r) => r.generatorValidity),
    report.rounds.map((r) => (r.candidates ? r.kept / r.candidates : 0)),
    report.rounds.map((r) => r.judge.accuracy),
    report.rounds.map((r) => r.judge.auc),
    report.rounds.map((r) => r.reward.mean),
  ]);
  const md: string[] = ['# MedGR² cycle report', ''];
  if (report.seconds !== undefined) md.push(`Run time: ${report.seconds.toFixed(0)} s.`, '');
  md.push('## Final comparison (accuracy %)', '');
  md.push(renderTable(['arm', ...TEST_SETS], arms.map((a) => [a, ...TEST_SETS.map((s) => pct(report.final[a][s]))]), 'markdown'), '');
  md.push(`![final comparison](plots/final.png)`, '', `Bars per test set (${TEST_SETS.join(', ')}), one per arm: ${arms.map((a, i) => `${a} ${COLOR_NAMES[i % 6]}`).join(', ')}.`, '');
  md.push('## The paper\'s claims on this run', '');
  for (const c of report.claims) md.push(`- **${c.name}**: ${c.detail}.`);
  md.push('');
  md.push('## Per round', '');
  md.push(renderTable(
    ['round', 'candidates', 'valid', 'kept', 'generator validity %', 'reward mean', 'reward p10/p50/p90', 'judge accuracy %', 'judge AUC', 'correct: kept / dropped %'],
    report.rounds.map((r) => [
      String(r.round), String(r.candidates), String(r.valid), String(r.kept), pct(r.generatorValidity), r.reward.mean.toFixed(3),
      `${r.reward.p10.toFixed(2)}/${r.reward.p50.toFixed(2)}/${r.reward.p90.toFixed(2)}`, pct(r.judge.accuracy), Number.isFinite(r.judge.auc) ? r.judge.auc.toFixed(3) : '-',
      r.selectionPrecision ? `${pct(r.selectionPrecision.keptCorrect / Math.max(1, r.selectionPrecision.kept))} / ${pct(r.selectionPrecision.droppedCorrect / Math.max(1, r.selectionPrecision.dropped))}` : '-',
    ]),
    'markdown',
  ), '');
  if (report.rounds.some((r) => r.selectionPrecision)) {
    md.push('"correct: kept / dropped": of the valid candidates, how many kept and how many dropped ones name the right answer, checked against MedSynth\'s truth.jsonl after selection (for this report only; selection never reads it).', '');
  }
  md.push(`![per round](plots/rounds.png)`, '', 'Lines over rounds: generator validity (blue), kept fraction (orange), judge accuracy (green), judge AUC (red), mean reward of valid candidates (purple).', '');
  md.push('Reward histogram of valid candidates (deciles 0.0–0.1 … 0.9–1.0):', '');
  md.push(renderTable(['round', ...Array.from({ length: 10 }, (_, i) => `${i / 10}`)], report.rounds.map((r) => [String(r.round), ...r.reward.histogram.map(String)]), 'markdown'), '');
  for (const r of report.rounds) {
    for (const [arm, p] of Object.entries(r.policy)) {
      md.push(`### Round ${r.round}, ${arm}: accuracy % by modality and task`, '');
      md.push(renderTable(['modality', 'accuracy %'], Object.entries(p.byModality).map(([k, v]) => [k, pct(v)]), 'markdown'), '');
      md.push(renderTable(['task', 'accuracy %'], Object.entries(p.byTask).map(([k, v]) => [k, pct(v)]), 'markdown'), '');
    }
  }
  const text = md.join('\n');
  fs.writeFileSync(path.join(out, 'report.md'), text);
  fs.writeFileSync(path.join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  return text;
}

/** The final table as terminal text. */
export function formatFinalTable(report: CycleReport): string {
  const arms = Object.keys(report.final);
  return renderTable(['arm', ...TEST_SETS.map((s) => `${s} %`)], arms.map((a) => [a, ...TEST_SETS.map((s) => pct(report.final[a][s]))]), 'text');
}
