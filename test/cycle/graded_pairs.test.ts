// The graded reward model's data: each sample at the paper's four levels with their targets, each
// level what its name says (by hand, on a small seed), and the score-to-reward map.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleOf } from '../helpers/samples';
import { GRADES, gradedPairs, incoherentSample, normalizedScore } from '../../src/cycle/graded_pairs';
import type { Sample } from '../../src/data/proto';
import { Prng } from '../../src/util/prng';

const sample = (over: Partial<Sample>) => sampleOf({ images: ['/a.png'], ...over });

const seed = [
  sample({ id: '1' }),
  sample({ id: '2', images: ['/b.png'], modality: 'MRI', answer: 'MRI' }),
  sample({
    id: '3',
    images: ['/c.png'],
    task: 'Anatomy Identification',
    question: 'Which organ is shown?',
    options: ['Brain', 'Chest', 'Knee', 'Skin'],
    answer: 'Brain',
  }),
  sample({
    id: '4',
    images: ['/d.png'],
    modality: 'MRI',
    task: 'Anatomy Identification',
    question: 'Which organ is shown?',
    options: ['Brain', 'Chest', 'Knee', 'Skin'],
    answer: 'Knee',
  }),
];

test('graded pairs: four levels per sample with the paper targets, each level as its name says', () => {
  const pairs = gradedPairs(seed, { seed: 1 });
  assert.deepEqual(GRADES, { original: 10, perturbed: 6, incoherent: 0, irrelevant: -6 });
  assert.equal(pairs.length, 4 * seed.length);
  for (const p of pairs) assert.equal(p.target, GRADES[p.grade]);
  for (const s of seed) {
    const mine = pairs.filter((p) => p.sample.id === s.id);
    const by = (g: string) => mine.filter((p) => p.grade === g);
    assert.deepEqual(by('original')[0].sample, s);
    const perturbed = by('perturbed')[0];
    assert.ok(perturbed, `${s.id}: perturbed`);
    assert.deepEqual(perturbed.images, s.images, 'a near miss keeps the image');
    assert.notEqual(perturbed.sample.answer, s.answer, 'and names another option');
    const incoherent = by('incoherent')[0];
    assert.notEqual(incoherent.sample.question, s.question);
    assert.deepEqual(incoherent.sample.options, s.options, 'the options stay, the question is another task');
    assert.equal(incoherent.sample.answer, s.answer);
  }
  // irrelevant: another image (mismatched-image) or another modality's sample on this image (off-modality)
  const irrelevant = pairs.filter((p) => p.grade === 'irrelevant');
  assert.equal(irrelevant.length, seed.length);
  for (const p of irrelevant)
    assert.notEqual(p.images.join(), p.sample.images.join(), 'shown with an image the sample is not about');
  assert.deepEqual(gradedPairs(seed, { seed: 1 }), pairs, 'deterministic');
});

test('incoherent needs a sample of another task; normalizedScore maps [-6, 10] onto [0, 1]', () => {
  assert.equal(incoherentSample(seed[0], [seed[0], seed[1]], new Prng('x')), undefined);
  assert.equal(normalizedScore(10), 1);
  assert.equal(normalizedScore(-6), 0);
  assert.equal(normalizedScore(2), 0.5);
  assert.equal(normalizedScore(40), 1);
  assert.equal(normalizedScore(-40), 0);
  assert.ok(Number.isNaN(normalizedScore(Number.NaN)));
});
