// The cycle's --config: groups merged key by key over the defaults, checked before any work starts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultCycleConfig, mergeCycleConfig } from '../../src/cycle/config';
import { runCli } from '../helpers/cli';
import { cycleThreads } from '../../src/cli/cycle';
import { tempDir } from '../helpers/temp_dir';
import { Cycle } from '../../src/cycle/cycle';
import { tinyRun } from '../helpers/cycle_runs';

test('a partial group changes only what it names; the other groups and settings keep their defaults', () => {
  const d = defaultCycleConfig();
  const c = mergeCycleConfig(d, { grpo: { steps: 10 }, world: { seedImages: 8 }, rounds: 1 }, 'run.json');
  assert.deepEqual(c.grpo, { ...d.grpo, steps: 10 });
  assert.deepEqual(c.world, { ...d.world, seedImages: 8 });
  assert.equal(c.rounds, 1);
  assert.deepEqual(c.pretrain, d.pretrain);
  assert.deepEqual(d, defaultCycleConfig(), 'the base is not changed');
  // kebab-case and snake_case keys, optional settings, lists of names
  const k = mergeCycleConfig(
    d,
    {
      'policy-sft': { token_budget: 512 },
      select: { topK: 3 },
      model: 'm',
      world: { seedTasks: ['Modality Recognition'] },
    },
    'x.yaml',
  );
  assert.equal(k.policySft.tokenBudget, 512);
  assert.equal(k.select.topK, 3);
  assert.equal(k.select.topFraction, d.select.topFraction);
  assert.equal(k.model, 'm');
  assert.deepEqual(k.world.seedTasks, ['Modality Recognition']);
});

