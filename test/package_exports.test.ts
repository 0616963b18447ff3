// The package entry (package.json "main") exposes the trainers, rewards and evaluation, so a user's
// script can `require('medgr2')` them; a one-step GRPO and SFT run through those exports only.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/cli';
import { writeQwenTokenizerFiles } from './helpers/real_vocab_model';
import { tempDir } from './helpers/temp_dir';

// What `require('medgr2')` loads: the folder's package.json "main".
type Medgr2 = typeof import('../src/index');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const medgr2 = require(repoRoot) as Medgr2;

test("require('medgr2') exports the trainers, reward constructors and evaluation", async () => {
  const main = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).main as string;
  assert.equal(require.resolve(repoRoot), path.join(repoRoot, main));
  for (const name of [
    'trainSft',
    'sftExamplesFromSamples',
    'trainGrpo',
    'grpoPromptsFromSamples',
    'resolveGrpoOptions',
    'evaluatePolicy',
    'accuracyReward',
    'formatReward',
    'judgeReward',
    'defaultRewards',
    'loadRewardModule',
    'parseRewardWeights',
    'scorePredictions',
    'TextTokenizer',
    'loadSampleFile',
    'Model',
    'tinyConfig',
    'resolveLoraSpec',
    'saveAdapter',
    'loadAdapter',
    'applyAdapter',
    'useLoraAdapter',
  ] as const) {
    assert.equal(typeof medgr2[name], 'function', name);
  }
  assert.equal(medgr2.GRPO_DEFAULTS.groupSize, 8);
  assert.deepEqual(
    medgr2.defaultRewards('answer').map((r) => [r.name, r.weight]),
    [
      ['accuracy', 1],
      ['format', 0.5],
    ],
  );
  assert.equal(
    medgr2.accuracyReward().fn('<answer> B </answer>', {
      id: 'q',
      images: [],
      user: '',
      sample: { options: ['CT', 'MRI'], answer: 'MRI' } as never,
    }),
    1,
  );

  // One tiny step of each trainer, and an evaluation, through the package entry only.
  const dir = tempDir('exports');
  try {
    const samples = [
      { id: 'a', options: ['CT', 'MRI'], answer: 'MRI', question: 'Which modality?' },
      { id: 'b', options: ['CT', 'MRI'], answer: 'CT', question: 'Which modality?' },
    ].map(
      (s) =>
        ({
          images: [],
          questionStem: s.question,
          task: 'Modality Recognition',
          modality: 'CT',
          taskOriginal: '',
          modalityOriginal: '',
          dataset: 'x',
          rationale: '',
          ...s,
        }) as unknown as import('../src/index').Sample,
    );
    const tokenizer = medgr2.TextTokenizer.load();
    const model = await medgr2.Model.create(medgr2.tinyConfig('qwen2_vl'), { seed: 1 });
    try {
      const sft = await medgr2.trainSft(model, medgr2.sftExamplesFromSamples(samples, 'answer'), {
        maxSteps: 1,
        lr: 1e-3,
        tokenizer,
        progress: false,
      });
      assert.equal(sft.steps, 1);
      const grpo = await medgr2.trainGrpo(
        model,
        medgr2.grpoPromptsFromSamples(samples, 'answer'),
        [...medgr2.defaultRewards('answer'), { name: 'len', weight: 1, fn: (c: string) => c.length % 2 }],
        { tokenizer, steps: 1, promptsPerStep: 2, groupSize: 2, maxNewTokens: 3, out: dir, progress: false },
      );
      assert.equal(grpo.length, 1);
      assert.deepEqual(
        medgr2.listCheckpoints(dir).map((c) => c.step),
        [1],
      );
      assert.ok('train/reward' in medgr2.readMetrics(path.join(dir, 'metrics.jsonl'))[0]);
      const ev = await medgr2.evaluatePolicy(model, samples, {
        style: 'answer',
        maxNewTokens: 3,
        tokenizer,
        progress: false,
      });
      assert.equal(ev.score.overall.total, 2);
    } finally {
      await model.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("require('medgr2').Tokenizer.fromModel(dir).applyChatTemplate: the pinned tokenizer API", async () => {
  const dir = tempDir('exports-tok');
  try {
    writeQwenTokenizerFiles(dir);
    const tok = await medgr2.Tokenizer.fromModel(dir);
    const ids = tok.applyChatTemplate(
      [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Modality?' }] },
      ],
      { addGenerationPrompt: true, imageGrids: [[1, 2, 4]] },
    );
    assert.ok(ids instanceof Int32Array);
    assert.deepEqual(
      Array.from(ids.subarray(0, 11)),
      [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198],
    );
    assert.equal(ids.filter((id) => id === 151655).length, 2);
    assert.deepEqual(Array.from(ids.subarray(-3)), [151644, 77091, 198]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
