// LoRA's names and settings against PEFT's documented conventions, written out here by hand (not
// derived from the code under test): saved tensor names `base_model.model.<module path>.lora_A.weight`
// with Qwen2-VL's module paths of transformers >= 4.52 (`model.language_model.layers.N`,
// `model.visual.blocks.N`) or older (`model.layers.N`, `visual.blocks.N`); target_modules as a
// string is matched with Python's re.fullmatch against module names (checked here by Python itself).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tinyConfig } from '../../src/model/tiny';
import {
  canonicalAdapterName,
  DECODER_PROJECTIONS,
  loraModules,
  loraScale,
  peftTargets,
  peftTensorName,
  resolveLoraSpec,
  targetModulesPattern,
  type LoraSpec,
} from '../../src/model/lora';
import { adapterConfig, loadAdapter, ADAPTER_CONFIG_FILE } from '../../src/model/peft_adapter';
import { loraSpecFromCli } from '../../src/cli/lora_options';
import { tempDir } from '../helpers/temp_dir';

const spec = (over: Partial<LoraSpec> = {}): LoraSpec => resolveLoraSpec(over);

test('PEFT tensor names for Qwen2-VL in both transformers layouts, and for a text-only Qwen2', () => {
  const vl = tinyConfig('qwen2_vl');
  assert.equal(
    peftTensorName('model.layers.0.self_attn.q_proj.lora_A.weight', vl, 'current'),
    'base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight',
  );
  assert.equal(
    peftTensorName('model.layers.1.mlp.down_proj.lora_B.weight', vl, 'legacy'),
    'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight',
  );
  assert.equal(
    peftTensorName('visual.blocks.0.attn.qkv.lora_A.weight', vl, 'current'),
    'base_model.model.model.visual.blocks.0.attn.qkv.lora_A.weight',
  );
  assert.equal(
    peftTensorName('visual.merger.mlp.2.lora_B.weight', vl, 'legacy'),
    'base_model.model.visual.merger.mlp.2.lora_B.weight',
  );
  const text = tinyConfig('qwen2');
  assert.equal(
    peftTensorName('model.layers.0.mlp.up_proj.lora_A.weight', text, 'current'),
    'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight',
  );
  assert.throws(() => peftTensorName('model.layers.0.mlp.up_proj.weight', vl, 'current'), /not a LoRA tensor/);
});

test('names read back from either layout map to the canonical adapter names; others are refused', () => {
  const cases: [string, string | null][] = [
    [
      'base_model.model.model.language_model.layers.3.self_attn.o_proj.lora_B.weight',
      'model.layers.3.self_attn.o_proj.lora_B.weight',
    ],
    ['base_model.model.model.layers.3.self_attn.o_proj.lora_B.weight', 'model.layers.3.self_attn.o_proj.lora_B.weight'],
    ['base_model.model.model.visual.blocks.1.mlp.fc2.lora_A.weight', 'visual.blocks.1.mlp.fc2.lora_A.weight'],
    ['base_model.model.visual.merger.mlp.0.lora_A.weight', 'visual.merger.mlp.0.lora_A.weight'],
    ['base_model.model.lm_head.lora_A.weight', null],
    ['base_model.model.model.embed_tokens.lora_A.weight', null],
    ['base_model.model.model.layers.0.input_layernorm.lora_A.weight', null],
    ['model.layers.0.self_attn.q_proj.lora_A.weight', null], // no PEFT prefix
    ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight', null], // in-memory name, not saved
  ];
  for (const [name, want] of cases) assert.equal(canonicalAdapterName(name), want, name);
});

test('the modules a spec adapts: the decoder by default, vision blocks and merger on request', () => {
  for (const kind of ['qwen2_vl', 'qwen2_5_vl'] as const) {
    const cfg = tinyConfig(kind);
    const layers = cfg.text.numLayers;
    const decoder = loraModules(cfg, spec());
    assert.equal(decoder.length, 7 * layers);
    assert.ok(decoder.every((m) => m.startsWith('model.layers.')));
    assert.ok(
      decoder.includes('model.layers.0.self_attn.q_proj') &&
        decoder.includes(`model.layers.${layers - 1}.mlp.down_proj`),
    );
    assert.deepEqual(loraModules(cfg, spec({ targets: ['q_proj', 'v_proj'] })).length, 2 * layers);
    const v = cfg.vision!;
    const perBlock = 2 + (kind === 'qwen2_vl' ? 2 : 3); // qkv, proj + fc1/fc2 or gate/up/down
    const withVision = loraModules(cfg, spec({ vision: true }));
    assert.equal(withVision.length, 7 * layers + perBlock * v.depth);
    const withMerger = loraModules(cfg, spec({ merger: true }));
    assert.deepEqual(withMerger.slice(7 * layers), ['visual.merger.mlp.0', 'visual.merger.mlp.2']);
    assert.ok(!withVision.some((m) => m.includes('patch_embed') || m.includes('lm_head')));
  }
});

