// LoRA adapters (native/model/lora.h): a fresh adapter changes nothing, a trained one equals its
// weights merged by hand (and mergeLora), the float64 gradients of A and B equal finite differences
// (vision and merger targets included), KV-cache generation, dropout under activation recomputation,
// a tiny model learning with adapters only, and the errors.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Model, nextTokenLabels, packSequences, tinyConfig, type ModelTypes } from '../../src/index';
import { readSafetensorsHeader } from '../../src/model/safetensors';
import { addon, assertClose, randn, rng } from '../helpers/addon';
import { imageBatch } from '../helpers/batches';
import { tempDir } from '../helpers/temp_dir';

type NativeTensor = InstanceType<typeof addon.Tensor>;
type Batch = ModelTypes.ModelBatch & { inputIds: Int32Array; cuSeqlens: Int32Array };

const FROZEN = { vision: false, merger: false, languageModel: false };

/** Decoder, vision-block and merger targets of a qwen2_vl tiny model. */
const TARGETS = [
  'model.layers.0.self_attn.q_proj',
  'model.layers.0.self_attn.v_proj',
  'model.layers.1.self_attn.o_proj',
  'model.layers.0.mlp.gate_proj',
  'model.layers.1.mlp.up_proj',
  'model.layers.1.mlp.down_proj',
  'visual.blocks.0.attn.qkv',
  'visual.blocks.1.attn.proj',
  'visual.blocks.0.mlp.fc1',
  'visual.blocks.1.mlp.fc2',
  'visual.merger.mlp.0',
  'visual.merger.mlp.2',
];

/** Every linear projection of the decoder (the usual LoRA target set). */
function decoderTargets(layers: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < layers; i++) {
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'])
      out.push(`model.layers.${i}.${m}`);
    for (const m of ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) out.push(`model.layers.${i}.${m}`);
  }
  return out;
}

function textBatch(seed: number, lengths: number[]): Batch {
  const r = rng(seed);
  return packSequences(lengths.map((n) => Int32Array.from({ length: n }, () => Math.floor(r() * 700))));
}

async function logitsOf(m: Model, batch: ModelTypes.ModelBatch): Promise<Float64Array | Float32Array> {
  const t = await m.logits(batch);
  try {
    return t.toArray() as Float64Array | Float32Array;
  } finally {
    t.dispose();
  }
}

function shapeOf(m: Model, module: string): [number, number] {
  const spec = m.parameterSpecs().find((s) => s.name === `${module}.weight`);
  assert.ok(spec, `no ${module}.weight`);
  return [spec.shape[0], spec.shape[1]];
}

/** Random A [r, in] and B [out, r] (float64 values) for each module. */
function randomAdapters(
  m: Model,
  modules: string[],
  rank: number,
  seed: number,
  scale = 0.3,
): Record<string, { a: Float64Array; b: Float64Array }> {
  const r = rng(seed);
  const out: Record<string, { a: Float64Array; b: Float64Array }> = {};
  for (const mod of modules) {
    const [o, i] = shapeOf(m, mod);
    out[mod] = { a: randn(r, rank * i, scale), b: randn(r, o * rank, scale) };
  }
  return out;
}

function adapterTensors(
  m: Model,
  adapters: Record<string, { a: Float64Array; b: Float64Array }>,
  rank: number,
): Record<string, NativeTensor> {
  const t: Record<string, NativeTensor> = {};
  for (const [mod, { a, b }] of Object.entries(adapters)) {
    const [o, i] = shapeOf(m, mod);
    t[`${mod}.lora_A.weight`] = new addon.Tensor(a, [rank, i]);
    t[`${mod}.lora_B.weight`] = new addon.Tensor(b, [o, rank]);
  }
  return t;
}

function float64Parameters(m: Model, filter: (name: string) => boolean = () => true): Record<string, Float64Array> {
  return Object.fromEntries(
    Object.entries(m.parameters())
      .filter(([k]) => filter(k))
      .map(([k, t]) => [k, Float64Array.from(t.toArray() as Float64Array)]),
  );
}

function gradientsOf(m: Model): Record<string, Float64Array> {
  return Object.fromEntries(
    Object.entries(m.gradients()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float64Array)]),
  );
}

const isAdapter = (name: string): boolean => name.includes('.lora_A.') || name.includes('.lora_B.');

