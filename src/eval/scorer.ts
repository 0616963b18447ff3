// Scoring predictions against a benchmark with the MedGR² authors' published rule: lower-case, strip
// punctuation, collapse whitespace and trim, then exact match to the ground-truth option's text. On
// top of it, as the issue asks: the answer inside <answer>…</answer> is used when the tags are there,
// and a letter ("C", "c", "C)", "(C)", "C.") names that option. A prediction that names no option is
// wrong and counted as invalid.
//
// Macro-F1 is over answer classes: each distinct ground-truth option text (compared normalized) is a
// class; for class c, TP = predicted c and truth c, FP = predicted c and truth not c, FN = truth c and
// predicted anything else (an invalid prediction is an FN of its true class, an FP of none);
// F1_c = 2TP / (2TP + FP + FN); macro-F1 is the unweighted mean over the classes that occur as truth.
import type { Sample } from '../data/proto';
import { normalizeAnswerText, predictedOption } from '../data/answer_grammar';
import { readSourceRecords } from '../data/importers/source';
import { renderTable, type TableStyle } from '../util/table';

export interface Prediction {
  questionId: string;
  /** What the model answered (`model_answer`, else `raw`). */
  answer: string;
  line: number;
}

export interface GroupScore {
  accuracy: number;
  correct: number;
  total: number;
}

export interface ScoreResult {
  overall: GroupScore;
  byModality: Record<string, GroupScore>;
  byTask: Record<string, GroupScore>;
  byDataset: Record<string, GroupScore>;
  invalid: number;
  macroF1: number;
  /** Predictions whose ids are not in the benchmark (scored only with allowUnknown; then left out). */
  unknown: number;
  /** Benchmark samples without a prediction (allowed only with allowMissing; then left out). */
  missing: number;
}

/** Reads predictions JSONL (or a JSON array): `question_id` and `model_answer` (or `raw`) per record. */
export function readPredictions(file: string): Prediction[] {
  const source = readSourceRecords(file);
  if (source.errors.length > 0) {
    const e = source.errors[0];
    throw new Error(`${file}:${e.line}: ${e.reason}`);
  }
  const preds: Prediction[] = [];
  const seen = new Map<string, number>();
  for (const { line, value } of source.values) {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new Error(`${file}:${line}: not a JSON object`);
    const rec = value as Record<string, unknown>;
    const id = rec.question_id ?? rec.id;
    if (typeof id !== 'string' && typeof id !== 'number') throw new Error(`${file}:${line}: missing 'question_id'`);
    const answer = typeof rec.model_answer === 'string' ? rec.model_answer : rec.raw;
    if (typeof answer !== 'string') throw new Error(`${file}:${line}: missing 'model_answer' (a string)`);
    const questionId = String(id);
    const first = seen.get(questionId);
    if (first !== undefined)
      throw new Error(`${file}:${line}: question_id '${questionId}' repeats the prediction at line ${first}`);
    seen.set(questionId, line);
    preds.push({ questionId, answer, line });
  }
  if (preds.length === 0) throw new Error(`${file}: no predictions`);
  return preds;
}

/** Is the prediction right for this sample? (`undefined` option = invalid, hence wrong.) */
export function isCorrect(sample: Pick<Sample, 'options' | 'answer'>, option: number | undefined): boolean {
  return option !== undefined && normalizeAnswerText(sample.options[option]) === normalizeAnswerText(sample.answer);
}

/** Names to group by: the benchmark's own spelling (modality_type / question_type as written). A
 *  sample whose source left it empty joins the spelling most used for its normalized name. */
function groupNames(benchmark: readonly Sample[], field: 'modality' | 'task'): Map<Sample, string> {
  const originalOf = field === 'modality' ? (s: Sample) => s.modalityOriginal : (s: Sample) => s.taskOriginal;
  const counts = new Map<string, Map<string, number>>();
  for (const s of benchmark) {
    const o = originalOf(s);
    if (!o) continue;
    let m = counts.get(s[field]);
    if (!m) counts.set(s[field], (m = new Map()));
    m.set(o, (m.get(o) ?? 0) + 1);
  }
  const names = new Map<Sample, string>();
  for (const s of benchmark) {
    let name = originalOf(s);
    if (!name) {
      const m = counts.get(s[field]);
      name = m ? [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0][0] : s[field];
    }
    names.set(s, name);
  }
  return names;
}

