// The scorer against an independent, tiny implementation of the MedGR² authors' rule, on the real
// fixture predictions, on tricky replies, and on bad input.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crossMatrix, formatCrossMatrix, type ScoreResult } from '../../src/eval/scorer';
import { predictedOption } from '../../src/data/answer_grammar';
import { OMNIMEDVQA_FIXTURES, runCli } from '../helpers/cli';
import { assertClose } from '../helpers/numeric';
import { tempDir } from '../helpers/temp_dir';

const FIXTURES = OMNIMEDVQA_FIXTURES;
const BENCH = path.join(FIXTURES, 'medgr2-formatted-test.jsonl');
const PREDS = path.join(FIXTURES, 'medgr2-checkpoint30-predictions.jsonl');

// ---- the reference: the published rule, written again from its description ----
const PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'; // Python's string.punctuation
function refNorm(s: string): string {
  return [...s.toLowerCase()]
    .filter((c) => !PUNCT.includes(c))
    .join('')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
}
/** The option text a reply names, or null (invalid). */
function refPick(reply: string, options: string[]): string | null {
  const tag = reply.match(/<answer>([\s\S]*?)<\/answer>/i);
  const a = (tag ? tag[1] : reply).trim();
  const byText = options.find((o) => refNorm(o) === refNorm(a));
  if (byText !== undefined) return byText;
  const letter = a.match(/^\(?([A-Za-z])\)?[.:]?$/);
  if (letter) return options['abcdefghijklmnopqrstuvwxyz'.indexOf(letter[1].toLowerCase())] ?? null;
  return null;
}
function refOptionsFromQuestion(q: string): string[] {
  return q.match(/Please choose one of the following: (.*)\. You must pick only one answer\.$/)![1].split(' or ');
}
interface RefRow {
  gt: string;
  pick: string | null;
  modality: string;
  task: string;
  dataset: string;
}
function refScore(rows: RefRow[]) {
  const correct = rows.filter((r) => r.pick !== null && refNorm(r.pick) === refNorm(r.gt)).length;
  const classes = [...new Set(rows.map((r) => refNorm(r.gt)))];
  const f1s = classes.map((c) => {
    const tp = rows.filter((r) => refNorm(r.gt) === c && r.pick !== null && refNorm(r.pick) === c).length;
    const fp = rows.filter((r) => refNorm(r.gt) !== c && r.pick !== null && refNorm(r.pick) === c).length;
    const fn = rows.filter((r) => refNorm(r.gt) === c && (r.pick === null || refNorm(r.pick) !== c)).length;
    return (2 * tp) / (2 * tp + fp + fn);
  });
  return {
    correct,
    total: rows.length,
    invalid: rows.filter((r) => r.pick === null).length,
    macroF1: f1s.reduce((a, b) => a + b, 0) / f1s.length,
  };
}
const readJsonl = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

