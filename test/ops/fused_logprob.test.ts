// Fused log-probability: reference against naive float64 loops, fused (chunked, vocabulary-tiled)
// against the reference, gradients against finite differences, and the autograd chain.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpo } from '../../src/ops/grpo_ops';
import { addon, assertClose, noCuda, randn, rng } from '../helpers/addon';
import * as ref from '../helpers/grpo_reference';

function problem(seed: number, N: number, H: number, V: number, ignore = true) {
  const r = rng(seed);
  const hidden = Float64Array.from(randn(r, N * H));
  const weight = Float64Array.from(randn(r, V * H, 0.5));
  const targets = Int32Array.from({ length: N }, (_, i) => (ignore && i % 5 === 3 ? -100 : Math.floor(r() * V)));
  return { hidden, weight, targets, N, H, V };
}

test('reference equals naive float64 loops (temperature, ignored targets)', () => {
  for (const tau of [1, 0.7]) {
    const p = problem(1, 11, 5, 13);
    const want = ref.logprob(p.hidden, p.weight, p.targets, p.H, tau);
    const got = grpo.fusedLogprob(p, { temperature: tau, impl: 'reference' });
    assertClose(got.logp, want.logp, { rtol: 1e-12, atol: 1e-12, what: `logp tau=${tau}` });
    assertClose(got.entropy, want.entropy, { rtol: 1e-12, atol: 1e-12, what: `entropy tau=${tau}` });
    assert.equal(got.logp[3], 0, 'ignored target has logp 0');
  }
});

test('fused equals reference: chunks of tokens x tiles of vocabulary, f32 and f64', () => {
  const cases = [
    { N: 1, H: 1, V: 2, chunkTokens: 0, vocabTile: 0 },
    { N: 37, H: 19, V: 101, chunkTokens: 8, vocabTile: 16 },
    { N: 64, H: 32, V: 1000, chunkTokens: 0, vocabTile: 0 },
    { N: 23, H: 7, V: 257, chunkTokens: 5, vocabTile: 256 },
  ];
  let seed = 10;
  for (const c of cases) {
    const p = problem(seed++, c.N, c.H, c.V);
    const r = rng(seed);
    const gradLogp = Float64Array.from(randn(r, c.N));
    const gradEntropy = Float64Array.from(randn(r, c.N));
    for (const dtype of ['f64', 'f32'] as const) {
      const conv = (a: Float64Array) => (dtype === 'f32' ? Float32Array.from(a) : a);
      const inputs = { hidden: conv(p.hidden), weight: conv(p.weight), targets: p.targets };
      const opts = { temperature: 0.9, chunkTokens: c.chunkTokens, vocabTile: c.vocabTile };
      const want = grpo.fusedLogprob(inputs, { ...opts, impl: 'reference' });
      const got = grpo.fusedLogprob(inputs, { ...opts, impl: 'fused' });
      const tol = dtype === 'f32' ? 2e-5 : 1e-11;
      const what = `N=${c.N} H=${c.H} V=${c.V} chunk=${c.chunkTokens} tile=${c.vocabTile} ${dtype}`;
      assertClose(got.logp, want.logp, { rtol: tol, atol: tol, what: `${what} logp` });
      assertClose(got.entropy, want.entropy, { rtol: tol, atol: tol, what: `${what} entropy` });
      const bw = { ...inputs, gradLogp: conv(gradLogp), gradEntropy: conv(gradEntropy) };
      const gWant = grpo.fusedLogprobBackward(bw, { ...opts, impl: 'reference' });
      const gGot = grpo.fusedLogprobBackward({ ...bw, lse: got.lse, entropy: got.entropy }, { ...opts, impl: 'fused' });
      const sh = Math.max(...Array.from(gWant.gradHidden, Math.abs));
      const sw = Math.max(...Array.from(gWant.gradWeight, Math.abs));
      assertClose(gGot.gradHidden, gWant.gradHidden, {
        rtol: tol * 10,
        atol: tol * 10 * sh,
        what: `${what} gradHidden`,
      });
      assertClose(gGot.gradWeight, gWant.gradWeight, {
        rtol: tol * 10,
        atol: tol * 10 * sw,
        what: `${what} gradWeight`,
      });
    }
  }
});

