// config.json parsing (hub configs, nested text_config, qwen2 text-only, errors), the round trip
// back to JSON, the expected parameters of real models, canonical names, and the tiny configs.
// Pure TypeScript: no addon needed.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { loadModelConfig, modelConfigToJson, parseModelConfig } from '../../src/model/config';
import type { ModelConfig } from '../../src/native/model_config';
import { canonicalName, expectedParameters, parameterCount } from '../../src/model/parameters';
import { repoRoot } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

// ----- configs as published on the Hugging Face hub (config.json of each repository) -----------

const QWEN2_VL_2B = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  hidden_act: 'silu',
  hidden_size: 1536,
  initializer_range: 0.02,
  intermediate_size: 8960,
  max_position_embeddings: 32768,
  max_window_layers: 28,
  model_type: 'qwen2_vl',
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.41.2',
  use_cache: true,
  use_sliding_window: false,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 1536,
    patch_size: 14,
    spatial_merge_size: 2,
    spatial_patch_size: 14,
    temporal_patch_size: 2,
  },
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vocab_size: 151936,
};

function qwen25vl(size: '3B' | '7B'): Record<string, unknown> {
  const big = size === '7B';
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    vision_start_token_id: 151652,
    vision_end_token_id: 151653,
    vision_token_id: 151654,
    image_token_id: 151655,
    video_token_id: 151656,
    hidden_act: 'silu',
    hidden_size: big ? 3584 : 2048,
    initializer_range: 0.02,
    intermediate_size: big ? 18944 : 11008,
    max_position_embeddings: 128000,
    max_window_layers: big ? 28 : 70,
    model_type: 'qwen2_5_vl',
    num_attention_heads: big ? 28 : 16,
    num_hidden_layers: big ? 28 : 36,
    num_key_value_heads: big ? 4 : 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: !big,
    torch_dtype: 'bfloat16',
    transformers_version: '4.41.2',
    use_cache: true,
    use_sliding_window: false,
    vision_config: {
      depth: 32,
      hidden_act: 'silu',
      hidden_size: 1280,
      intermediate_size: 3420,
      num_heads: 16,
      in_chans: 3,
      out_hidden_size: big ? 3584 : 2048,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      window_size: 112,
      fullatt_block_indexes: [7, 15, 23, 31],
      tokens_per_second: 2,
      temporal_patch_size: 2,
    },
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    vocab_size: big ? 152064 : 151936,
  };
}

const QWEN2_0_5B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

/** The nested form transformers >= 4.5x writes for a flat hub config: text fields under text_config. */
function nested(flat: Record<string, unknown>, { v5 = false } = {}): Record<string, unknown> {
  const rootKeys = [
    'architectures',
    'model_type',
    'image_token_id',
    'video_token_id',
    'vision_start_token_id',
    'vision_end_token_id',
    'vision_token_id',
    'vision_config',
    'transformers_version',
  ];
  const root: Record<string, unknown> = {};
  const text: Record<string, unknown> = { model_type: `${flat.model_type}_text` };
  for (const [k, v] of Object.entries(flat)) {
    if (k === 'torch_dtype') root.dtype = v;
    else if (rootKeys.includes(k)) root[k] = v;
    else text[k] = v;
  }
  const rope = flat.rope_scaling as Record<string, unknown>;
  if (v5) {
    delete text.rope_scaling;
    delete text.rope_theta;
    text.rope_parameters = { rope_type: 'default', mrope_section: rope.mrope_section, rope_theta: flat.rope_theta };
  } else {
    text.rope_scaling = { type: 'default', rope_type: 'default', mrope_section: rope.mrope_section };
  }
  root.text_config = text;
  root.tie_word_embeddings = flat.tie_word_embeddings;
  return root;
}

const strip = ({ raw: _raw, ...rest }: ModelConfig) => rest;

