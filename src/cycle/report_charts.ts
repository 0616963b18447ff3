// The cycle report's charts as Vega-Lite specs (rendered by src/report/charts.ts): the final
// comparison of arms, candidates per round, generator/judge rates per round, policy accuracy per
// round and the judge-reward histogram per round. Each has a title, axis titles with units, tick
// labels, a legend and its values printed on the marks; report.md only names the files. Bars
// everywhere, no lines: over a few rounds, value labels at nearby line points collide; on bars not.
import type { ChartSpec } from '../report/charts';
import { TEST_SETS } from './cycle';
import type { CycleReport } from './report';
import { meanOfSets } from './mechanism_claims';

type Row = Record<string, string | number | null>;

const pct1 = (x: number) => Math.round(1000 * x) / 10;

/** Counts have whole-number ticks (no "0.5 candidates"); small or all-zero counts still get an axis
 *  up to 5 (a domain of [0, 1] or [0, 0] would get fractional or no ticks). */
const COUNT_AXIS = { tickMinStep: 1, format: 'd' };
const COUNT_DOMAIN = { unionWith: [0, 5] };

/** Above a few bars per group, horizontal value labels would overlap: turn them upright. */
function barLabel(bars: number): Record<string, unknown> {
  return bars > 4
    ? { type: 'text', angle: 270, align: 'left', baseline: 'middle', dx: 4, fontSize: 10 }
    : { type: 'text', baseline: 'bottom', dy: -3, fontSize: 11 };
}

/**
 * Grouped bars: one group per x value, one bar per series, the value above each bar. A row whose
 * value is null (an arm not evaluated on a test set) gets no bar but an "n/a" label at its place,
 * so a gap never reads as a zero.
 */
function groupedBars(o: {
  title: string;
  subtitle?: string;
  rows: Row[];
  x: string;
  xTitle: string;
  xOrder: string[];
  series: string;
  seriesTitle: string;
  seriesOrder: string[];
  y: string;
  yTitle: string;
  yDomain?: [number, number];
  decimals: number;
}): ChartSpec {
  const rows = o.rows.map((r) => {
    const v = r[o.y] as number | null;
    return { ...r, label: v === null ? 'n/a' : v.toFixed(o.decimals), labelY: v ?? 0 };
  });
  const bars = o.xOrder.length * o.seriesOrder.length;
  return {
    title: o.subtitle ? { text: o.title, subtitle: o.subtitle } : o.title,
    // about 26 px a bar, at least 360 px, at most 680 px: the chart stays a readable shape
    width: Math.min(680, Math.max(360, bars * 26 + o.xOrder.length * 30)),
    height: 260,
    data: { values: rows },
    encoding: {
      x: {
        field: o.x,
        type: 'nominal',
        title: o.xTitle,
        sort: o.xOrder,
        axis: { labelAngle: 0 },
        scale: { paddingInner: 0.2 },
      },
      xOffset: { field: o.series, type: 'nominal', sort: o.seriesOrder },
    },
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: {
            field: o.y,
            type: 'quantitative',
            title: o.yTitle,
            scale: { domain: o.yDomain ?? COUNT_DOMAIN },
            ...(o.decimals === 0 ? { axis: COUNT_AXIS } : {}),
          },
          color: { field: o.series, type: 'nominal', title: o.seriesTitle, sort: o.seriesOrder },
        },
      },
      {
        mark: barLabel(o.seriesOrder.length),
        encoding: { y: { field: 'labelY', type: 'quantitative' }, text: { field: 'label', type: 'nominal' } },
      },
    ],
  } as ChartSpec;
}

/** Final comparison: accuracy % per test set, one bar per arm. */
export function finalChart(report: CycleReport): ChartSpec {
  const arms = Object.keys(report.final);
  const rows: Row[] = [];
  for (const a of arms)
    for (const s of TEST_SETS) {
      const v = report.final[a][s];
      rows.push({ arm: a, testSet: s, accuracy: v === null || v === undefined ? null : pct1(v) });
    }
  return groupedBars({
    title: 'Final comparison: accuracy by test set and arm',
    rows,
    x: 'testSet',
    xTitle: 'test set',
    xOrder: [...TEST_SETS],
    series: 'arm',
    seriesTitle: 'arm',
    seriesOrder: arms,
    y: 'accuracy',
    yTitle: 'accuracy (%)',
    yDomain: [0, 100],
    decimals: 1,
  });
}

