// The GRPO trainer's options beyond the loss (docs/GRPO.md "The trainer loop"): each changes what it
// should in a short CPU run of the tiny model -- rollout/trainer identity (images, packed batches,
// temperature != 1, top-k and top-p), overlong filtering and penalty, KL in the reward, the
// top-entropy mask, truncated IS, the non-finite skip/stop rule, the warnings -- and bad settings are
// refused before any work, naming the field.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { synthesize } from '../../src/data/medsynth';
import type { Sample } from '../../src/data/proto';
import { loadSampleFile } from '../../src/data/sample_files';
import { TextTokenizer } from '../../src/data/tokenizer';
import { Model, tinyConfig } from '../../src/index';
import { trainingMicroBatches } from '../../src/train/grpo_batches';
import { klEstimate, mismatchSums, truncatedIsWeights } from '../../src/train/grpo_logprob_terms';
import { GRPO_DEFAULTS, resolveGrpoOptions, type GrpoOptions } from '../../src/train/grpo_options';
import { grpoPromptsFromSamples, type RolloutGroup } from '../../src/train/grpo_rollout';
import { trainGrpo } from '../../src/train/grpo_trainer';
import { overlongPenalty } from '../../src/train/overlong';
import { defaultRewards, type Reward } from '../../src/train/rewards';
import { assertClose } from '../helpers/addon';
import { tempDir } from '../helpers/temp_dir';

const tok = TextTokenizer.load();
let dir = '';
let samples: Sample[] = [];

before(async () => {
  dir = tempDir('grpo-opts');
  await synthesize({ out: dir, count: 24, seed: 5, size: 56 });
  samples = loadSampleFile(path.join(dir, 'medsynth.jsonl')).map((s) => ({
    ...s,
    images: s.images.map((p) => path.join(dir, p)),
  }));
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const base = (extra: Partial<GrpoOptions> = {}): GrpoOptions => ({
  tokenizer: tok,
  steps: 1,
  promptsPerStep: 3,
  groupSize: 4,
  maxNewTokens: 6,
  lr: 1e-3,
  seed: 3,
  progress: false,
  ...extra,
});

test('rollout and trainer log-probs agree within 1e-5 in f32: images, packed, temperature 0.7, top-k, top-p', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 6 });
  const prompts = grpoPromptsFromSamples(samples.slice(0, 3), 'answer');
  assert.ok(
    prompts.every((p) => p.images.length > 0),
    'every prompt has an image',
  );
  for (const oldLogp of ['rollout', 'recompute'] as const) {
    const [s] = await trainGrpo(
      m,
      prompts,
      defaultRewards('answer'),
      base({ temperature: 0.7, topK: 20, topP: 0.9, oldLogp, beta: 0.01 }),
    );
    assert.ok(s.tokens.trained > 12, 'several sequences packed in the first micro-batch');
    assert.ok(s.mismatch.maxAbs <= 1e-5, `${oldLogp}: max |rollout - trainer| = ${s.mismatch.maxAbs}`);
    assert.ok(s.mismatch.meanAbs <= s.mismatch.maxAbs && s.mismatch.kl <= 1e-9, JSON.stringify(s.mismatch));
    assert.ok(s.logRatioAbs <= 1e-5, `mean |logp - old| on the first pass: ${s.logRatioAbs}`);
  }
  await m.dispose();
});

test('mismatch sums, truncated IS weights and the KL estimators by hand', () => {
  const labels = Int32Array.from([-100, 5, 6, -100, 7]);
  const rollout = Float32Array.from([9, -1, -2, 9, -0.5]);
  const trainer = Float32Array.from([0, -1.1, -1.8, 0, -0.5]);
  const s = mismatchSums(rollout, trainer, labels);
  assertClose([s.sumAbs, s.maxAbs, s.tokens], [0.3, 0.2, 3], { rtol: 1e-6 });
  const k3 = (d: number) => Math.exp(d) - 1 - d;
  assertClose([s.sumKl], [k3(-0.1) + k3(0.2)], { rtol: 1e-5 });
  const w = truncatedIsWeights(trainer, rollout, labels, 1.1);
  assertClose(w, [0, Math.exp(-0.1), 1.1, 0, 1], { rtol: 1e-6 });
  assertClose(
    [klEstimate('k1', -1, -1.5), klEstimate('k2', -1, -1.5), klEstimate('k3', -1, -1.5)],
    [0.5, 0.125, k3(-0.5)],
    {
      rtol: 1e-12,
    },
  );
});