function throwsField(json: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseModelConfig(json, 'config.json'),
    (err: Error) => {
      assert.equal(err.name, 'ModelConfigError');
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('parseModelConfig', () => {
  test('Qwen2-VL-2B-Instruct', () => {
    const c = parseModelConfig(QWEN2_VL_2B, 'config.json');
    assert.equal(c.modelType, 'qwen2_vl');
    assert.deepEqual(c.text, {
      vocabSize: 151936,
      hiddenSize: 1536,
      intermediateSize: 8960,
      numLayers: 28,
      numHeads: 12,
      numKvHeads: 2,
      headDim: 128,
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      maxPositionEmbeddings: 32768,
      tieWordEmbeddings: true,
      mropeSection: [16, 24, 24],
      hiddenAct: 'silu',
    });
    assert.deepEqual(c.vision, {
      kind: 'qwen2_vl',
      depth: 32,
      embedDim: 1280,
      numHeads: 16,
      mlpHiddenDim: 5120,
      hiddenAct: 'quick_gelu',
      inChannels: 3,
      patchSize: 14,
      temporalPatchSize: 2,
      spatialMergeSize: 2,
      outHiddenSize: 1536,
      windowSize: 0,
      fullAttBlockIndexes: [],
    });
    assert.deepEqual(
      [
        c.imageTokenId,
        c.videoTokenId,
        c.visionStartTokenId,
        c.visionEndTokenId,
        c.bosTokenId,
        c.eosTokenIds,
        c.torchDtype,
      ],
      [151655, 151656, 151652, 151653, 151643, [151645], 'bfloat16'],
    );
  });

  test('Qwen2.5-VL-3B-Instruct and 7B-Instruct', () => {
    const c3 = parseModelConfig(qwen25vl('3B'), 'config.json');
    assert.equal(c3.modelType, 'qwen2_5_vl');
    assert.deepEqual(
      [
        c3.text.hiddenSize,
        c3.text.intermediateSize,
        c3.text.numLayers,
        c3.text.numHeads,
        c3.text.numKvHeads,
        c3.text.headDim,
        c3.text.vocabSize,
        c3.text.tieWordEmbeddings,
        c3.text.maxPositionEmbeddings,
      ],
      [2048, 11008, 36, 16, 2, 128, 151936, true, 128000],
    );
    assert.deepEqual(c3.vision, {
      kind: 'qwen2_5_vl',
      depth: 32,
      embedDim: 1280,
      numHeads: 16,
      mlpHiddenDim: 3420,
      hiddenAct: 'silu',
      inChannels: 3,
      patchSize: 14,
      temporalPatchSize: 2,
      spatialMergeSize: 2,
      outHiddenSize: 2048,
      windowSize: 112,
      fullAttBlockIndexes: [7, 15, 23, 31],
      tokensPerSecond: 2,
    });
    const c7 = parseModelConfig(qwen25vl('7B'), 'config.json');
    assert.deepEqual(
      [
        c7.text.hiddenSize,
        c7.text.intermediateSize,
        c7.text.numLayers,
        c7.text.numHeads,
        c7.text.numKvHeads,
        c7.text.headDim,
        c7.text.vocabSize,
        c7.text.tieWordEmbeddings,
        c7.vision?.outHiddenSize,
      ],
      [3584, 18944, 28, 28, 4, 128, 152064, false, 3584],
    );
  });

  test('the nested text_config form (transformers >= 4.5x) means the same model', () => {
    for (const flat of [QWEN2_VL_2B, qwen25vl('3B'), qwen25vl('7B')]) {
      const a = parseModelConfig(flat, 'flat/config.json');
      assert.deepEqual(strip(parseModelConfig(nested(flat), 'nested/config.json')), strip(a));
      assert.deepEqual(strip(parseModelConfig(nested(flat, { v5: true }), 'v5/config.json')), strip(a));
    }
  });

  test('qwen2 text-only', () => {
    const c = parseModelConfig(QWEN2_0_5B, 'config.json');
    assert.equal(c.modelType, 'qwen2');
    assert.equal(c.vision, null);
    assert.equal(c.text.mropeSection, null);
    assert.deepEqual(
      [c.text.hiddenSize, c.text.numHeads, c.text.numKvHeads, c.text.headDim, c.text.tieWordEmbeddings],
      [896, 14, 2, 64, true],
    );
    // Qwen2Config's defaults where the file is silent.
    const d = parseModelConfig({ model_type: 'qwen2' }, 'config.json');
    assert.deepEqual(
      [
        d.text.vocabSize,
        d.text.hiddenSize,
        d.text.numLayers,
        d.text.numKvHeads,
        d.text.ropeTheta,
        d.text.rmsNormEps,
        d.torchDtype,
      ],
      [151936, 4096, 32, 32, 10000, 1e-6, 'float32'],
    );
  });

  test('Qwen2VLConfig defaults fill what a config leaves out', () => {
    const c = parseModelConfig(
      {
        model_type: 'qwen2_vl',
        hidden_size: 3584,
        num_attention_heads: 28,
        num_key_value_heads: 4,
        rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
      },
      'config.json',
    );
    assert.deepEqual(
      [c.text.vocabSize, c.text.numLayers, c.text.rmsNormEps, c.text.ropeTheta, c.text.tieWordEmbeddings],
      [152064, 80, 1e-5, 1e6, false],
    );
    assert.deepEqual(
      [c.vision?.depth, c.vision?.embedDim, c.vision?.mlpHiddenDim, c.vision?.outHiddenSize],
      [32, 1280, 5120, 3584],
    );
  });

  test('bad fields name the file, the field and what was expected', () => {
    const vc = QWEN2_VL_2B.vision_config;
    throwsField(
      { ...QWEN2_VL_2B, vision_config: { ...vc, depth: 'x' } },
      /^config\.json: field "vision_config\.depth" must be a positive integer, got "x"$/,
    );
    throwsField(
      { ...QWEN2_VL_2B, model_type: 'llama' },
      /field "model_type" must be one of "qwen2", "qwen2_vl", "qwen2_5_vl", got "llama"/,
    );
    throwsField(
      { ...QWEN2_VL_2B, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 16] } },
      /field "rope_scaling\.mrope_section" must be 3 positive integers .* summing to head_dim\/2 = 64/,
    );
    throwsField(
      { ...QWEN2_VL_2B, rope_scaling: null },
      /field "rope_scaling\.mrope_section" must be given for qwen2_vl/,
    );
    throwsField(
      { ...QWEN2_VL_2B, rope_scaling: { type: 'yarn', factor: 4 } },
      /field "rope_scaling\.type" must be "mrope" or "default"/,
    );
    throwsField(
      { ...QWEN2_VL_2B, num_key_value_heads: 5 },
      /field "num_key_value_heads" must be a divisor of num_attention_heads \(12\), got 5/,
    );
    throwsField(
      { ...QWEN2_VL_2B, torch_dtype: 'int8' },
      /field "torch_dtype" must be one of "float32", "bfloat16", "float16", got "int8"/,
    );
    throwsField({ ...QWEN2_VL_2B, use_sliding_window: true }, /field "use_sliding_window" must be false/);
    throwsField(
      { ...QWEN2_VL_2B, vision_config: { ...vc, hidden_size: 2048 } },
      /field "vision_config\.hidden_size" must be the language model's hidden_size \(1536\)/,
    );
    throwsField(
      { ...QWEN2_VL_2B, image_token_id: 200000 },
      /field "image_token_id" must be a token id below vocab_size \(151936\), got 200000/,
    );
    throwsField(
      {
        ...qwen25vl('3B'),
        vision_config: { ...(qwen25vl('3B').vision_config as object), fullatt_block_indexes: [7, 32] },
      },
      /field "vision_config\.fullatt_block_indexes" must be block indexes below depth \(32\)/,
    );
    const n = nested(QWEN2_VL_2B);
    (n.text_config as Record<string, unknown>).hidden_size = -1;
    throwsField(n, /field "text_config\.hidden_size" must be a positive integer, got -1/);
    throwsField([1, 2], /config\.json: must hold a JSON object/);
  });
});