test('unknown keys and wrong types are errors naming the file and the key', () => {
  const d = defaultCycleConfig();
  const bad = (doc: unknown, re: RegExp) => assert.throws(() => mergeCycleConfig(d, doc, 'run.json'), re);
  bad({ grpo: { stepz: 1 } }, /^Error: run\.json: unknown key "grpo\.stepz" \(known in "grpo": steps, lr, /);
  bad({ nope: 1 }, /run\.json: unknown key "nope"/);
  bad({ grpo: { steps: 1.5 } }, /run\.json: key "grpo\.steps" expects a whole number, got 1\.5/);
  bad({ grpo: { lr: '1e-3' } }, /run\.json: key "grpo\.lr" expects a number, got "1e-3"/);
  bad({ grpo: { lr: -1 } }, /key "grpo\.lr" must be >= 0/);
  bad({ world: 3 }, /run\.json: key "world" expects a group of settings, got 3/);
  bad({ world: { seedModalities: 'CT' } }, /key "world\.seedModalities" expects a list of strings/);
  bad({ coEvolve: 'no' }, /key "coEvolve" expects true or false/);
  bad({ grpo: { promptsPerStep: 1, prompts_per_step: 2 } }, /run\.json: key "grpo\.promptsPerStep" is set twice/);
  bad([1], /run\.json: a config must hold one mapping of settings/);
  bad({ dtype: 'float64' }, /run\.json: key "dtype"/);
  const placed = mergeCycleConfig(d, { device: 'cuda', dtype: 'bfloat16' }, 'run.json');
  assert.equal(placed.device, 'cuda');
  assert.equal(placed.dtype, 'bfloat16');
  bad({ grpo: { policyLoss: 'ppo' } }, /key "grpo\.policyLoss" expects one of clip, cispo/);
  bad({ grpo: { overlong_buffer: 2.5 } }, /key "grpo\.overlongBuffer" expects a whole number/);
  // issue 17's choices: the judge, its co-develop data, the GRPO reward, the selection floor
  bad({ rewardModel: 'scalar' }, /key "rewardModel" expects one of generative, graded/);
  bad({ coDevelop: { judgeData: 'own' } }, /key "coDevelop\.judgeData" expects one of kept, confident/);
  bad({ grpo: { reward: 'judge' } }, /key "grpo\.reward" expects one of verifiable, reward-model/);
  const m = mergeCycleConfig(
    d,
    { rewardModel: 'graded', select: { floor: 0.5 }, grpo: { reward: 'reward-model', reward_model_weight: 0.7 } },
    'run.json',
  );
  assert.equal(m.rewardModel, 'graded');
  assert.equal(m.select.floor, 0.5);
  assert.equal(m.grpo.reward, 'reward-model');
  assert.equal(m.grpo.rewardModelWeight, 0.7);
});

test("the GRPO stage takes the trainer's options (GSPO, overlong, entropy, KL in the reward, TIS)", () => {
  const c = mergeCycleConfig(
    defaultCycleConfig(),
    {
      grpo: {
        importance_sampling_level: 'sequence',
        'mask-truncated-completions': true,
        overlongBuffer: 4,
        klInReward: 0.01,
        entropyTopQuantile: 0.2,
        oldLogp: 'recompute',
        tisCap: 2,
        maxSkippedSteps: 5,
      },
    },
    'run.yaml',
  );
  assert.equal(c.grpo.importanceSamplingLevel, 'sequence');
  assert.equal(c.grpo.maskTruncatedCompletions, true);
  assert.deepEqual(
    [c.grpo.overlongBuffer, c.grpo.klInReward, c.grpo.entropyTopQuantile, c.grpo.tisCap, c.grpo.maxSkippedSteps],
    [4, 0.01, 0.2, 2, 5],
  );
  assert.equal(c.grpo.steps, defaultCycleConfig().grpo.steps, 'the other GRPO settings keep their defaults');
});

test('medgr2 cycle --config: a bad file stops before any work, with the file and key named (JSON and YAML)', () => {
  const dir = tempDir('cycle-config');
  const out = path.join(dir, 'run');
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const cases: [string, RegExp][] = [
    [
      write('partial-world.json', '{"world": {"seedImages": "many"}}'),
      /partial-world\.json: key "world\.seedImages" expects a number, got "many"/,
    ],
    [write('typo.yaml', 'grpo:\n  step: 10\n'), /typo\.yaml: unknown key "grpo\.step"/],
    [write('broken.json', '{"grpo": '), /broken\.json: not valid JSON/],
    [
      write('graded-confident.json', '{"rewardModel": "graded", "coDevelop": {"judgeData": "confident"}}'),
      /judgeData 'confident' .* needs rewardModel 'generative'/,
    ],
  ];
  for (const [file, re] of cases) {
    const r = runCli(['cycle', '--config', file, '--out', out]);
    assert.notEqual(r.status, 0, `${file}: exit status`);
    assert.match(r.stderr, re);
    assert.ok(!fs.existsSync(out), 'nothing was started');
  }
  const flag = runCli(['cycle', '--reward-model', 'scalar', '--out', out]);
  assert.notEqual(flag.status, 0);
  assert.match(flag.stderr, /--reward-model: generative, graded, got 'scalar'/);
});

test('threads: one for the tiny model on the CPU unless a flag or a thread variable says otherwise', () => {
  assert.equal(cycleThreads({ device: 'cpu' }, undefined, {}), 1);
  assert.equal(cycleThreads({}, undefined, {}), 1, 'the CPU by default');
  assert.equal(cycleThreads({ device: 'cpu' }, 3, {}), 3, 'the flag wins');
  assert.equal(cycleThreads({ device: 'cpu' }, undefined, { MEDGR2_NUM_THREADS: '2' }), undefined);
  assert.equal(cycleThreads({ device: 'cpu' }, undefined, { OMP_NUM_THREADS: '4' }), undefined);
  assert.equal(cycleThreads({ device: 'cuda' }, undefined, {}), undefined, 'on a GPU: the addon decides');
  assert.equal(cycleThreads({ model: '/m', device: 'cpu' }, undefined, {}), undefined, 'a real model: every core');
  const r = runCli(['cycle', '--threads', '0']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--threads/);
});

test('--ground-answers sets generate.groundAnswers (off by default); a --model run refuses it before any work', async () => {
  assert.equal(defaultCycleConfig().generate.groundAnswers, false);
  const dir = tempDir('cycle-ground');
  const out = path.join(dir, 'run');
  const r = runCli(['cycle', '--ground-answers', '--model', path.join(dir, 'no-model'), '--out', out]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /generate\.groundAnswers reads MedSynth's caption phrasings/);
  assert.ok(!fs.existsSync(out), 'nothing was started');
  const cfg = tinyRun(path.join(dir, 'lib'), { model: path.join(dir, 'no-model') });
  await assert.rejects(
    new Cycle({ ...cfg, generate: { ...cfg.generate, groundAnswers: true } }, { log: () => {} }).run(),
    /groundAnswers/,
  );
});

test('task cards: a --model run refuses them before any work (its generator can be asked for any task)', async () => {
  const dir = tempDir('cycle-cards');
  const out = path.join(dir, 'run');
  const cards = path.join(dir, 'cards.json');
  fs.writeFileSync(cards, JSON.stringify({ generate: { taskCards: defaultCycleConfig().generate.taskCards } }));
  const r = runCli(['cycle', '--model', path.join(dir, 'no-model'), '--config', cards, '--out', out]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /generate\.taskCards answer from MedSynth's caption phrasings/);
  assert.ok(!fs.existsSync(out), 'nothing was started');
  const cfg = tinyRun(path.join(dir, 'lib'), { model: path.join(dir, 'no-model') });
  await assert.rejects(new Cycle(cfg, { log: () => {} }).run(), /generate\.taskCards/, 'the default card with --model');
});
