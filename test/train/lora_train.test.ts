// LoRA through the library and the CLI on the tiny model: adapters round-trip through PEFT's files
// (names written out by hand), `medgr2 sft --lora-rank` writes an adapter folder whose checkpoints
// resume exactly and whose --merge folder gives the adapter's logits, GRPO trains the adapter only
// with the base (adapter off) as its reference, and adapter folders load as --model.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Model, tinyConfig, type ModelTypes } from '../../src/index';
import { readSafetensorsHeader } from '../../src/model/safetensors';
import { loraModules, resolveLoraSpec } from '../../src/model/lora';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadAdapter,
  applyAdapter,
  saveAdapter,
} from '../../src/model/peft_adapter';
import { readTensors } from '../../src/model/tensor_files';
import { adapterOffReference, useLoraAdapter } from '../../src/train/lora_training';
import { trainGrpo } from '../../src/train/grpo_trainer';
import { grpoPromptsFromSamples } from '../../src/train/grpo_rollout';
import { defaultRewards } from '../../src/train/rewards';
import { TextTokenizer } from '../../src/data/tokenizer';
import { loadModelArg } from '../../src/cli/model_arg';
import { readMetrics } from '../../src/report/metrics';
import { listCheckpoints } from '../../src/train/run_state';
import { addon, randn, rng } from '../helpers/addon';
import { runCli } from '../helpers/cli';
import { medsynthWorld, worldSamples } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';
import { imageBatch } from '../helpers/batches';

let world = '';
before(async () => {
  world = await medsynthWorld(64);
});
after(() => {
  if (world) fs.rmSync(world, { recursive: true, force: true });
});

async function logitsOf(m: Model, batch: ModelTypes.ModelBatch): Promise<Float32Array> {
  const t = await m.logits(batch);
  try {
    return t.toArray() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Gives every lora_B of `m` random values (a fresh adapter's B is zero and changes nothing). */
async function randomizeB(m: Model, seed: number): Promise<void> {
  const r = rng(seed);
  const tensors: Record<string, InstanceType<typeof addon.Tensor>> = {};
  for (const [name, t] of Object.entries(m.loraParameters()))
    if (name.endsWith('.lora_B.weight'))
      tensors[name] = new addon.Tensor(Float32Array.from(randn(r, t.numel).map((x) => 0.05 * x)), t.shape);
  await m.setLoraTensors(tensors);
  for (const t of Object.values(tensors)) t.dispose();
}

test("adapters round-trip through PEFT's files in both layouts, named as PEFT names them", async () => {
  const dir = tempDir('peft-layouts');
  const spec = resolveLoraSpec({ rank: 3, alpha: 6, vision: true, merger: true });
  const m = await Model.create(tinyConfig('qwen2_5_vl'), { seed: 5 });
  useLoraAdapter(m, spec, 9);
  await randomizeB(m, 10);
  const batch = imageBatch(2);
  const want = await logitsOf(m, batch);
  for (const layout of ['current', 'legacy'] as const) {
    const out = path.join(dir, layout);
    await saveAdapter(m, out, { spec, baseModel: 'tiny', layout });
    const names = (await readSafetensorsHeader(path.join(out, ADAPTER_WEIGHTS_FILE))).tensors.map((d) => d.name);
    const modules = loraModules(m.config, spec);
    assert.equal(names.length, 2 * modules.length);
    const expected =
      layout === 'current'
        ? [
            'base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight',
            'base_model.model.model.language_model.layers.1.mlp.gate_proj.lora_B.weight',
            'base_model.model.model.visual.blocks.0.mlp.down_proj.lora_A.weight',
            'base_model.model.model.visual.merger.mlp.2.lora_B.weight',
          ]
        : [
            'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
            'base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight',
            'base_model.model.visual.blocks.0.mlp.down_proj.lora_A.weight',
            'base_model.model.visual.merger.mlp.2.lora_B.weight',
          ];
    for (const n of expected) assert.ok(names.includes(n), `${layout}: ${n}`);
    const config = JSON.parse(fs.readFileSync(path.join(out, ADAPTER_CONFIG_FILE), 'utf8'));
    assert.equal(config.r, 3);
    assert.equal(config.lora_alpha, 6);

    const fresh = await Model.create(tinyConfig('qwen2_5_vl'), { seed: 5 });
    const adapter = await loadAdapter(out, fresh.config);
    assert.deepEqual(adapter.spec, spec, 'the spec is recovered from the files');
    await applyAdapter(fresh, adapter);
    assert.deepEqual(await logitsOf(fresh, batch), want, `${layout}: same logits after the round trip`);
    await fresh.dispose();
  }
  await m.dispose();
});

test('medgr2 sft --lora-rank: adapter folder, adapter-only checkpoints that resume exactly, --merge, and the adapter as --model', async () => {
  const dir = tempDir('sft-lora');
  const baseDir = path.join(dir, 'base');
  const base = await Model.create(tinyConfig('qwen2_vl'), { seed: 12 });
  await base.save(baseDir);
  const out = path.join(dir, 'run');
  const args = [
    'sft',
    '--model',
    baseDir,
    '--data',
    path.join(world, 'medsynth.jsonl'),
    '--task',
    'Modality Recognition',
    '--out',
    out,
    '--max-steps',
    '4',
    '--save-every',
    '2',
    '--keep-last',
    '0',
    '--lr',
    '0.01',
    '--token-budget',
    '600',
    '--threads',
    '1',
    '--lora-rank',
    '4',
    '--merge',
  ];
  const r = runCli(args);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.steps, 4);
  const final = path.join(out, 'final');
  for (const f of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]) assert.ok(fs.existsSync(path.join(final, f)), f);
  assert.ok(!fs.existsSync(path.join(final, 'model.safetensors')), 'no base weights in the adapter folder');
  assert.equal(
    JSON.parse(fs.readFileSync(path.join(final, ADAPTER_CONFIG_FILE), 'utf8')).base_model_name_or_path,
    baseDir,
  );

  // Checkpoints hold the adapter and an optimizer state of adapter tensors only.
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [2, 4],
  );
  const ckpt = path.join(out, 'checkpoints', 'step-2');
  assert.ok(
    fs.existsSync(path.join(ckpt, ADAPTER_WEIGHTS_FILE)) && !fs.existsSync(path.join(ckpt, 'model.safetensors')),
  );
  const opt = await readTensors(path.join(ckpt, 'optimizer.safetensors'));
  const keys = Object.keys(opt).filter((k) => k !== 'step');
  assert.ok(keys.length > 0 && keys.every((k) => /\.lora_[AB]\.weight$/.test(k)), keys.slice(0, 3).join(', '));
  for (const t of Object.values(opt)) t.dispose();

  // A resume from step 2 repeats the losses of steps 3 and 4 and ends with the same adapter.
  const first = readMetrics(path.join(out, 'metrics.jsonl'));
  const adapterBefore = fs.readFileSync(path.join(final, ADAPTER_WEIGHTS_FILE));
  fs.rmSync(path.join(out, 'checkpoints', 'step-4'), { recursive: true });
  const again = runCli([...args, '--resume']);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).resumedFrom, 2);
  const second = readMetrics(path.join(out, 'metrics.jsonl'));
  second.forEach((x, i) => assert.ok(Math.abs(x['train/loss'] - first[i]['train/loss']) <= 1e-6, `step ${x.step}`));
  assert.ok(adapterBefore.equals(fs.readFileSync(path.join(final, ADAPTER_WEIGHTS_FILE))), 'same adapter bytes');

  // The adapter folder as --model: the base, unchanged, with the adapter; the merged folder agrees.
  const viaAdapter = await loadModelArg(final);
  const merged = await Model.load(path.join(out, 'merged'));
  assert.ok(viaAdapter.model.hasLora);
  const baseParams = base.parameters();
  for (const [name, t] of Object.entries(viaAdapter.model.parameters())) {
    if (name.includes('.lora_')) continue;
    assert.deepEqual(t.toArray(), baseParams[name].toArray(), `${name}: the base did not train`);
  }
  const batch = imageBatch(3);
  const a = await logitsOf(viaAdapter.model, batch);
  const b = await logitsOf(merged, batch);
  const plain = await logitsOf(base, batch);
  let diff = 0;
  let moved = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    moved = Math.max(moved, Math.abs(a[i] - plain[i]));
  }
  assert.ok(diff < 1e-4, `merged vs adapter: ${diff}`);
  assert.ok(moved > 1e-3, `the adapter changed the logits (${moved})`);
  for (const m of [viaAdapter.model, merged, base]) await m.dispose();
});

