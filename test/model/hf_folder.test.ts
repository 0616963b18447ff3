// Model folders: load -> save -> load is bit-exact (single file and shards, both name layouts,
// tied and untied heads, f32 / bf16 / f16), and each kind of broken checkpoint gets its own message.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadCheckpoint, saveCheckpoint } from '../../src/model/hf_folder';
import { loadModelConfig } from '../../src/model/config';
import type { ModelConfig } from '../../src/native/model_config';
import { expectedParameters } from '../../src/model/parameters';
import { readSafetensorsHeader } from '../../src/model/safetensors';
import type { Tensor } from '../../src/native/types';
import { addon } from '../helpers/addon';
import {
  encodeSafetensors,
  rawEntries,
  randomTensors,
  readJson,
  repoConfigs,
  tensorBytes,
  writeFolder,
} from '../helpers/checkpoints';
import { tempDir } from '../helpers/temp_dir';

const root = tempDir('ckpt');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let serial = 0;
const fresh = (name: string) => path.join(root, `${++serial}-${name}`);

const tinyVl = () => loadModelConfig(path.join(repoConfigs, 'tiny-qwen2-vl.json')); // tied head
const tinyVl25 = () => loadModelConfig(path.join(repoConfigs, 'tiny-qwen2.5-vl.json')); // untied head

function assertSameTensors(actual: Map<string, Tensor>, expected: Map<string, Tensor>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, t] of expected) {
    const got = actual.get(name) as Tensor;
    assert.equal(got.dtype, t.dtype, `${name} dtype`);
    assert.deepEqual(got.shape, t.shape, `${name} shape`);
    assert.deepEqual(tensorBytes(got), tensorBytes(t), `${name} bytes`);
  }
}

