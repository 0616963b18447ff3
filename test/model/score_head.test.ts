// The score head (the reward model's regression head, HF's *ForSequenceClassification): its scores
// against an independent reference (rows of the LM head), the squared-error loss and its float64
// gradients against finite differences, a tiny model that learns targets, and model folders with a
// head (config.json's architecture and labels, score.weight, addScoreHead).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  Model,
  modelConfigToJson,
  packSequences,
  parseModelConfig,
  tinyConfig,
  type ModelTypes,
} from '../../src/index';
import { readSafetensorsHeader } from '../../src/model/safetensors';
import { addon, assertClose } from '../helpers/addon';
import { imageBatch } from '../helpers/batches';
import { tempDir } from '../helpers/temp_dir';

type NativeTensor = InstanceType<typeof addon.Tensor>;

/** A float64 qwen2_vl tiny model with an untied LM head and a score head of `labels` rows. */
async function f64Model(labels: number, seed: number): Promise<Model> {
  return Model.create({ ...tinyConfig('qwen2_vl', { tie: false }), scoreLabels: labels }, { seed, dtype: 'float64' });
}

/** Float64 copies of every parameter. */
function copies(m: Model): Record<string, Float64Array> {
  return Object.fromEntries(
    Object.entries(m.parameters()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float64Array)]),
  );
}

/** Sets the model's parameters to `values` (float64 arrays of each parameter's shape). */
async function setAll(m: Model, values: Record<string, Float64Array>): Promise<void> {
  const shapes = new Map(m.parameterSpecs().map((s) => [s.name, s.shape]));
  const tensors: Record<string, NativeTensor> = {};
  for (const [k, v] of Object.entries(values)) tensors[k] = new addon.Tensor(v, shapes.get(k));
  await m.setParameters(tensors);
}

async function scores64(m: Model, batch: ModelTypes.ModelBatch): Promise<Float64Array> {
  const t = await m.scoreTensor(batch);
  try {
    assert.equal(t.dtype, 'f64');
    return t.toArray() as Float64Array;
  } finally {
    t.dispose();
  }
}

/** sum (s - t)^2 / n: the loss backwardScore computes, from the scores. */
function squaredError(scores: ArrayLike<number>, targets: ArrayLike<number>, n: number): number {
  let s = 0;
  for (let i = 0; i < scores.length; i++) s += (scores[i] - targets[i]) ** 2;
  return s / n;
}

test('scores equal the LM logits of the same rows at each sequence last token (float64)', async () => {
  const m = await f64Model(2, 3);
  const batch = imageBatch(1);
  const [k1, k2] = [17, 401];
  const w = copies(m);
  const H = m.config.text.hiddenSize;
  const score = new Float64Array(2 * H);
  score.set(w['lm_head.weight'].subarray(k1 * H, (k1 + 1) * H), 0);
  score.set(w['lm_head.weight'].subarray(k2 * H, (k2 + 1) * H), H);
  await setAll(m, { ...w, 'score.weight': score });

  const s = await scores64(m, batch);
  const logitsT = await m.logits(batch);
  const logits = logitsT.toArray() as Float64Array;
  logitsT.dispose();
  const V = m.config.text.vocabSize;
  const S = batch.cuSeqlens.length - 1;
  assert.equal(s.length, S * 2);
  const want: number[] = [];
  for (let i = 0; i < S; i++) {
    const last = batch.cuSeqlens[i + 1] - 1;
    want.push(logits[last * V + k1], logits[last * V + k2]);
  }
  assertClose(s, want, { rtol: 0, atol: 1e-10, what: 'score vs logit at the last token' });
  // scores(): the same numbers as float32, row-major.
  const f32 = await m.scores(batch);
  assert.ok(f32 instanceof Float32Array);
  assert.deepEqual(Array.from(f32), Array.from(s, Math.fround));
  await m.dispose();
});