test('gradients equal finite differences (float64): hidden and weight, logp and entropy terms', () => {
  const p = problem(99, 6, 4, 9);
  const r = rng(5);
  const gL = Float64Array.from(randn(r, p.N));
  const gH = Float64Array.from(randn(r, p.N));
  const tau = 0.8;
  const objective = (hidden: Float64Array, weight: Float64Array): number => {
    const o = ref.logprob(hidden, weight, p.targets, p.H, tau);
    let s = 0;
    for (let i = 0; i < p.N; i++) s += gL[i] * o.logp[i] + gH[i] * o.entropy[i];
    return s;
  };
  const h = 1e-6;
  const fdHidden = Array.from(p.hidden, (_, i) => {
    const a = p.hidden.slice();
    a[i] += h;
    const b = p.hidden.slice();
    b[i] -= h;
    return (objective(a, p.weight) - objective(b, p.weight)) / (2 * h);
  });
  const fdWeight = Array.from(p.weight, (_, i) => {
    const a = p.weight.slice();
    a[i] += h;
    const b = p.weight.slice();
    b[i] -= h;
    return (objective(p.hidden, a) - objective(p.hidden, b)) / (2 * h);
  });
  for (const impl of ['reference', 'fused'] as const) {
    const g = grpo.fusedLogprobBackward(
      { ...p, gradLogp: gL, gradEntropy: gH },
      { temperature: tau, impl, vocabTile: 4, chunkTokens: 4 },
    );
    assertClose(g.gradHidden, fdHidden, { rtol: 1e-6, atol: 1e-8, what: `${impl} gradHidden` });
    assertClose(g.gradWeight, fdWeight, { rtol: 1e-6, atol: 1e-8, what: `${impl} gradWeight` });
  }
});

test('policyGradient (autograd: fused logprob -> GRPO loss -> backward) equals the composed ops', () => {
  const p = problem(7, 12, 6, 31, false);
  const r = rng(8);
  const cuSeqlens = new Int32Array([0, 5, 5, 12]);
  const advantages = Float64Array.from([0.7, -1.2, 0.4]);
  const fwd = grpo.fusedLogprob(p, { temperature: 0.9 });
  const oldLogp = Float64Array.from(fwd.logp, (v) => v - 0.2 * randn(r, 1)[0]);
  const refLogp = Float64Array.from(fwd.logp, (v) => v + 0.1 * randn(r, 1)[0]);
  const mask = Uint8Array.from({ length: 12 }, (_, i) => (i === 2 ? 0 : 1));
  const opts = { temperature: 0.9, beta: 0.05, lossType: 'grpo' as const };
  const chain = grpo.policyGradient({ ...p, oldLogp, refLogp, advantages, cuSeqlens, mask }, opts);
  const loss = grpo.lossPacked(
    { logp: fwd.logp, oldLogp, refLogp, advantages, cuSeqlens, mask, entropy: Float32Array.from(fwd.entropy) },
    opts,
  );
  const back = grpo.fusedLogprobBackward({ ...p, gradLogp: loss.gradLogp }, { temperature: 0.9 });
  assertClose([chain.loss], [loss.loss], { rtol: 1e-12 });
  assertClose(chain.gradHidden, back.gradHidden, { rtol: 1e-10, atol: 1e-12, what: 'gradHidden' });
  assertClose(chain.gradWeight, back.gradWeight, { rtol: 1e-10, atol: 1e-12, what: 'gradWeight' });
  assertClose([chain.stats.entropyMean], [loss.stats.entropyMean], { rtol: 1e-6 });
});

test('async forms keep tensors native', async () => {
  const p = problem(3, 9, 4, 17);
  const h = new addon.Tensor(Float32Array.from(p.hidden), [p.N, p.H]);
  const w = new addon.Tensor(Float32Array.from(p.weight), [p.V, p.H]);
  const y = new addon.Tensor(p.targets);
  const out = await grpo.fusedLogprobAsync({ hidden: h, weight: w, targets: y });
  assert.deepEqual(out.logp.shape, [p.N]);
  const grads = await grpo.fusedLogprobBackwardAsync({
    hidden: h,
    weight: w,
    targets: y,
    gradLogp: new Float32Array(p.N).fill(1),
    lse: out.lse,
    entropy: out.entropy,
  });
  assert.deepEqual(grads.gradWeight.shape, [p.V, p.H]);
  const sync = grpo.fusedLogprob({
    hidden: Float32Array.from(p.hidden),
    weight: Float32Array.from(p.weight),
    targets: p.targets,
  });
  assertClose(out.logp.toArray() as Float32Array, sync.logp, { rtol: 1e-6 });
});