test("overlong: DAPO's penalty by hand, as a reward term; masked truncated completions get no loss", async () => {
  // L = 8, buffer 4: 0 up to 4 tokens, then a ramp to -1 at 8
  assert.deepEqual(
    [1, 4, 5, 6, 8, 9].map((n) => overlongPenalty(n, 8, 4)),
    [0, 0, -0.25, -0.5, -1, -1],
  );
  assert.equal(overlongPenalty(8, 8, 0), 0);
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 2 });
  const prompts = grpoPromptsFromSamples(samples.slice(3, 6), 'answer');
  let groups: readonly RolloutGroup[] = [];
  const hook = { onRollouts: (_: number, g: readonly RolloutGroup[]) => void (groups = g) };
  const rewards = defaultRewards('answer');
  const [s] = await trainGrpo(
    m,
    prompts,
    rewards,
    base({ maxNewTokens: 5, overlongBuffer: 3, overlongPenaltyFactor: 0.5, beta: 0.01 }),
    hook,
  );
  assert.ok('overlong' in s.rewards, Object.keys(s.rewards).join(','));
  for (const g of groups)
    g.tokens.forEach((t, k) => {
      const pen = overlongPenalty(t.length, 5, 3);
      assert.equal(g.terms[k][rewards.length], pen, 'the last term is the penalty');
      const others = rewards.reduce((a, r, j) => a + r.weight * g.terms[k][j], 0);
      assertClose([g.rewards[k]], [others + 0.5 * pen], { rtol: 1e-12, atol: 1e-12 });
    });
  // maxNewTokens 2: nearly every completion of the random model is cut; masked, only the finished
  // ones train (beta > 0, so a zero advantage does not drop a completion by itself).
  const cut = base({ maxNewTokens: 2, beta: 0.01, lr: 0 });
  const [plain] = await trainGrpo(m, prompts, rewards, cut, hook);
  const finishedPlain = groups.flatMap((g) => g.tokens.filter((_, k) => !g.truncated[k]));
  assert.equal(plain.tokens.trained, plain.tokens.completion, 'unmasked: every completion token trains');
  const [maskedRun] = await trainGrpo(m, prompts, rewards, { ...cut, maskTruncatedCompletions: true }, hook);
  const finished = groups.flatMap((g) => g.tokens.filter((_, k) => !g.truncated[k]));
  assert.equal(
    maskedRun.tokens.trained,
    finished.reduce((a, t) => a + t.length, 0),
  );
  assert.ok(maskedRun.tokens.trained < maskedRun.tokens.completion, 'some completions were cut and masked');
  assert.equal(finishedPlain.length, finished.length, 'same seed, same rollouts');
  await m.dispose();
});

test('KL in the reward: the mean summed KL equals one computed here from the reference model', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 4 });
  const reference = await Model.create(tinyConfig('qwen2_vl'), { seed: 9 }); // far from the policy
  const prompts = grpoPromptsFromSamples(samples.slice(6, 9), 'answer');
  let groups: readonly RolloutGroup[] = [];
  // Counts the reference's forward passes: with beta 0 only KL in the reward needs them.
  let refCalls = 0;
  const refLogprobs = reference.tokenLogprobs.bind(reference);
  reference.tokenLogprobs = (...args) => (refCalls++, refLogprobs(...args));
  const opts = { ...base({ klInReward: 0.1, kl: 'k3' as const, temperature: 0.8, lr: 0 }), reference };
  const [s] = await trainGrpo(m, prompts, defaultRewards('answer'), opts, {
    onRollouts: (_, g) => void (groups = g),
  });
  const klPasses = trainingMicroBatches(groups, new Float32Array(groups.length * 4), GRPO_DEFAULTS.tokenBudget).length;
  assert.equal(refCalls, klPasses, 'beta 0: one reference pass per KL micro-batch, none for the loss');
  // Independently: each completion's sum over its tokens of k3(reference - rollout log-prob).
  const mbs = trainingMicroBatches(groups, new Float32Array(groups.length * 4), 100000);
  let total = 0;
  let count = 0;
  for (const mb of mbs) {
    const { logp: refLogp } = await reference.tokenLogprobs(mb.batch, { labels: mb.labels, temperature: 0.8 });
    const cu = mb.batch.cuSeqlens as Int32Array;
    for (let q = 0; q + 1 < cu.length; q++) {
      let sum = 0;
      for (let i = cu[q]; i < cu[q + 1]; i++) if (mb.labels[i] >= 0) sum += klEstimate('k3', mb.oldLogp[i], refLogp[i]);
      total += sum;
      count++;
    }
  }
  assert.equal(count, groups.length * 4, 'every completion has tokens');
  assertClose([s.klInReward], [total / count], { rtol: 1e-6 });
  assert.ok(s.klInReward > 0.01, `k3 KL to another model: ${s.klInReward}`);
  // Without a reference given, the frozen copy of the policy: the KL is the rollout numerics only.
  const [self] = await trainGrpo(m, prompts, defaultRewards('answer'), { ...opts, reference: undefined });
  assert.ok(Math.abs(self.klInReward) < 1e-6, `KL to the policy itself: ${self.klInReward}`);
  await Promise.all([m.dispose(), reference.dispose()]);
});

