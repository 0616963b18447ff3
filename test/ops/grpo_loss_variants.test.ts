// The GRPO loss's variants (docs/GRPO.md): sequence-level importance sampling (GSPO), two-sided
// clipping (delta), CISPO, per-token policy weights (isWeights), and the statistics they add --
// the native reference against the independent float64 formulas, gradients against finite
// differences, the fused CPU (and CUDA) path against the reference, packed against padded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpo, type LossOptions } from '../../src/ops/grpo_ops';
import { assertClose, noCuda, rng } from '../helpers/addon';
import * as ref from '../helpers/grpo_reference';
import { makePadded, packedFromPadded, paddedInputs, toCase, type Padded } from '../helpers/grpo_cases';

const lossTypes = ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const;

/** Every combination of the new options with each other (delta only where it applies). */
function variants(): LossOptions[] {
  const out: LossOptions[] = [];
  for (const importanceSamplingLevel of ['token', 'sequence'] as const)
    for (const policyLoss of ['clip', 'cispo'] as const)
      for (const delta of policyLoss === 'clip' ? [undefined, 1.6] : [undefined])
        out.push({ importanceSamplingLevel, policyLoss, delta, epsLow: 0.2, epsHigh: 0.28 });
  return out;
}

const describe = (o: LossOptions): string =>
  `${o.importanceSamplingLevel}/${o.policyLoss}${o.delta ? ` delta=${o.delta}` : ''} ${o.lossType ?? ''}`;

function randomWeights(seed: number, n: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => 2 * r());
}

/** Compares the statistics (the entropy mean within f32, as the entropy input is a Float32Array). */
function assertStats(got: object, want: object, tol: number, what: string, skip: string[] = []): void {
  for (const [k, v] of Object.entries(want)) {
    if (skip.includes(k)) continue;
    const t = k === 'entropyMean' ? Math.max(tol, 1e-6) : tol;
    assertClose([(got as Record<string, number>)[k]], [v as number], { rtol: t, atol: t, what: `${what} ${k}` });
  }
}

test('reference equals the float64 formulas: level x policyLoss x delta x lossType x isWeights x beta', () => {
  const p = makePadded(21, 6, 9);
  const isw = randomWeights(5, p.B * p.T);
  for (const v of variants())
    for (const lossType of lossTypes)
      for (const weights of [undefined, isw])
        for (const withOld of [true, false])
          for (const beta of [0, 0.04]) {
            const opts: LossOptions = { ...v, lossType, beta };
            const c = { ...toCase(p, withOld, true), isWeights: weights ? Array.from(weights) : undefined };
            const want = ref.loss(c, opts as ref.LossOpts);
            const got = grpo.loss(paddedInputs(p, withOld, weights), { ...opts, impl: 'reference' });
            const what = `${describe(opts)} isw=${!!weights} old=${withOld} beta=${beta}`;
            assertClose([got.loss], [want.loss], { rtol: 1e-12, atol: 1e-14, what });
            assertStats(got.stats, want.stats, 1e-9, what);
          }
});

/** Whether every sequence ratio (and token ratio) of `p` is away from the clip's kinks, so that
 *  central differences see a smooth function. */
function smoothAtSequenceLevel(p: Padded, kinks: number[]): boolean {
  for (let b = 0; b < p.B; b++) {
    let num = 0,
      den = 0;
    for (let t = 0; t < p.T; t++) {
      const i = b * p.T + t;
      if (!p.mask[i]) continue;
      num += p.logp[i] - p.oldLogp[i];
      den += 1;
    }
    if (den > 0 && kinks.some((k) => Math.abs(Math.exp(num / den) - k) < 0.02)) return false;
  }
  return true;
}

test('gradients equal finite differences for every variant (reference and fused, with isWeights)', () => {
  const kinks = [0.8, 1.28, 1.6];
  let seed = 300;
  let p = makePadded(seed, 5, 6, true);
  while (!smoothAtSequenceLevel(p, kinks)) p = makePadded(++seed, 5, 6, true);
  const isw = randomWeights(9, p.B * p.T);
  for (const v of variants())
    for (const lossType of ['grpo', 'dapo', 'dr_grpo'] as const)
      for (const weights of [undefined, isw]) {
        const opts: LossOptions = { ...v, lossType, beta: 0.1, kl: 'k3', maxCompletionLength: 7 };
        const c = { ...toCase(p, true, true), isWeights: weights ? Array.from(weights) : undefined };
        const fd = ref.lossGradFiniteDiff(c, opts as ref.LossOpts);
        for (const impl of ['reference', 'fused'] as const) {
          const got = grpo.loss(paddedInputs(p, true, weights), { ...opts, impl });
          assertClose(got.gradLogp, fd, { rtol: 1e-6, atol: 1e-8, what: `${impl} ${describe(opts)} isw=${!!weights}` });
        }
      }
});

