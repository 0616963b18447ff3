// backwardGrpo's per-token controls: the entropy bonus (its value and its gradient against finite
// differences of the model's own entropies, float64), the top-entropy-quantile mask (against a mask
// computed here from tokenLogprobs), and isWeights (a detached, linear weight of the policy term).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, nextTokenLabels, packSequences, tinyConfig } from '../../src/index';
import { addon, assertClose, rng } from '../helpers/addon';

function batchOf(seed: number) {
  const r = rng(seed);
  const seqs = [7, 5, 9].map((n) => Int32Array.from({ length: n }, () => 3 + Math.floor(r() * 90)));
  const b = packSequences(seqs);
  const labels = nextTokenLabels(b.inputIds, b.cuSeqlens);
  // The first two tokens of each sequence are "prompt": no label.
  for (let s = 0; s < seqs.length; s++) for (let t = 0; t < 2; t++) labels[b.cuSeqlens[s] + t] = -100;
  return { b, labels, advantages: Float32Array.from([0.9, -1.3, 0.4]) };
}

function grads(m: Model): Record<string, Float64Array> {
  return Object.fromEntries(
    Object.entries(m.gradients()).map(([k, t]) => [k, Float64Array.from(t.toArray() as Float64Array)]),
  );
}

/** Sum of the entropies of the labelled tokens, float64. */
async function entropySum(m: Model, b: ReturnType<typeof batchOf>): Promise<number> {
  const { entropy } = await m.tokenLogprobs(b.b, { labels: b.labels });
  let s = 0;
  b.labels.forEach((l, i) => (s += l >= 0 ? entropy[i] : 0));
  return s;
}

test('entropy bonus: loss -c * sum_t w_t H_t, gradient equal to finite differences (f64)', async () => {
  const m = await Model.create(tinyConfig('qwen2'), { seed: 3, dtype: 'float64' });
  const data = batchOf(1);
  const n = Array.from(data.labels).filter((l) => l >= 0).length;
  const c = 0.37;
  // Zero advantages and no KL: the policy term is 0, only the bonus remains (dapo: w = 1 / n).
  const zeroAdv = new Float32Array(3);
  const rep = await m.backwardGrpo(data.b, { labels: data.labels, advantages: zeroAdv, entropyCoef: c });
  const h = await entropySum(m, data);
  assertClose([rep.loss], [(-c * h) / n], { rtol: 1e-6, what: 'bonus value (entropies read back in f32)' });
  const g = grads(m)['model.norm.weight'];
  m.zeroGrad();
  const w0 = Float64Array.from(m.parameters()['model.norm.weight'].toArray() as Float64Array);
  const eps = 1e-6;
  for (const k of [0, 3, 7]) {
    const at = async (d: number): Promise<number> => {
      const w = w0.slice();
      w[k] += d;
      await m.setParameters({ ...m.parameters(), 'model.norm.weight': new addon.Tensor(w, [w.length]) });
      // The reported loss is computed in the model's float64 (tokenLogprobs returns float32).
      const r = await m.backwardGrpo(data.b, { labels: data.labels, advantages: zeroAdv, entropyCoef: c });
      m.zeroGrad();
      return r.loss;
    };
    const fd = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    assertClose([g[k]], [fd], { rtol: 1e-5, atol: 1e-9, what: `d bonus / d norm.weight[${k}]` });
  }
  await m.dispose();
});

test('entropyTopQuantile trains exactly the top-q tokens by entropy (mask built here from tokenLogprobs)', async () => {
  const data = batchOf(2);
  const m = await Model.create(tinyConfig('qwen2'), { seed: 4, dtype: 'float64' });
  const { entropy } = await m.tokenLogprobs(data.b, { labels: data.labels });
  const active = Array.from(data.labels.keys()).filter((i) => data.labels[i] >= 0);
  for (const q of [0.2, 0.5, 1]) {
    const k = Math.ceil(q * active.length);
    const top = new Set(
      active
        .slice()
        .sort((a, b) => entropy[b] - entropy[a])
        .slice(0, k),
    );
    const keep = Float32Array.from(data.labels, (_, i) => (top.has(i) ? 1 : 0));
    const rep = await m.backwardGrpo(data.b, { ...data, entropyTopQuantile: q });
    const masked = grads(m);
    m.zeroGrad();
    await m.backwardGrpo(data.b, { ...data, isWeights: keep });
    const byHand = grads(m);
    m.zeroGrad();
    for (const [name, g] of Object.entries(byHand))
      assertClose(masked[name], g, { rtol: 1e-9, atol: 1e-14, what: `q=${q} ${name}` });
    assert.equal(rep.stats?.entropyKeptFraction, k / active.length, `q=${q} kept fraction`);
    const keptMean = [...top].reduce((a, i) => a + entropy[i], 0) / k;
    assertClose([rep.stats?.entropyKeptMean ?? NaN], [keptMean], { rtol: 1e-6, what: `q=${q} kept mean` });
  }
  await m.dispose();
});

test('isWeights scale the policy term linearly and leave the KL term alone', async () => {
  const data = batchOf(3);
  const m = await Model.create(tinyConfig('qwen2'), { seed: 5, dtype: 'float64' });
  const ones = Float32Array.from(data.labels, () => 1);
  const twos = Float32Array.from(data.labels, () => 2);
  const run = async (isWeights?: Float32Array) => {
    const rep = await m.backwardGrpo(data.b, { ...data, isWeights });
    const g = grads(m);
    m.zeroGrad();
    return { rep, g };
  };
  const plain = await run();
  const one = await run(ones);
  const two = await run(twos);
  assertClose([one.rep.loss, two.rep.loss], [plain.rep.loss, 2 * plain.rep.loss], { rtol: 1e-12, what: 'loss' });
  for (const [name, g] of Object.entries(plain.g))
    assertClose(
      two.g[name],
      Float64Array.from(g, (v) => 2 * v),
      { rtol: 1e-10, atol: 1e-14, what: name },
    );
  await assert.rejects(
    m.backwardGrpo(data.b, { ...data, isWeights: new Float32Array(3) }),
    /loss\.isWeights' must be one weight per token/,
  );
  await assert.rejects(
    m.backwardGrpo(data.b, { ...data, entropyTopQuantile: 0 }),
    /loss\.entropyTopQuantile' must be in \(0, 1\]/,
  );
  await m.dispose();
});