/** Python's own re.fullmatch of `pattern` against each name (PEFT's matching of a string target). */
function pythonFullmatch(pattern: string, names: string[]): boolean[] {
  const script =
    'import json,re,sys\nd=json.load(sys.stdin)\nprint(json.dumps([re.fullmatch(d["p"], n) is not None for n in d["n"]]))';
  const r = spawnSync('/usr/bin/python3', ['-c', script], {
    input: JSON.stringify({ p: pattern, n: names }),
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as boolean[];
}

test("target_modules selects exactly the adapted modules in both layouts (Python's re.fullmatch)", () => {
  const names = [
    'model.language_model.layers.0.self_attn.q_proj',
    'model.layers.12.mlp.gate_proj',
    'model.language_model.layers.3.mlp.down_proj',
    'model.visual.blocks.0.mlp.gate_proj', // Qwen2.5-VL vision MLP: not a decoder target
    'visual.blocks.1.attn.qkv',
    'model.visual.merger.mlp.0',
    'model.visual.merger.mlp.1',
    'lm_head',
    'model.language_model.embed_tokens',
  ];
  const want = (s: LoraSpec) =>
    names.map((n) => {
      if (/layers\.\d+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj$/.test(n))
        return s.targets.some((t) => n.endsWith(t));
      if (/visual\.blocks\./.test(n)) return s.vision;
      if (/visual\.merger\.mlp\.[02]$/.test(n)) return s.merger;
      return false;
    });
  for (const s of [
    spec(),
    spec({ targets: ['q_proj'], vision: true }),
    spec({ merger: true, targets: ['down_proj'] }),
  ]) {
    const pattern = targetModulesPattern(s);
    assert.deepEqual(pythonFullmatch(pattern, names), want(s), pattern);
    assert.deepEqual(
      names.map((n) => peftTargets(pattern, n)),
      want(s),
      'the TypeScript matcher agrees with Python',
    );
  }
  // A list is matched by suffix, as PEFT does.
  assert.equal(peftTargets(['q_proj'], 'model.layers.0.self_attn.q_proj'), true);
  assert.equal(peftTargets(['proj'], 'model.layers.0.self_attn.q_proj'), false);
});

test("adapter_config.json carries LoraConfig's fields", () => {
  const s = spec({ rank: 16, alpha: 32, dropout: 0.05 });
  const c = adapterConfig(s, '/models/Qwen2.5-VL-3B-Instruct');
  assert.equal(c.peft_type, 'LORA');
  assert.equal(c.task_type, 'CAUSAL_LM');
  assert.equal(c.r, 16);
  assert.equal(c.lora_alpha, 32);
  assert.equal(c.lora_dropout, 0.05);
  assert.equal(c.base_model_name_or_path, '/models/Qwen2.5-VL-3B-Instruct');
  assert.equal(c.bias, 'none');
  assert.equal(c.use_rslora, false);
  assert.equal(c.use_dora, false);
  assert.equal(c.fan_in_fan_out, false);
  assert.equal(typeof c.target_modules, 'string');
  assert.equal(loraScale(s), 2);
  assert.equal(loraScale({ ...s, rsLora: true }), 32 / 4);
});

test('adapters using what medgr2 cannot honour are refused, naming the field', async () => {
  const dir = tempDir('lora-cfg');
  const write = (over: Record<string, unknown>) =>
    fs.writeFileSync(path.join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...adapterConfig(spec(), 'x'), ...over }));
  const cfg = tinyConfig('qwen2_vl');
  for (const [over, msg] of [
    [{ use_dora: true }, /use_dora: true/],
    [{ peft_type: 'IA3' }, /peft_type is "IA3"/],
    [{ rank_pattern: { q_proj: 4 } }, /rank_pattern/],
    [{ bias: 'all' }, /bias: "all"/],
    [{ target_modules: 3 }, /target_modules/],
  ] as const) {
    write(over);
    await assert.rejects(loadAdapter(dir, cfg), msg);
  }
  write({});
  await assert.rejects(loadAdapter(dir, cfg), /no adapter_model.safetensors/);
  fs.writeFileSync(path.join(dir, ADAPTER_CONFIG_FILE), '{ not json');
  await assert.rejects(loadAdapter(dir, cfg), new RegExp(ADAPTER_CONFIG_FILE));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('settings are checked, naming the field; the CLI maps its flags (alpha 2 x rank by default)', () => {
  assert.throws(() => resolveLoraSpec({ rank: 0 }), /rank must be an integer >= 1/);
  assert.throws(() => resolveLoraSpec({ rank: 2.5 }), /rank/);
  assert.throws(() => resolveLoraSpec({ dropout: 1 }), /dropout/);
  assert.throws(() => resolveLoraSpec({ targets: ['lm_head'] }), /"lm_head" is not a decoder projection/);
  assert.throws(() => resolveLoraSpec({ targets: [] }), /nothing to adapt/);
  const flags = {
    loraRank: 4,
    loraDropout: 0.1,
    loraTargets: 'q_proj, v_proj',
    loraVision: false,
    loraMerger: true,
    merge: false,
    adapterLayout: 'current' as const,
  };
  assert.deepEqual(loraSpecFromCli(flags), {
    rank: 4,
    alpha: 8,
    dropout: 0.1,
    targets: ['q_proj', 'v_proj'],
    vision: false,
    merger: true,
    rsLora: false,
  });
  assert.equal(loraSpecFromCli({ ...flags, loraRank: 0 }), undefined);
  assert.throws(() => loraSpecFromCli({ ...flags, loraTargets: 'qproj' }), /--lora-\*: .*"qproj"/);
  assert.deepEqual(DECODER_PROJECTIONS.length, 7);
});
