// The cross-modality heat-map: the chart of a matrix (title, axis titles, colour legend, every
// cell's value, "n/a" for a group a model has no questions for, long group names uncut), and
// `medgr2 eval score` with several named predictions files printing the matrix and drawing it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crossMatrixChart } from '../../src/eval/heatmap';
import { chartSvg } from '../../src/report/charts';
import { namedPredictions } from '../../src/cli/eval_score';
import { assertPngOfSvg, assertSvgShows, svgTexts } from '../helpers/charts';
import { OMNIMEDVQA_FIXTURES, runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

const BENCH = path.join(OMNIMEDVQA_FIXTURES, 'medgr2-formatted-test.jsonl');

test('heat-map SVG: title, axis titles, legend, the value in every cell, n/a cells, long names uncut', async () => {
  const long = 'OCT (Optical Coherence Tomography)';
  const svg = await chartSvg(
    crossMatrixChart({
      axis: 'modality',
      rows: ['CT model', 'MRI model'],
      columns: ['CT', 'MRI', long],
      accuracy: [
        [0.8, 0.5, null],
        [0.25, 0.9, 1],
      ],
    }),
  );
  assertSvgShows(
    svg,
    [
      'Accuracy by model and test modality',
      'tested on (modality)',
      'model (predictions)',
      'accuracy (%)',
      'CT model',
      'MRI model',
      'CT',
      'MRI',
      long,
      '80.0',
      '50.0',
      'n/a',
      '25.0',
      '90.0',
      '100.0',
      '0',
      '100',
    ],
    'heat-map',
  );
  assert.equal(svgTexts(svg).filter((t) => t === 'n/a').length, 1);
});

test('namedPredictions: NAME=FILE names a model, a plain file is named by its base name', () => {
  assert.deepEqual(namedPredictions('ct=runs/a.jsonl'), { name: 'ct', file: 'runs/a.jsonl' });
  assert.deepEqual(namedPredictions('runs/mri-model.jsonl'), { name: 'mri-model', file: 'runs/mri-model.jsonl' });
});

test('medgr2 eval score with several models: the matrix as text and JSON, and --heatmap draws it', async () => {
  const dir = tempDir('heatmap');
  try {
    const bench = fs
      .readFileSync(BENCH, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { question_id: string; gt_answer: string; modality_type: string | null });
    const write = (name: string, rows: { question_id: string; model_answer: string }[]) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      return f;
    };
    const right = write(
      'right.jsonl',
      bench.map((b) => ({ question_id: b.question_id, model_answer: b.gt_answer })),
    );
    // answers only the CT questions, all wrong: its other modality is n/a, not 0
    const ctOnly = write(
      'ct.jsonl',
      bench
        .filter((b) => (b.modality_type ?? '').startsWith('CT'))
        .map((b) => ({ question_id: b.question_id, model_answer: 'none of these' })),
    );
    const byModality = runCli(['eval', 'score', '--benchmark', BENCH, '--predictions', right, '--json']);
    const modalities = Object.keys(JSON.parse(byModality.stdout).byModality);
    assert.ok(modalities.length >= 2 && modalities[0].startsWith('CT'), modalities.join());

    const heat = path.join(dir, 'out', 'heat.png');
    const r = runCli([
      'eval',
      'score',
      '--benchmark',
      BENCH,
      '--predictions',
      `oracle=${right}`,
      '--predictions',
      ctOnly,
      '--allow-missing',
      '--heatmap',
      heat,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /trained on \\ tested on \(modality\)/);
    assert.match(lines[2], /^oracle\s+100\.00\s+100\.00$/);
    assert.match(lines[3], /^ct\s+0\.00\s+-$/);
    const svg = fs.readFileSync(path.join(dir, 'out', 'heat.svg'), 'utf8');
    assertSvgShows(
      svg,
      [
        'Accuracy by model and test modality',
        'tested on (modality)',
        'accuracy (%)',
        'oracle',
        'ct',
        ...modalities,
        '100.0',
        '0.0',
        'n/a',
      ],
      'eval score heat-map',
    );
    await assertPngOfSvg(heat, svg);

    const j = runCli([
      'eval',
      'score',
      '--benchmark',
      BENCH,
      '--predictions',
      `oracle=${right}`,
      '--predictions',
      `ct=${ctOnly}`,
      '--allow-missing',
      '--by',
      'task',
      '--json',
    ]);
    assert.equal(j.status, 0, j.stderr);
    const parsed = JSON.parse(j.stdout);
    assert.equal(parsed.matrix.axis, 'task');
    assert.deepEqual(parsed.matrix.rows, ['oracle', 'ct']);
    assert.equal(parsed.scores.oracle.overall.accuracy, 1);

    const one = runCli(['eval', 'score', '--benchmark', BENCH, '--predictions', right, '--json']);
    assert.equal(one.status, 0, one.stderr);
    assert.equal(JSON.parse(one.stdout).overall.total, bench.length, 'one predictions file: the full score, as before');

    const fail = (args: string[], pattern: RegExp) => {
      const x = runCli(['eval', 'score', '--benchmark', BENCH, ...args]);
      assert.notEqual(x.status, 0);
      assert.match(x.stderr, pattern);
    };
    fail([], /required option '--predictions/);
    fail(['--predictions', right, '--predictions', right], /two models are named 'right'; name them with NAME=FILE/);
    fail(['--predictions', right, '--by', 'colour'], /--by must be one of modality, task, dataset, got 'colour'/);
    fail(
      ['--predictions', right, '--heatmap', path.join(dir, 'x.jpg')],
      /--heatmap .*x\.jpg: the file name must end in \.png/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