/** `cycle --study`'s data-efficiency comparison: mean accuracy of the three sets by number of generated
 *  samples, top-k by reward vs random, for the SFT and the GRPO policy. */
export function efficiencyChart(report: CycleReport): ChartSpec | undefined {
  const rows = report.efficiency;
  if (!rows?.length) return undefined;
  const sizes = [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b);
  const series = ['top-k SFT', 'random SFT', 'top-k GRPO', 'random GRPO'];
  const values: Row[] = rows.flatMap((r) =>
    (['sft', 'grpo'] as const).map((kind) => {
      const m = meanOfSets(r[kind]);
      return { size: String(r.size), arm: `${r.ranking} ${kind.toUpperCase()}`, accuracy: m === null ? null : pct1(m) };
    }),
  );
  return groupedBars({
    title: 'Data efficiency: top-k by reward vs random subsets',
    subtitle: 'mean accuracy over the three test sets; each arm: SFT on seed + N generated samples, then GRPO',
    rows: values,
    x: 'size',
    xTitle: 'generated samples (N)',
    xOrder: sizes.map(String),
    series: 'arm',
    seriesTitle: 'selection, policy',
    seriesOrder: series,
    y: 'accuracy',
    yTitle: 'accuracy (%)',
    yDomain: [0, 100],
    decimals: 1,
  });
}

/** Candidates per round: generated, valid (parsed as a sample), kept by selection. */
export function candidatesChart(report: CycleReport): ChartSpec {
  const kinds = ['generated', 'valid', 'kept'];
  const rows: Row[] = report.rounds.flatMap((r) => [
    { round: `round ${r.round}`, kind: 'generated', count: r.candidates },
    { round: `round ${r.round}`, kind: 'valid', count: r.valid },
    { round: `round ${r.round}`, kind: 'kept', count: r.kept },
  ]);
  return groupedBars({
    title: 'Candidates per round',
    subtitle: 'generated by the generator, valid samples among them, kept by selection',
    rows,
    x: 'round',
    xTitle: 'cycle round',
    xOrder: report.rounds.map((r) => `round ${r.round}`),
    series: 'kind',
    seriesTitle: 'candidates',
    seriesOrder: kinds,
    y: 'count',
    yTitle: 'candidates (count)',
    decimals: 0,
  });
}

/** Generator validity, kept share, judge accuracy (and AUC, mean reward scaled to 0–100) per round. */
export function ratesChart(report: CycleReport): ChartSpec {
  const series: [string, (r: CycleReport['rounds'][number]) => number][] = [
    ['generator validity %', (r) => r.generatorValidity],
    ['kept % of generated', (r) => (r.candidates ? r.kept / r.candidates : 0)],
    ['judge pair accuracy %', (r) => r.judge.accuracy],
    ['judge AUC × 100', (r) => r.judge.auc],
    ['mean reward (valid) × 100', (r) => r.reward.mean],
  ];
  const rows: Row[] = report.rounds.flatMap((r) =>
    series.flatMap(([name, f]) => {
      const v = f(r);
      return Number.isFinite(v) ? [{ round: `round ${r.round}`, metric: name, value: pct1(v) }] : [];
    }),
  );
  return groupedBars({
    title: 'Generator and judge per round',
    subtitle: 'rates in %; the AUC and the mean reward (0–1) are shown × 100',
    rows,
    x: 'round',
    xTitle: 'cycle round',
    xOrder: report.rounds.map((r) => `round ${r.round}`),
    series: 'metric',
    seriesTitle: 'measure',
    seriesOrder: series.map(([n]) => n),
    y: 'value',
    yTitle: 'percent (%)',
    yDomain: [0, 100],
    decimals: 1,
  });
}

