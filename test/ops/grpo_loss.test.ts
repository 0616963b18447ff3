// Token-level GRPO loss: the native reference against the independent float64 formulas, gradients
// against finite differences, the fused path against the reference, packed against padded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpo, type LossOptions } from '../../src/ops/grpo_ops';
import { addon, assertClose, noCuda } from '../helpers/addon';
import * as ref from '../helpers/grpo_reference';
import { makePadded, packedFromPadded, paddedInputs, toCase } from '../helpers/grpo_cases';

const lossTypes = ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const;
const kls = ['k1', 'k2', 'k3'] as const;

function assertStats(got: Record<string, number>, want: Record<string, number>, tol: number, what: string): void {
  for (const k of Object.keys(want))
    assertClose([got[k]], [want[k]], { rtol: tol, atol: tol, what: `${what} stats.${k}` });
}

test('reference: every lossType x kl x beta, epsLow != epsHigh, empty rows -- values and stats', () => {
  const p = makePadded(7, 6, 9);
  for (const lossType of lossTypes) {
    for (const kl of kls) {
      for (const beta of [0, 0.04]) {
        for (const [epsLow, epsHigh] of [
          [0.2, 0.2],
          [0.2, 0.28],
        ]) {
          for (const withOld of [true, false]) {
            const opts: LossOptions = { lossType, kl, beta, epsLow, epsHigh };
            const want = ref.loss(toCase(p, withOld, true), opts);
            const got = grpo.loss(paddedInputs(p, withOld), { ...opts, impl: 'reference' });
            const what = `${lossType} ${kl} beta=${beta} eps=${epsLow}/${epsHigh} old=${withOld}`;
            assertClose([got.loss], [want.loss], { rtol: 1e-12, atol: 1e-14, what });
            assertStats(got.stats as unknown as Record<string, number>, want.stats, 1e-6, what);
          }
        }
      }
    }
  }
});

test('gradients equal finite differences of the float64 formulas (every lossType and kl)', () => {
  const p = makePadded(11, 4, 5, true);
  for (const lossType of lossTypes) {
    for (const kl of kls) {
      const opts: LossOptions = { lossType, kl, beta: 0.1, epsLow: 0.2, epsHigh: 0.3, maxCompletionLength: 7 };
      const fd = ref.lossGradFiniteDiff(toCase(p, true, true), opts);
      for (const impl of ['reference', 'fused'] as const) {
        const got = grpo.loss(
          {
            logp: p.logp,
            oldLogp: p.oldLogp,
            refLogp: p.refLogp,
            advantages: p.advantages,
            mask: p.mask,
            batch: p.B,
            seqLen: p.T,
          },
          { ...opts, impl },
        );
        assertClose(got.gradLogp, fd, { rtol: 1e-6, atol: 1e-8, what: `${impl} ${lossType} ${kl} grad` });
      }
    }
  }
  // Without oldLogp the ratio is 1 and its gradient still flows (old = logp, detached).
  const fd = ref.lossGradFiniteDiff(toCase(p, false, false), { lossType: 'grpo' });
  const got = grpo.loss(
    { logp: p.logp, advantages: p.advantages, mask: p.mask, batch: p.B, seqLen: p.T },
    { lossType: 'grpo', impl: 'fused' },
  );
  assertClose(got.gradLogp, fd, { rtol: 1e-6, atol: 1e-8, what: 'no old grad' });
});

test('fused equals reference on fresh random inputs: odd shapes, f32 and f64, u8 and float masks', () => {
  const shapes = [
    [1, 1],
    [7, 13],
    [3, 1000],
    [33, 17],
    [2, 40000],
  ];
  let seed = 100;
  for (const [B, T] of shapes) {
    for (const lossType of lossTypes) {
      const p = makePadded(seed++, B, T);
      const opts: LossOptions = { lossType, beta: 0.05, kl: 'k3', epsLow: 0.2, epsHigh: 0.28 };
      for (const dtype of ['f64', 'f32'] as const) {
        const conv = (a: Float64Array): Float64Array | Float32Array => (dtype === 'f32' ? Float32Array.from(a) : a);
        for (const mask of [p.mask, Float32Array.from(p.mask, (m, i) => m * (0.5 + (i % 3) / 4))]) {
          const inputs = {
            logp: conv(p.logp),
            oldLogp: conv(p.oldLogp),
            refLogp: conv(p.refLogp),
            advantages: conv(p.advantages),
            mask,
            entropy: Float32Array.from(p.entropy),
            batch: B,
            seqLen: T,
          };
          const want = grpo.loss(inputs, { ...opts, impl: 'reference' });
          const got = grpo.loss(inputs, { ...opts, impl: 'fused' });
          const tol = dtype === 'f32' ? 2e-5 : 1e-11;
          const what = `${B}x${T} ${lossType} ${dtype} ${mask instanceof Uint8Array ? 'u8' : 'f32'} mask`;
          assertClose([got.loss], [want.loss], { rtol: tol, atol: tol, what });
          const scale = Math.max(...Array.from(want.gradLogp, Math.abs), 1e-30);
          assertClose(got.gradLogp, want.gradLogp, { rtol: tol, atol: tol * scale, what: `${what} grad` });
          assertStats(
            got.stats as unknown as Record<string, number>,
            want.stats as unknown as Record<string, number>,
            tol * 10,
            what,
          );
        }
      }
    }
  }
});

