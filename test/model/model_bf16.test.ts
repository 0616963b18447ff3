// The mixed-precision path every GPU run uses -- bf16 compute, float32 master weights -- run on the
// CPU (libtorch's CPU kernels do bf16), so dtype handling is tested before a GPU ever sees it.
// Reference: a float64 model holding exactly the same (bf16-representable) weights, so every
// difference is bf16 rounding in the compute; tolerances are bf16's (8 significant bits, ~3e-3).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, nextTokenLabels, packSequences, tinyConfig, TINY_TOKENS as T } from '../../src/index';
import type { Tensor } from '../../src/native/types';
import { randn, rng } from '../helpers/addon';

type Kind = 'qwen2' | 'qwen2_vl' | 'qwen2_5_vl';

/** A tensor's values as float64, bf16 bits widened (bf16 is the top half of a float32). */
function values(t: Tensor): Float64Array {
  const a = t.toArray();
  if (t.dtype !== 'bf16') return Float64Array.from(a as Float32Array);
  const bits = a as Uint16Array;
  const u32 = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return Float64Array.from(new Float32Array(u32.buffer));
}

/** float32 -> bf16 -> float, round to nearest even (what at::Tensor::to(kBFloat16) does). */
function roundBf16(x: Float32Array): Float64Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return Float64Array.from(new Float32Array(out.buffer));
}

/** ||a - b|| / ||b||: the error measure for whole tensors, where bf16 spreads error evenly. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / Math.max(n, 1e-300));
}

/** A bf16 model and a float64 twin with the bf16 model's weights (bf16 -> f64 is exact). */
async function twins(kind: Kind, seed: number): Promise<{ bf: Model; f64: Model }> {
  const bf = await Model.create(tinyConfig(kind), { seed, dtype: 'bfloat16' });
  const f64 = await Model.create(tinyConfig(kind), { init: 'none', dtype: 'float64' });
  await f64.setParameters(bf.parameters());
  assert.equal(bf.info.dtype, 'BFloat16'); // c10's name
  return { bf, f64 };
}

interface Batch {
  inputIds: Int32Array;
  cuSeqlens: Int32Array;
  pixelValues?: Float32Array;
  imageGrids?: Int32Array;
}

/** Two sequences, one with an image when the kind has a vision tower. */
function batchFor(kind: Kind, seed: number): { batch: Batch; labels: Int32Array } {
  const text = Int32Array.from([60, 61, 62, 63, 64, 65, 66]);
  if (kind === 'qwen2') {
    const b = packSequences([Int32Array.from([3, 4, 5, 6, 7, 8]), text]);
    return { batch: b, labels: nextTokenLabels(b.inputIds, b.cuSeqlens) };
  }
  const ids = Int32Array.from([3, 4, T.visionStart, ...new Array(4).fill(T.imagePad), T.visionEnd, 50, 51, 52]);
  const batch = {
    ...packSequences([ids, text]),
    pixelValues: Float32Array.from(randn(rng(seed), 16 * 1176)),
    imageGrids: Int32Array.from([1, 4, 4]),
  };
  return { batch, labels: nextTokenLabels(batch.inputIds, batch.cuSeqlens) };
}