test('bad input names the argument', () => {
  const p = problem(1, 4, 3, 5);
  assert.throws(
    () => grpo.fusedLogprob({ ...p, hidden: new Float64Array(13) }),
    /grpo\.fusedLogprob: argument 'hidden' must be of length N x H with N = targets\.length = 4, got length 13/,
  );
  assert.throws(
    () => grpo.fusedLogprob({ ...p, weight: new Float64Array(14) }),
    /argument 'weight' must be of length V x H with H = 3/,
  );
  assert.throws(
    () => grpo.fusedLogprob({ ...p, targets: Int32Array.from([0, 1, 2, 5]) }),
    /argument 'targets' must be < the vocabulary size 5, got a target 5/,
  );
  assert.throws(() => grpo.fusedLogprob(p, { temperature: 0 }), /argument 'temperature' must be a finite number > 0/);
  assert.throws(
    () => grpo.fusedLogprob({ ...p, weight: Float32Array.from(p.weight) }),
    /argument 'weight' must be of hidden's dtype Double, got Float/,
  );
  assert.throws(
    () => grpo.fusedLogprobBackward({ ...p, gradLogp: new Float64Array(3) }),
    /argument 'gradLogp' must be a \[N\] tensor with N = 4/,
  );
});

test('CUDA path equals the reference (f32, vocabulary tiles)', { skip: noCuda }, () => {
  const p = problem(5, 300, 64, 40000);
  const inputs = { hidden: Float32Array.from(p.hidden), weight: Float32Array.from(p.weight), targets: p.targets };
  const want = grpo.fusedLogprob(inputs, { impl: 'reference' });
  const got = grpo.fusedLogprob(inputs, { device: 'cuda', vocabTile: 4096, chunkTokens: 128 });
  assertClose(got.logp, want.logp, { rtol: 1e-3, atol: 1e-3 });
  assertClose(got.entropy, want.entropy, { rtol: 1e-3, atol: 1e-3 });
  const g = Float32Array.from({ length: p.N }, (_, i) => Math.sin(i));
  const gw = grpo.fusedLogprobBackward({ ...inputs, gradLogp: g }, { impl: 'reference' });
  const gg = grpo.fusedLogprobBackward(
    { ...inputs, gradLogp: g },
    { device: 'cuda', vocabTile: 4096, chunkTokens: 128 },
  );
  const sh = Math.max(...Array.from(gw.gradHidden, Math.abs));
  assertClose(gg.gradHidden, gw.gradHidden, { rtol: 1e-3, atol: 1e-3 * sh });
});

test('bf16 inputs: fused equals reference within bf16 tolerance (forward and backward)', async () => {
  const p = problem(31, 29, 24, 301);
  const toBf16 = (a: Float64Array): Uint16Array => {
    const u = new Uint32Array(Float32Array.from(a).buffer);
    return Uint16Array.from(u, (x) => (x + 0x7fff + ((x >> 16) & 1)) >>> 16);
  };
  const bits2f = (u: Uint16Array): number[] =>
    Array.from(u, (x) => new Float32Array(new Uint32Array([x << 16]).buffer)[0]);
  const hidden = new addon.Tensor(toBf16(p.hidden), [p.N, p.H], { dtype: 'bf16' });
  const weight = new addon.Tensor(toBf16(p.weight), [p.V, p.H], { dtype: 'bf16' });
  const targets = new addon.Tensor(p.targets);
  const opts = { temperature: 0.8, chunkTokens: 7, vocabTile: 64 };
  const want = await grpo.fusedLogprobAsync({ hidden, weight, targets }, { ...opts, impl: 'reference' });
  const got = await grpo.fusedLogprobAsync({ hidden, weight, targets }, { ...opts, impl: 'fused' });
  assertClose(got.logp.toArray() as Float32Array, want.logp.toArray() as Float32Array, {
    rtol: 1e-3,
    atol: 1e-3,
    what: 'bf16 logp',
  });
  assertClose(got.entropy.toArray() as Float32Array, want.entropy.toArray() as Float32Array, {
    rtol: 1e-3,
    atol: 1e-3,
    what: 'bf16 entropy',
  });
  const gradLogp = Float32Array.from({ length: p.N }, (_, i) => Math.cos(i));
  const gw = await grpo.fusedLogprobBackwardAsync(
    { hidden, weight, targets, gradLogp },
    { ...opts, impl: 'reference' },
  );
  const gg = await grpo.fusedLogprobBackwardAsync({ hidden, weight, targets, gradLogp }, { ...opts, impl: 'fused' });
  assert.equal(gg.gradWeight.dtype, 'bf16');
  for (const k of ['gradHidden', 'gradWeight'] as const) {
    const a = bits2f(gg[k].toArray() as Uint16Array);
    const b = bits2f(gw[k].toArray() as Uint16Array);
    const scale = Math.max(...b.map(Math.abs));
    assertClose(a, b, { rtol: 2e-2, atol: 1e-2 * scale, what: `bf16 ${k}` });
  }
});
