// GRPO rewards on tricky replies: accuracy (answer extraction normalized as the scorer does), format,
// weighting, the judge term, and user reward modules.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  accuracyReward,
  accuracyScore,
  answerReward,
  answerScore,
  defaultRewards,
  selfConsistencyScore,
  formatScore,
  judgeReward,
  loadRewardModule,
  parseRewardWeights,
  scoreCompletion,
  type GrpoPrompt,
} from '../../src/train/rewards';

import { isCorrect } from '../../src/eval/scorer';
import type { Sample } from '../../src/data/proto';
import { extractOption, predictedOption } from '../../src/data/answer_grammar';
import { grpoPromptsFromSamples } from '../../src/train/grpo_rollout';
import { tempDir } from '../helpers/temp_dir';

function sample(options: string[], answer: string): Sample {
  return {
    id: 'q1',
    dataset: 'MedSynth',
    images: ['x.png'],
    modality: 'CT',
    modalityOriginal: 'CT',
    task: 'Modality Recognition',
    taskOriginal: 'Modality Recognition',
    question: 'Which modality is this?',
    options,
    answer,
    rationale: '',
    provenance: { kind: 'SEED', round: 0, sourceFile: '', sourceLine: 0, sourceFormat: '' },
    questionStem: '',
  };
}

const S = sample(['MRI', 'X-Ray', 'CT', 'Fundus photography'], 'CT'); // key: C
const prompt: GrpoPrompt = grpoPromptsFromSamples([S], 'answer')[0];

test('accuracy: letters in every spelling, option text, tags or no tags', () => {
  const right = [
    '<answer> C </answer>',
    '<answer>c</answer>',
    '<answer>(C)</answer>',
    '<answer>C)</answer>',
    '<answer> C. </answer>',
    '<answer>CT</answer>',
    '<answer> ct. </answer>',
    '<answer>C) CT</answer>',
    'C',
    '(c)',
    'CT',
    '<think> bright bone, grey soft tissue, a cross-section </think> <answer> C </answer>',
    '<think>It could be MRI or X-Ray, but it is a cross-section.</think><answer>C</answer>',
    'The answer is C.',
    'Looking at the image, this is a CT scan.',
    '<answer> C </answer> I am confident.',
    '<answer>C</answer><answer>(C)</answer>', // two tags, same option
  ];
  for (const r of right) assert.equal(accuracyScore(r, S), 1, JSON.stringify(r));
  const wrong = [
    '<answer> A </answer>',
    '<answer>MRI</answer>',
    '', // nothing
    '<answer></answer>',
    'I do not know.',
    '<answer>E</answer>', // past the last option
    '<answer>C or A</answer>', // two answers
    '<answer>CT, MRI</answer>',
    '<answer>C</answer> <answer>A</answer>', // two tags, different options
    '(A) or (C)',
    '<think> it is CT </think>', // the think block is not an answer
    'the answer is a guess', // a lower-case article is not a letter
  ];
  for (const r of wrong) assert.equal(accuracyScore(r, S), 0, JSON.stringify(r));
});

test('accuracy: option texts with punctuation, nested texts, and an unscorable key', () => {
  const s = sample(['Grade 1', 'Grade 2', 'Normal', 'Abnormal mass (left)'], 'Abnormal mass (left)');
  assert.equal(accuracyScore('<answer>abnormal mass left</answer>', s), 1);
  assert.equal(
    accuracyScore('<answer>Abnormal mass, (left).</answer>', s),
    1,
    'punctuation is stripped, as the scorer does',
  );
  assert.equal(
    accuracyScore('It is an abnormal mass (left).', s),
    1,
    '"normal" inside the longer option does not count',
  );
  assert.equal(accuracyScore('Normal.', s), 0);
  assert.equal(accuracyScore('<answer>D</answer>', s), 1);
  assert.equal(accuracyScore('grade 12', s), 0, 'whole words only');
  assert.deepEqual(extractOption('<answer>Grade 1 or Grade 2</answer>', s.options), {
    option: undefined,
    why: 'ambiguous',
  });
  assert.deepEqual(extractOption('nothing here', s.options), { option: undefined, why: 'none' });
  // The key is not among the options: the prompt cannot be scored.
  assert.ok(Number.isNaN(accuracyScore('<answer>A</answer>', sample(['a', 'b'], 'c'))));
});

