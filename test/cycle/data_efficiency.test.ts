// The data-efficiency subsets: three sizes from what round 1 kept; top-k takes the best rewards under
// the rounds' own selection rules, random draws the same number from the same eligible candidates.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scoredOf } from '../helpers/samples';
import { efficiencySizes, efficiencySubset } from '../../src/cycle/data_efficiency';
import { proportionalShares, selectCandidates } from '../../src/cycle/select';

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

test('shares of k in proportion to the groups: largest remainders, never over a group, summing to k', () => {
  // exact shares of 10 over 5 / 3 / 2 of 10: 5, 3, 2
  assert.deepEqual(proportionalShares([5, 3, 2], 10), [5, 3, 2]);
  // 7 over 6 / 3 / 3 (12): exact 3.5, 1.75, 1.75 -> floors 3, 1, 1, the two largest remainders (0.75) get one more
  assert.deepEqual(proportionalShares([6, 3, 3], 7), [3, 2, 2]);
  // 4 over 1 / 1 / 1 / 1 / 4 (8): exact 0.5 x 4 and 2 -> 2 to the last, then 0.5 ties in group order
  assert.deepEqual(proportionalShares([1, 1, 1, 1, 4], 4), [1, 1, 0, 0, 2]);
  assert.deepEqual(proportionalShares([2, 1], 9), [2, 1], 'k above the pool: every candidate');
  assert.deepEqual(proportionalShares([0, 0], 3), [0, 0]);
  for (let trial = 0; trial < 50; trial++) {
    const sizes = Array.from({ length: 1 + (trial % 7) }, (_, i) => (trial * 13 + i * 7) % 11);
    const all = sizes.reduce((a, b) => a + b, 0);
    const k = (trial * 5) % (all + 3);
    const shares = proportionalShares(sizes, k);
    assert.equal(
      shares.reduce((a, b) => a + b, 0),
      Math.min(k, all),
    );
    shares.forEach((n, i) => {
      assert.ok(n <= sizes[i] && Math.abs(n - (Math.min(k, all) * sizes[i]) / Math.max(1, all)) < 1, `${sizes} ${k}`);
    });
  }
});

test('balanced: top-k and random take the same number from every (modality, task) group; top-k the best of each', () => {
  // rewards favour MRI, so a global top-k would take only MRI; per group both arms take 4 CT and 2 MRI
  const pool = [
    ...Array.from({ length: 12 }, (_, i) =>
      scoredOf(`ct${i}`, 0.01 * i, { images: [`/img/ct${i}.png`], modality: 'CT', answer: 'CT' }),
    ),
    ...Array.from({ length: 6 }, (_, i) =>
      scoredOf(`mri${i}`, 0.5 + 0.01 * i, { images: [`/img/mri${i}.png`], modality: 'MRI', answer: 'MRI' }),
    ),
  ];
  const perModality = (subset: readonly { candidate: { sample: { modality: string } } }[]) =>
    ['CT', 'MRI'].map((m) => subset.filter((s) => s.candidate.sample.modality === m).length);
  const top = efficiencySubset(pool, 6, 'top-k', { balance: true, seed: 3 });
  const random = efficiencySubset(pool, 6, 'random', { balance: true, seed: 3 });
  assert.deepEqual(perModality(top), [4, 2]);
  assert.deepEqual(perModality(random), [4, 2]);
  assert.deepEqual(top.map((s) => s.candidate.sample.id).sort(), ['ct10', 'ct11', 'ct8', 'ct9', 'mri4', 'mri5']);
  assert.deepEqual(
    perModality(efficiencySubset(pool, 6, 'top-k', { balance: false, seed: 3 })),
    [0, 6],
    'unbalanced: global',
  );
  assert.throws(() => selectCandidates(pool, { topKByGroup: 6, topK: 6 }), /a top-k by group goes alone/);
});