test('a fresh adapter (B = 0) leaves the logits bit-identical; A is PEFT-initialized and seeded', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 2 });
  const image = imageBatch(1);
  const text = textBatch(2, [5, 13]);
  const before = [await logitsOf(m, image), await logitsOf(m, text)];
  m.addLora({ modules: TARGETS, rank: 3, seed: 7 });
  assert.equal(m.info.loraModules, TARGETS.length);
  assert.equal(m.info.loraRank, 3);
  assert.deepEqual(
    [m.info.loraScale, m.info.loraDropout, m.info.loraEnabled],
    [1, 0, true],
    'default settings: scale 1, no dropout, enabled',
  );
  const after = [await logitsOf(m, image), await logitsOf(m, text)];
  assert.deepEqual(after[0], before[0]);
  assert.deepEqual(after[1], before[1]);

  const lora = m.loraParameters();
  assert.equal(Object.keys(lora).length, 2 * TARGETS.length);
  for (const mod of TARGETS) {
    const [o, i] = shapeOf(m, mod);
    const a = lora[`${mod}.lora_A.weight`];
    const b = lora[`${mod}.lora_B.weight`];
    assert.deepEqual(a.shape, [3, i]);
    assert.deepEqual(b.shape, [o, 3]);
    assert.ok(
      (b.toArray() as Float32Array).every((v) => v === 0),
      `${mod}: B starts at zero`,
    );
    const av = a.toArray() as Float32Array;
    const bound = 1 / Math.sqrt(i);
    assert.ok(
      av.every((v) => Math.abs(v) <= bound),
      `${mod}: A within kaiming_uniform(a=sqrt 5)'s bound`,
    );
    assert.ok(Math.max(...av.map(Math.abs)) > 0.5 * bound, `${mod}: A spans its range`);
  }
  // parameterSpecs stays the base list; the same seed draws the same A.
  assert.ok(!m.parameterSpecs().some((s) => isAdapter(s.name)));
  const twin = await Model.create(tinyConfig('qwen2_vl'), { seed: 2 });
  twin.addLora({ modules: TARGETS, rank: 3, seed: 7 });
  const ta = twin.loraParameters();
  for (const [k, t] of Object.entries(lora)) assert.deepEqual(ta[k].toArray(), t.toArray(), k);
  // Adapters always train: a frozen base leaves exactly the adapters' elements trainable.
  m.setTrainable(FROZEN);
  const adapterElements = Object.values(lora).reduce((n, t) => n + t.numel, 0);
  assert.equal(m.info.trainableCount, adapterElements);
  await m.dispose();
  await twin.dispose();
});

test('adapter logits equal weights merged by hand (float64); mergeLora gives the same; disabled = base', async () => {
  const cfg = tinyConfig('qwen2_vl', { tie: false });
  const m = await Model.create(cfg, { seed: 3, dtype: 'float64' });
  const batch = imageBatch(4);
  const base = await logitsOf(m, batch);
  const rank = 4;
  const scale = 0.75;
  const adapters = randomAdapters(m, TARGETS, rank, 5);
  m.addLora({ modules: TARGETS, rank, seed: 1 });
  await m.setLoraTensors(adapterTensors(m, adapters, rank));
  m.setLora({ scale });
  const withAdapter = await logitsOf(m, batch);

  // W + scale * B A in float64, in JS.
  const merged = float64Parameters(m, (k) => !isAdapter(k));
  for (const [mod, { a, b }] of Object.entries(adapters)) {
    const [o, i] = shapeOf(m, mod);
    const w = merged[`${mod}.weight`];
    for (let r = 0; r < o; r++)
      for (let c = 0; c < i; c++) {
        let s = 0;
        for (let k = 0; k < rank; k++) s += b[r * rank + k] * a[k * i + c];
        w[r * i + c] += scale * s;
      }
  }
  const byHand = await Model.create(cfg, { dtype: 'float64', init: 'none' });
  const shapes = new Map(m.parameterSpecs().map((s) => [s.name, s.shape]));
  await byHand.setParameters(
    Object.fromEntries(Object.entries(merged).map(([k, v]) => [k, new addon.Tensor(v, shapes.get(k))])),
  );
  const handLogits = await logitsOf(byHand, batch);
  assertClose(withAdapter, handLogits, { rtol: 1e-10, atol: 1e-12, what: 'adapter vs hand-merged logits' });
  assert.ok(
    withAdapter.some((v, i) => Math.abs(v - base[i]) > 1e-3),
    'the adapters change the logits',
  );

  m.setLora({ enabled: false });
  assert.equal(m.info.loraEnabled, false);
  assert.deepEqual(await logitsOf(m, batch), base, 'disabled adapters: the base logits exactly');
  // Merging is explicit: it happens with the adapters disabled too.
  assert.equal(await m.mergeLora(), TARGETS.length);
  assert.equal(m.info.loraModules, 0);
  assert.deepEqual(Object.keys(m.loraParameters()), []);
  assertClose(await logitsOf(m, batch), handLogits, { rtol: 1e-10, atol: 1e-12, what: 'mergeLora vs hand-merged' });
  await m.dispose();
  await byHand.dispose();
});