function withDir(fn: (dir: string) => void): void {
  const dir = tempDir('score');
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('tricky replies: tags, letters in any dress, case and punctuation, none or two answers', () => {
  const options = ['Computed Tomography (CT) scan', 'MRI', 'X-Ray', "Crohn's disease"];
  const cases: Array<[string, number | undefined]> = [
    ['<think>looks dense</think><answer> C </answer>', 2],
    ['(C)', 2],
    ['C)', 2],
    ['c', 2],
    ['C.', 2],
    ['  mri ', 1],
    ['computed tomography ct scan', 0],
    ['Crohns disease', 3],
    ['<answer>B</answer>', 1],
    ['E', undefined],
    ['MRI or X-Ray', undefined],
    ['I think it is MRI', undefined],
    ['', undefined],
    ['<answer></answer>', undefined],
  ];
  for (const [reply, want] of cases) {
    assert.equal(predictedOption(reply, options), want, reply);
    const ref = refPick(reply, options);
    assert.equal(ref === null ? undefined : options.indexOf(ref), want, `reference: ${reply}`);
  }
});

test('fixture: checkpoint-30 predictions on the 759-record benchmark (unknown ids allowed) match the reference', () => {
  const refused = runCli(['eval', 'score', '--predictions', PREDS, '--benchmark', BENCH, '--json']);
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    /^medgr2: .*checkpoint30-predictions\.jsonl: 7092 prediction\(s\) have ids not in .*\(line \d+\).*--allow-unknown/,
  );

  const r = runCli(['eval', 'score', '--predictions', PREDS, '--benchmark', BENCH, '--json', '--allow-unknown']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  const got: ScoreResult = JSON.parse(r.stdout);

  const bench = new Map(readJsonl(BENCH).map((b) => [b.question_id, b]));
  const rows: RefRow[] = readJsonl(PREDS)
    .filter((p) => bench.has(p.question_id))
    .map((p) => {
      const b = bench.get(p.question_id);
      return {
        gt: b.gt_answer,
        pick: refPick(p.model_answer, b.options),
        modality: b.modality_type,
        task: b.question_type,
        dataset: b.dataset,
      };
    });
  const ref = refScore(rows);
  assert.deepEqual(
    [got.overall.correct, got.overall.total, got.invalid, got.unknown],
    [ref.correct, 759, ref.invalid, 7092],
  );
  assertClose([got.overall.accuracy, got.macroF1], [ref.correct / 759, ref.macroF1], {
    rtol: 1e-12,
    what: 'accuracy, macro-F1',
  });
  // Group names are the benchmark's own; its one null modality joins the CT spelling.
  assert.deepEqual(Object.keys(got.byModality), ['CT(Computed Tomography)', 'Microscopy Images']);
  assert.equal(got.byModality['CT(Computed Tomography)'].total, 417);
  for (const [task, g] of Object.entries(got.byTask)) {
    const sub = refScore(rows.filter((x) => x.task === task));
    assert.deepEqual([g.correct, g.total], [sub.correct, sub.total], task);
  }
  for (const [dataset, g] of Object.entries(got.byDataset)) {
    const sub = refScore(rows.filter((x) => x.dataset === dataset));
    assert.deepEqual([g.correct, g.total], [sub.correct, sub.total], dataset);
  }
  assert.equal(
    Object.values(got.byTask).reduce((n, g) => n + g.total, 0),
    759,
  );
});

test('fixture: the predictions file as its own benchmark (options parsed from each question) matches the reference', () => {
  const r = runCli(['eval', 'score', '--predictions', PREDS, '--benchmark', PREDS, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const got: ScoreResult = JSON.parse(r.stdout);
  const rows: RefRow[] = readJsonl(PREDS).map((p) => ({
    gt: p.gt_answer,
    pick: refPick(p.model_answer, refOptionsFromQuestion(p.question)),
    modality: '',
    task: '',
    dataset: p.question_id.replace(/_\d+$/, ''),
  }));
  const ref = refScore(rows);
  assert.deepEqual([got.overall.correct, got.overall.total, got.invalid], [ref.correct, 7851, ref.invalid]);
  assertClose([got.macroF1], [ref.macroF1], { rtol: 1e-12, what: 'macro-F1' });
  for (const [dataset, g] of Object.entries(got.byDataset)) {
    const sub = refScore(rows.filter((x) => x.dataset === dataset));
    assert.deepEqual([g.correct, g.total], [sub.correct, sub.total], dataset);
  }
  assert.equal(Object.keys(got.byDataset).length, 12);
});

test('terminal and markdown tables', () => {
  const text = runCli(['eval', 'score', '--predictions', PREDS, '--benchmark', BENCH, '--allow-unknown']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^\s+accuracy %\s+correct\s+total\n/);
  assert.match(text.stdout, /Microscopy Images\s+\d+\.\d\d\s+\d+\s+342/);
  assert.match(text.stderr, /warning: .*ignored 7092 prediction/);
  const md = runCli(['eval', 'score', '--predictions', PREDS, '--benchmark', BENCH, '--allow-unknown', '--markdown']);
  assert.match(md.stdout, /\| overall \| \d+\.\d\d \| \d+ \| 759 \|/);
  assert.match(
    md.stdout,
    /### By task\n\n\| task \| accuracy % \| correct \| total \|\n\| --- \| ---: \| ---: \| ---: \|/,
  );
});

test('bad input: unknown ids, missing predictions, no options, empty files, broken lines: one clear line each', () => {
  withDir((dir) => {
    const bench = path.join(dir, 'bench.jsonl');
    const rec = (id: string, extra: object = {}) =>
      JSON.stringify({
        question_id: id,
        question: 'Which?',
        gt_answer: 'CT',
        image_path: `${id}.png`,
        options: ['CT', 'MRI'],
        ...extra,
      });
    fs.writeFileSync(bench, [rec('a'), rec('b')].join('\n'));
    const preds = path.join(dir, 'preds.jsonl');
    const score = (p: string, b = bench, ...more: string[]) =>
      runCli(['eval', 'score', '--predictions', p, '--benchmark', b, '--json', ...more]);

    fs.writeFileSync(
      preds,
      '{"question_id":"a","model_answer":"CT"}\n{"question_id":"zz","model_answer":"CT"}\n{"question_id":"b","model_answer":"B"}\n',
    );
    let r = score(preds);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /preds\.jsonl: 1 prediction\(s\) have ids not in .*bench\.jsonl: 'zz' \(line 2\)/);
    r = score(preds, bench, '--allow-unknown');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).overall, { accuracy: 0.5, correct: 1, total: 2 });

    fs.writeFileSync(preds, '{"question_id":"a","model_answer":"CT"}\n');
    r = score(preds);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no prediction for 1 of 2 benchmark sample\(s\): b; pass --allow-missing/);
    assert.equal(JSON.parse(score(preds, bench, '--allow-missing').stdout).missing, 1);

    const noOptions = path.join(dir, 'noopts.jsonl');
    fs.writeFileSync(
      noOptions,
      JSON.stringify({ question_id: 'a', question: 'Which?', gt_answer: 'CT', image_path: 'a.png' }) + '\n',
    );
    r = score(preds, noOptions);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^medgr2: .*noopts\.jsonl: cannot tell the format.*no answer options/);
    const omniNoOptions = path.join(dir, 'omni.json');
    fs.writeFileSync(
      omniNoOptions,
      '[\n{"question_id": "a", "question": "Q", "gt_answer": "CT", "image_path": "a.png", "option_A": "CT"}\n]',
    );
    r = score(preds, omniNoOptions);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^medgr2: .*omni\.json:2: needs at least two options, has 1/);

    const empty = path.join(dir, 'empty.jsonl');
    fs.writeFileSync(empty, '');
    r = score(empty);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^medgr2: .*empty\.jsonl: empty file/);
    r = score(preds, empty);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^medgr2: .*empty\.jsonl: empty file/);

    fs.writeFileSync(preds, '{"question_id":"a","model_answer":"CT"}\n{"question_id": "b", "model_ans\n');
    r = score(preds);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^medgr2: .*preds\.jsonl:2: not valid JSON/);
    fs.writeFileSync(preds, '{"question_id":"a","model_answer":"CT"}\n{"question_id":"a","model_answer":"MRI"}\n');
    assert.match(score(preds).stderr, /preds\.jsonl:2: question_id 'a' repeats the prediction at line 1/);
  });
});

