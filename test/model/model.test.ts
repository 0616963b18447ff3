// The native model: consistency of its paths (full forward, fused logprobs, KV-cache generation,
// packing), float64 gradients against finite differences, M-RoPE positions worked by hand, and a
// tiny model that overfits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, nextTokenLabels, packSequences, tinyConfig, TINY_TOKENS as T, type ModelTypes } from '../../src/index';
import { addon, assertClose, randn, rng } from '../helpers/addon';
import { tempDir } from '../helpers/temp_dir';

type Kind = 'qwen2_vl' | 'qwen2_5_vl';

function logSoftmaxRow(row: Float32Array | Float64Array): number[] {
  const m = Math.max(...row);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Array.from(row, (v) => v - lse);
}

/** A prompt with one image of grid [1, gh, gw] between two text spans, and its pixel values. */
function imagePrompt(seed: number, gh = 4, gw = 6, before = [11, 12, 13], after = [21, 22]) {
  const r = rng(seed);
  const pads = (gh / 2) * (gw / 2);
  const ids = [...before, T.visionStart, ...new Array(pads).fill(T.imagePad), T.visionEnd, ...after];
  return {
    ids: Int32Array.from(ids),
    pixels: Float32Array.from(randn(r, gh * gw * 1176)),
    grid: [1, gh, gw],
  };
}

test('sequenceLogprobs equals the log-softmax of the full forward', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 3 });
  const seqs = [Int32Array.from([1, 5, 9, 33, 700, 2]), Int32Array.from([4, 4, 4])];
  const lp = await m.sequenceLogprobs(seqs);
  for (let i = 0; i < seqs.length; i++) {
    const logits = (await m.logits(packSequences([seqs[i]]))).toArray() as Float32Array;
    const V = T.vocabSize;
    const want: number[] = [];
    for (let t = 0; t + 1 < seqs[i].length; t++)
      want.push(logSoftmaxRow(logits.subarray(t * V, (t + 1) * V))[seqs[i][t + 1]]);
    assertClose(lp[i], want, { rtol: 1e-5, atol: 1e-5, what: `seq ${i}` });
  }
  await m.dispose();
});

for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as Kind[]) {
  test(`${kind}: greedy generate equals token-by-token argmax of the full forward (text and image prompts)`, async () => {
    const m = await Model.create(tinyConfig(kind), { seed: 11 });
    const img = imagePrompt(5, 8, 8);
    const text = Int32Array.from([7, 8, 9, 10]);
    const gen = await m.generateBatch(
      { ...packSequences([img.ids, text]), pixelValues: img.pixels, imageGrids: Int32Array.from(img.grid) },
      { maxNewTokens: 6, temperature: 0 },
    );
    for (const [i, prompt] of [img.ids, text].entries()) {
      const seq = Array.from(prompt);
      for (let step = 0; step < 6; step++) {
        const batch =
          i === 0
            ? {
                ...packSequences([Int32Array.from(seq)]),
                pixelValues: img.pixels,
                imageGrids: Int32Array.from(img.grid),
              }
            : packSequences([Int32Array.from(seq)]);
        const logits = (await m.logits(batch)).toArray() as Float32Array;
        const last = logits.subarray((seq.length - 1) * T.vocabSize, seq.length * T.vocabSize);
        let best = 0;
        for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
        assert.equal(gen.tokens[i][step], best, `${kind} prompt ${i} step ${step}`);
        seq.push(best);
      }
    }
    await m.dispose();
  });
}

test('sampled generate: log-probs match a full forward of the finished sequence; seeds reproduce', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 2 });
  const prompts = [Int32Array.from([1, 2, 3]), Int32Array.from([9, 8, 7, 6, 5])];
  const opts = { maxNewTokens: 8, temperature: 0.7, topP: 0.95, seed: 42 };
  const a = await m.generate(prompts, opts);
  const b = await m.generate(prompts, opts);
  assert.deepEqual(a.tokens, b.tokens, 'same seed, same tokens');
  for (let i = 0; i < prompts.length; i++) {
    const full = Int32Array.from([...prompts[i], ...a.tokens[i]]);
    const batch = packSequences([full]);
    const { logp } = await m.tokenLogprobs(batch, {
      labels: nextTokenLabels(batch.inputIds, batch.cuSeqlens),
      temperature: 0.7,
    });
    const want = logp.slice(prompts[i].length - 1, full.length - 1);
    assertClose(a.logprobs[i], want, { rtol: 1e-4, atol: 1e-4, what: `sequence ${i}` });
  }
  const stop = await m.generate(prompts, { ...opts, stopTokens: [a.tokens[0][2]] });
  assert.equal(stop.tokens[0].length, 3, 'stops after the stop token');
  await m.dispose();
});