test('float64 gradients of A and B equal central finite differences (vision and merger targets)', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 6, dtype: 'float64' });
  const batch = imageBatch(7);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  const modules = [
    'model.layers.0.self_attn.q_proj',
    'model.layers.1.mlp.down_proj',
    'visual.blocks.0.attn.qkv',
    'visual.blocks.1.mlp.fc2',
    'visual.merger.mlp.0',
    'visual.merger.mlp.2',
  ];
  const rank = 3;
  m.addLora({ modules, rank, seed: 2 });
  // Non-zero B so that A gets gradient too.
  await m.setLoraTensors(adapterTensors(m, randomAdapters(m, modules, rank, 8, 0.2), rank));
  m.setLora({ scale: 1.5 });
  m.setTrainable(FROZEN);
  await m.backwardSft(batch, { labels });
  const grads = gradientsOf(m);
  m.zeroGrad();
  assert.deepEqual(
    Object.keys(grads).sort(),
    Object.keys(m.loraParameters()).sort(),
    'a frozen base gets no gradient; every adapter does',
  );

  const values = float64Parameters(m, isAdapter);
  const h = 1e-5;
  for (const name of Object.keys(values).sort()) {
    const g = grads[name];
    let big = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[big])) big = i;
    const shape = m.loraParameters()[name].shape;
    for (const idx of [big, Math.floor(g.length / 3) + 1]) {
      const lossAt = async (delta: number): Promise<number> => {
        const moved = Float64Array.from(values[name]);
        moved[idx] += delta;
        await m.setLoraTensors({ [name]: new addon.Tensor(moved, shape) });
        return m.sftLoss(batch, { labels });
      };
      const fd = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
      // atol relative to the tensor's largest gradient: a tiny element's difference quotient is
      // mostly rounding (the image's tokens move the loss little).
      const atol = 1e-6 * Math.abs(g[big]);
      assertClose([g[idx]], [fd], { rtol: 1e-6, atol, what: `d loss / d ${name}[${idx}]` });
    }
    await m.setLoraTensors({ [name]: new addon.Tensor(values[name], shape) });
  }
  await m.dispose();
});

test('KV-cache generation with adapters: each greedy token is the argmax of the full forward', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 9, dtype: 'float64' });
  const rank = 2;
  m.addLora({ modules: TARGETS, rank, seed: 3 });
  await m.setLoraTensors(adapterTensors(m, randomAdapters(m, TARGETS, rank, 10, 0.5), rank));
  m.setLora({ scale: 2 });
  const prompts = imageBatch(11);
  const steps = 5;
  const out = await m.generateBatch(prompts, { maxNewTokens: steps, temperature: 0 });
  const V = m.config.text.vocabSize;
  const S = prompts.cuSeqlens.length - 1;
  const seqs = Array.from({ length: S }, (_, s) =>
    Array.from(prompts.inputIds.subarray(prompts.cuSeqlens[s], prompts.cuSeqlens[s + 1])),
  );
  for (let step = 0; step < steps; step++) {
    const batch = {
      ...packSequences(seqs.map((q) => Int32Array.from(q))),
      pixelValues: prompts.pixelValues,
      imageGrids: prompts.imageGrids,
    };
    const logits = await logitsOf(m, batch);
    for (let s = 0; s < S; s++) {
      const last = batch.cuSeqlens[s + 1] - 1;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[last * V + v] > logits[last * V + best]) best = v;
      assert.equal(out.tokens[s][step], best, `sequence ${s}, step ${step}`);
      seqs[s].push(best);
    }
  }
  // The merged model generates the same.
  await m.mergeLora();
  const merged = await m.generateBatch(prompts, { maxNewTokens: steps, temperature: 0 });
  assert.deepEqual(merged.tokens, out.tokens);
  await m.dispose();
});

