// Group advantages: native reference vs the independent float64 formulas; fused vs reference.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpo } from '../../src/ops/grpo_ops';
import { addon, assertClose, noCuda, randn, rng } from '../helpers/addon';
import * as ref from '../helpers/grpo_reference';

const scales = ['group', 'batch', 'none'] as const;

function rewardsWithEdgeCases(seed: number, groups: number, g: number): Float64Array {
  const r = rng(seed);
  const out = Float64Array.from(randn(r, groups * g));
  for (let k = 0; k < out.length; k++) {
    const u = r();
    if (u < 0.1)
      out[k] = NaN; // unscorable
    else if (u < 0.3) out[k] = Math.round(out[k]); // ties
  }
  if (groups >= 3) {
    out.fill(0.7, g, 2 * g); // a group whose rewards are all equal
    out.fill(NaN, 2 * g, 3 * g - 1); // a group with one valid reward (when g > 1)
  }
  return out;
}

test('reference matches the float64 formulas: every scale, NaN, ties, equal groups, one valid', () => {
  for (const [groups, g] of [
    [5, 4],
    [3, 7],
    [4, 1],
    [1, 16],
    [9, 3],
  ]) {
    for (const scale of scales) {
      for (const eps of [1e-4, 0.5]) {
        const rewards = rewardsWithEdgeCases(groups * 31 + g, groups, g);
        const want = ref.advantages(rewards, g, scale, eps);
        const got = grpo.advantages(rewards, g, { scale, eps, impl: 'reference' });
        assertClose(got, want, { rtol: 1e-12, atol: 1e-12, what: `reference ${scale} eps=${eps} ${groups}x${g}` });
        for (const v of got) assert.ok(Number.isFinite(v), 'never NaN');
      }
    }
  }
});

test('degenerate groups give exact zeros', () => {
  const r = new Float32Array([0.1, 0.1, 0.1, 0.1, NaN, 3, NaN, NaN, NaN, NaN, NaN, NaN]);
  for (const scale of scales) {
    for (const impl of ['reference', 'fused'] as const) {
      const a = grpo.advantages(r, 4, { scale, impl });
      assert.deepEqual(Array.from(a), new Array(12).fill(0), `${scale} ${impl}`);
    }
  }
});

test('fused equals reference on fresh random inputs (f32 and f64, odd shapes)', () => {
  for (let seed = 0; seed < 20; seed++) {
    const r = rng(1000 + seed);
    const g = 1 + Math.floor(r() * 9);
    const groups = 1 + Math.floor(r() * 13);
    const rewards = rewardsWithEdgeCases(seed, groups, g);
    for (const scale of scales) {
      const want = grpo.advantages(rewards, g, { scale, impl: 'reference' });
      assertClose(grpo.advantages(rewards, g, { scale, impl: 'fused' }), want, {
        rtol: 1e-12,
        atol: 1e-12,
        what: `f64 seed ${seed} ${scale}`,
      });
      const r32 = Float32Array.from(rewards);
      const want32 = grpo.advantages(r32, g, { scale, impl: 'reference' });
      assertClose(grpo.advantages(r32, g, { scale, impl: 'fused' }), want32, {
        rtol: 1e-6,
        atol: 1e-6,
        what: `f32 seed ${seed} ${scale}`,
      });
    }
  }
});

test('bad arguments name the argument', () => {
  assert.throws(
    () => grpo.advantages(new Float32Array(10), 3),
    /grpo\.advantages: argument 'groupSize' must be a positive divisor of the batch size 10, got 3/,
  );
  assert.throws(
    () => grpo.advantages(new Float32Array(4), 2, { scale: 'row' as 'group' }),
    /argument 'options\.scale' must be one of "group", "batch", "none"/,
  );
  assert.throws(
    () => grpo.advantages(new Float32Array(4), 2, { eps: -1 }),
    /argument 'eps' must be a finite number >= 0/,
  );
  assert.throws(
    () => grpo.advantages(new Int32Array(4) as unknown as Float32Array, 2),
    /argument 'rewards' must be floating point/,
  );
  assert.throws(
    () => (grpo.advantages as (...a: unknown[]) => unknown)([1, 2], 2),
    /argument 'rewards' must be a TypedArray or a Tensor/,
  );
});

test('async form returns a Tensor', async () => {
  const t = await grpo.advantagesAsync(new addon.Tensor(new Float32Array([1, 2, 3, 4])), 2);
  assert.deepEqual(t.shape, [4]);
  assertClose(t.toArray() as Float32Array, ref.advantages([1, 2, 3, 4], 2), { rtol: 1e-6 });
});

test('CUDA kernel equals the reference', { skip: noCuda }, () => {
  for (let seed = 0; seed < 10; seed++) {
    const g = 1 + seed;
    const rewards = Float32Array.from(rewardsWithEdgeCases(seed, 37, g));
    for (const scale of scales) {
      const want = grpo.advantages(rewards, g, { scale, impl: 'reference' });
      const got = grpo.advantages(rewards, g, { scale, device: 'cuda' });
      assertClose(got, want, { rtol: 1e-5, atol: 1e-6, what: `cuda seed ${seed} ${scale}` });
    }
  }
});