/** The policy's accuracy after each round, pooled over the test sets, per trained arm. */
export function policyChart(report: CycleReport): ChartSpec | null {
  const rows: Row[] = [];
  const arms: string[] = [];
  for (const r of report.rounds)
    for (const [arm, p] of Object.entries(r.policy)) {
      if (!arms.includes(arm)) arms.push(arm);
      if (p.overall !== null) rows.push({ round: `round ${r.round}`, arm, accuracy: pct1(p.overall) });
    }
  if (rows.length === 0) return null;
  return groupedBars({
    title: 'Policy accuracy per round',
    subtitle: 'all test sets pooled (every question counts once)',
    rows,
    x: 'round',
    xTitle: 'cycle round',
    xOrder: report.rounds.map((r) => `round ${r.round}`),
    series: 'arm',
    seriesTitle: 'arm',
    seriesOrder: arms,
    y: 'accuracy',
    yTitle: 'accuracy (%)',
    yDomain: [0, 100],
    decimals: 1,
  });
}

export const REWARD_BINS = Array.from({ length: 10 }, (_, i) => `${(i / 10).toFixed(1)}–${((i + 1) / 10).toFixed(1)}`);

/** Judge reward of the valid candidates per round, in 0.1-wide bins, kept and dropped side by side. */
export function rewardHistogramChart(report: CycleReport): ChartSpec {
  const split = report.rounds.every((r) => r.reward.histogramKept);
  const groups = split ? ['kept', 'dropped'] : ['valid (kept not recorded)'];
  const rows: Row[] = report.rounds.flatMap((r) =>
    REWARD_BINS.flatMap((bin, i) => {
      const all = r.reward.histogram[i];
      const kept = r.reward.histogramKept?.[i] ?? 0;
      const counts = split ? [kept, all - kept] : [all];
      return groups.map((g, k) => ({ round: `round ${r.round}`, bin, group: g, count: counts[k] }));
    }),
  );
  return {
    title: {
      text: 'Judge reward of the valid candidates, per round',
      subtitle: 'invalid candidates get no judge reward and are not counted',
    },
    data: { values: rows },
    facet: {
      row: {
        field: 'round',
        type: 'nominal',
        title: null,
        sort: report.rounds.map((r) => `round ${r.round}`),
        header: { labelAngle: 0, labelAlign: 'left', labelFontWeight: 'bold' },
      },
    },
    spec: {
      width: 620,
      height: 150,
      encoding: {
        x: {
          field: 'bin',
          type: 'ordinal',
          title: 'judge reward (0–1), bins of 0.1',
          sort: REWARD_BINS,
          axis: { labelAngle: 0 },
          scale: { paddingInner: 0.15 },
        },
        xOffset: { field: 'group', type: 'nominal', sort: groups },
      },
      layer: [
        {
          mark: 'bar',
          encoding: {
            y: {
              field: 'count',
              type: 'quantitative',
              title: 'candidates (count)',
              scale: { domain: COUNT_DOMAIN },
              axis: COUNT_AXIS,
            },
            color: {
              field: 'group',
              type: 'nominal',
              title: 'selection',
              sort: groups,
              scale: { range: split ? ['#2ca02c', '#b0b0b0'] : ['#4c78a8'] },
            },
          },
        },
        // zero bins stay unlabelled: ten "0"s per round would bury the counts that matter
        {
          transform: [{ filter: 'datum.count > 0' }],
          mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10 },
          encoding: {
            y: { field: 'count', type: 'quantitative' },
            text: { field: 'count', type: 'quantitative', format: 'd' },
          },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  } as ChartSpec;
}

/** Every chart of the report by file name under plots/ (the policy chart only with per-round evals). */
export function cycleCharts(report: CycleReport): { name: string; alt: string; spec: ChartSpec }[] {
  const out = [
    { name: 'final', alt: 'final comparison', spec: finalChart(report) },
    { name: 'rounds', alt: 'candidates per round', spec: candidatesChart(report) },
    { name: 'judge', alt: 'generator and judge per round', spec: ratesChart(report) },
  ];
  const policy = policyChart(report);
  if (policy) out.push({ name: 'policy', alt: 'policy accuracy per round', spec: policy });
  out.push({ name: 'rewards', alt: 'judge reward histogram per round', spec: rewardHistogramChart(report) });
  const efficiency = efficiencyChart(report);
  if (efficiency) out.push({ name: 'efficiency', alt: 'data efficiency: top-k vs random', spec: efficiency });
  return out;
}
