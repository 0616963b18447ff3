// Selection precision, measured against a truth.jsonl written here (found beside the images' folder):
// totals and counts per (task, side of the seed), invalid candidates and tasks without a truth left out,
// and the report's table of them.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { ScoredCandidate } from '../../src/data/proto';
import { precisionByGroupTable } from '../../src/cycle/report';
import { precisionGroup, selectionPrecision } from '../../src/cycle/selection_precision';
import { tempDir } from '../helpers/temp_dir';

function candidate(image: string, task: string, answer: string, selected: boolean, valid = true): ScoredCandidate {
  const sample = { images: [image], task, answer } as ScoredCandidate['candidate']['sample'];
  return {
    candidate: { sample, generatorRound: 1, valid, invalidReason: '', raw: '' },
    reward: 0.5,
    judgeRound: 1,
    selected,
    selectReason: '',
  };
}

test('selectionPrecision: right and wrong, kept and dropped, in total and per task and side of the seed', () => {
  const world = tempDir('precision');
  const truth = [
    { image_path: 'images/0.png', modality: 'CT', anatomy: 'Brain', disease: 'Tumor' },
    { image_path: 'images/1.png', modality: 'OCT', anatomy: 'Macula', disease: 'CNV' },
  ];
  fs.writeFileSync(path.join(world, 'truth.jsonl'), truth.map((t) => JSON.stringify(t)).join('\n') + '\n');
  const ct = path.join(world, 'images/0.png');
  const oct = path.join(world, 'images/1.png');
  const scored = [
    candidate(ct, 'Anatomy Identification', 'brain', true), // right (normalized), kept
    candidate(ct, 'Anatomy Identification', 'Chest', false), // wrong, dropped
    candidate(oct, 'Anatomy Identification', 'Brain', false), // wrong, dropped
    candidate(oct, 'Anatomy Identification', 'Knee', true), // wrong, kept
    candidate(oct, 'Modality Recognition', 'OCT', true), // right, kept
    candidate(oct, 'Modality Recognition', 'OCT', true, false), // invalid: not counted
    candidate(ct, 'Lesion Grading', 'Grade 2', true), // no truth field for the task: not counted
  ];
  const p = selectionPrecision(scored, ['CT', 'MRI'])!;
  assert.deepEqual(
    { kept: p.kept, keptCorrect: p.keptCorrect, dropped: p.dropped, droppedCorrect: p.droppedCorrect },
    { kept: 3, keptCorrect: 2, dropped: 2, droppedCorrect: 0 },
  );
  assert.deepEqual(p.byGroup, {
    'Anatomy Identification (seed modalities)': { kept: 1, keptCorrect: 1, dropped: 1, droppedCorrect: 0 },
    'Anatomy Identification (held-out modalities)': { kept: 1, keptCorrect: 0, dropped: 1, droppedCorrect: 0 },
    'Modality Recognition (held-out modalities)': { kept: 1, keptCorrect: 1, dropped: 0, droppedCorrect: 0 },
  });
  const elsewhere = [candidate('/nowhere/images/0.png', 'Modality Recognition', 'CT', true)];
  assert.equal(selectionPrecision(elsewhere), undefined, 'no truth.jsonl beside the images: not a MedSynth world');

  const table = precisionByGroupTable([p, undefined])!;
  assert.match(table, /\| Anatomy Identification \(held-out modalities\) \| 0\/1 · 0\/1 \| - \|/);
  assert.match(table, /round 2: kept · dropped/);
  assert.equal(precisionByGroupTable([{ kept: 0, keptCorrect: 0, dropped: 0, droppedCorrect: 0 }]), undefined);
});

test('precisionGroup: the task and which side of the seed the modality lies on', () => {
  assert.equal(precisionGroup('Disease Diagnosis', 'MRI', ['CT', 'MRI']), 'Disease Diagnosis (seed modalities)');
  assert.equal(precisionGroup('Disease Diagnosis', 'OCT', ['CT', 'MRI']), 'Disease Diagnosis (held-out modalities)');
});