test('packed form equals padded form', () => {
  const p = makePadded(55, 5, 12);
  const { cu, gather } = packedFromPadded(p);
  for (const lossType of ['grpo', 'bnpo', 'dapo', 'dr_grpo'] as const) {
    const opts: LossOptions = { lossType, beta: 0.02, maxCompletionLength: p.T };
    const padded = grpo.loss(
      {
        logp: p.logp,
        oldLogp: p.oldLogp,
        refLogp: p.refLogp,
        advantages: p.advantages,
        mask: p.mask,
        batch: p.B,
        seqLen: p.T,
      },
      opts,
    );
    const packed = grpo.lossPacked(
      {
        logp: gather(p.logp),
        oldLogp: gather(p.oldLogp),
        refLogp: gather(p.refLogp),
        advantages: p.advantages,
        cuSeqlens: cu,
      },
      opts,
    );
    assertClose([packed.loss], [padded.loss], { rtol: 1e-12, atol: 1e-14, what: `${lossType} loss` });
    assertClose(packed.gradLogp, gather(padded.gradLogp as unknown as Float64Array), {
      rtol: 1e-12,
      atol: 1e-14,
      what: `${lossType} grad`,
    });
    assert.equal(packed.stats.activeTokens, padded.stats.activeTokens);
    // The packed reference agrees too, with an explicit mask of ones.
    const packedRef = grpo.lossPacked(
      {
        logp: gather(p.logp),
        oldLogp: gather(p.oldLogp),
        refLogp: gather(p.refLogp),
        advantages: p.advantages,
        cuSeqlens: cu,
        mask: new Uint8Array(cu[p.B]).fill(1),
      },
      { ...opts, impl: 'reference' },
    );
    assertClose([packedRef.loss], [padded.loss], { rtol: 1e-12, atol: 1e-14, what: `${lossType} packed reference` });
  }
});

test('dapo numItemsInBatch and dr_grpo maxCompletionLength change only the scale', () => {
  const p = makePadded(9, 3, 8);
  const base = { logp: p.logp, oldLogp: p.oldLogp, advantages: p.advantages, mask: p.mask, batch: p.B, seqLen: p.T };
  const active = grpo.loss(base).stats.activeTokens;
  const a = grpo.loss(base, { lossType: 'dapo' });
  const b = grpo.loss(base, { lossType: 'dapo', numItemsInBatch: 4 * active });
  assertClose([b.loss * 4], [a.loss], { rtol: 1e-12 });
  const c = grpo.loss(base, { lossType: 'dr_grpo' });
  const d = grpo.loss(base, { lossType: 'dr_grpo', maxCompletionLength: 2 * p.T });
  assertClose([d.loss * 2], [c.loss], { rtol: 1e-12 });
});

test('bf16 tensors: fused equals reference within bf16 tolerance', async () => {
  const p = makePadded(77, 9, 31);
  const toBf16 = (a: Float64Array): Uint16Array => {
    const f = Float32Array.from(a);
    const u = new Uint32Array(f.buffer);
    return Uint16Array.from(u, (x) => (x + 0x7fff + ((x >> 16) & 1)) >>> 16); // round to nearest even
  };
  const t = (a: Float64Array) => new addon.Tensor(toBf16(a), [p.B, p.T], { dtype: 'bf16' });
  const inputs = {
    logp: t(p.logp),
    oldLogp: t(p.oldLogp),
    refLogp: t(p.refLogp),
    advantages: Float32Array.from(p.advantages),
    mask: p.mask,
    batch: p.B,
    seqLen: p.T,
  };
  const want = await grpo.lossAsync(inputs, { beta: 0.04, impl: 'reference' });
  const got = await grpo.lossAsync(inputs, { beta: 0.04, impl: 'fused' });
  assert.equal(got.gradLogp.dtype, 'bf16');
  assertClose([got.loss], [want.loss], { rtol: 1e-4, atol: 1e-5 });
  const bits2f = (u: Uint16Array) => Array.from(u, (x) => new Float32Array(new Uint32Array([x << 16]).buffer)[0]);
  const g1 = bits2f(got.gradLogp.toArray() as Uint16Array);
  const g0 = bits2f(want.gradLogp.toArray() as Uint16Array);
  const scale = Math.max(...g0.map(Math.abs));
  assertClose(g1, g0, { rtol: 1e-2, atol: 1e-2 * scale, what: 'bf16 grad' });
});