test('sequence level by hand: one ratio per sequence, its gradient spread evenly over the tokens', () => {
  // One row of three tokens, log-ratios 0.1, 0.2, 0.6: the sequence ratio is exp(0.3) = 1.3499 > 1.28,
  // so with A > 0 the clip holds it and no gradient flows; with A < 0 the unclipped term is the
  // minimum, l = -A rho per token, loss = sum_t l / 3 (dapo over 3 tokens), dloss/dlogp_t = -A rho / 3.
  const logp = Float64Array.from([-1, -2, -3]);
  const oldLogp = Float64Array.from([-1.1, -2.2, -3.6]);
  const rho = Math.exp(0.3);
  const opts: LossOptions = { importanceSamplingLevel: 'sequence', epsLow: 0.2, epsHigh: 0.28, lossType: 'dapo' };
  for (const impl of ['reference', 'fused'] as const) {
    const pos = grpo.lossPacked(
      { logp, oldLogp, advantages: Float64Array.from([1]), cuSeqlens: Int32Array.from([0, 3]) },
      { ...opts, impl },
    );
    assertClose([pos.loss], [-1.28], { rtol: 1e-12, what: `${impl} clipped loss` });
    assertClose(pos.gradLogp, [0, 0, 0], { atol: 0, what: `${impl} clipped grad` });
    assert.equal(pos.stats.seqClipHighFraction, 1);
    const neg = grpo.lossPacked(
      { logp, oldLogp, advantages: Float64Array.from([-2]), cuSeqlens: Int32Array.from([0, 3]) },
      { ...opts, impl },
    );
    assertClose([neg.loss], [2 * rho], { rtol: 1e-12, what: `${impl} loss` });
    assertClose(neg.gradLogp, [(2 * rho) / 3, (2 * rho) / 3, (2 * rho) / 3], { rtol: 1e-12, what: `${impl} grad` });
    assertClose([neg.stats.logRatioAbsMean], [0.3], { rtol: 1e-12, what: `${impl} mean |log-ratio|` });
  }
});

test('delta caps the unclipped ratio for A < 0; CISPO keeps the gradient of clipped tokens', () => {
  // One token, log-ratio log(3): ratio 3. With A = -1 the PPO term is -min(3 A, 1.28 A) = 3 and its
  // gradient is -A rho = 3; delta = 2 caps it: loss 2, gradient 0.
  const one = { logp: Float64Array.from([-1]), oldLogp: Float64Array.from([-1 - Math.log(3)]) };
  const cu = Int32Array.from([0, 1]);
  const run = (a: number, o: LossOptions) =>
    grpo.lossPacked({ ...one, advantages: Float64Array.from([a]), cuSeqlens: cu }, { epsHigh: 0.28, ...o });
  for (const impl of ['reference', 'fused'] as const) {
    const plain = run(-1, { impl });
    assertClose([plain.loss, plain.gradLogp[0]], [3, 3], { rtol: 1e-12, what: `${impl} no delta` });
    const capped = run(-1, { impl, delta: 2 });
    assertClose([capped.loss, capped.gradLogp[0]], [2, 0], { rtol: 1e-12, atol: 0, what: `${impl} delta` });
    // A > 0: PPO clips the ratio at 1.28 and sends nothing; CISPO sends -w A with w = 1.28.
    assertClose([run(1, { impl }).gradLogp[0]], [0], { atol: 0, what: `${impl} ppo clipped` });
    const cispo = run(1, { impl, policyLoss: 'cispo' });
    assertClose([cispo.loss, cispo.gradLogp[0]], [1.28, -1.28], { rtol: 1e-12, what: `${impl} cispo` });
    assert.equal(cispo.stats.clipHighFraction, 1);
  }
});

test('fused equals reference for every variant: odd shapes, f32 and f64, u8 and float masks, isWeights', () => {
  const shapes = [
    [1, 1],
    [7, 13],
    [33, 17],
    [3, 1000],
    [2, 40000],
  ];
  let seed = 500;
  for (const [B, T] of shapes)
    for (const v of variants()) {
      const p = makePadded(seed++, B, T);
      const lossType = lossTypes[seed % 4];
      const opts: LossOptions = { ...v, lossType, beta: 0.05 };
      for (const dtype of ['f64', 'f32'] as const) {
        const conv = (a: Float64Array): Float64Array | Float32Array => (dtype === 'f32' ? Float32Array.from(a) : a);
        for (const mask of [p.mask, Float32Array.from(p.mask, (m, i) => m * (0.5 + (i % 3) / 4))]) {
          const inputs = {
            ...paddedInputs(p, true, randomWeights(seed, B * T)),
            logp: conv(p.logp),
            oldLogp: conv(p.oldLogp),
            refLogp: conv(p.refLogp),
            mask,
          };
          const want = grpo.loss(inputs, { ...opts, impl: 'reference' });
          const got = grpo.loss(inputs, { ...opts, impl: 'fused' });
          const tol = dtype === 'f32' ? 3e-5 : 1e-11;
          const what = `${B}x${T} ${describe(opts)} ${dtype} ${mask instanceof Uint8Array ? 'u8' : 'f32'} mask`;
          assertClose([got.loss], [want.loss], { rtol: tol, atol: tol, what });
          const scale = Math.max(...Array.from(want.gradLogp, Math.abs), 1e-30);
          assertClose(got.gradLogp, want.gradLogp, { rtol: tol, atol: tol * scale, what: `${what} grad` });
          assertStats(got.stats, want.stats, tol * 10, what);
        }
      }
    }
});