for (const kind of ['qwen2', 'qwen2_vl', 'qwen2_5_vl'] as Kind[]) {
  test(`${kind} bf16: token log-probs, SFT loss and every gradient match float64 within bf16 tolerance`, async () => {
    const { bf, f64 } = await twins(kind, 21);
    const { batch, labels } = batchFor(kind, 3);
    const lpB = await bf.tokenLogprobs(batch, { labels });
    const lpD = await f64.tokenLogprobs(batch, { labels });
    // Log-probs of the tiny vocabulary are ~-6.5; measured error ~1.3e-3 (the softmax runs in float32).
    for (let i = 0; i < lpD.logp.length; i++) {
      assert.ok(Math.abs(lpB.logp[i] - lpD.logp[i]) <= 0.01, `${kind} logp[${i}] ${lpB.logp[i]} vs ${lpD.logp[i]}`);
    }
    const sB = await bf.backwardSft(batch, { labels });
    const sD = await f64.backwardSft(batch, { labels });
    assert.ok(Math.abs(sB.loss - sD.loss) <= 2e-3 * Math.abs(sD.loss), `${kind} loss ${sB.loss} vs ${sD.loss}`);
    const gB = bf.gradients();
    const gD = f64.gradients();
    assert.deepEqual(Object.keys(gB).sort(), Object.keys(gD).sort());
    for (const [name, g] of Object.entries(gD)) {
      assert.equal(gB[name].dtype, 'bf16', `${name}: the gradient has the parameter's dtype`);
      const e = relErr(values(gB[name]), values(g));
      // bf16 rounding of activations and of the gradient itself: measured up to 2% (a bias's).
      assert.ok(e < 0.05, `${kind} ${name}: relative gradient error ${e.toExponential(2)}`);
    }
    await bf.dispose();
    await f64.dispose();
  });
}