test('bad input names the argument', () => {
  const p = makePadded(3, 2, 3);
  const ok = {
    logp: Float32Array.from(p.logp),
    advantages: Float32Array.from(p.advantages),
    mask: p.mask,
    batch: 2,
    seqLen: 3,
  };
  assert.throws(
    () => grpo.loss({ ...ok, logp: new Float32Array(5) }),
    /grpo\.loss: argument 'logp' must be of length batch x seqLen = 2 x 3 = 6, got length 5/,
  );
  assert.throws(
    () => grpo.loss({ ...ok, mask: new Uint8Array(7) }),
    /argument 'mask' must be of length batch x seqLen/,
  );
  assert.throws(
    () => grpo.loss({ ...ok, advantages: new Float32Array(3) }),
    /argument 'advantages' must be of length batch = 2, got length 3/,
  );
  assert.throws(
    () => grpo.loss(ok, { lossType: 'ppo' as 'grpo' }),
    /argument 'options\.lossType' must be one of "grpo", "bnpo", "dr_grpo", "dapo", got "ppo"/,
  );
  assert.throws(() => grpo.loss(ok, { kl: 'k4' as 'k1' }), /argument 'options\.kl' must be one of "k1", "k2", "k3"/);
  assert.throws(() => grpo.loss(ok, { beta: 0.1 }), /argument 'refLogp' must be given when beta > 0/);
  assert.throws(() => grpo.loss({ ...ok, mask: undefined as unknown as Uint8Array }), /argument 'mask' must be given/);
  const bad = Float32Array.from(p.logp);
  bad[1] = NaN;
  const m = new Uint8Array(6).fill(1);
  assert.throws(
    () => grpo.loss({ ...ok, logp: bad, mask: m }),
    /argument 'logp' must be finite at every unmasked token, got 1 non-finite values \(first at token 1\)/,
  );
  assert.throws(() => grpo.loss({ ...ok, logp: bad, mask: m }, { impl: 'reference' }), /non-finite/);
  m[1] = 0; // a masked NaN (padding) is fine
  assert.doesNotThrow(() => grpo.loss({ ...ok, logp: bad, mask: m }));
  assert.throws(
    () =>
      grpo.lossPacked({
        logp: new Float32Array(5),
        advantages: new Float32Array(2),
        cuSeqlens: new Int32Array([0, 2, 4]),
      }),
    /argument 'cuSeqlens' must be from 0 to the token count 5/,
  );
  assert.throws(
    () =>
      grpo.lossPacked({
        logp: new Float32Array(5),
        advantages: new Float32Array(2),
        cuSeqlens: new Int32Array([0, 5]),
      }),
    /argument 'cuSeqlens' must be of length B \+ 1 = 3/,
  );
  assert.throws(() => grpo.loss(ok, { numItemsInBatch: 0 }), /argument 'numItemsInBatch' must be a positive number/);
});

test('CUDA kernel equals the reference (f32 and bf16, padded and packed)', { skip: noCuda }, () => {
  for (const [B, T] of [
    [1, 1],
    [7, 13],
    [64, 4099],
    [3, 100000],
  ]) {
    const p = makePadded(B * T, B, T);
    const inputs = {
      logp: Float32Array.from(p.logp),
      oldLogp: Float32Array.from(p.oldLogp),
      refLogp: Float32Array.from(p.refLogp),
      advantages: Float32Array.from(p.advantages),
      mask: p.mask,
      batch: B,
      seqLen: T,
    };
    for (const lossType of lossTypes) {
      const want = grpo.loss(inputs, { lossType, beta: 0.04, impl: 'reference' });
      const got = grpo.loss(inputs, { lossType, beta: 0.04, device: 'cuda' });
      assertClose([got.loss], [want.loss], { rtol: 1e-4, atol: 1e-6, what: `cuda ${B}x${T} ${lossType}` });
      const scale = Math.max(...Array.from(want.gradLogp, Math.abs), 1e-30);
      assertClose(got.gradLogp, want.gradLogp, {
        rtol: 1e-4,
        atol: 1e-5 * scale,
        what: `cuda ${B}x${T} ${lossType} grad`,
      });
    }
  }
});