test('a packed batch equals its sequences run one by one (with images)', async () => {
  for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as Kind[]) {
    const m = await Model.create(tinyConfig(kind), { seed: 5 });
    const p1 = imagePrompt(1, 4, 6);
    const p2 = imagePrompt(2, 8, 4, [5], [6, 7, 8]);
    const t3 = Int32Array.from([40, 41, 42, 43, 44]);
    const packed = {
      ...packSequences([p1.ids, t3, p2.ids]),
      pixelValues: Float32Array.from([...p1.pixels, ...p2.pixels]),
      imageGrids: Int32Array.from([...p1.grid, ...p2.grid]),
    };
    const all = (await m.logits(packed)).toArray() as Float32Array;
    let offset = 0;
    for (const single of [
      { ...packSequences([p1.ids]), pixelValues: p1.pixels, imageGrids: Int32Array.from(p1.grid) },
      packSequences([t3]),
      { ...packSequences([p2.ids]), pixelValues: p2.pixels, imageGrids: Int32Array.from(p2.grid) },
    ]) {
      const one = (await m.logits(single)).toArray() as Float32Array;
      assertClose(all.subarray(offset, offset + one.length), one, {
        rtol: 1e-4,
        atol: 1e-5,
        what: `${kind} sequence at ${offset}`,
      });
      offset += one.length;
    }
    await m.dispose();
  }
});

test('M-RoPE position ids: hand-worked examples', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const rows = (r: { positionIds: Int32Array }, n: number) =>
    [0, 1, 2].map((c) => Array.from(r.positionIds.subarray(c * n, (c + 1) * n)));
  // No image: all three components count 0, 1, 2, ...
  const text = packSequences([Int32Array.from([1, 2, 3, 4])]);
  assert.deepEqual(rows(m.ropeIndex(text), 4), [
    [0, 1, 2, 3],
    [0, 1, 2, 3],
    [0, 1, 2, 3],
  ]);
  // Image in the middle: text 0,1 | vision_start 2 | image 2x3 merged (grid 1x4x6) from base 3 |
  // vision_end and text continue at 3 + max(1, 2, 3) = 6.
  const ids = Int32Array.from([1, 2, T.visionStart, ...new Array(6).fill(T.imagePad), T.visionEnd, 9]);
  const mid = m.ropeIndex({ ...packSequences([ids]), imageGrids: Int32Array.from([1, 4, 6]) });
  assert.deepEqual(rows(mid, ids.length), [
    [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7],
    [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7],
    [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7],
  ]);
  assert.deepEqual(Array.from(mid.nextPositions), [8]);
  // Two images (1x2x2 merged each) in two packed sequences: each sequence starts again at 0.
  const s1 = Int32Array.from([T.visionStart, T.imagePad, T.imagePad, T.imagePad, T.imagePad, T.visionEnd]);
  const s2 = Int32Array.from([5, T.visionStart, T.imagePad, T.visionEnd, T.visionStart, T.imagePad, T.visionEnd]);
  const two = m.ropeIndex({ ...packSequences([s1, s2]), imageGrids: Int32Array.from([1, 4, 4, 1, 2, 2, 1, 2, 2]) });
  assert.deepEqual(rows(two, 13), [
    [0, 1, 1, 1, 1, 3, 0, 1, 2, 3, 4, 5, 6],
    [0, 1, 1, 2, 2, 3, 0, 1, 2, 3, 4, 5, 6],
    [0, 1, 2, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6],
  ]);
  assert.throws(
    () => m.ropeIndex({ ...packSequences([s1]), imageGrids: Int32Array.from([1, 2, 2]) }),
    /image 0 \(grid 1x2x2\) needs 1 image tokens after <\|vision_start\|> in sequence 0, found 4/,
  );
  await m.dispose();
});