test('bf16 AdamW keeps float32 master weights: the update follows the formula there, the weights are its bf16 rounding', async () => {
  const { bf, f64 } = await twins('qwen2', 22);
  await f64.dispose();
  const { batch, labels } = batchFor('qwen2', 0);
  const w0 = Object.fromEntries(Object.entries(bf.parameters()).map(([k, t]) => [k, values(t)]));
  await bf.backwardSft(batch, { labels });
  const g = Object.fromEntries(Object.entries(bf.gradients()).map(([k, t]) => [k, values(t)]));
  const o = { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
  await bf.optimizerStep(o);
  const state = bf.optimizerState();
  const specs = bf.parameterSpecs();
  for (const name of [
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.mlp.down_proj.weight',
    'model.norm.weight',
  ]) {
    const master = state[`master.${name}`];
    assert.ok(master, `master.${name} in the optimizer state`);
    assert.equal(master.dtype, 'f32');
    const matrix = specs.find((s) => s.name === name)!.shape.length > 1;
    // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps), from the f32 master.
    const want = Array.from(
      w0[name],
      (x, i) => (matrix ? x * (1 - o.lr * o.weightDecay) : x) - (o.lr * g[name][i]) / (Math.abs(g[name][i]) + o.eps),
    );
    const m = master.toArray() as Float32Array;
    for (let i = 0; i < m.length; i++) {
      assert.ok(
        Math.abs(m[i] - want[i]) <= 1e-6 + 1e-5 * Math.abs(want[i]),
        `${name} master[${i}] ${m[i]} vs ${want[i]}`,
      );
    }
    assert.deepEqual(
      Array.from(values(bf.parameters()[name])),
      Array.from(roundBf16(m)),
      `${name}: weights = bf16(master)`,
    );
  }
  await bf.dispose();
});

test('bf16 AdamW: steps too small for a bf16 weight still accumulate in the master weights', async () => {
  const bf = await Model.create(tinyConfig('qwen2'), { seed: 23, dtype: 'bfloat16' });
  const { batch, labels } = batchFor('qwen2', 0);
  const name = 'model.norm.weight'; // initialized to 1: one bf16 ulp there is 2^-7 = 0.0078
  const w0 = values(bf.parameters()[name]);
  const lr = 1e-3; // each step moves a weight by ~lr (Adam's normalized step): under half an ulp
  for (let s = 0; s < 12; s++) {
    await bf.backwardSft(batch, { labels });
    await bf.optimizerStep({ lr });
    if (s === 0)
      assert.deepEqual(Array.from(values(bf.parameters()[name])), Array.from(w0), 'one step is below bf16 resolution');
  }
  const master = Float64Array.from(bf.optimizerState()[`master.${name}`].toArray() as Float32Array);
  const w = values(bf.parameters()[name]);
  const movedMaster = master.filter((v, i) => Math.abs(v - w0[i]) > 5 * lr).length;
  const movedWeights = w.filter((v, i) => v !== w0[i]).length;
  assert.ok(movedMaster > master.length / 2, `master weights moved: ${movedMaster}/${master.length}`);
  assert.ok(movedWeights > 0, 'the accumulated steps reach the bf16 weights');
  assert.deepEqual(Array.from(w), Array.from(roundBf16(Float32Array.from(master))), 'weights = bf16(master)');
  await bf.dispose();
});

test('bf16 GRPO backward (fused logprob + fused GRPO loss in bf16) matches float64', async () => {
  const { bf, f64 } = await twins('qwen2_vl', 24);
  const { batch, labels } = batchFor('qwen2_vl', 4);
  const spec = {
    labels,
    advantages: Float32Array.from([0.8, -1.2]),
    lossType: 'dr_grpo' as const,
    maxCompletionLength: 16,
    beta: 0,
  };
  const rB = await bf.backwardGrpo(batch, spec);
  const rD = await f64.backwardGrpo(batch, spec);
  assert.equal(rB.tokens, rD.tokens);
  assert.ok(Math.abs(rB.loss - rD.loss) <= 2e-3 * Math.abs(rD.loss) + 1e-4, `loss ${rB.loss} vs ${rD.loss}`);
  assert.ok(
    Math.abs(rB.entropyMean - rD.entropyMean) <= 2e-3 * rD.entropyMean,
    `entropy ${rB.entropyMean} vs ${rD.entropyMean}`,
  );
  const gD = f64.gradients();
  const gB = bf.gradients();
  for (const [name, g] of Object.entries(gD)) {
    const e = relErr(values(gB[name]), values(g));
    assert.ok(e < 0.05, `${name}: relative gradient error ${e.toExponential(2)}`);
  }
  await bf.dispose();
  await f64.dispose();
});

for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as const) {
  test(`${kind} bf16 generate (KV cache): tokens are float64's argmax up to bf16 ties, log-probs match float64`, async () => {
    const { bf, f64 } = await twins(kind, 25);
    const { batch } = batchFor(kind, 5);
    const prompts = [0, 1].map((i) => batch.inputIds.slice(batch.cuSeqlens[i], batch.cuSeqlens[i + 1]));
    const n = 6;
    const gen = await bf.generateBatch(batch, { maxNewTokens: n, temperature: 0 });
    for (let i = 0; i < 2; i++) {
      assert.equal(gen.tokens[i].length, n);
      const full = Int32Array.from([...prompts[i], ...gen.tokens[i]]);
      const one =
        i === 0
          ? { ...packSequences([full]), pixelValues: batch.pixelValues, imageGrids: batch.imageGrids }
          : packSequences([full]);
      const logits = values(await f64.logits(one));
      const V = T.vocabSize;
      const { logp } = await f64.tokenLogprobs(one, { labels: nextTokenLabels(one.inputIds, one.cuSeqlens) });
      for (let s = 0; s < n; s++) {
        const row = logits.subarray((prompts[i].length - 1 + s) * V, (prompts[i].length + s) * V);
        const best = Math.max(...row);
        const chosen = row[gen.tokens[i][s]];
        // Greedy in bf16 may pick another token only where float64 sees a near-tie.
        assert.ok(best - chosen <= 0.01, `${kind} seq ${i} step ${s}: chose logit ${chosen}, max ${best}`);
        const want = logp[prompts[i].length - 1 + s];
        assert.ok(
          Math.abs(gen.logprobs[i][s] - want) <= 0.01,
          `${kind} seq ${i} step ${s}: logp ${gen.logprobs[i][s]} vs ${want}`,
        );
      }
    }
    // Sampling in bf16 runs and a seed reproduces it.
    const opts = { maxNewTokens: 5, temperature: 0.8, topP: 0.9, seed: 7 };
    const a = await bf.generateBatch(batch, opts);
    const b = await bf.generateBatch(batch, opts);
    assert.deepEqual(a.tokens, b.tokens);
    await bf.dispose();
    await f64.dispose();
  });
}
