// Training mechanics of the native model: activation checkpointing changes no gradient, frozen
// parts do not move, gradient accumulation over micro-batches equals one big batch, AdamW matches
// its formula, and the optimizer state round-trips.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, nextTokenLabels, packSequences, tinyConfig, TINY_TOKENS as T } from '../../src/index';
import { assertClose, randn, rng } from '../helpers/addon';

function imageBatch(seed: number) {
  const r = rng(seed);
  const ids = Int32Array.from([3, 4, T.visionStart, ...new Array(4).fill(T.imagePad), T.visionEnd, 50, 51, 52, 53]);
  const text = Int32Array.from([60, 61, 62, 63, 64, 65]);
  const batch = {
    ...packSequences([ids, text]),
    pixelValues: Float32Array.from(randn(r, 16 * 1176)),
    imageGrids: Int32Array.from([1, 4, 4]),
  };
  return { batch, labels: nextTokenLabels(batch.inputIds, batch.cuSeqlens) };
}

function grads(m: Model): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(m.gradients()).map(([k, t]) => [k, t.toArray() as Float32Array]));
}

test('activation checkpointing gives the same gradients (vision blocks and decoder layers)', async () => {
  for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as const) {
    const m = await Model.create(tinyConfig(kind), { seed: 4 });
    const { batch, labels } = imageBatch(1);
    const plain = await m.backwardSft(batch, { labels });
    const g0 = grads(m);
    m.zeroGrad();
    m.setRecomputeActivations(true);
    const ckpt = await m.backwardSft(batch, { labels });
    const g1 = grads(m);
    assertClose([ckpt.loss], [plain.loss], { rtol: 1e-6 });
    assert.deepEqual(Object.keys(g1).sort(), Object.keys(g0).sort());
    for (const k of Object.keys(g0)) assertClose(g1[k], g0[k], { rtol: 1e-4, atol: 1e-6, what: `${kind} ${k}` });
    await m.dispose();
  }
});

test('frozen parts keep their weights; the others move', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 5 });
  const { batch, labels } = imageBatch(2);
  const before = Object.fromEntries(
    Object.entries(m.parameters()).map(([k, t]) => [k, (t.toArray() as Float32Array).slice()]),
  );
  m.setTrainable({ vision: false, merger: true, languageModel: false });
  await m.backwardSft(batch, { labels });
  const step = await m.optimizerStep({ lr: 1e-2 });
  assert.ok(step.paramsUpdated > 0);
  for (const [k, t] of Object.entries(m.parameters())) {
    const moved = (t.toArray() as Float32Array).some((v, i) => v !== before[k][i]);
    assert.equal(moved, k.startsWith('visual.merger.'), `${k} moved=${moved}`);
  }
  await m.dispose();
});

test('gradient accumulation over two micro-batches equals one batch (numItems = global tokens)', async () => {
  const seqs = [Int32Array.from([1, 2, 3, 4, 5]), Int32Array.from([9, 8, 7]), Int32Array.from([20, 21, 22, 23])];
  const whole = packSequences(seqs);
  const wholeLabels = nextTokenLabels(whole.inputIds, whole.cuSeqlens);
  const total = Array.from(wholeLabels).filter((l) => l >= 0).length;
  const a = await Model.create(tinyConfig('qwen2'), { seed: 6 });
  await a.backwardSft(whole, { labels: wholeLabels });
  const gWhole = grads(a);
  a.zeroGrad();
  for (const part of [seqs.slice(0, 1), seqs.slice(1)]) {
    const b = packSequences(part);
    await a.backwardSft(b, { labels: nextTokenLabels(b.inputIds, b.cuSeqlens), numItems: total });
  }
  const gAcc = grads(a);
  for (const k of Object.keys(gWhole)) assertClose(gAcc[k], gWhole[k], { rtol: 1e-4, atol: 1e-7, what: k });
  await a.dispose();
});