test("accuracy by the benchmark's rule: the answer must be one option as a whole, as the scorer reads it", () => {
  const s = sample(['Spine', 'Brain', 'Retina', 'Blood'], 'Retina');
  const lenientOnly = [
    '<answer> Retina with Drusen. </answer>',
    '<answer> the Retina </answer>',
    'It shows the retina.',
  ];
  for (const c of lenientOnly) {
    assert.equal(accuracyScore(c, s), 1, c);
    assert.equal(accuracyScore(c, s, 'benchmark'), 0, c);
  }
  for (const c of [
    '<think> A Fundus photography image of the Brain. </think> <answer> Retina </answer>',
    '<answer> c </answer>',
    '<answer>(C)</answer>',
    '<answer> retina. </answer>',
  ]) {
    assert.equal(accuracyScore(c, s, 'benchmark'), 1, c);
  }
  assert.equal(
    accuracyScore('<think> the Retina </think> <answer> Brain </answer>', s, 'benchmark'),
    0,
    'the thought does not count',
  );
  assert.ok(Number.isNaN(accuracyScore('<answer>A</answer>', sample(['a', 'b'], 'c'), 'benchmark')));
  assert.equal(
    accuracyReward(1, 'benchmark').fn('<answer> Retina with Drusen </answer>', grpoPromptsFromSamples([s], 'think')[0]),
    0,
  );
});

test("accuracy by the benchmark's rule agrees with the scorer on random replies", () => {
  // the scorer (scorer.ts: predictedOption + isCorrect) is the reference: a reply is right by the
  // reward exactly when the evaluation would count it right
  const words = ['Retina', 'retina.', 'Brain', 'C', 'c)', '(B)', 'with', 'Drusen', 'the', 'Blood', 'answer', 'is', ''];
  let state = 12345;
  const rand = (n: number) => (state = (state * 1103515245 + 12345) % 2147483648) % n;
  const s = sample(['Spine', 'Brain', 'Retina', 'Blood'], 'Retina');
  let right = 0;
  for (let i = 0; i < 500; i++) {
    const inner = Array.from({ length: 1 + rand(3) }, () => words[rand(words.length)]).join(' ');
    const think = rand(2) ? `<think> ${words[rand(words.length)]} </think> ` : '';
    const reply = rand(4) ? `${think}<answer> ${inner} </answer>` : inner;
    const expected = isCorrect(s, predictedOption(reply, s.options)) ? 1 : 0;
    assert.equal(accuracyScore(reply, s, 'benchmark'), expected, JSON.stringify(reply));
    right += expected;
  }
  assert.ok(right > 20 && right < 480, `a mix of right and wrong replies (${right} right of 500)`);
});

test('self-consistency: the answer, exactly one option, must be one the thought names', () => {
  const options = ['Spine', 'Brain', 'Retina', 'Blood'];
  const right = [
    '<think> A Fundus photography image of the Retina with Drusen. </think> <answer> Retina </answer>',
    '<think> the retina, maybe the brain </think><answer> C </answer>', // a letter names the option
    '<think>Retina.</think> <answer> retina. </answer>',
  ];
  const wrong = [
    '<think> A Fundus photography image of the Retina with Drusen. </think> <answer> Retina Drusen </answer>', // not one option
    '<think> OCT of the Macula with CNV. </think> <answer> Brain </answer>', // the thought names no option
    '<think> the Retina </think> <answer> Brain </answer>',
    '<answer> Retina </answer>', // no thought
    '<think> the Retina </think>', // no answer
  ];
  for (const c of right) assert.equal(selfConsistencyScore(c, options), 1, c);
  for (const c of wrong) assert.equal(selfConsistencyScore(c, options), 0, c);
  // answerScore: the key when the prompt has one, self-consistency when it has none
  const keyed = sample(options, 'Blood');
  const unkeyed = sample(options, '');
  const c = '<think> the Retina </think> <answer> Retina </answer>';
  assert.equal(answerScore(c, keyed), 0, 'with a key the thought does not matter');
  assert.equal(answerScore('<think> the Retina </think> <answer> Blood </answer>', keyed), 1);
  assert.equal(answerScore(c, unkeyed), 1);
  assert.equal(answerReward(2).fn(c, grpoPromptsFromSamples([unkeyed], 'think')[0]), 1);
  assert.equal(answerReward().name, 'answer');
});

test('format: think and answer-only styles', () => {
  const good = {
    think: ['<think> x </think> <answer> C </answer>', '<think>x</think>\n<answer>C</answer>\n'],
    answer: ['<answer> C </answer>', '  <answer>C</answer> '],
  };
  const bad = {
    think: [
      '<answer> C </answer>', // missing think
      '<think> x </think>', // missing answer
      '<think></think><answer>C</answer>', // empty think
      '<think> x </think> <answer> </answer>', // empty answer
      '<think> x </think> <answer> C </answer> extra', // text after
      'so: <think> x </think> <answer> C </answer>', // text before
      '<think> x <answer> B </answer> </think> <answer> C </answer>', // nested
      '<answer> C </answer> <think> x </think>', // wrong order
    ],
    answer: [
      'C',
      '<answer> C',
      '<answer> C </answer> because',
      '<think> x </think> <answer> C </answer>',
      '<answer> </answer>',
      '<answer>A</answer><answer>C</answer>',
    ],
  };
  for (const style of ['think', 'answer'] as const) {
    for (const r of good[style]) assert.equal(formatScore(r, style), 1, `${style}: ${JSON.stringify(r)}`);
    for (const r of bad[style]) assert.equal(formatScore(r, style), 0, `${style}: ${JSON.stringify(r)}`);
  }
});