test('adapter dropout: seeded, only in backward calls, the same gradients with activation recomputation', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 12 });
  const batch = imageBatch(13);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  const rank = 4;
  m.addLora({ modules: TARGETS, rank, seed: 4 });
  await m.setLoraTensors(adapterTensors(m, randomAdapters(m, TARGETS, rank, 14, 0.3), rank));
  m.setTrainable(FROZEN);
  const gradsWith = async (opts: {
    dropout: number;
    seed?: number;
    recompute: boolean;
  }): Promise<Record<string, Float64Array>> => {
    m.setLora({ dropout: opts.dropout, ...(opts.seed === undefined ? {} : { seed: opts.seed }) });
    m.setRecomputeActivations(opts.recompute);
    await m.backwardSft(batch, { labels });
    const g = gradientsOf(m);
    m.zeroGrad();
    return g;
  };
  const noDropout = await gradsWith({ dropout: 0, recompute: false });
  const plain = await gradsWith({ dropout: 0.3, seed: 21, recompute: false });
  const recomputed = await gradsWith({ dropout: 0.3, seed: 21, recompute: true });
  const nextMasks = await gradsWith({ dropout: 0.3, recompute: true }); // the stream goes on: new masks
  assert.equal(m.info.checkpointLayers, true);
  // Every adapter gets its gradient through recomputed layers too (their frozen inputs included).
  assert.deepEqual(Object.keys(recomputed).sort(), Object.keys(plain).sort());
  assert.equal(Object.keys(plain).length, 2 * TARGETS.length);
  for (const k of Object.keys(plain)) {
    assertClose(recomputed[k], plain[k], { rtol: 1e-6, atol: 1e-9, what: `${k} recomputed` });
    assert.ok(
      plain[k].some((v, i) => Math.abs(v - noDropout[k][i]) > 1e-6 * (Math.abs(v) + 1e-3)),
      `${k}: dropout changes the gradient`,
    );
    assert.ok(
      plain[k].some((v, i) => v !== nextMasks[k][i]),
      `${k}: the next backward draws new masks`,
    );
  }
  // Inference never drops: logits with dropout 0.3 are those without.
  m.setLora({ dropout: 0.3 });
  const dropped = await logitsOf(m, batch);
  m.setLora({ dropout: 0 });
  assert.deepEqual(dropped, await logitsOf(m, batch));
  await m.dispose();
});

test('a tiny model learns a fixed batch with LoRA only (SFT loss falls > 90%); optimizer state is adapters only', async (t) => {
  const m = await Model.create(tinyConfig('qwen2'), { seed: 15 });
  // The tied head of std-0.02 embeddings caps the logits at about +-1.3 (no frozen-head model could
  // fit a batch then): a final norm of 10 gives it the range a pretrained model has.
  const norm = m.parameters()['model.norm.weight'];
  await m.setParameters({
    ...m.parameters(),
    'model.norm.weight': new addon.Tensor(new Float32Array(norm.numel).fill(10), norm.shape),
  });
  const batch = textBatch(16, [9, 12, 7]);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  m.setTrainable(FROZEN);
  const rank = 8;
  const modules = decoderTargets(m.config.text.numLayers);
  m.addLora({ modules, rank, seed: 5 });
  m.setLora({ scale: 16 / rank });
  const base = m.parameters();
  const baseBefore = Float32Array.from(base['model.layers.0.self_attn.q_proj.weight'].toArray() as Float32Array);
  const first = await m.sftLoss(batch, { labels });
  let report: ModelTypes.StepReport | undefined;
  for (let step = 0; step < 200; step++) {
    await m.backwardSft(batch, { labels });
    report = await m.optimizerStep({ lr: 2e-2 });
  }
  const last = await m.sftLoss(batch, { labels });
  t.diagnostic(`SFT loss ${first.toFixed(3)} -> ${last.toFixed(4)}`);
  assert.ok(last < 0.1 * first, `SFT loss ${first.toFixed(3)} -> ${last.toFixed(4)}`);
  assert.equal(report?.paramsUpdated, 2 * modules.length);
  assert.deepEqual(
    m.parameters()['model.layers.0.self_attn.q_proj.weight'].toArray(),
    baseBefore,
    'the frozen base does not move',
  );
  const keys = Object.keys(m.optimizerState()).filter((k) => k !== 'step');
  assert.equal(keys.length, 2 * 2 * modules.length);
  assert.ok(
    keys.every((k) => isAdapter(k)),
    `optimizer keys: ${keys.filter((k) => !isAdapter(k)).join(', ')}`,
  );
  // The state round-trips through loadOptimizerState (adapter names are known parameters).
  m.loadOptimizerState(m.optimizerState());

  // Removing the adapters brings back the base model and drops their optimizer state.
  assert.equal(m.removeLora(), modules.length);
  assert.equal(m.info.loraModules, 0);
  assert.equal(m.info.trainableCount, 0);
  assert.deepEqual(Object.keys(m.optimizerState()), ['step']);
  assertClose([await m.sftLoss(batch, { labels })], [first], {
    rtol: 1e-6,
    atol: 0,
    what: 'base loss after removeLora',
  });
  await m.dispose();
});