test('AdamW matches its formula (decay on matrices only, bias correction, clipping)', async () => {
  const m = await Model.create(tinyConfig('qwen2'), { seed: 7 });
  const b = packSequences([Int32Array.from([5, 6, 7, 8, 9])]);
  const labels = nextTokenLabels(b.inputIds, b.cuSeqlens);
  const w0 = Object.fromEntries(
    Object.entries(m.parameters()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float32Array)]),
  );
  await m.backwardSft(b, { labels });
  const g = Object.fromEntries(
    Object.entries(m.gradients()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float32Array)]),
  );
  let norm = 0;
  for (const v of Object.values(g)) for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  const o = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, maxGradNorm: norm / 2 };
  const report = await m.optimizerStep(o);
  assertClose([report.gradNorm], [norm], { rtol: 1e-5 });
  const clip = o.maxGradNorm / (norm + 1e-6);
  for (const name of [
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.q_proj.bias',
    'model.norm.weight',
  ]) {
    const w = m.parameters()[name].toArray() as Float32Array;
    const matrix = m.parameterSpecs().find((s) => s.name === name)!.shape.length > 1;
    const want = Array.from(w0[name], (x, i) => {
      const gi = g[name][i] * clip;
      const mHat = ((1 - o.beta1) * gi) / (1 - o.beta1);
      const vHat = ((1 - o.beta2) * gi * gi) / (1 - o.beta2);
      const decayed = matrix ? x * (1 - o.lr * o.weightDecay) : x;
      return decayed - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    });
    assertClose(w, want, { rtol: 1e-5, atol: 1e-6, what: name });
  }
  // The optimizer state round-trips into a fresh model: the next step is identical.
  const state = m.optimizerState();
  assert.equal(Number((state.step.toArray() as Float64Array)[0]), 1);
  const twin = await Model.create(tinyConfig('qwen2'), { seed: 7 });
  await twin.setParameters(m.parameters());
  twin.loadOptimizerState(state);
  for (const model of [m, twin]) {
    await model.backwardSft(b, { labels });
    await model.optimizerStep({ lr: 0.01 });
  }
  const p1 = m.parameters()['model.embed_tokens.weight'].toArray() as Float32Array;
  const p2 = twin.parameters()['model.embed_tokens.weight'].toArray() as Float32Array;
  assertClose(p2, p1, { rtol: 0, atol: 0, what: 'resumed optimizer step' });
  await m.dispose();
  await twin.dispose();
});

test('setParameters keeps a freeze', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 8 });
  m.setTrainable({ vision: false, merger: false, languageModel: true });
  await m.setParameters(m.parameters());
  const { batch, labels } = imageBatch(3);
  await m.backwardSft(batch, { labels });
  const names = Object.keys(m.gradients());
  assert.ok(
    names.length > 0 && names.every((n) => !n.startsWith('visual.')),
    names.filter((n) => n.startsWith('visual.')).join(','),
  );
  await m.dispose();
});

test('GRPO over two micro-batches with lossScale equals one batch, for every loss type', async () => {
  const seqs = [
    Int32Array.from([1, 2, 3, 4, 5, 6]),
    Int32Array.from([9, 8, 7]),
    Int32Array.from([20, 21, 22, 23]),
    Int32Array.from([30, 31]),
  ];
  const adv = [0.7, -1.1, 0.3, 1.4];
  const make = (idx: number[]) => {
    const b = packSequences(idx.map((i) => seqs[i]));
    const labels = nextTokenLabels(b.inputIds, b.cuSeqlens);
    return {
      b,
      labels,
      adv: Float32Array.from(idx.map((i) => adv[i])),
      tokens: Array.from(labels).filter((l) => l >= 0).length,
    };
  };
  const whole = make([0, 1, 2, 3]);
  const parts = [make([0, 1]), make([2, 3])];
  for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const) {
    const m = await Model.create(tinyConfig('qwen2'), { seed: 12 });
    const common = { lossType, maxCompletionLength: 8, numItemsInBatch: whole.tokens };
    await m.backwardGrpo(whole.b, { ...common, labels: whole.labels, advantages: whole.adv });
    const gWhole = grads(m);
    m.zeroGrad();
    for (const p of parts) {
      const lossScale =
        lossType === 'bnpo' ? p.tokens / whole.tokens : lossType === 'dapo' ? 1 : p.adv.length / whole.adv.length;
      await m.backwardGrpo(p.b, { ...common, labels: p.labels, advantages: p.adv, lossScale });
    }
    const gSplit = grads(m);
    for (const k of Object.keys(gWhole)) {
      const scale = Math.max(...Array.from(gWhole[k], Math.abs), 1e-12);
      assertClose(gSplit[k], gWhole[k], { rtol: 1e-4, atol: 1e-4 * scale, what: `${lossType} ${k}` });
    }
    await m.dispose();
  }
});
