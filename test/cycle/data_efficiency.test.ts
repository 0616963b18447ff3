// The data-efficiency subsets: three sizes from what round 1 kept; top-k takes the best rewards under
// the rounds' own selection rules, random draws the same number from the same eligible candidates.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scoredOf } from '../helpers/samples';
import { efficiencySizes, efficiencySubset } from '../../src/cycle/data_efficiency';

const scored = (i: number, reward: number, valid = true) =>
  scoredOf(
    `c${i}`,
    reward,
    { images: [`/img/${i}.png`], modality: i % 2 ? 'CT' : 'MRI', answer: i % 2 ? 'CT' : 'MRI' },
    valid,
  );

test('sizes: a quarter, a half and all of round 1 kept, distinct, at least one', () => {
  assert.deepEqual(efficiencySizes(144), [36, 72, 144]);
  assert.deepEqual(efficiencySizes(4), [1, 2, 4]);
  assert.deepEqual(efficiencySizes(2), [1, 2]);
  assert.deepEqual(efficiencySizes(0), []);
});

test('top-k takes the highest rewards (balanced), random the same number of other eligible candidates', () => {
  const pool = Array.from({ length: 40 }, (_, i) => scored(i, ((i * 37) % 41) / 41, i !== 3));
  const byReward = [...pool].filter((s) => s.candidate.valid).sort((a, b) => b.reward - a.reward);
  const top = efficiencySubset(pool, 6, 'top-k', { balance: false, seed: 1 });
  assert.deepEqual(
    top.map((s) => s.candidate.sample.id).sort(),
    byReward
      .slice(0, 6)
      .map((s) => s.candidate.sample.id)
      .sort(),
  );
  const random = efficiencySubset(pool, 6, 'random', { balance: false, seed: 1 });
  assert.equal(random.length, 6);
  assert.ok(
    random.every((s) => s.candidate.valid),
    'never an invalid candidate',
  );
  assert.notDeepEqual(random.map((s) => s.candidate.sample.id).sort(), top.map((s) => s.candidate.sample.id).sort());
  assert.deepEqual(efficiencySubset(pool, 6, 'random', { balance: false, seed: 1 }), random, 'seeded');
  assert.equal(efficiencySubset(pool, 6, 'top-k', { balance: true, seed: 1 }).length, 6, 'balanced, still k');
});