test('cross-modality matrix: rows are training groups, columns test groups, cells accuracy', () => {
  const g = (correct: number, total: number) => ({ accuracy: correct / total, correct, total });
  const base = { byTask: {}, byDataset: {}, invalid: 0, macroF1: 0, unknown: 0, missing: 0 };
  const ct: ScoreResult = { ...base, overall: g(9, 12), byModality: { CT: g(8, 10), MRI: g(1, 2) } };
  const mri: ScoreResult = { ...base, overall: g(5, 10), byModality: { MRI: g(1, 2), OCT: g(4, 8) } };
  const m = crossMatrix(
    [
      { trainedOn: 'CT', score: ct },
      { trainedOn: 'MRI', score: mri },
    ],
    'modality',
  );
  assert.deepEqual(m.rows, ['CT', 'MRI']);
  assert.deepEqual(m.columns, ['CT', 'MRI', 'OCT']);
  assert.deepEqual(m.accuracy, [
    [0.8, 0.5, null],
    [null, 0.5, 0.5],
  ]);
  assert.equal(
    formatCrossMatrix(m, 'markdown'),
    '| trained on \\ tested on (modality) | CT | MRI | OCT |\n| --- | ---: | ---: | ---: |\n| CT | 80.00 | 50.00 | - |\n| MRI | - | 50.00 | 50.00 |',
  );
});