test('adapters are reduced with the gradients (data parallel) and never saved by save()', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 17 });
  m.setTrainable(FROZEN);
  m.addLora({ modules: ['model.layers.1.self_attn.k_proj', 'visual.merger.mlp.2'], rank: 2, seed: 1 });
  const batch = imageBatch(18);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  const dist = await addon.Distributed.create({ rank: 0, worldSize: 1, backend: 'local' });
  try {
    const reduced = await m.backwardSft(batch, { labels }, { dist });
    // Only adapters train here: a bucket exists only if they are in the reduction order.
    assert.ok((reduced.buckets ?? 0) >= 1, `buckets ${reduced.buckets}`);
    assert.equal(Object.keys(m.gradients()).length, 4);
  } finally {
    dist.close();
  }
  const dir = tempDir('lora-save');
  try {
    await m.save(dir);
    const header = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    assert.ok(!header.tensors.some((x) => isAdapter(x.name)), 'no adapter tensor in the base checkpoint');
    assert.equal(header.tensors.length, m.parameterSpecs().length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await m.dispose();
});

test('errors name the module or tensor: unknown, not a projection, wrong shapes, ranks, settings', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl', { tie: false }), { seed: 19 });
  assert.throws(
    () => m.addLora({ modules: ['model.layers.7.self_attn.q_proj'], rank: 2 }),
    /model\.layers\.7\.self_attn\.q_proj.*does not have/,
  );
  assert.throws(() => m.addLora({ modules: ['lm_head'], rank: 2 }), /"lm_head", which is not one/);
  assert.throws(() => m.addLora({ modules: ['model.embed_tokens'], rank: 2 }), /model\.embed_tokens/);
  assert.throws(() => m.addLora({ modules: ['visual.patch_embed.proj'], rank: 2 }), /visual\.patch_embed\.proj/);
  assert.throws(() => m.addLora({ modules: ['model.layers.0.input_layernorm'], rank: 2 }), /input_layernorm/);
  assert.throws(() => m.addLora({ modules: ['model.layers.0.self_attn.q_proj'], rank: 0 }), /rank/);
  assert.equal(m.info.loraModules, 0, 'a rejected call adds nothing');
  m.addLora({ modules: ['model.layers.0.self_attn.q_proj'], rank: 2 });
  assert.throws(() => m.addLora({ modules: ['model.layers.0.self_attn.q_proj'], rank: 2 }), /q_proj.*which has one/);
  assert.throws(
    () => m.addLora({ modules: ['model.layers.0.self_attn.k_proj'], rank: 3 }),
    /rank of the model's adapters/,
  );

  const [o, i] = shapeOf(m, 'model.layers.1.mlp.up_proj');
  const z = (n: number, shape: number[]): NativeTensor => new addon.Tensor(new Float32Array(n), shape);
  await assert.rejects(
    m.setLoraTensors({
      'model.layers.1.mlp.up_proj.lora_A.weight': z(2 * (i + 1), [2, i + 1]),
      'model.layers.1.mlp.up_proj.lora_B.weight': z(o * 2, [o, 2]),
    }),
    /model\.layers\.1\.mlp\.up_proj\.lora_A\.weight.*\[r, 64\].*\[2, 65\]/,
  );
  await assert.rejects(
    m.setLoraTensors({
      'model.layers.1.mlp.up_proj.lora_A.weight': z(2 * i, [2, i]),
      'model.layers.1.mlp.up_proj.lora_B.weight': z(3 * o, [o, 3]),
    }),
    /up_proj\.lora_B\.weight.*rank/,
  );
  await assert.rejects(
    m.setLoraTensors({ 'model.layers.1.mlp.up_proj.lora_B.weight': z(o * 2, [o, 2]) }),
    /up_proj\.lora_B\.weight.*lora_A\.weight/,
  );
  await assert.rejects(
    m.setLoraTensors({
      'model.layers.1.mlp.up_proj.lora_A.weight': z(3 * i, [3, i]),
      'model.layers.1.mlp.up_proj.lora_B.weight': z(3 * o, [o, 3]),
    }),
    /up_proj.*one rank/,
  );
  await assert.rejects(m.setLoraTensors({ 'lm_head.lora_A.weight': z(2 * 64, [2, 64]) }), /lm_head\.lora_A\.weight/);
  await assert.rejects(m.setLoraTensors({ 'model.norm.weight': z(64, [64]) }), /model\.norm\.weight/);
  assert.equal(m.info.loraModules, 1, 'rejected tensors change nothing');
  assert.throws(() => m.setLora({ dropout: 1 }), /dropout/);
  assert.throws(() => m.setLora({ scale: Number.NaN }), /scale/);
  // setParameters stays the base weights' call.
  await assert.rejects(
    m.setParameters({ ...m.parameters() }),
    /unexpected tensor model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/,
  );
  await m.dispose();
});