test('float64 gradients through vision tower and decoder equal finite differences', async () => {
  for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as Kind[]) {
    const m = await Model.create(tinyConfig(kind, { tie: false }), { seed: 9, dtype: 'float64' });
    const img = imagePrompt(4, 8, 8, [3, 4], [5, 6, 7]);
    const batch = { ...packSequences([img.ids]), pixelValues: img.pixels, imageGrids: Int32Array.from(img.grid) };
    const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
    await m.backwardSft(batch, { labels });
    const grads = m.gradients();
    const params = m.parameters();
    const copies: Record<string, Float64Array> = {};
    for (const [k, t] of Object.entries(params)) copies[k] = Float64Array.from(t.toArray() as Float64Array);
    const probes = [
      'visual.patch_embed.proj.weight',
      'visual.blocks.0.attn.qkv.weight',
      'visual.blocks.1.norm1.weight',
      'visual.merger.mlp.0.weight',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.1.mlp.down_proj.weight',
      'model.embed_tokens.weight',
      'lm_head.weight',
    ];
    const h = 1e-5;
    for (const name of probes) {
      const g = grads[name].toArray() as Float64Array;
      // The entry with the largest gradient, and one other.
      let big = 0;
      for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[big])) big = i;
      for (const idx of [big, Math.floor(g.length / 3)]) {
        const lossAt = async (delta: number): Promise<number> => {
          const modified = Float64Array.from(copies[name]);
          modified[idx] += delta;
          const tensors: Record<string, InstanceType<typeof addon.Tensor>> = {};
          for (const [k, t] of Object.entries(params))
            tensors[k] = new addon.Tensor(k === name ? modified : copies[k], t.shape);
          await m.setParameters(tensors);
          return m.sftLoss(batch, { labels });
        };
        const fd = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
        assertClose([g[idx]], [fd], { rtol: 1e-5, atol: 1e-9, what: `${kind} d loss / d ${name}[${idx}]` });
      }
    }
    await m.dispose();
  }
});

test('a tiny model overfits a fixed batch (loss falls by more than 90%)', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const img = imagePrompt(8, 4, 4, [100, 101], [200, 201, 202, 203, 204, 205]);
  const batch = {
    ...packSequences([img.ids, Int32Array.from([300, 301, 302, 303, 304, 305, 306])]),
    pixelValues: img.pixels,
    imageGrids: Int32Array.from(img.grid),
  };
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  const first = await m.sftLoss(batch, { labels });
  let last = first;
  for (let step = 0; step < 150; step++) {
    last = (await m.backwardSft(batch, { labels })).loss;
    await m.optimizerStep({ lr: 3e-3, maxGradNorm: 1.0 });
  }
  last = await m.sftLoss(batch, { labels });
  assert.ok(last < 0.1 * first, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  await m.dispose();
});

test('bad batches get clear errors', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  await assert.rejects(
    m.logits({ inputIds: Int32Array.from([1, 2, 3]), cuSeqlens: Int32Array.from([0, 2]) }),
    /cuSeqlens' must be from 0 to the token count 3/,
  );
  await assert.rejects(
    m.logits(packSequences([Int32Array.from([1, 9999])])),
    /inputIds' must be token ids in \[0, 768\), got an id 9999/,
  );
  const img = imagePrompt(1, 4, 4);
  await assert.rejects(
    m.logits({
      ...packSequences([img.ids]),
      pixelValues: img.pixels.subarray(0, 1176 * 3),
      imageGrids: Int32Array.from(img.grid),
    }),
    /pixelValues' must be as many patches as the grids hold \(16\), got 3/,
  );
  const cfg: ModelTypes.ModelConfig = {
    ...tinyConfig('qwen2_vl'),
    text: { ...tinyConfig().text, mropeSection: [2, 2, 2] },
  };
  await assert.rejects(Model.create(cfg), /mropeSection must be three sections summing to headDim \/ 2 = 8/);
  await m.dispose();
  await assert.rejects(m.logits(packSequences([Int32Array.from([1])])), /disposed/);
});

test('Model.save then Model.load is bit-exact: both architectures, tied and untied, single file and sharded', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const dir = tempDir('model-save');
  try {
    for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as Kind[]) {
      for (const tie of [false, true]) {
        for (const maxShardBytes of [undefined, 200_000]) {
          const m = await Model.create(tinyConfig(kind, { tie }), { seed: 21 });
          const out = path.join(dir, `${kind}-${tie}-${maxShardBytes ?? 'one'}`);
          await m.save(out, { maxShardBytes });
          const files = fs.readdirSync(out);
          assert.equal(
            files.includes('model.safetensors.index.json'),
            maxShardBytes !== undefined,
            `sharded: ${files.join(',')}`,
          );
          const back = await Model.load(out);
          const a = m.parameters();
          const b = back.parameters();
          assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
          assert.equal('lm_head.weight' in a, !tie);
          for (const name of Object.keys(a)) {
            const x = a[name].toArray() as Float32Array;
            const y = b[name].toArray() as Float32Array;
            assert.equal(Buffer.compare(Buffer.from(x.buffer), Buffer.from(y.buffer)), 0, `${kind} tie=${tie} ${name}`);
          }
          const ids = packSequences([Int32Array.from([5, 6, 7])]);
          assertClose(
            (await back.logits(ids)).toArray() as Float32Array,
            (await m.logits(ids)).toArray() as Float32Array,
            { rtol: 0, atol: 0 },
          );
          await m.dispose();
          await back.dispose();
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