test('weighted total; weights parse; a NaN term makes the total NaN; a zero weight drops the term', async () => {
  assert.deepEqual(parseRewardWeights('accuracy=1, format=0.5,judge=2e-1'), { accuracy: 1, format: 0.5, judge: 0.2 });
  assert.throws(() => parseRewardWeights('accuracy'), /--reward-weights: expected NAME=NUMBER, got "accuracy"/);
  const rewards = defaultRewards('answer', { format: 0.5 });
  assert.deepEqual(
    rewards.map((r) => [r.name, r.weight]),
    [
      ['accuracy', 1],
      ['format', 0.5],
    ],
  );
  assert.deepEqual(await scoreCompletion(rewards, '<answer> C </answer>', prompt), { terms: [1, 1], total: 1.5 });
  assert.deepEqual(await scoreCompletion(rewards, 'The answer is C', prompt), { terms: [1, 0], total: 1 });
  assert.deepEqual(await scoreCompletion(rewards, '<answer> B </answer>', prompt), { terms: [0, 1], total: 0.5 });
  assert.deepEqual(
    defaultRewards('think', { format: 0 }).map((r) => r.name),
    ['accuracy'],
  );
  const judge = judgeReward(async (_p, c) => (c.includes('C') ? 0.9 : Number.NaN), 2);
  const withJudge = [accuracyReward(), judge];
  assert.deepEqual(await scoreCompletion(withJudge, '<answer>C</answer>', prompt), { terms: [1, 0.9], total: 2.8 });
  const r = await scoreCompletion(withJudge, '<answer>B</answer>', prompt);
  assert.ok(Number.isNaN(r.total) && r.terms[0] === 0, 'judge NaN -> total NaN');
  const throwing = judgeReward(async () => {
    throw new Error('judge down');
  });
  assert.ok(Number.isNaN(await throwing.fn('x', prompt)));
});

test('reward modules: default and named exports, CommonJS and ESM; errors name the file', async () => {
  const dir = tempDir('rewards');
  try {
    const cjs = path.join(dir, 'r.cjs');
    fs.writeFileSync(
      cjs,
      'module.exports = { brevity: (c) => (c.length < 30 ? 1 : 0), mentionsKey: async (c, p) => (c.includes(p.sample.answer) ? 1 : 0) };\n',
    );
    const a = await loadRewardModule(cjs, { brevity: 0.25 });
    assert.deepEqual(
      a.map((r) => [r.name, r.weight]),
      [
        ['brevity', 0.25],
        ['mentionsKey', 1],
      ],
    );
    assert.equal(await a[0].fn('short', prompt), 1);
    assert.equal(await a[1].fn('it is CT', prompt), 1);

    const esm = path.join(dir, 'r.mjs');
    fs.writeFileSync(
      esm,
      'export default function len(c) { return c.length; }\nexport const half = () => 0.5;\nexport const notAFunction = 3;\n',
    );
    const b = await loadRewardModule(esm);
    assert.deepEqual(
      b.map((r) => r.name),
      ['default', 'half'],
    );
    assert.equal(await b[0].fn('abcd', prompt), 4);

    const bad = path.join(dir, 'bad.cjs');
    fs.writeFileSync(bad, 'module.exports = { s: () => "one" , t: () => { throw new Error("boom"); } };\n');
    const c = await loadRewardModule(bad);
    await assert.rejects(
      async () => c[0].fn('x', prompt),
      new RegExp(`--reward-module ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: reward 's' returned string`),
    );
    await assert.rejects(async () => c[1].fn('x', prompt), /reward 't' threw on prompt q1: boom/);
    const none = path.join(dir, 'none.cjs');
    fs.writeFileSync(none, 'module.exports = { x: 1 };\n');
    await assert.rejects(loadRewardModule(none), /none\.cjs: exports no functions/);
    await assert.rejects(loadRewardModule(path.join(dir, 'missing.js')), /missing\.js: no such file/);
    const broken = path.join(dir, 'broken.cjs');
    fs.writeFileSync(broken, 'module.exports = {\n');
    await assert.rejects(loadRewardModule(broken), /broken\.cjs: cannot load/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