test('backwardScore: the mean squared error, and float64 gradients equal finite differences', async () => {
  const m = await f64Model(2, 5);
  const batch = imageBatch(2);
  const targets = Float64Array.from([1.5, -0.5, 0.25, 2, -1, 0.75]);
  const s0 = await scores64(m, batch);
  const report = await m.backwardScore(batch, { targets });
  assert.equal(report.tokens, 3);
  assertClose([report.loss], [squaredError(s0, targets, 6)], { rtol: 1e-12, atol: 0, what: 'mean loss' });
  const grads = Object.fromEntries(
    Object.entries(m.gradients()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float64Array)]),
  );
  m.zeroGrad();
  // numItems replaces the denominator.
  const summed = await m.backwardScore(batch, { targets: Float32Array.from(targets), numItems: 4 });
  assertClose([summed.loss], [squaredError(s0, Float32Array.from(targets), 4)], { rtol: 1e-12, atol: 0 });
  m.zeroGrad();

  const w = copies(m);
  const h = 1e-5;
  const probes = [
    'score.weight',
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.norm.weight',
    'visual.blocks.0.attn.qkv.weight',
    'visual.merger.mlp.0.weight',
  ];
  for (const name of probes) {
    const g = grads[name];
    assert.ok(g, `no gradient for ${name}`);
    let big = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[big])) big = i;
    for (const idx of [big, Math.floor(g.length / 3)]) {
      const lossAt = async (delta: number): Promise<number> => {
        const moved = Float64Array.from(w[name]);
        moved[idx] += delta;
        await setAll(m, { ...w, [name]: moved });
        return squaredError(await scores64(m, batch), targets, 6);
      };
      const fd = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
      assertClose([g[idx]], [fd], { rtol: 1e-6, atol: 1e-11, what: `d loss / d ${name}[${idx}]` });
    }
  }
  // The LM head is not on the score path: no gradient reaches it.
  assert.ok(!('lm_head.weight' in grads) || grads['lm_head.weight'].every((v) => v === 0));
  await m.dispose();
});

test('the score head trains with the language model (setTrainable) and is frozen with it', async () => {
  const m = await Model.create({ ...tinyConfig('qwen2'), scoreLabels: 1 }, { seed: 4 });
  const batch = packSequences([Int32Array.from([1, 2, 3]), Int32Array.from([4, 5])]);
  await m.backwardScore(batch, { targets: Float32Array.from([1, -1]) });
  assert.ok('score.weight' in m.gradients());
  m.zeroGrad();
  m.setTrainable({ languageModel: false });
  assert.equal(m.info.trainableCount, 0);
  m.setTrainable({ languageModel: true });
  assert.equal(m.info.scoreLabels, 1);
  await m.dispose();
});

test('a tiny model with a score head learns three targets (MSE falls by more than 90%)', async (t) => {
  const m = await Model.create({ ...tinyConfig('qwen2'), scoreLabels: 1 }, { seed: 1 });
  const batch = packSequences([
    Int32Array.from([10, 11, 12, 13, 14]),
    Int32Array.from([20, 21, 22]),
    Int32Array.from([30, 31, 32, 33, 34, 35, 36]),
  ]);
  const targets = Float32Array.from([10, 0, -6]);
  const first = squaredError(await m.scores(batch), targets, 3);
  for (let step = 0; step < 60; step++) {
    await m.backwardScore(batch, { targets });
    await m.optimizerStep({ lr: 1e-2 });
  }
  const last = squaredError(await m.scores(batch), targets, 3);
  t.diagnostic(`MSE ${first.toFixed(3)} -> ${last.toFixed(4)}`);
  assert.ok(last < 0.1 * first, `MSE ${first.toFixed(3)} -> ${last.toFixed(4)}`);
  await m.dispose();
});