test('GRPO with LoRA trains the adapter only; its reference is the base with the adapter off', async () => {
  const samples = worldSamples(world, 'Modality Recognition').slice(0, 4);
  const tok = TextTokenizer.load();
  const policy = await Model.create(tinyConfig('qwen2_vl'), { seed: 21 });
  const twin = await Model.create(tinyConfig('qwen2_vl'), { seed: 21 });
  const spec = resolveLoraSpec({ rank: 2, alpha: 4 });
  const baseBefore = Object.fromEntries(Object.entries(policy.parameters()).map(([n, t]) => [n, t.toArray()]));
  await trainGrpo(policy, grpoPromptsFromSamples(samples, 'answer'), defaultRewards('answer'), {
    tokenizer: tok,
    steps: 2,
    promptsPerStep: 2,
    groupSize: 3,
    maxNewTokens: 6,
    beta: 0.04,
    lr: 0.05,
    lora: spec,
    progress: false,
  });
  assert.ok(policy.hasLora);
  for (const [name, t] of Object.entries(policy.parameters())) {
    if (name.includes('.lora_')) continue;
    assert.deepEqual(t.toArray(), baseBefore[name], `${name} stayed frozen`);
  }
  const bs = Object.entries(policy.loraParameters()).filter(([n]) => n.endsWith('lora_B.weight'));
  assert.ok(
    bs.some(([, t]) => (t.toArray() as Float32Array).some((x) => x !== 0)),
    'the adapter trained',
  );

  const batch = imageBatch(4);
  const ref = await adapterOffReference(policy).tokenLogprobs(batch);
  const plain = await twin.tokenLogprobs(batch);
  assert.deepEqual(ref.logp, plain.logp, 'adapter off = the base');
  const on = await policy.tokenLogprobs(batch);
  assert.notDeepEqual(on.logp, plain.logp, 'and the adapter is back on after the call');
  await policy.dispose();
  await twin.dispose();
});

test('medgr2 sft: LoRA flags are checked before any work, naming the flag', () => {
  const dir = tempDir('sft-lora-flags');
  const r = runCli([
    'sft',
    '--model',
    'tiny-qwen2-vl',
    '--data',
    path.join(world, 'medsynth.jsonl'),
    '--out',
    path.join(dir, 'x'),
    '--lora-rank',
    '4',
    '--lora-targets',
    'lm_head',
  ]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--lora-\*: .*"lm_head" is not a decoder projection/);
  fs.rmSync(dir, { recursive: true, force: true });
});
