// The cycle with LoRA: one round on a very small MedSynth world where the generator, the judge and the
// policy are adapters on one base held once in memory (models/init is loaded a single time), every
// trained model is a PEFT adapter folder, and a LoRA run refuses what it cannot do yet.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cycle } from '../../src/cycle/cycle';
import { defaultCycleConfig, mergeCycleConfig, type CycleConfig } from '../../src/cycle/config';
import { tinyRun } from '../helpers/cycle_runs';
import { runCycleWithAblations } from '../../src/cycle/ablations';
import { Model } from '../../src/model/model';
import { ADAPTER_CONFIG_FILE } from '../../src/model/peft_adapter';
import { tempDir } from '../helpers/temp_dir';

/** The tiny cycle with rank-4 adapters. */
function tinyLoraRun(out: string, over: Partial<CycleConfig> = {}): CycleConfig {
  return tinyRun(out, { lora: { rank: 4 }, ...over });
}

test('a LoRA cycle: the roles are adapters on one shared base, loaded once', async () => {
  const out = tempDir('lora-cycle');
  const loads: string[] = [];
  const load = Model.load;
  Model.load = (dir, opts) => {
    loads.push(path.relative(out, dir));
    return load.call(Model, dir, opts);
  };
  try {
    await runCycleWithAblations(tinyLoraRun(out), {}, { log: () => {} });
  } finally {
    Model.load = load;
  }
  const initLoads = loads.filter((d) => d === path.join('models', 'init')).length;
  assert.equal(initLoads, 1, `models/init loaded once (loads: ${loads.join(', ')})`);
  assert.deepEqual(
    loads.filter((d) => d !== path.join('models', 'init')),
    [path.join('models', 'random')],
    'besides the base, only the pretraining stage loads a whole model',
  );
  const models = fs.readdirSync(path.join(out, 'models')).filter((n) => !n.startsWith('.'));
  const adapters = models.filter((n) => n !== 'init' && n !== 'random');
  for (const role of ['generator', 'judge', 'policy'])
    assert.ok(
      adapters.some((n) => n.startsWith(role)),
      `${role}: an adapter (${adapters.join(', ')})`,
    );
  for (const n of adapters) {
    assert.ok(fs.existsSync(path.join(out, 'models', n, ADAPTER_CONFIG_FILE)), `${n} is an adapter folder`);
    assert.ok(!fs.existsSync(path.join(out, 'models', n, 'model.safetensors')), `${n} holds no whole model`);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'models', n, ADAPTER_CONFIG_FILE), 'utf8'));
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8, 'alpha 2 x rank by default');
    assert.equal(cfg.base_model_name_or_path, path.resolve(out, 'models', 'init'));
  }
  assert.ok(fs.existsSync(path.join(out, 'models', 'init', 'model.safetensors')), 'the base is whole');
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  assert.deepEqual(Object.keys(report.final).sort(), ['base', 'grpoCycle', 'sftCycle', 'sftSeed']);
});

test('a LoRA cycle refuses the graded reward model (its score head would train beside the adapter)', async () => {
  const out = tempDir('lora-graded');
  await assert.rejects(
    new Cycle(tinyLoraRun(out, { rewardModel: 'graded' }), { log: () => {} }).run(),
    /rewardModel 'graded' does not train with LoRA/,
  );
  await assert.rejects(
    async () => new Cycle(tinyLoraRun(out, { lora: { rank: 2, targets: ['lm_head'] } }), { log: () => {} }),
    /config lora\.targets: "lm_head"/,
  );
});

test('config files set lora key by key; a wrong type names the key', () => {
  const d = defaultCycleConfig('/tmp/x');
  const cfg = mergeCycleConfig(d, { lora: { rank: 8, targets: ['q_proj', 'v_proj'], 'rs-lora': true } }, 'run.yaml');
  assert.deepEqual(cfg.lora, { rank: 8, targets: ['q_proj', 'v_proj'], rsLora: true });
  assert.throws(() => mergeCycleConfig(d, { lora: { alpah: 3 } }, 'run.yaml'), /unknown key "lora\.alpah"/);
  assert.throws(
    () => mergeCycleConfig(d, { lora: { rank: 'eight' } }, 'run.yaml'),
    /run\.yaml: key "lora\.rank" expects a number/,
  );
  assert.throws(() => mergeCycleConfig(d, { lora: { rank: 2.5 } }, 'run.yaml'), /"lora\.rank" expects a whole number/);
});