test('entropyTopQuantile trains the high-entropy tokens only; entropyCoef and the loss variants run', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 8 });
  const prompts = grpoPromptsFromSamples(samples.slice(9, 12), 'answer');
  const [s] = await trainGrpo(m, prompts, defaultRewards('answer'), base({ entropyTopQuantile: 0.25, beta: 0.01 }));
  assert.ok(s.entropyKept.fraction >= 0.25 && s.entropyKept.fraction < 0.4, `kept ${s.entropyKept.fraction}`);
  assert.ok(s.entropyKept.mean > s.entropy, `kept tokens' entropy ${s.entropyKept.mean} vs all ${s.entropy}`);
  for (const extra of [
    { entropyCoef: 0.01 },
    { importanceSamplingLevel: 'sequence' as const, numIterations: 2 },
    { delta: 2, epsHigh: 0.28, numIterations: 2 },
    { policyLoss: 'cispo' as const, numIterations: 2 },
    { oldLogp: 'recompute' as const, tisCap: 2 },
  ]) {
    const steps = await trainGrpo(m, prompts, defaultRewards('answer'), base({ ...extra, beta: 0.01 }));
    assert.ok(Number.isFinite(steps[0].loss), `${JSON.stringify(extra)}: loss ${steps[0].loss}`);
    assert.ok(steps[0].seqClipLow >= 0 && steps[0].seqClipHigh >= 0);
  }
  await m.dispose();
});

test('a non-finite loss skips the update, is counted, and stops the run after maxSkippedSteps in a row', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const prompts = grpoPromptsFromSamples(samples.slice(0, 4), 'answer');
  // A reward of Infinity for one completion: its group's advantages are NaN, so is the loss.
  let n = 0;
  const poison: Reward = { name: 'poison', weight: 1, fn: () => (n++ % 4 === 0 ? Infinity : n % 2) };
  const before = Object.fromEntries(
    Object.entries(m.parameters()).map(([k, t]) => [k, (t.toArray() as Float32Array).slice()]),
  );
  const warnings: string[] = [];
  await assert.rejects(
    trainGrpo(m, prompts, [poison], base({ steps: 5, maxSkippedSteps: 2, promptsPerStep: 2 }), {
      onWarning: (l) => warnings.push(l),
    }),
    /grpo: stopped at step 2 after 2 consecutive skipped updates \(steps 1-2\): the loss was NaN at step 1/,
  );
  assert.equal(warnings.filter((w) => /step \d: the loss was NaN, the update was skipped/.test(w)).length, 2);
  for (const [k, t] of Object.entries(m.parameters()))
    assert.deepEqual(t.toArray(), before[k], `${k} moved during skipped steps`);
  assert.equal(m.info.optimizerStep, 0);
  await m.dispose();
});

test('warnings: zero reward variance, said once per warnEvery steps', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const prompts = grpoPromptsFromSamples(samples.slice(0, 4), 'answer');
  const flat: Reward = { name: 'flat', weight: 1, fn: () => 1 };
  const warnings: string[] = [];
  await trainGrpo(m, prompts, [flat], base({ steps: 4, warnEvery: 3, maxNewTokens: 2 }), {
    onWarning: (l) => warnings.push(l),
  });
  const zero = warnings.filter((w) => /groups have zero reward variance/.test(w));
  assert.deepEqual(
    zero.map((w) => /step (\d+)/.exec(w)?.[1]),
    ['1', '4'],
  );
  assert.ok(
    warnings.some((w) => /% of the completions hit --max-new-tokens/.test(w)),
    warnings.join('\n'),
  );
  await m.dispose();
});

test('bad settings are refused before any work, naming the fields', () => {
  const cases: [Partial<GrpoOptions>, RegExp][] = [
    [{ delta: 1.1, epsHigh: 0.28 }, /grpo: delta must be > 1 \+ epsHigh = 1.28/],
    [{ delta: 3, policyLoss: 'cispo' }, /grpo: delta applies to policyLoss clip only/],
    [{ entropyTopQuantile: 0 }, /grpo: entropyTopQuantile must be in \(0, 1\]/],
    [{ overlongBuffer: 8, maxNewTokens: 8 }, /grpo: overlongBuffer \(8\) must be < maxNewTokens \(8\)/],
    [{ tokenBudget: 64, maxNewTokens: 64 }, /grpo: tokenBudget \(64\) must exceed maxNewTokens \(64\)/],
    [{ tisCap: 2 }, /grpo: tisCap .* needs oldLogp 'recompute'/],
    [{ tisCap: 0.5, oldLogp: 'recompute' }, /grpo: tisCap must be >= 1/],
    [{ groupSize: 1 }, /grpo: groupSize must be >= 2/],
    [{ importanceSamplingLevel: 'group' as 'token' }, /grpo: importanceSamplingLevel must be token or sequence/],
    [{ maxSkippedSteps: 0 }, /grpo: maxSkippedSteps must be a whole number >= 1/],
  ];
  for (const [opts, re] of cases) assert.throws(() => resolveGrpoOptions(opts), re, JSON.stringify(opts));
});
