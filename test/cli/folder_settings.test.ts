// What a model folder says, honoured by the commands (built CLI, child processes) on the
// real-vocabulary fixture (a tiny Qwen2.5-VL saved as a hub folder: preprocessor_config.json with
// max_pixels 12544, generation_config.json with eos [<|im_end|>, <|endoftext|>], do_sample, top_k 1):
// `data preview --model` shows the folder's resize and patching, `sft` encodes images with it, `eval`
// runs with its stop tokens, `generate` takes its stop tokens and sampling defaults (flags override).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { decodingOf } from '../../src/cli/generate';
import { imageTokenCount } from '../../src/data/images/patchify';
import { smartResize } from '../../src/data/images/smart_resize';
import type { Candidate } from '../../src/data/proto';
import { readMessageFile, writeMessageFileAtomic } from '../../src/data/record_files';
import type { GenerationSettings } from '../../src/model/folder_settings';
import { runCli } from '../helpers/cli';
import { makeRealVocabModel, realGenerationConfigJson, REAL_VOCAB_SIZE } from '../helpers/real_vocab_model';
import { medsynthWorld, worldSamples } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';

const tmp = tempDir('settings-cli');
let fixture = '';
let world = '';
const pool = path.join(tmp, 'pool');

/** A copy of `src` (files linked) with `files` written over it (null: left out). */
function variant(src: string, name: string, files: Record<string, unknown | null>): string {
  const dir = path.join(tmp, name);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(src)) if (!(f in files)) fs.symlinkSync(path.join(src, f), path.join(dir, f));
  for (const [f, v] of Object.entries(files))
    if (v !== null) fs.writeFileSync(path.join(dir, f), JSON.stringify(v, null, 2) + '\n');
  return dir;
}

async function png(file: string, width: number, height: number, seed: number): Promise<void> {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * seed + (i >> 7)) % 256;
  await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(file);
}

before(async () => {
  fixture = await makeRealVocabModel(path.join(tmp, 'qwen'));
  world = await medsynthWorld(6, 3, 224);
  fs.mkdirSync(pool);
  await png(path.join(pool, 'a.png'), 224, 224, 3);
  await png(path.join(pool, 'b.png'), 300, 200, 5);
});

test('decodingOf: flags win, then the folder (sampling values only when it samples), then the defaults', () => {
  const defaults = { temperature: 1, topP: 0.95, topK: 0, repetitionPenalty: 1, maxNewTokens: 96 };
  const none = () => false;
  const gen = { eosTokenIds: [1], doSample: true, temperature: 0.1, topP: 0.001, topK: 1, repetitionPenalty: 1.05 };
  assert.deepEqual(decodingOf(defaults, none, gen), {
    temperature: 0.1,
    topP: 0.001,
    topK: 1,
    repetitionPenalty: 1.05,
    maxNewTokens: 96,
    fromFolder: ['temperature 0.1', 'top_p 0.001', 'top_k 1', 'repetition_penalty 1.05'],
  });
  const flags = { ...defaults, temperature: 0.7, topK: 50 };
  const given = (k: string) => k === 'temperature' || k === 'topK';
  const d = decodingOf(flags, given, gen);
  assert.deepEqual([d.temperature, d.topP, d.topK, d.repetitionPenalty], [0.7, 0.001, 50, 1.05]);
  // do_sample false or absent: transformers decodes greedily and ignores the sampling values; generate
  // keeps its own sampling, and takes the penalty and the length (they apply to greedy decoding too)
  const greedy: GenerationSettings = { ...gen, doSample: false, maxNewTokens: 200 };
  const g = decodingOf(defaults, none, greedy);
  assert.deepEqual([g.temperature, g.topP, g.topK, g.repetitionPenalty, g.maxNewTokens], [1, 0.95, 0, 1.05, 200]);
  assert.deepEqual(decodingOf(defaults, none, { eosTokenIds: [] }), { ...defaults, fromFolder: [] });
});