describe('modelConfigToJson', () => {
  test('round-trips flat, nested, v5 and text-only configs, keeping unknown fields', () => {
    for (const json of [
      QWEN2_VL_2B,
      qwen25vl('3B'),
      nested(qwen25vl('7B')),
      nested(QWEN2_VL_2B, { v5: true }),
      QWEN2_0_5B,
    ]) {
      const c = parseModelConfig(json, 'config.json');
      const out = modelConfigToJson(c);
      assert.deepEqual(strip(parseModelConfig(out, 'again.json')), strip(c));
      assert.equal(out.transformers_version, (json as Record<string, unknown>).transformers_version);
      assert.equal('text_config' in out, 'text_config' in json);
    }
    // The hub's flat form is written back field for field.
    assert.deepEqual(modelConfigToJson(parseModelConfig(QWEN2_0_5B, 'c')), { ...QWEN2_0_5B });
  });

  test('writes changed fields where they were read from', () => {
    const flat = parseModelConfig(qwen25vl('3B'), 'config.json');
    flat.text.numLayers = 3;
    flat.torchDtype = 'float32';
    flat.vision = { ...(flat.vision as NonNullable<ModelConfig['vision']>), depth: 8, fullAttBlockIndexes: [3, 7] };
    const out = modelConfigToJson(flat);
    assert.equal(out.num_hidden_layers, 3);
    assert.equal(out.torch_dtype, 'float32');
    assert.deepEqual(
      [
        (out.vision_config as Record<string, unknown>).depth,
        (out.vision_config as Record<string, unknown>).fullatt_block_indexes,
      ],
      [8, [3, 7]],
    );

    const nest = parseModelConfig(nested(qwen25vl('3B')), 'config.json');
    nest.text.numLayers = 5;
    nest.text.mropeSection = [32, 16, 16];
    nest.torchDtype = 'float16';
    const out2 = modelConfigToJson(nest);
    const text = out2.text_config as Record<string, unknown>;
    assert.equal(text.num_hidden_layers, 5);
    assert.equal('num_hidden_layers' in out2, false);
    assert.deepEqual((text.rope_scaling as Record<string, unknown>).mrope_section, [32, 16, 16]);
    assert.equal(out2.dtype, 'float16');
    assert.equal('torch_dtype' in out2, false);
  });
});

