// A hub model folder in, a model folder out: what medgr2 saves after training keeps every file HF
// tools read beside the weights (byte for byte) and a config.json with every key the loaded one had
// (and the values medgr2 understood unchanged), so transformers, vLLM and medgr2 itself load it back.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Tokenizer } from '../../src/data/model_tokenizer';
import { modelConfigToJson, parseModelConfig } from '../../src/model/config';
import { COMPANION_FILES, copyModelFolder } from '../../src/model/hf_folder';
import { Model } from '../../src/model/model';
import { tinyConfig } from '../../src/model/tiny';
import { tempDir } from '../helpers/temp_dir';
import { makeRealVocabModel } from '../helpers/real_vocab_model';

/** Every key path of a JSON object ("vision_config.depth", ...). */
function keyPaths(v: unknown, prefix = ''): string[] {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return [];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => [
    prefix + k,
    ...keyPaths(x, `${prefix}${k}.`),
  ]);
}

test('saving a loaded hub folder writes its tokenizer, template, processor and generation files back unchanged', async () => {
  const src = await makeRealVocabModel(tempDir('hub-in'));
  const out = path.join(tempDir('hub-out'), 'saved');
  const model = await Model.load(src);
  try {
    await model.save(out);
  } finally {
    await model.dispose();
  }
  const companions = COMPANION_FILES.filter((f) => fs.existsSync(path.join(src, f)));
  assert.deepEqual(companions.sort(), [
    'chat_template.json',
    'generation_config.json',
    'preprocessor_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  for (const f of companions)
    assert.ok(fs.readFileSync(path.join(src, f)).equals(fs.readFileSync(path.join(out, f))), `${f} is unchanged`);

  const loaded = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  const saved = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  const missing = keyPaths(loaded).filter((k) => !keyPaths(saved).includes(k));
  assert.deepEqual(missing, [], 'saved config.json keys include every loaded key');
  assert.deepEqual(saved, loaded, 'an untrained round trip changes no value');

  // The saved folder is a model folder again, with the same chat template.
  const a = await Tokenizer.fromModel(src);
  const b = await Tokenizer.fromModel(out);
  const msgs = [
    { role: 'user' as const, content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Hi' }] },
  ];
  assert.deepEqual(
    Array.from(b.applyChatTemplate(msgs, { imageGrids: [[1, 2, 2]] })),
    Array.from(a.applyChatTemplate(msgs, { imageGrids: [[1, 2, 2]] })),
  );
  const back = await Model.load(out);
  assert.equal(back.config.text.vocabSize, 151936);
  await back.dispose();
});

test('config.json written from a config without architectures names the model class', () => {
  for (const kind of ['qwen2_vl', 'qwen2_5_vl', 'qwen2'] as const) {
    const cfg = tinyConfig(kind);
    const raw = { ...modelConfigToJson(cfg) };
    delete raw.architectures;
    const json = modelConfigToJson(parseModelConfig(raw, 'no-architectures'));
    assert.deepEqual(json.architectures, [
      {
        qwen2_vl: 'Qwen2VLForConditionalGeneration',
        qwen2_5_vl: 'Qwen2_5_VLForConditionalGeneration',
        qwen2: 'Qwen2ForCausalLM',
      }[kind],
    ]);
    assert.equal(json.model_type, kind);
  }
});

test("copyModelFolder links the weights (same inode), copies the folder's own files, leaves the rest", async () => {
  const src = await makeRealVocabModel(tempDir('link-in'));
  fs.writeFileSync(path.join(src, 'README.md'), 'model card');
  const dst = path.join(tempDir('link-out'), 'init');
  const copied = await copyModelFolder(src, dst);
  assert.deepEqual(copied.sort(), [
    'chat_template.json',
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'preprocessor_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.equal(
    fs.statSync(path.join(dst, 'model.safetensors')).ino,
    fs.statSync(path.join(src, 'model.safetensors')).ino,
  );
  assert.ok(!fs.existsSync(path.join(dst, 'README.md')));
  for (const f of copied) assert.ok(fs.readFileSync(path.join(src, f)).equals(fs.readFileSync(path.join(dst, f))), f);
  await assert.rejects(
    copyModelFolder(tempDir('link-empty'), path.join(tempDir('link-empty-out'), 'y')),
    /no model\.safetensors/,
  );
});
