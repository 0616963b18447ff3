// Packing: every token in exactly one batch, the budget respected, cuSeqlens and images
// consistent with the samples, the same plan for the same seed.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Grid } from '../../src/data/images/patchify';
import { assembleBatch, packSamples, planBatches, type PackSample } from '../../src/data/packing';
import { rng } from '../helpers/numeric';

const DIM = 1176;

function makeSamples(n: number, seed: number): PackSample[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 5 + Math.floor(r() * 300);
    const ids = Int32Array.from({ length: len }, (_, t) => i * 1000 + t);
    const targetMask = Uint8Array.from({ length: len }, (_, t) => (t > len / 2 ? 1 : 0));
    const images = Array.from({ length: Math.floor(r() * 3) }, (_, k) => {
      const grid: Grid = [1, 2 * (1 + k), 2];
      const n = grid[0] * grid[1] * grid[2];
      return { grid, pixelValues: Float32Array.from({ length: n * DIM }, (_, j) => i + k / 10 + j / 1e7) };
    });
    return { ids, targetMask, images };
  });
}

test('every token in exactly one batch; budget, cuSeqlens, masks and images consistent', () => {
  const samples = makeSamples(200, 1);
  const budget = 1024;
  const batches = packSamples(samples, { tokenBudget: budget, seed: 7 });
  const seen = new Array(samples.length).fill(0);
  for (const b of batches) {
    assert.ok(b.numTokens <= budget, `batch of ${b.numTokens} tokens`);
    assert.equal(b.cuSeqlens[0], 0);
    assert.equal(b.cuSeqlens[b.numSequences], b.numTokens);
    assert.equal(b.inputIds.length, b.numTokens);
    assert.equal(b.cuSeqlens.length, b.numSequences + 1);
    assert.equal(b.pixelValues.length, b.numPatches * DIM);
    let maxLen = 0;
    let patch = 0;
    b.sampleIndices.forEach((i, k) => {
      seen[i]++;
      const s = samples[i];
      const [lo, hi] = [b.cuSeqlens[k], b.cuSeqlens[k + 1]];
      assert.equal(hi - lo, s.ids.length);
      maxLen = Math.max(maxLen, hi - lo);
      assert.deepEqual(b.inputIds.subarray(lo, hi), s.ids);
      assert.deepEqual(b.targetMask.subarray(lo, hi), s.targetMask);
      const imgs = s.images ?? [];
      assert.equal(b.cuImages[k + 1] - b.cuImages[k], imgs.length);
      imgs.forEach((img, j) => {
        const row = b.cuImages[k] + j;
        assert.deepEqual(Array.from(b.imageGrids.subarray(3 * row, 3 * row + 3)), img.grid);
        assert.deepEqual(b.pixelValues.subarray(patch * DIM, patch * DIM + img.pixelValues.length), img.pixelValues);
        patch += img.pixelValues.length / DIM;
      });
    });
    assert.equal(patch, b.numPatches);
    assert.equal(b.maxSeqlen, maxLen);
  }
  assert.deepEqual(seen, new Array(samples.length).fill(1));
  // Bucketing by length packs tightly: little of the budget is left unused.
  const total = samples.reduce((s, x) => s + x.ids.length, 0);
  assert.ok(total / (batches.length * budget) > 0.85, `fill ${total / (batches.length * budget)}`);
});

test('bucketing: sequences in a batch have similar lengths', () => {
  const r = rng(3);
  const lengths = Array.from({ length: 500 }, () => 1 + Math.floor(r() * 1000));
  const plan = planBatches(lengths, { tokenBudget: 4096, seed: 1, bucketWidth: 64 });
  // Batches are consecutive runs of the bucket-sorted order: each spans few buckets.
  const spans = plan.map((b) => Math.max(...b.map((i) => lengths[i])) - Math.min(...b.map((i) => lengths[i])));
  const mean = spans.reduce((a, b) => a + b, 0) / spans.length;
  assert.ok(mean < 200, `mean length spread in a batch ${mean}`);
});

test('deterministic for a seed, different across seeds; limits enforced', () => {
  const lengths = makeSamples(100, 2).map((s) => s.ids.length);
  const a = planBatches(lengths, { tokenBudget: 700, seed: 5 });
  assert.deepEqual(planBatches(lengths, { tokenBudget: 700, seed: 5 }), a);
  assert.notDeepEqual(planBatches(lengths, { tokenBudget: 700, seed: 6 }), a);
  assert.ok(planBatches(lengths, { tokenBudget: 700, seed: 5, maxSequences: 2 }).every((b) => b.length <= 2));
  assert.throws(
    () => planBatches([10, 800], { tokenBudget: 700, seed: 1 }),
    /sample 1 has 800 tokens, more than the token budget 700/,
  );
  const bad: PackSample[] = [
    {
      ids: new Int32Array(4),
      targetMask: new Uint8Array(4),
      images: [{ grid: [1, 2, 2], pixelValues: new Float32Array(5) }],
    },
  ];
  assert.throws(
    () => assembleBatch(bad, [0]),
    /an image's values are not a whole number of patches \(1.25 per patch\)/,
  );
  assert.throws(
    () => assembleBatch(bad, [0], 1176),
    /sample 0 image 0 has 5 values for grid \[1, 2, 2\] \(expected 4704\)/,
  );
});

test("the patch size is the images' own: a tower with 7-pixel patches (294 values) packs, one that disagrees does not", () => {
  const image = (grid: [number, number, number], perPatch: number) => ({
    grid,
    pixelValues: Float32Array.from({ length: grid[0] * grid[1] * grid[2] * perPatch }, (_, i) => i),
  });
  const samples: PackSample[] = [
    { ids: new Int32Array(3), targetMask: new Uint8Array(3), images: [image([1, 4, 2], 294)] },
    { ids: new Int32Array(2), targetMask: new Uint8Array(2) },
    { ids: new Int32Array(5), targetMask: new Uint8Array(5), images: [image([1, 2, 2], 294)] },
  ];
  const pb = assembleBatch(samples, [0, 1, 2]);
  assert.equal(pb.patchDim, 294);
  assert.equal(pb.numPatches, 12);
  assert.equal(pb.pixelValues.length, 12 * 294);
  assert.deepEqual(Array.from(pb.pixelValues.subarray(8 * 294, 8 * 294 + 3)), [0, 1, 2]);
  assert.equal(assembleBatch(samples, [1]).patchDim, 1176);
  samples[2].images = [image([1, 2, 2], 1176)];
  assert.throws(
    () => assembleBatch(samples, [0, 2]),
    /sample 2 image 0 has 4704 values for grid \[1, 2, 2\] \(expected 1176\)/,
  );
});