describe('expectedParameters', () => {
  const count = (json: unknown) => parameterCount(expectedParameters(parseModelConfig(json, 'config.json')));

  test('Qwen2-VL-2B: names, shapes and ~2.21B parameters', () => {
    const c = parseModelConfig(QWEN2_VL_2B, 'config.json');
    const specs = expectedParameters(c);
    const shape = new Map(specs.map((s) => [s.name, s.shape]));
    assert.equal(specs.length, 1 + 28 * 12 + 1 + 1 + 32 * 12 + 6);
    assert.equal(shape.has('lm_head.weight'), false, 'tied: no lm_head in the checkpoint');
    assert.deepEqual(shape.get('model.embed_tokens.weight'), [151936, 1536]);
    assert.deepEqual(shape.get('model.layers.27.self_attn.q_proj.weight'), [1536, 1536]);
    assert.deepEqual(shape.get('model.layers.0.self_attn.k_proj.weight'), [256, 1536]);
    assert.deepEqual(shape.get('model.layers.0.self_attn.v_proj.bias'), [256]);
    assert.equal(shape.has('model.layers.0.self_attn.o_proj.bias'), false);
    assert.deepEqual(shape.get('model.layers.0.mlp.down_proj.weight'), [1536, 8960]);
    assert.deepEqual(shape.get('visual.patch_embed.proj.weight'), [1280, 3, 2, 14, 14]);
    assert.equal(shape.has('visual.patch_embed.proj.bias'), false);
    assert.deepEqual(shape.get('visual.blocks.31.norm1.bias'), [1280]);
    assert.deepEqual(shape.get('visual.blocks.0.attn.qkv.weight'), [3840, 1280]);
    assert.deepEqual(shape.get('visual.blocks.0.mlp.fc1.weight'), [5120, 1280]);
    assert.deepEqual(shape.get('visual.blocks.0.mlp.fc2.weight'), [1280, 5120]);
    assert.deepEqual(shape.get('visual.merger.ln_q.bias'), [1280]);
    assert.deepEqual(shape.get('visual.merger.mlp.0.weight'), [5120, 5120]);
    assert.deepEqual(shape.get('visual.merger.mlp.2.weight'), [1536, 5120]);
    assert.deepEqual(shape.get('visual.merger.mlp.2.bias'), [1536]);
    const n = parameterCount(specs);
    assert.ok(Math.abs(n - 2.21e9) / 2.21e9 < 0.01, `Qwen2-VL-2B has ${n} parameters, published 2.21B`);
  });

  test('Qwen2.5-VL: RMSNorm without biases, biased SwiGLU vision MLP, published sizes', () => {
    const specs = expectedParameters(parseModelConfig(qwen25vl('3B'), 'config.json'));
    const shape = new Map(specs.map((s) => [s.name, s.shape]));
    assert.equal(specs.length, 1 + 36 * 12 + 1 + 1 + 32 * 12 + 5);
    assert.equal(shape.has('visual.blocks.0.norm1.bias'), false);
    assert.equal(shape.has('visual.merger.ln_q.bias'), false);
    assert.deepEqual(shape.get('visual.blocks.0.mlp.gate_proj.bias'), [3420]);
    assert.deepEqual(shape.get('visual.blocks.0.mlp.down_proj.weight'), [1280, 3420]);
    assert.deepEqual(shape.get('visual.merger.mlp.2.weight'), [2048, 5120]);
    const n3 = parameterCount(specs);
    assert.ok(Math.abs(n3 - 3.75e9) / 3.75e9 < 0.01, `Qwen2.5-VL-3B has ${n3} parameters, published 3.75B`);
    const spec7 = expectedParameters(parseModelConfig(qwen25vl('7B'), 'config.json'));
    assert.deepEqual(spec7.find((s) => s.name === 'lm_head.weight')?.shape, [152064, 3584]);
    const n7 = parameterCount(spec7);
    assert.ok(Math.abs(n7 - 8.29e9) / 8.29e9 < 0.01, `Qwen2.5-VL-7B has ${n7} parameters, published 8.29B`);
  });

  test('Qwen2-0.5B: ~494M parameters, no vision tower', () => {
    const n = count(QWEN2_0_5B);
    assert.ok(Math.abs(n - 494e6) / 494e6 < 0.01, `Qwen2-0.5B has ${n} parameters, published 0.49B`);
    assert.ok(expectedParameters(parseModelConfig(QWEN2_0_5B, 'c')).every((s) => !s.name.startsWith('visual.')));
  });

  test('canonicalName maps the newer layout and rejects foreign names', () => {
    assert.equal(
      canonicalName('model.language_model.layers.3.mlp.up_proj.weight'),
      'model.layers.3.mlp.up_proj.weight',
    );
    assert.equal(canonicalName('model.language_model.embed_tokens.weight'), 'model.embed_tokens.weight');
    assert.equal(canonicalName('model.visual.blocks.0.attn.qkv.bias'), 'visual.blocks.0.attn.qkv.bias');
    assert.equal(canonicalName('model.visual.merger.mlp.2.weight'), 'visual.merger.mlp.2.weight');
    assert.equal(canonicalName('lm_head.weight'), 'lm_head.weight');
    assert.equal(canonicalName('model.norm.weight'), 'model.norm.weight');
    assert.equal(canonicalName('visual.patch_embed.proj.weight'), 'visual.patch_embed.proj.weight');
    assert.equal(canonicalName('lm_head.bias'), null);
    assert.equal(canonicalName('model.layers.0.self_attn.rotary_emb.inv_freq'), null);
    assert.equal(canonicalName('vision_tower.encoder.layers.0.weight'), null);
    assert.equal(canonicalName('model.language_model.visual.blocks.0.norm1.weight'), null);
  });
});