export interface ScoreOptions {
  allowUnknown?: boolean;
  allowMissing?: boolean;
  /** For error messages. */
  predictionsFile?: string;
  benchmarkFile?: string;
  onWarning?: (message: string) => void;
}

function firstFew(items: readonly string[], n = 5): string {
  return items.slice(0, n).join(', ') + (items.length > n ? `, … (${items.length - n} more)` : '');
}

function tally(map: Record<string, GroupScore>, key: string, correct: boolean): void {
  const g = (map[key] ??= { accuracy: 0, correct: 0, total: 0 });
  g.total++;
  if (correct) g.correct++;
}

function finishAccuracy(g: GroupScore): void {
  g.accuracy = g.total > 0 ? g.correct / g.total : 0;
}

/** Sorted by name, so output is stable whatever the file order. */
function sortedGroups(map: Record<string, GroupScore>): Record<string, GroupScore> {
  const out: Record<string, GroupScore> = {};
  for (const k of Object.keys(map).sort()) {
    finishAccuracy(map[k]);
    out[k] = map[k];
  }
  return out;
}

export function scorePredictions(
  benchmark: readonly Sample[],
  predictions: readonly Prediction[],
  opts: ScoreOptions = {},
): ScoreResult {
  const pFile = opts.predictionsFile ?? 'predictions';
  const bFile = opts.benchmarkFile ?? 'benchmark';
  if (benchmark.length === 0) throw new Error(`${bFile}: no benchmark records`);
  const byId = new Map<string, Sample>();
  for (const s of benchmark) {
    if (s.options.length < 2) throw new Error(`${bFile}: sample '${s.id}' has no answer options`);
    const prior = byId.get(s.id);
    if (prior && (prior.answer !== s.answer || prior.options.join('\n') !== s.options.join('\n'))) {
      throw new Error(`${bFile}: id '${s.id}' names two different samples`);
    }
    if (!prior) byId.set(s.id, s);
  }

  const unknown = predictions.filter((p) => !byId.has(p.questionId));
  if (unknown.length > 0) {
    const list = firstFew(unknown.map((p) => `'${p.questionId}' (line ${p.line})`));
    if (!opts.allowUnknown) {
      throw new Error(
        `${pFile}: ${unknown.length} prediction(s) have ids not in ${bFile}: ${list}; pass --allow-unknown to score only the known ones`,
      );
    }
    opts.onWarning?.(`${pFile}: ignored ${unknown.length} prediction(s) with ids not in ${bFile}: ${list}`);
  }
  const predicted = new Set(predictions.map((p) => p.questionId));
  const missing = [...byId.keys()].filter((id) => !predicted.has(id));
  if (missing.length > 0) {
    if (!opts.allowMissing) {
      throw new Error(
        `${pFile}: no prediction for ${missing.length} of ${byId.size} benchmark sample(s): ${firstFew(missing)}; pass --allow-missing to score the rest`,
      );
    }
    opts.onWarning?.(
      `${pFile}: ${missing.length} benchmark sample(s) have no prediction and are left out: ${firstFew(missing)}`,
    );
  }

  const modalityName = groupNames(benchmark, 'modality');
  const taskName = groupNames(benchmark, 'task');
  const overall: GroupScore = { accuracy: 0, correct: 0, total: 0 };
  const byModality: Record<string, GroupScore> = {};
  const byTask: Record<string, GroupScore> = {};
  const byDataset: Record<string, GroupScore> = {};
  const f1 = new Map<string, { tp: number; fp: number; fn: number }>();
  const cls = (c: string) => {
    let e = f1.get(c);
    if (!e) f1.set(c, (e = { tp: 0, fp: 0, fn: 0 }));
    return e;
  };
  let invalid = 0;
  for (const p of predictions) {
    const s = byId.get(p.questionId);
    if (!s) continue;
    const option = predictedOption(p.answer, s.options);
    const correct = isCorrect(s, option);
    if (option === undefined) invalid++;
    overall.total++;
    if (correct) overall.correct++;
    tally(byModality, modalityName.get(s)!, correct);
    tally(byTask, taskName.get(s)!, correct);
    tally(byDataset, s.dataset, correct);
    const truth = normalizeAnswerText(s.answer);
    if (correct) cls(truth).tp++;
    else {
      cls(truth).fn++;
      if (option !== undefined) cls(normalizeAnswerText(s.options[option])).fp++;
    }
  }
  finishAccuracy(overall);
  // Classes that never occur as truth (tp + fn = 0) are options nobody should pick: not averaged.
  const scores = [...f1.values()].filter((e) => e.tp + e.fn > 0).map((e) => (2 * e.tp) / (2 * e.tp + e.fp + e.fn));
  const macroF1 = scores.length > 0 ? scores.reduce((a, b) => a + b, 0) / scores.length : 0;
  return {
    overall,
    byModality: sortedGroups(byModality),
    byTask: sortedGroups(byTask),
    byDataset: sortedGroups(byDataset),
    invalid,
    macroF1,
    unknown: unknown.length,
    missing: missing.length,
  };
}

