// The one learning-rate schedule of every trainer, against hand-computed values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lrAt, warmupStepsFor } from '../../src/train/lr_schedule';

test('lr schedule: linear warm-up then cosine to minLrRatio, against hand-computed values', () => {
  const s = { lr: 1e-3, totalSteps: 10, warmupSteps: warmupStepsFor(10, 0.2), minLrRatio: 0.1 };
  assert.equal(s.warmupSteps, 2);
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(lrAt(0, s), 5e-4);
  close(lrAt(1, s), 1e-3);
  close(lrAt(2, s), 1e-3); // cosine starts at the peak
  // step 5: p = 3/7, cos(3π/7) = 0.2225209340; 1e-3 · (0.1 + 0.9 · 0.5 · 1.2225209340) = 6.501344203e-4
  close(lrAt(5, s), 6.501344203e-4);
  // step 6: p = 4/7, cos(4π/7) = -0.2225209340; 1e-3 · (0.1 + 0.9 · 0.5 · 0.7774790660) = 4.498655797e-4
  close(lrAt(6, s), 4.498655797e-4);
  close(lrAt(9, s), 1e-4); // the last step ends at minLrRatio · lr
  close(lrAt(0, { lr: 2e-3, totalSteps: 5, warmupSteps: 0, minLrRatio: 0 }), 2e-3);
  close(lrAt(4, { lr: 2e-3, totalSteps: 5, warmupSteps: 0, minLrRatio: 0 }), 0);
  close(lrAt(2, { lr: 2e-3, totalSteps: 5, warmupSteps: 0, minLrRatio: 0 }), 1e-3); // the midpoint: half
  assert.equal(warmupStepsFor(10, 0, 3), 3);
  assert.equal(warmupStepsFor(100, 0.03), 3);
  assert.equal(warmupStepsFor(10, 0.03), 1);
  assert.equal(warmupStepsFor(2, 0, 5), 2);
});

test("lr schedule: the constant shape holds the peak after the warm-up (GRPO's default)", () => {
  const s = { lr: 1e-3, totalSteps: 10, warmupSteps: 4, minLrRatio: 0.1, shape: 'constant' as const };
  assert.equal(lrAt(0, s), 2.5e-4);
  assert.equal(lrAt(3, s), 1e-3);
  for (const k of [4, 7, 9]) assert.equal(lrAt(k, s), 1e-3);
});