describe('loadModelConfig and the tiny configs', () => {
  test('a folder without config.json gets a clear error', async () => {
    const dir = tempDir('cfg');
    await assert.rejects(loadModelConfig(dir), /no config\.json/);
    await assert.rejects(loadModelConfig(path.join(dir, 'nope')), /no such model folder or config file/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": ');
    await assert.rejects(loadModelConfig(dir), /config\.json: not valid JSON/);
    fs.rmSync(dir, { recursive: true });
  });

  const tinyDir = path.join(repoRoot, 'configs', 'models');
  for (const [file, kind, tied] of [
    ['tiny-qwen2-vl.json', 'qwen2_vl', true],
    ['tiny-qwen2.5-vl.json', 'qwen2_5_vl', false],
  ] as const) {
    test(`${file} parses to the tiny sizes`, async () => {
      const c = await loadModelConfig(path.join(tinyDir, file));
      assert.equal(c.modelType, kind);
      assert.deepEqual(
        [
          c.text.hiddenSize,
          c.text.numLayers,
          c.text.numHeads,
          c.text.numKvHeads,
          c.text.headDim,
          c.text.intermediateSize,
        ],
        [64, 2, 4, 2, 16, 128],
      );
      assert.deepEqual(c.text.mropeSection, [2, 3, 3]);
      assert.equal(c.text.tieWordEmbeddings, tied);
      assert.deepEqual(
        [c.vision?.depth, c.vision?.embedDim, c.vision?.numHeads, c.vision?.outHiddenSize],
        [2, 32, 2, 64],
      );
      if (kind === 'qwen2_5_vl') assert.deepEqual([c.vision?.windowSize, c.vision?.fullAttBlockIndexes], [56, [1]]);
      assert.ok(parameterCount(expectedParameters(c)) < 500_000);
    });
  }

  test('the tiny configs agree with the project tokenizer (when configs/tokenizer/tokenizer.json exists)', async (t) => {
    const tokFile = process.env.MEDGR2_TOKENIZER_JSON ?? path.join(repoRoot, 'configs', 'tokenizer', 'tokenizer.json');
    if (!fs.existsSync(tokFile)) {
      t.skip('configs/tokenizer/tokenizer.json is not in this checkout');
      return;
    }
    const tok = JSON.parse(fs.readFileSync(tokFile, 'utf8')) as {
      added_tokens: { id: number; content: string }[];
      model: { vocab: Record<string, number> };
    };
    const ids = new Map(tok.added_tokens.map((a) => [a.content, a.id]));
    const size = Math.max(...Object.values(tok.model.vocab), ...ids.values()) + 1;
    for (const file of ['tiny-qwen2-vl.json', 'tiny-qwen2.5-vl.json']) {
      const c = await loadModelConfig(path.join(tinyDir, file));
      assert.ok(c.text.vocabSize >= size, `${file}: vocab_size ${c.text.vocabSize} < tokenizer size ${size}`);
      assert.equal(c.imageTokenId, ids.get('<|image_pad|>'), `${file}: image_token_id`);
      assert.equal(c.videoTokenId, ids.get('<|video_pad|>'), `${file}: video_token_id`);
      assert.equal(c.visionStartTokenId, ids.get('<|vision_start|>'), `${file}: vision_start_token_id`);
      assert.equal(c.visionEndTokenId, ids.get('<|vision_end|>'), `${file}: vision_end_token_id`);
      assert.equal(c.bosTokenId, ids.get('<|endoftext|>'), `${file}: bos_token_id`);
      assert.deepEqual(c.eosTokenIds, [ids.get('<|im_end|>')], `${file}: eos_token_id`);
    }
  });
});
