// The paper's GRPO reward: the reward model judges each distinct answer of a group once; a completion
// without one option scores 0; the model-backed term equals the judge's own score of the same samples.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { sampleOf } from '../helpers/samples';
import { exactMatchTerm, judgedAnswers, rewardModelTerm } from '../../src/cycle/judge_reward';
import { judgeRewards } from '../../src/cycle/judge';
import { scoreCompletion, scoreGroup, type GrpoPrompt } from '../../src/train/rewards';
import { grpoPromptsFromSamples } from '../../src/train/grpo_rollout';
import { synthesize } from '../../src/data/medsynth/world';
import { TextTokenizer } from '../../src/data/tokenizer';
import { Model } from '../../src/model/model';
import { tinyConfig } from '../../src/model/tiny';
import { tempDir } from '../helpers/temp_dir';

const sample = (images: string[]) =>
  sampleOf({
    id: 'q1',
    dataset: 'MedSynth',
    images,
    question: 'Which modality is this?',
    options: ['MRI', 'X-Ray', 'CT', 'Fundus photography'],
  });

const prompt: GrpoPrompt = grpoPromptsFromSamples([sample(['x.png'])], 'answer')[0];
const replies = [
  '<answer> C </answer>',
  '<answer>CT</answer>',
  '<answer> A </answer>',
  'no idea',
  '<answer> D </answer>',
];

test('judgedAnswers: one judgement per distinct answer, 0 without an answer, clipped, NaN kept', async () => {
  const calls: string[][] = [];
  const scores = new Map([
    ['CT', 0.9],
    ['MRI', 1.7],
    ['Fundus photography', Number.NaN],
  ]);
  const got = await judgedAnswers(replies, prompt, async (answers) => {
    calls.push(answers);
    return answers.map((a) => scores.get(a)!);
  });
  assert.deepEqual(calls, [['CT', 'MRI', 'Fundus photography']], 'C and CT are one answer, judged once');
  assert.deepEqual(got.slice(0, 4), [0.9, 0.9, 1, 0]);
  assert.ok(Number.isNaN(got[4]));
});

test('scoreGroup: a group function and the one-completion function agree; totals weight the terms', async () => {
  const judge = { name: 'reward_model', weight: 0.8, fn: async (c: string) => (c.includes('C') ? 0.5 : 0.25) };
  const grouped = { ...judge, group: async (cs: readonly string[]) => cs.map((c) => (c.includes('C') ? 0.5 : 0.25)) };
  const em = exactMatchTerm(0.2);
  const a = await scoreGroup([grouped, em], replies.slice(0, 3), prompt);
  const b = await Promise.all(replies.slice(0, 3).map((r) => scoreCompletion([judge, em], r, prompt)));
  assert.deepEqual(a, b);
  assert.deepEqual(
    a.map((x) => x.total),
    [0.8 * 0.5 + 0.2, 0.8 * 0.5 + 0.2, 0.8 * 0.25],
  );
  const short = { ...judge, group: async () => [1] };
  await assert.rejects(scoreGroup([short], replies, prompt), /reward 'reward_model': scored 1 of a group of 5/);
});

test('rewardModelTerm on a tiny judge: the group scores are the judge P(Yes) of each answered sample', async () => {
  const dir = tempDir('judge-reward');
  await synthesize({ out: dir, count: 1, seed: 3, modalities: ['CT'] as never });
  const image = path.join(dir, 'images', fs.readdirSync(path.join(dir, 'images'))[0]);
  const withImage: GrpoPrompt = grpoPromptsFromSamples([sample([image])], 'answer')[0];
  const tok = TextTokenizer.load();
  const model = await Model.create(tinyConfig('qwen2_vl'), { seed: 5 });
  try {
    const term = rewardModelTerm(model, tok, 0.8);
    const got = await term.group!(replies, withImage);
    const direct = await judgeRewards(
      model,
      tok,
      ['CT', 'CT', 'MRI'].map((answer) => ({ images: [image], sample: { ...withImage.sample, answer } })),
    );
    // the term judges the distinct answers (CT, MRI) as one batch, the direct call three samples: f32 sums
    // in another packing agree to rounding
    got.slice(0, 3).forEach((v, i) => assert.ok(Math.abs(v - direct[i]) < 1e-6, `${v} vs ${direct[i]}`));
    assert.equal(got[3], 0);
    assert.ok(got.every((x) => x >= 0 && x <= 1));
    assert.ok(Math.abs((await term.fn(replies[2], withImage)) - direct[2]) < 1e-6, 'the one-completion form agrees');
  } finally {
    await model.dispose();
  }
});