test('packed equals padded at the sequence level; empty completions contribute nothing', () => {
  const p = makePadded(77, 6, 11);
  const { cu, gather } = packedFromPadded(p);
  const isw = randomWeights(3, p.B * p.T);
  for (const v of variants()) {
    const opts: LossOptions = { ...v, lossType: 'grpo', beta: 0.02 };
    const padded = grpo.loss(paddedInputs(p, true, isw), opts);
    const packed = grpo.lossPacked(
      {
        logp: gather(p.logp),
        oldLogp: gather(p.oldLogp),
        refLogp: gather(p.refLogp),
        advantages: p.advantages,
        isWeights: gather(isw),
        cuSeqlens: cu,
      },
      opts,
    );
    assertClose([packed.loss], [padded.loss], { rtol: 1e-12, atol: 1e-14, what: `${describe(opts)} loss` });
    assertClose(packed.gradLogp, gather(padded.gradLogp as unknown as Float64Array), {
      rtol: 1e-12,
      atol: 1e-14,
      what: `${describe(opts)} grad`,
    });
    assertStats(packed.stats, padded.stats, 1e-12, describe(opts), ['entropyMean']);
  }
  // Every completion empty: nothing to learn, nothing divided by zero.
  for (const v of variants())
    for (const impl of ['reference', 'fused'] as const) {
      const r = grpo.lossPacked(
        {
          logp: new Float64Array(0),
          oldLogp: new Float64Array(0),
          advantages: Float64Array.from([1, -1, 0.5]),
          cuSeqlens: Int32Array.from([0, 0, 0, 0]),
        },
        { ...v, impl },
      );
      assert.equal(r.loss, 0, `${impl} ${describe(v)}`);
      assert.equal(r.gradLogp.length, 0);
      assert.deepEqual(
        [r.stats.activeTokens, r.stats.seqClipLowFraction, r.stats.seqClipHighFraction, r.stats.logRatioAbsMean],
        [0, 0, 0, 0],
      );
    }
});

test('bad variant options name the field', () => {
  const ok = {
    logp: new Float32Array(4),
    advantages: new Float32Array(2),
    mask: new Uint8Array(4).fill(1),
    batch: 2,
    seqLen: 2,
  };
  assert.throws(
    () => grpo.loss(ok, { delta: 1.1, epsHigh: 0.28 }),
    /argument 'delta' must be a finite number > 1 \+ epsHigh/,
  );
  assert.throws(() => grpo.loss(ok, { delta: 3, policyLoss: 'cispo' }), /'delta' must be used with policyLoss "clip"/);
  assert.throws(
    () => grpo.loss(ok, { importanceSamplingLevel: 'group' as 'token' }),
    /options\.importanceSamplingLevel' must be "token" or "sequence"/,
  );
  assert.throws(() => grpo.loss(ok, { policyLoss: 'ppo' as 'clip' }), /options\.policyLoss' must be "clip" or "cispo"/);
  assert.throws(
    () => grpo.loss({ ...ok, isWeights: new Float32Array(3) }),
    /'isWeights' must be of length batch x seqLen/,
  );
});

test('CUDA kernel equals the reference for every variant (f32, padded and packed)', { skip: noCuda }, () => {
  for (const [B, T] of [
    [1, 1],
    [7, 13],
    [64, 4099],
    [3, 100000],
  ]) {
    const p = makePadded(B + T, B, T);
    const inputs = {
      logp: Float32Array.from(p.logp),
      oldLogp: Float32Array.from(p.oldLogp),
      refLogp: Float32Array.from(p.refLogp),
      advantages: Float32Array.from(p.advantages),
      isWeights: Float32Array.from(randomWeights(B, B * T)),
      mask: p.mask,
      batch: B,
      seqLen: T,
    };
    for (const v of variants()) {
      const opts: LossOptions = { ...v, lossType: 'dapo', beta: 0.04 };
      const want = grpo.loss(inputs, { ...opts, impl: 'reference' });
      const got = grpo.loss(inputs, { ...opts, device: 'cuda' });
      const what = `cuda ${B}x${T} ${describe(opts)}`;
      assertClose([got.loss], [want.loss], { rtol: 1e-4, atol: 1e-6, what });
      const scale = Math.max(...Array.from(want.gradLogp, Math.abs), 1e-30);
      assertClose(got.gradLogp, want.gradLogp, { rtol: 1e-4, atol: 1e-5 * scale, what: `${what} grad` });
      assertStats(got.stats, want.stats, 1e-4, what);
    }
  }
});