function dispose(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

describe('load -> save -> load is bit-exact', () => {
  for (const [label, cfgOf] of [
    ['qwen2-vl (tied head)', tinyVl],
    ['qwen2.5-vl (untied head)', tinyVl25],
  ] as const) {
    test(`${label}: single file, then shards, then a single file again`, async () => {
      const cfg = await cfgOf();
      const tensors = randomTensors(cfg, { seed: 7 });
      const dir = fresh('rt');
      const saved = await saveCheckpoint(dir, cfg, tensors);
      assert.deepEqual(saved.files, ['model.safetensors']);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
      const a = await loadCheckpoint(dir);
      assertSameTensors(a.tensors, tensors);
      assert.deepEqual(a.config.text, cfg.text);
      assert.deepEqual(a.config.vision, cfg.vision);
      assert.equal(a.tensors.has('lm_head.weight'), !cfg.text.tieWordEmbeddings);
      assert.ok(
        [...a.tensors.values()].every((t) => addon.safetensors.isMapped(t)),
        'loaded without copies',
      );

      // Shards: a small limit splits the model; the index names every tensor.
      const sharded = await saveCheckpoint(dir, a.config, a.tensors, { maxShardBytes: 64 * 1024 });
      const shards = sharded.files.filter((f) => f.endsWith('.safetensors'));
      assert.ok(shards.length > 2, `${shards.length} shards`);
      assert.match(shards[0], /^model-00001-of-000\d\d\.safetensors$/);
      const index = readJson(path.join(dir, 'model.safetensors.index.json'));
      assert.equal(Object.keys(index.weight_map as object).length, expectedParameters(cfg).length);
      assert.equal((index.metadata as { total_size: number }).total_size, sharded.totalBytes);
      assert.equal(fs.existsSync(path.join(dir, 'model.safetensors')), false, 'the old single file is gone');
      const b = await loadCheckpoint(dir);
      assertSameTensors(b.tensors, tensors);

      // Back to one file: the shards and the index are removed.
      await saveCheckpoint(dir, b.config, b.tensors);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
      const c = await loadCheckpoint(dir);
      assertSameTensors(c.tensors, tensors);
      for (const m of [a.tensors, b.tensors, c.tensors, tensors]) dispose(m);
    });
  }

  test('bf16, f16 and mixed dtypes round-trip bit for bit; config.json says the dtype', async () => {
    const cfg = await tinyVl25();
    for (const [dtype, dtypeOf] of [
      ['bf16', undefined],
      ['f16', undefined],
      ['f32', (n: string) => (n.startsWith('visual.') ? 'f32' : 'bf16')],
    ] as const) {
      const tensors = randomTensors(cfg, { seed: 3, dtype, dtypeOf });
      const dir = fresh(`dt-${dtype}`);
      await saveCheckpoint(dir, cfg, tensors, { maxShardBytes: 100_000 });
      const back = await loadCheckpoint(dir);
      assertSameTensors(back.tensors, tensors);
      const written = readJson(path.join(dir, 'config.json')).torch_dtype;
      assert.equal(written, dtypeOf ? 'float32' /* mixed: unchanged */ : { bf16: 'bfloat16', f16: 'float16' }[dtype]);
      dispose(back.tensors);
      dispose(tensors);
    }
  });

  test('dtype options convert on save and on load', async () => {
    const cfg = await tinyVl();
    const tensors = randomTensors(cfg, { seed: 4 });
    const dir = fresh('conv');
    await saveCheckpoint(dir, cfg, tensors, { dtype: 'bfloat16' });
    const header = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    assert.ok(header.tensors.every((t) => t.dtype === 'BF16'));
    assert.equal(readJson(path.join(dir, 'config.json')).torch_dtype, 'bfloat16');
    const back = await loadCheckpoint(dir, { dtype: 'float32' });
    const t = back.tensors.get('model.norm.weight') as Tensor;
    assert.equal(t.dtype, 'f32');
    assert.equal(addon.safetensors.isMapped(t), false);
    const orig = tensors.get('model.norm.weight')?.toArray() as Float32Array;
    const got = t.toArray() as Float32Array;
    for (let i = 0; i < orig.length; i++)
      assert.ok(Math.abs(got[i] - orig[i]) <= Math.abs(orig[i]) / 128, `element ${i}`);
    dispose(back.tensors);
    dispose(tensors);
  });

  test('the newer layout (model.language_model.*, model.visual.*) loads under hub names and saves back as hub names', async () => {
    const cfg = await tinyVl25();
    const tensors = randomTensors(cfg, { seed: 9 });
    const newName = (n: string) =>
      n.startsWith('visual.') ? `model.${n}` : n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n;
    // The nested config form goes with that layout (transformers >= 4.5x).
    const raw = readJson(path.join(repoConfigs, 'tiny-qwen2.5-vl.json'));
    const textKeys = [
      'vocab_size',
      'hidden_size',
      'intermediate_size',
      'num_hidden_layers',
      'num_attention_heads',
      'num_key_value_heads',
      'rms_norm_eps',
      'rope_theta',
      'rope_scaling',
      'max_position_embeddings',
      'hidden_act',
    ];
    const text: Record<string, unknown> = {};
    for (const k of textKeys) {
      text[k] = raw[k];
      delete raw[k];
    }
    raw.text_config = text;
    raw.dtype = raw.torch_dtype;
    delete raw.torch_dtype;
    const dir = fresh('newlayout');
    writeFolder(dir, raw, rawEntries(tensors, newName));
    const loaded = await loadCheckpoint(dir);
    assert.ok(loaded.tensors.has('model.layers.0.mlp.up_proj.weight'));
    assert.ok(loaded.tensors.has('visual.blocks.1.attn.qkv.weight'));
    assertSameTensors(loaded.tensors, tensors);

    const out = fresh('newlayout-saved');
    await saveCheckpoint(out, loaded.config, loaded.tensors);
    const names = (await readSafetensorsHeader(path.join(out, 'model.safetensors'))).tensors.map((t) => t.name);
    assert.deepEqual(
      names.sort(),
      expectedParameters(cfg)
        .map((s) => s.name)
        .sort(),
    );
    assert.ok('text_config' in readJson(path.join(out, 'config.json')), 'config keeps its nested form');
    // saveCheckpoint also takes newer-layout names.
    const renamed = new Map([...tensors].map(([n, t]) => [newName(n), t]));
    await saveCheckpoint(out, cfg, renamed);
    assertSameTensors((await loadCheckpoint(out)).tensors, tensors);
    dispose(loaded.tensors);
    dispose(tensors);
  });

  test('a tied checkpoint that also ships lm_head.weight: accepted and dropped when equal-shaped', async () => {
    const cfg = await tinyVl();
    const tensors = randomTensors(cfg, { seed: 5 });
    const entries = rawEntries(tensors);
    const embed = entries.find((e) => e.name === 'model.embed_tokens.weight');
    const dir = fresh('tied-with-head');
    writeFolder(dir, readJson(path.join(repoConfigs, 'tiny-qwen2-vl.json')), [
      ...entries,
      { ...(embed as (typeof entries)[number]), name: 'lm_head.weight' },
    ]);
    const loaded = await loadCheckpoint(dir);
    assert.equal(loaded.tensors.has('lm_head.weight'), false);
    assertSameTensors(loaded.tensors, tensors);

    const bad = fresh('tied-bad-head');
    writeFolder(bad, readJson(path.join(repoConfigs, 'tiny-qwen2-vl.json')), [
      ...entries,
      { name: 'lm_head.weight', dtype: 'F32', shape: [10, 64], data: new Uint8Array(2560) },
    ]);
    await assert.rejects(
      loadCheckpoint(bad),
      /tensor "lm_head\.weight" in model\.safetensors has shape \[10, 64\] but the config expects \[768, 64\]/,
    );
    dispose(loaded.tensors);
    dispose(tensors);
  });

  test('a text-only qwen2 model; companion files are copied from sourceDir', async () => {
    const cfg = await loadModelConfig(path.join(repoConfigs, 'tiny-qwen2.5-vl.json'));
    const textOnly: ModelConfig = {
      ...cfg,
      modelType: 'qwen2',
      vision: null,
      raw: { model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'] },
    };
    const tensors = randomTensors(textOnly, { seed: 11 });
    const src = fresh('src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'tokenizer.json'), '{"version": "1.0"}');
    fs.writeFileSync(path.join(src, 'generation_config.json'), '{"do_sample": false}');
    const dir = fresh('qwen2');
    await saveCheckpoint(dir, textOnly, tensors, { sourceDir: src });
    assert.deepEqual(fs.readdirSync(dir).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    const back = await loadCheckpoint(dir);
    assert.equal(back.config.modelType, 'qwen2');
    assert.equal(back.config.vision, null);
    assertSameTensors(back.tensors, tensors);
    dispose(back.tensors);
    dispose(tensors);
  });
});

describe('broken checkpoints: each its own message', () => {
  async function folderWith(
    mutate: (entries: ReturnType<typeof rawEntries>) => ReturnType<typeof rawEntries>,
  ): Promise<string> {
    const cfg = await tinyVl();
    const tensors = randomTensors(cfg, { seed: 2 });
    const dir = fresh('broken');
    writeFolder(dir, readJson(path.join(repoConfigs, 'tiny-qwen2-vl.json')), mutate(rawEntries(tensors)));
    dispose(tensors);
    return dir;
  }

  test('a missing tensor', async () => {
    const dir = await folderWith((e) => e.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight'));
    await assert.rejects(loadCheckpoint(dir), (err: Error) => {
      assert.equal(err.name, 'CheckpointError');
      assert.equal(
        err.message,
        `checkpoint ${dir}: tensor "model.layers.1.mlp.up_proj.weight" is missing (expected shape [128, 64])`,
      );
      return true;
    });
  });

  test('a wrong shape names the tensor, the file and both shapes', async () => {
    const dir = await folderWith((e) =>
      e.map((x) => (x.name === 'visual.merger.mlp.2.weight' ? { ...x, shape: [32, 256] } : x)),
    );
    await assert.rejects(
      loadCheckpoint(dir),
      /tensor "visual\.merger\.mlp\.2\.weight" in model\.safetensors has shape \[32, 256\] but the config expects \[64, 128\]/,
    );
  });

  test('an unexpected tensor, and a foreign name', async () => {
    const extra = await folderWith((e) => [
      ...e,
      { name: 'model.layers.2.input_layernorm.weight', dtype: 'F32', shape: [64], data: new Uint8Array(256) },
    ]);
    await assert.rejects(
      loadCheckpoint(extra),
      /tensor "model\.layers\.2\.input_layernorm\.weight" in model\.safetensors is not a parameter of this qwen2_vl model \(2 layers/,
    );
    const foreign = await folderWith((e) => [
      ...e,
      { name: 'vision_tower.proj.weight', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ]);
    await assert.rejects(
      loadCheckpoint(foreign),
      /tensor "vision_tower\.proj\.weight" in model\.safetensors is not a tensor of a qwen2/,
    );
  });

  test('several problems are listed together', async () => {
    const dir = await folderWith((e) => e.filter((x) => !x.name.startsWith('model.layers.0.')));
    await assert.rejects(
      loadCheckpoint(dir),
      /: 12 problems:\n {2}- tensor "model\.layers\.0\.self_attn\.q_proj\.weight" is missing/,
    );
  });

  test('a corrupt header, a truncated file, an unknown dtype', async () => {
    const corrupt = await folderWith((e) => e);
    const file = path.join(corrupt, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[8] = 0x78;
    fs.writeFileSync(file, bytes);
    await assert.rejects(loadCheckpoint(corrupt), /model\.safetensors: corrupt safetensors header: not valid JSON/);

    const cut = await folderWith((e) => e);
    const cutFile = path.join(cut, 'model.safetensors');
    fs.truncateSync(cutFile, fs.statSync(cutFile).size - 100);
    await assert.rejects(
      loadCheckpoint(cut),
      /model\.safetensors: truncated: tensor "[^"]+" ends at byte \d+ but the file has only \d+ bytes \(100 missing\)/,
    );

    const fp8 = await folderWith((e) =>
      e.map((x) => (x.name === 'model.norm.weight' ? { ...x, dtype: 'F8_E5M2', data: new Uint8Array(64) } : x)),
    );
    await assert.rejects(loadCheckpoint(fp8), /tensor "model\.norm\.weight" has unknown dtype "F8_E5M2"/);

    const ints = await folderWith((e) => e.map((x) => (x.name === 'model.norm.weight' ? { ...x, dtype: 'I32' } : x)));
    await assert.rejects(
      loadCheckpoint(ints),
      /tensor "model\.norm\.weight" in model\.safetensors has dtype i32; parameters must be floating point/,
    );
  });

  test('no weights, an index naming a missing shard, a shard the index does not know', async () => {
    const empty = fresh('noweights');
    fs.mkdirSync(empty);
    fs.writeFileSync(
      path.join(empty, 'config.json'),
      JSON.stringify(readJson(path.join(repoConfigs, 'tiny-qwen2-vl.json'))),
    );
    fs.writeFileSync(path.join(empty, 'pytorch_model.bin'), '');
    await assert.rejects(
      loadCheckpoint(empty),
      /no model\.safetensors or model\.safetensors\.index\.json \(found PyTorch \.bin\/\.pt weights/,
    );

    const cfg = await tinyVl();
    const tensors = randomTensors(cfg, { seed: 1 });
    const dir = fresh('idx');
    await saveCheckpoint(dir, cfg, tensors, { maxShardBytes: 100_000 });
    dispose(tensors);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = readJson(indexFile) as { weight_map: Record<string, string> };
    const lastShard = Object.values(index.weight_map).sort().at(-1) as string;
    fs.renameSync(path.join(dir, lastShard), path.join(dir, 'elsewhere.bin'));
    await assert.rejects(loadCheckpoint(dir), new RegExp(`names shard "${lastShard}", which is not in`));
    fs.renameSync(path.join(dir, 'elsewhere.bin'), path.join(dir, lastShard));
    const moved = Object.keys(index.weight_map).find((n) => index.weight_map[n] === lastShard) as string;
    index.weight_map[moved] = Object.values(index.weight_map).sort()[0];
    fs.writeFileSync(indexFile, JSON.stringify(index));
    await assert.rejects(
      loadCheckpoint(dir),
      new RegExp(
        `tensor "${moved.replace(/\./g, '\\.')}" is in ${lastShard} but model\\.safetensors\\.index\\.json puts it in`,
      ),
    );
  });

  test('saveCheckpoint checks the tensors against the config before writing anything', async () => {
    const cfg = await tinyVl();
    const tensors = randomTensors(cfg, { seed: 6 });
    tensors.delete('model.norm.weight');
    const dir = fresh('save-bad');
    await assert.rejects(
      saveCheckpoint(dir, cfg, tensors),
      /saveCheckpoint .*: tensor "model\.norm\.weight" is missing \(expected shape \[64\]\)/,
    );
    assert.equal(fs.existsSync(dir), false);
    dispose(tensors);
  });
});

test('hand-made files without __metadata__ and with unusual alignment still load', async () => {
  // Another writer's layout: no metadata, a 1-byte-odd header, so f32 data is misaligned (copied).
  const cfg = await tinyVl();
  const tensors = randomTensors(cfg, { seed: 12 });
  const dir = fresh('odd');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify(readJson(path.join(repoConfigs, 'tiny-qwen2-vl.json'))),
  );
  const bytes = encodeSafetensors(rawEntries(tensors), (h) => {
    delete h.__metadata__;
  });
  // Grow the header by one space: every data offset shifts by one byte.
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const odd = new Uint8Array(bytes.length + 1);
  new DataView(odd.buffer).setBigUint64(0, BigInt(n + 1), true);
  odd.set(bytes.subarray(8, 8 + n), 8);
  odd[8 + n] = 0x20;
  odd.set(bytes.subarray(8 + n), 9 + n);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), odd);
  const loaded = await loadCheckpoint(dir);
  assertSameTensors(loaded.tensors, tensors);
  assert.equal(
    addon.safetensors.isMapped(loaded.tensors.get('model.norm.weight') as Tensor),
    false,
    'misaligned f32: copied',
  );
  dispose(loaded.tensors);
  dispose(tensors);
});