// ---- tables ----

function pct(x: number): string {
  return (100 * x).toFixed(2);
}

/** The whole result: overall, then by modality, task and dataset; accuracy in percent. */
export function formatScoreTable(result: ScoreResult, style: TableStyle): string {
  const section = (title: string, groups: Record<string, GroupScore>): string => {
    const rows = Object.entries(groups).map(([name, g]) => [name, pct(g.accuracy), String(g.correct), String(g.total)]);
    const heading = style === 'markdown' ? `### ${title}` : title;
    return `${heading}\n\n${renderTable([title.replace(/^By /, ''), 'accuracy %', 'correct', 'total'], rows, style)}`;
  };
  const o = result.overall;
  const summary = renderTable(
    ['', 'accuracy %', 'correct', 'total'],
    [['overall', pct(o.accuracy), String(o.correct), String(o.total)]],
    style,
  );
  const notes = [
    `invalid (no option named): ${result.invalid}`,
    `macro-F1 (over answer classes): ${result.macroF1.toFixed(4)}`,
  ];
  if (result.unknown) notes.push(`predictions with unknown ids (left out): ${result.unknown}`);
  if (result.missing) notes.push(`benchmark samples without a prediction (left out): ${result.missing}`);
  return [
    summary,
    section('By modality', result.byModality),
    section('By task', result.byTask),
    section('By dataset', result.byDataset),
    notes.map((n) => (style === 'markdown' ? `- ${n}` : n)).join('\n'),
  ].join('\n\n');
}

// ---- cross-modality / cross-task matrix (Med-R1 protocol: train on one group, test on every group) ----

export type MatrixAxis = 'modality' | 'task' | 'dataset';

export interface CrossMatrix {
  axis: MatrixAxis;
  rows: string[]; // training groups, in the order given
  columns: string[]; // test groups, sorted
  /** accuracy[r][c] in [0, 1], or null where the test group has no samples in that row's result. */
  accuracy: (number | null)[][];
}

/** One row per model (trained on one group), one column per test group, cells = accuracy. */
export function crossMatrix(
  results: ReadonlyArray<{ trainedOn: string; score: ScoreResult }>,
  axis: MatrixAxis,
): CrossMatrix {
  const field = axis === 'modality' ? 'byModality' : axis === 'task' ? 'byTask' : 'byDataset';
  const columns = [...new Set(results.flatMap((r) => Object.keys(r.score[field])))].sort();
  return {
    axis,
    rows: results.map((r) => r.trainedOn),
    columns,
    accuracy: results.map((r) => columns.map((c) => r.score[field][c]?.accuracy ?? null)),
  };
}

export function formatCrossMatrix(m: CrossMatrix, style: TableStyle): string {
  const header = [`trained on \\ tested on (${m.axis})`, ...m.columns];
  const rows = m.rows.map((r, i) => [r, ...m.accuracy[i].map((a) => (a === null ? '-' : pct(a)))]);
  return renderTable(header, rows, style);
}
