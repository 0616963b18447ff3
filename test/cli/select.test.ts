// `medgr2 select` from the command line: --top-fraction keeps the best half of each (modality, task)
// group, as the cycle's default selection does; every candidate is written back with its reason.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import type { Sample, ScoredCandidate } from '../../src/data/proto';
import { readMessageFile, writeMessageFileAtomic } from '../../src/data/record_files';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

function scored(i: number, modality: string, reward: number): ScoredCandidate {
  const sample: Sample = {
    id: `c${i}`,
    dataset: 'd',
    images: [`/x/${i}.png`],
    modality,
    modalityOriginal: modality,
    task: 'Modality Recognition',
    taskOriginal: '',
    question: `What imaging modality is used in image ${i}?`,
    options: ['CT', 'MRI', 'OCT', 'X-Ray'],
    answer: modality,
    rationale: '',
    questionStem: '',
    provenance: { kind: 'GENERATED', round: 1, sourceFile: '', sourceLine: 0, sourceFormat: '' },
  };
  return {
    candidate: { sample, generatorRound: 1, valid: true, invalidReason: '', raw: '' },
    reward,
    judgeRound: 1,
    selected: false,
    selectReason: '',
  };
}

test('medgr2 select --top-fraction 0.5: the best half of each group, nothing dropped', () => {
  const dir = tempDir('select');
  const inFile = path.join(dir, 'scored.rec');
  const outFile = path.join(dir, 'selected.rec');
  const rewards = { CT: [0.9, 0.1, 0.5, 0.7], MRI: [0.2, 0.3] };
  let i = 0;
  const items = Object.entries(rewards).flatMap(([m, rs]) => rs.map((r) => scored(i++, m, r)));
  writeMessageFileAtomic(inFile, 'medgr2.ScoredCandidate', items);
  const r = runCli(['select', '--in', inFile, '--out', outFile, '--top-fraction', '0.5']);
  assert.equal(r.status, 0, r.stderr);
  const out = readMessageFile<ScoredCandidate>(outFile).messages;
  assert.equal(out.length, items.length);
  const kept = out
    .filter((s) => s.selected)
    .map((s) => `${s.candidate.sample.modality}:${s.reward}`)
    .sort();
  assert.deepEqual(kept, ['CT:0.7', 'CT:0.9', 'MRI:0.3']);
  assert.ok(out.filter((s) => !s.selected).every((s) => /outside the top 50%/.test(s.selectReason)));
  const both = runCli(['select', '--in', inFile, '--out', outFile, '--top-fraction', '0.5', '--top-k', '2']);
  assert.notEqual(both.status, 0);
  assert.match(both.stderr, /give one of a threshold, a top-k or a top fraction/);
});

test('medgr2 select --stated-facts: a finding that argues with the description is contradicted, as in the cycle', () => {
  const dir = tempDir('select');
  const inFile = path.join(dir, 'scored.rec');
  const outFile = path.join(dir, 'selected.rec');
  const diagnosis = (i: number, answer: string, rationale: string) => {
    const s = scored(i, 'OCT', 0.9);
    s.candidate.sample = {
      ...s.candidate.sample,
      task: 'Disease Diagnosis',
      question: `What is the most likely diagnosis in image ${i}?`,
      options: ['DME', 'Drusen', 'Infarct', 'Normal'],
      answer,
      rationale,
    };
    return s;
  };
  // "Infarct" under a description stating CNV argues with it, although no option names CNV (the
  // option-name rule cannot see it); "DME" under a description stating DME agrees
  writeMessageFileAtomic(inFile, 'medgr2.ScoredCandidate', [
    diagnosis(0, 'Infarct', 'OCT of the Macula with CNV.'),
    diagnosis(1, 'DME', 'OCT of the Macula with DME.'),
  ]);
  const keptWith = (flags: string[]) => {
    const r = runCli(['select', '--in', inFile, '--out', outFile, '--threshold', '0.5', ...flags]);
    assert.equal(r.status, 0, r.stderr);
    return readMessageFile<ScoredCandidate>(outFile).messages.map((s) => (s.selected ? 'kept' : s.selectReason));
  };
  assert.deepEqual(keptWith([]), ['kept', 'kept']);
  const stated = keptWith(['--stated-facts']);
  assert.match(stated[0], /^contradicted/);
  assert.equal(stated[1], 'kept');
});