test('save -> load with a score head: architecture, num_labels, score.weight, the same scores', async () => {
  const dir = tempDir('score-head');
  try {
    const m = await Model.create({ ...tinyConfig('qwen2_vl'), scoreLabels: 2 }, { seed: 6 });
    const batch = imageBatch(3);
    await m.save(dir);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(json.architectures, ['Qwen2VLForSequenceClassification']);
    assert.equal(json.num_labels, 2);
    assert.deepEqual(json.id2label, { 0: 'LABEL_0', 1: 'LABEL_1' });
    assert.deepEqual(json.label2id, { LABEL_0: 0, LABEL_1: 1 });
    const header = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    const score = header.tensors.find((t) => t.name === 'score.weight');
    assert.deepEqual(score?.shape, [2, m.config.text.hiddenSize]);
    const back = await Model.load(dir);
    assert.equal(back.config.scoreLabels, 2);
    assert.deepEqual(Array.from(await back.scores(batch)), Array.from(await m.scores(batch)));
    await m.dispose();
    await back.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('addScoreHead gives a causal LM a head that saves and loads; the LM head stays', async () => {
  const dir = tempDir('score-head');
  try {
    const lm = await Model.create(tinyConfig('qwen2_5_vl'), { seed: 7 });
    const plain = path.join(dir, 'lm');
    await lm.save(plain);
    // A plain causal-LM folder loads without a head, as before.
    const loadedLm = await Model.load(plain);
    assert.equal(loadedLm.config.scoreLabels, 0);
    assert.ok(!loadedLm.parameterSpecs().some((s) => s.name === 'score.weight'));
    await loadedLm.dispose();

    lm.addScoreHead({ seed: 3 });
    assert.equal(lm.config.scoreLabels, 1);
    assert.deepEqual(lm.parameters()['score.weight'].shape, [1, lm.config.text.hiddenSize]);
    assert.throws(() => lm.addScoreHead(), /already has a score head|a model without a score head/);
    const batch = imageBatch(4);
    const before = await lm.scores(batch);
    assert.equal(before.length, 3);
    const rm = path.join(dir, 'rm');
    await lm.save(rm);
    const json = JSON.parse(fs.readFileSync(path.join(rm, 'config.json'), 'utf8'));
    assert.deepEqual(json.architectures, ['Qwen2_5_VLForSequenceClassification']);
    assert.equal(json.num_labels, 1);
    const back = await Model.load(rm);
    assert.deepEqual(Array.from(await back.scores(batch)), Array.from(before));
    // It still generates: the same greedy tokens as the LM it came from.
    const prompt = [Int32Array.from([5, 6, 7])];
    const g1 = await back.generate(prompt, { maxNewTokens: 3, temperature: 0 });
    const g0 = await lm.generate(prompt, { maxNewTokens: 3, temperature: 0 });
    assert.deepEqual(g1.tokens, g0.tokens);
    await lm.dispose();
    await back.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a model without a head, or targets of the wrong length, are rejected with an Error', async () => {
  const m = await Model.create(tinyConfig('qwen2'), { seed: 8 });
  const batch = packSequences([Int32Array.from([1, 2, 3]), Int32Array.from([4, 5])]);
  await assert.rejects(m.backwardScore(batch, { targets: Float32Array.from([1, 2]) }), /score head/);
  await assert.rejects(m.scores(batch), /score head/);
  m.addScoreHead({ labels: 2 });
  await assert.rejects(m.backwardScore(batch, { targets: Float32Array.from([1, 2, 3]) }), /targets.*4 values/);
  await assert.rejects(m.backwardScore(batch, { targets: Float32Array.from([1, 2, 3, 4]), numItems: 0 }), /numItems/);
  await assert.rejects(m.scores(packSequences([Int32Array.from([1]), new Int32Array(0)])), /at least one token/);
  assert.throws(() => m.addScoreHead({ labels: 0 }), /labels/);
  await m.dispose();
});

test('config.json: a *ForSequenceClassification config reads num_labels or the size of id2label', () => {
  const file = path.join(__dirname, '..', '..', '..', 'configs', 'models', 'tiny-qwen2-vl.json');
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(parseModelConfig(raw, 'lm').scoreLabels, 0);
  const byCount = { ...raw, architectures: ['Qwen2VLForSequenceClassification'], num_labels: 3 };
  assert.equal(parseModelConfig(byCount, 'rm').scoreLabels, 3);
  const byLabels = {
    ...raw,
    architectures: ['Qwen2VLForSequenceClassification'],
    id2label: { 0: 'reward' },
    label2id: { reward: 0 },
  };
  const cfg = parseModelConfig(byLabels, 'rm');
  assert.equal(cfg.scoreLabels, 1);
  // Named labels that still fit are kept; a head removed writes the causal-LM class back.
  const out = modelConfigToJson(cfg);
  assert.deepEqual(out.id2label, { 0: 'reward' });
  assert.equal(out.num_labels, 1);
  const none = modelConfigToJson({ ...cfg, scoreLabels: 0 });
  assert.deepEqual(none.architectures, ['Qwen2VLForConditionalGeneration']);
  assert.ok(!('num_labels' in none) && !('id2label' in none));
  assert.throws(() => parseModelConfig({ ...byCount, num_labels: 0 }, 'rm'), /num_labels/);
});

test('backwardScore with reduce (one local rank): the same loss and gradients, the head bucketed', async () => {
  const m = await Model.create({ ...tinyConfig('qwen2'), scoreLabels: 1 }, { seed: 9 });
  const batch = packSequences([Int32Array.from([1, 2, 3]), Int32Array.from([4, 5, 6, 7, 8])]);
  const targets = Float32Array.from([2, -3]);
  const plain = await m.backwardScore(batch, { targets });
  const g0 = Object.fromEntries(Object.entries(m.gradients()).map(([k, t]) => [k, t.toArray() as Float32Array]));
  m.zeroGrad();
  const dist = await addon.Distributed.create({ rank: 0, worldSize: 1, backend: 'local' });
  try {
    const reduced = await m.backwardScore(batch, { targets }, { dist });
    assert.equal(reduced.loss, plain.loss);
    assert.ok((reduced.buckets ?? 0) >= 1, `buckets ${reduced.buckets}`);
    const g1 = m.gradients();
    assert.deepEqual(Object.keys(g1).sort(), Object.keys(g0).sort());
    for (const k of Object.keys(g0)) assertClose(g1[k].toArray() as Float32Array, g0[k], { rtol: 0, atol: 0, what: k });
  } finally {
    dist.close();
    await m.dispose();
  }
});
