// generate's repetitionPenalty against transformers' RepetitionPenaltyLogitsProcessor written out by
// hand in float64: every token already in the sequence (prompt included) has its raw logit divided by
// the penalty when positive, multiplied when negative, before temperature and top-k/top-p. The
// returned log-probs stay those of softmax(logits / temperature) without the penalty (what the GRPO
// loss recomputes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, packSequences, tinyConfig, TINY_TOKENS as T } from '../../src/index';
import type { ModelBatch } from '../../src/model/model';
import { assertClose, randn, rng } from '../helpers/addon';

const V = T.vocabSize;

function penalized(row: Float32Array, seen: Set<number>, penalty: number): Float64Array {
  const out = Float64Array.from(row);
  for (const t of seen) out[t] = out[t] < 0 ? out[t] * penalty : out[t] / penalty;
  return out;
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let v = 1; v < a.length; v++) if (a[v] > a[best]) best = v;
  return best;
};

function logSoftmaxAt(row: Float32Array, k: number): number {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return row[k] - m - Math.log(s);
}

/** Greedy decoding with the penalty, one full forward per step (the slow, obviously-right twin). */
async function referenceGreedy(
  m: Model,
  prompt: Int32Array,
  image: { pixels: Float32Array; grid: number[] } | null,
  steps: number,
  penalty: number,
): Promise<{ tokens: number[]; logprobs: number[] }> {
  const seq = Array.from(prompt);
  const tokens: number[] = [];
  const logprobs: number[] = [];
  for (let step = 0; step < steps; step++) {
    const batch: ModelBatch = { ...packSequences([Int32Array.from(seq)]) };
    if (image) Object.assign(batch, { pixelValues: image.pixels, imageGrids: Int32Array.from(image.grid) });
    const logits = (await m.logits(batch)).toArray() as Float32Array;
    const last = logits.subarray((seq.length - 1) * V, seq.length * V);
    const next = argmax(penalized(last, new Set(seq), penalty));
    tokens.push(next);
    logprobs.push(logSoftmaxAt(last, next));
    seq.push(next);
  }
  return { tokens, logprobs };
}

test('repetitionPenalty: greedy and top-k 1 sampling equal the float64 reference; log-probs stay unpenalized', async () => {
  const m = await Model.create(tinyConfig('qwen2_5_vl'), { seed: 21 });
  try {
    const r = rng(4);
    const pads = (4 / 2) * (6 / 2);
    const imageIds = Int32Array.from([11, 12, 13, T.visionStart, ...new Array(pads).fill(T.imagePad), T.visionEnd, 21]);
    const image = { pixels: Float32Array.from(randn(r, 4 * 6 * 1176)), grid: [1, 4, 6] };
    const text = Int32Array.from([7, 8, 9, 10, 7, 7]);
    const steps = 8;
    for (const penalty of [1.8, 0.6]) {
      const batch = {
        ...packSequences([imageIds, text]),
        pixelValues: image.pixels,
        imageGrids: Int32Array.from(image.grid),
      };
      const greedy = await m.generateBatch(batch, { maxNewTokens: steps, temperature: 0, repetitionPenalty: penalty });
      const topk1 = await m.generateBatch(batch, {
        maxNewTokens: steps,
        temperature: 0.7,
        topK: 1,
        repetitionPenalty: penalty,
        seeds: [1, 2],
      });
      let differs = false;
      for (const [i, prompt] of [imageIds, text].entries()) {
        const want = await referenceGreedy(m, prompt, i === 0 ? image : null, steps, penalty);
        assert.deepEqual(Array.from(greedy.tokens[i]), want.tokens, `penalty ${penalty}, prompt ${i}`);
        assert.deepEqual(Array.from(topk1.tokens[i]), want.tokens, `top-k 1 sampling, penalty ${penalty}, prompt ${i}`);
        assertClose(greedy.logprobs[i], want.logprobs, {
          rtol: 1e-4,
          atol: 1e-4,
          what: `greedy log-probs, prompt ${i}`,
        });
        const plain = await referenceGreedy(m, prompt, i === 0 ? image : null, steps, 1);
        differs ||= plain.tokens.join() !== want.tokens.join();
        // Sampled log-probs: under softmax(logits / 0.7) without the penalty.
        const seq = [...Array.from(prompt), ...want.tokens];
        const b: ModelBatch = { ...packSequences([Int32Array.from(seq)]) };
        if (i === 0) Object.assign(b, { pixelValues: image.pixels, imageGrids: Int32Array.from(image.grid) });
        const logits = (await m.logits(b)).toArray() as Float32Array;
        const expect = want.tokens.map((tok, k) => {
          const row = logits.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V).map((x) => x / 0.7);
          return logSoftmaxAt(row, tok);
        });
        assertClose(topk1.logprobs[i], expect, { rtol: 1e-4, atol: 1e-4, what: `log-probs, prompt ${i}` });
      }
      assert.ok(differs, `penalty ${penalty} changed no greedy token: the test would not see a missing penalty`);
    }
    await assert.rejects(
      m.generate([Int32Array.from([1, 2])], { maxNewTokens: 2, repetitionPenalty: 0 }),
      /repetitionPenalty/,
    );
  } finally {
    await m.dispose();
  }
});
