// The Med-R1 split: per group, a seeded shuffle, the first ⌈F·n⌉ to test; deterministic for a seed.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { importFiles } from '../../src/data/import';
import type { Sample } from '../../src/data/proto';
import { readSamples } from '../../src/data/record_files';
import { groupSeed, splitByGroup, testCount } from '../../src/data/split';
import { rng } from '../helpers/numeric';
import { OMNIMEDVQA_FIXTURES, runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

const AUTHORS_TEST = path.join(OMNIMEDVQA_FIXTURES, 'medgr2-formatted-test.jsonl');
const fixture = (): Sample[] => importFiles([AUTHORS_TEST]).samples;

test('test size is ⌈F·n⌉ without floating-point overshoot', () => {
  assert.equal(testCount(30, 0.1), 3); // 0.1 * 30 = 3.0000000000000004
  assert.equal(testCount(10, 0.25), 3);
  assert.equal(testCount(7, 0.2), 2);
  assert.equal(testCount(0, 0.5), 0);
  assert.equal(testCount(5, 1), 5);
  assert.equal(testCount(5, 0), 0);
});

test('each group is shuffled by its own seeded generator and cut at ⌈F·n⌉ (checked against a separate Fisher–Yates)', () => {
  const samples = fixture();
  const splits = splitByGroup(samples, 'task', 0.3, 42);
  assert.deepEqual(
    splits.map((g) => g.group),
    ['Disease Diagnosis', 'Lesion Grading', 'Modality Recognition', 'Other Biological Attributes'],
  );
  for (const g of splits) {
    const members = samples.filter((s) => s.task === g.group);
    // The test helpers' rng is the same mulberry32 generator, written separately.
    const rand = rng(groupSeed(42, g.group));
    const order = members.map((s) => s.id);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const k = Math.ceil(0.3 * members.length - 1e-9);
    assert.deepEqual(
      g.test.map((s) => s.id),
      order.slice(0, k),
      g.group,
    );
    assert.deepEqual(
      g.train.map((s) => s.id),
      order.slice(k),
      g.group,
    );
  }
});

test('same seed gives the same split, another seed another; groups do not depend on each other', () => {
  const samples = fixture();
  const ids = (gs: ReturnType<typeof splitByGroup>) =>
    gs.map((g) => [g.group, g.test.map((s) => s.id), g.train.map((s) => s.id)]);
  assert.deepEqual(ids(splitByGroup(samples, 'modality', 0.2, 1)), ids(splitByGroup(samples, 'modality', 0.2, 1)));
  assert.notDeepEqual(ids(splitByGroup(samples, 'modality', 0.2, 1)), ids(splitByGroup(samples, 'modality', 0.2, 2)));
  const ctOnly = splitByGroup(
    samples.filter((s) => s.modality === 'CT'),
    'modality',
    0.2,
    1,
  );
  const all = splitByGroup(samples, 'modality', 0.2, 1).filter((g) => g.group === 'CT');
  assert.deepEqual(ids(ctOnly), ids(all));
  // Train and test partition each group.
  for (const g of splitByGroup(samples, 'modality', 0.2, 1)) {
    const both = [...g.train, ...g.test].map((s) => s.id).sort();
    assert.deepEqual(
      both,
      samples
        .filter((s) => s.modality === g.group)
        .map((s) => s.id)
        .sort(),
    );
  }
  assert.throws(() => splitByGroup(samples, 'task', 1.5, 1), /test-fraction/);
  assert.throws(() => splitByGroup(samples, 'task', 0.2, 0.5), /seed/);
});

test('medgr2 data split writes DIR/<group>.train|test files and split.json, byte-identical for a seed', () => {
  const dir = tempDir('split');
  try {
    const run = (out: string) =>
      runCli([
        'data',
        'split',
        AUTHORS_TEST,
        '--by',
        'modality',
        '--test-fraction',
        '0.25',
        '--seed',
        '9',
        '--out',
        out,
      ]);
    const a = run(path.join(dir, 'a'));
    assert.equal(a.status, 0, a.stderr);
    assert.equal(run(path.join(dir, 'b')).status, 0);
    const files = fs.readdirSync(path.join(dir, 'a')).sort();
    assert.deepEqual(files, [
      'CT.test.rec',
      'CT.train.rec',
      'Microscopy.test.rec',
      'Microscopy.train.rec',
      'split.json',
    ]);
    for (const f of files.filter((f) => f.endsWith('.rec'))) {
      assert.deepEqual(fs.readFileSync(path.join(dir, 'a', f)), fs.readFileSync(path.join(dir, 'b', f)), f);
    }
    const summary = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'split.json'), 'utf8'));
    assert.deepEqual(
      summary.groups.map((g: { group: string; train: number; test: number }) => [g.group, g.train, g.test]),
      [
        ['CT', 312, 105], // 417 CT records (one inferred), ⌈0.25 · 417⌉ = 105
        ['Microscopy', 256, 86],
      ],
    );
    assert.equal(readSamples(path.join(dir, 'a', 'CT.test.rec')).messages.length, 105);
    const jsonl = runCli([
      'data',
      'split',
      AUTHORS_TEST,
      '--by',
      'task',
      '--test-fraction',
      '0.5',
      '--seed',
      '1',
      '--out',
      path.join(dir, 'c'),
      '--jsonl',
    ]);
    assert.equal(jsonl.status, 0, jsonl.stderr);
    assert.ok(fs.existsSync(path.join(dir, 'c', 'Lesion_Grading.test.jsonl')));
    const bad = runCli([
      'data',
      'split',
      AUTHORS_TEST,
      '--by',
      'colour',
      '--test-fraction',
      '0.5',
      '--seed',
      '1',
      '--out',
      path.join(dir, 'd'),
    ]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^medgr2: --by must be modality or task/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