test('bfloat16: adapters train with dropout, and a merge survives the next step (master copies follow it)', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 20, dtype: 'bfloat16' });
  const batch = imageBatch(21);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  const rank = 2;
  const modules = ['model.layers.0.self_attn.q_proj', 'visual.blocks.0.attn.qkv'];
  m.addLora({ modules, rank, seed: 2 });
  await m.setLoraTensors(adapterTensors(m, randomAdapters(m, modules, rank, 22, 0.5), rank));
  m.setLora({ dropout: 0.1, scale: 2 });
  await m.backwardSft(batch, { labels });
  const first = await m.optimizerStep({ lr: 1e-3 });
  assert.equal(first.skipped, false);
  const state = Object.keys(m.optimizerState());
  assert.ok(state.includes('master.model.layers.0.self_attn.q_proj.lora_A.weight'), 'bf16 adapters get masters');
  assert.ok(state.includes('master.model.layers.0.self_attn.q_proj.weight'), 'the trained base weight has one');

  assert.equal(await m.mergeLora(), 2);
  const merged = await logitsOf(m, batch);
  assert.ok(!Object.keys(m.optimizerState()).some(isAdapter), 'merged adapters leave the optimizer');
  // A step of lr 0 copies each master back into its weight: the merged one, not the weight before.
  await m.backwardSft(batch, { labels });
  await m.optimizerStep({ lr: 0 });
  assert.deepEqual(await logitsOf(m, batch), merged);
  await m.dispose();
});

test('qwen2.5-vl: adapters on the vision SwiGLU MLP and window blocks act, and merge to the same logits', async () => {
  const m = await Model.create(tinyConfig('qwen2_5_vl'), { seed: 23, dtype: 'float64' });
  const batch = imageBatch(24);
  const base = await logitsOf(m, batch);
  const modules = [
    'visual.blocks.0.mlp.gate_proj',
    'visual.blocks.0.mlp.up_proj',
    'visual.blocks.1.mlp.down_proj',
    'visual.blocks.1.attn.qkv',
    'visual.merger.mlp.0',
    'model.layers.0.mlp.up_proj',
  ];
  const rank = 3;
  m.addLora({ modules, rank, seed: 1 });
  let previous = base;
  for (const mod of modules.slice(0, 4)) {
    // Each vision target's B turned non-zero moves the logits (B = 0 elsewhere or already counted).
    await m.setLoraTensors(adapterTensors(m, randomAdapters(m, [mod], rank, 25, 0.5), rank));
    const moved = await logitsOf(m, batch);
    assert.ok(
      moved.some((v, i) => Math.abs(v - previous[i]) > 1e-9),
      `${mod}: the adapter reaches the logits`,
    );
    previous = moved;
  }
  await m.setLoraTensors(adapterTensors(m, randomAdapters(m, modules, rank, 26, 0.5), rank));
  m.setLora({ scale: 0.5 });
  const withAdapter = await logitsOf(m, batch);
  await m.mergeLora();
  assertClose(await logitsOf(m, batch), withAdapter, { rtol: 1e-10, atol: 1e-12, what: 'merged vs adapter logits' });
  await m.dispose();
});