test("data preview --model: the folder's max_pixels and patch size; flags override the bounds", () => {
  const out = path.join(tmp, 'preview.png');
  const preview = (...args: string[]) => {
    const r = runCli(['data', 'preview', path.join(pool, 'a.png'), '--out', out, ...args]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  // 224×224 under max_pixels 12544 (28·28·16): 112×112, 8×8 patches of 14, 2×2 merged: 16 tokens
  assert.deepEqual(preview('--model', fixture), {
    width: 112,
    height: 112,
    grid: [1, 8, 8],
    numPatches: 64,
    imageTokens: 16,
  });
  assert.deepEqual(preview('--model', fixture, '--max-pixels', '3136'), {
    width: 56,
    height: 56,
    grid: [1, 4, 4],
    numPatches: 16,
    imageTokens: 4,
  });
  assert.deepEqual(preview('--model', fixture, '--max-pixels', '50176').grid, [1, 16, 16]);
  // without preprocessor_config.json: transformers' defaults (224×224 fits as it is)
  const bare = variant(fixture, 'no-processor', { 'preprocessor_config.json': null });
  assert.deepEqual(preview('--model', bare).grid, [1, 16, 16]);
  // patch 16 (factor 32): 96×96 = 6×6 patches of 16, 9 tokens
  const p16 = variant(fixture, 'patch16', {
    'preprocessor_config.json': { min_pixels: 3136, max_pixels: 12544, patch_size: 16, merge_size: 2 },
  });
  assert.deepEqual(preview('--model', p16), { width: 96, height: 96, grid: [1, 6, 6], numPatches: 36, imageTokens: 9 });

  const bad = runCli([
    'data',
    'preview',
    path.join(pool, 'a.png'),
    '--out',
    out,
    '--model',
    fixture,
    '--min-pixels',
    '20000',
  ]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--min-pixels\/--max-pixels: .*min 20000, max 12544/);
  const noDir = runCli(['data', 'preview', path.join(pool, 'a.png'), '--out', out, '--model', path.join(tmp, 'nope')]);
  assert.match(noDir.stderr, /--model .*nope: not a model folder/);
});

test('sft on the fixture folder encodes images with its max_pixels (--max-pixels overrides)', async () => {
  const data = path.join(world, 'medsynth.jsonl');
  const first = JSON.parse(fs.readFileSync(data, 'utf8').split('\n')[0]);
  const meta = await sharp(path.join(world, first.image_path)).metadata();
  const tokensOf = (maxPixels: number) =>
    imageTokenCount([1, ...smartResize(meta.height!, meta.width!, { maxPixels }).map((s) => s / 14)] as [
      number,
      number,
      number,
    ]);
  // --token-budget 1: sft stops right after encoding, naming the first example's length
  const lengthWith = (model: string, ...args: string[]) => {
    const r = runCli([
      'sft',
      '--model',
      model,
      '--data',
      data,
      '--out',
      path.join(tmp, 'sft'),
      '--token-budget',
      '1',
      ...args,
    ]);
    assert.equal(r.status, 1);
    const m = /sft: example 0 has (\d+) tokens, more than tokenBudget 1/.exec(r.stderr);
    assert.ok(m, r.stderr);
    return Number(m[1]);
  };
  const folder = lengthWith(fixture);
  const flag = lengthWith(fixture, '--max-pixels', '3136');
  const bare = lengthWith(variant(fixture, 'no-processor', { 'preprocessor_config.json': null }));
  assert.equal(meta.width, 224);
  assert.equal(tokensOf(12544), 16);
  assert.equal(folder - flag, tokensOf(12544) - tokensOf(3136));
  assert.equal(bare - folder, tokensOf(28 * 28 * 1280) - tokensOf(12544));
});

test('eval on the fixture folder: greedy with its eos list and repetition penalty; --repetition-penalty checked', () => {
  const bench = path.join(world, 'medsynth.jsonl');
  const preds = path.join(tmp, 'eval', 'preds.jsonl');
  const args = [
    'eval',
    '--model',
    fixture,
    '--benchmark',
    bench,
    '--out',
    preds,
    '--limit',
    '2',
    '--max-new-tokens',
    '3',
  ];
  const r = runCli([...args, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(preds, 'utf8').trim().split('\n').length, 2);
  assert.equal(JSON.parse(r.stdout).overall.total, 2);
  const bad = runCli([...args, '--repetition-penalty', '0']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--repetition-penalty must be > 0/);
});

test("generate with the fixture: the folder's sampling defaults and eos list; flags override", () => {
  const gen = (model: string, name: string, ...args: string[]) => {
    const out = path.join(tmp, `${name}.rec`);
    const r = runCli([
      'generate',
      '--generator',
      model,
      '--pool',
      pool,
      '--out',
      out,
      '--per-image',
      '3',
      '--task-mix',
      'Modality Recognition',
      '--max-new-tokens',
      '6',
      ...args,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const raws = readMessageFile<Candidate>(out, { expect: 'medgr2.Candidate' }).messages.map((c) => c.raw);
    assert.equal(raws.length, 6);
    return { raws, stderr: r.stderr, out };
  };
  // generation_config.json: do_sample with top_k 1, so the 3 candidates of an image are the same reply
  const folder = gen(fixture, 'folder');
  assert.match(
    folder.stderr,
    /generate: from .*generation_config\.json: temperature 0\.1, top_p 0\.001, top_k 1, repetition_penalty 1\.05 \(flags override\)/,
  );
  for (const img of [0, 1]) assert.equal(new Set(folder.raws.slice(3 * img, 3 * img + 3)).size, 1, `image ${img}`);
  // flags override the folder's sampling: the candidates differ
  const flags = gen(fixture, 'flags', '--temperature', '1', '--top-k', '0', '--top-p', '1');
  assert.match(flags.stderr, /generate: from .*: repetition_penalty 1\.05 \(flags override\)/);
  assert.doesNotMatch(flags.stderr, /top_k 1/);
  assert.ok(new Set(flags.raws.slice(0, 3)).size > 1, JSON.stringify(flags.raws));
  // eos_token_id as a list naming every id: each reply ends after its first token
  const everyId = Array.from({ length: REAL_VOCAB_SIZE }, (_, i) => i);
  const allStop = variant(fixture, 'all-stop', {
    'generation_config.json': { ...realGenerationConfigJson(), eos_token_id: everyId },
  });
  const short = gen(allStop, 'all-stop');
  short.raws.forEach((raw, i) => {
    const full = folder.raws[i];
    assert.ok(
      raw.length < full.length && full.startsWith(raw),
      `${i}: ${JSON.stringify(raw)} vs ${JSON.stringify(full)}`,
    );
  });
  // score reads images with the judge folder's processor too (and its pixel flags)
  const valid = path.join(tmp, 'valid.rec');
  const sample = worldSamples(world)[0];
  writeMessageFileAtomic(valid, 'medgr2.Candidate', [
    { sample, generatorRound: 0, valid: true, invalidReason: '', raw: '' },
  ] as Candidate[]);
  const scored = runCli([
    'score',
    '--reward-model',
    fixture,
    '--in',
    valid,
    '--out',
    path.join(tmp, 'scored.rec'),
    '--max-pixels',
    '3136',
  ]);
  assert.equal(scored.status, 0, scored.stderr);
  assert.match(scored.stdout, /1 candidates scored \(1 valid/);
});
