// evaluatePolicy and `medgr2 eval`: answer extraction, batching and stop tokens (with a scripted
// model), and the CLI's predictions file agreeing with `medgr2 eval score`.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { evaluatePolicy } from '../../src/eval/evaluate';

import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../../src/data/tokenizer';
import { Model, tinyConfig } from '../../src/index';
import type { GenerateOptions, ModelBatch } from '../../src/model/model';
import { runCli } from '../helpers/cli';
import { medsynthWorld, worldSamples } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';
import { POLICY_SYSTEM } from '../../src/eval/policy_prompt';
import { readModelSettings, stopTokensOf } from '../../src/model/folder_settings';
import { realGenerationConfigJson, realProcessorConfigJson } from '../helpers/real_vocab_model';

test('evaluatePolicy: greedy batches with the stop tokens, answers extracted and scored', async () => {
  const world = await medsynthWorld(200);
  const samples = worldSamples(world, 'Modality Recognition').slice(0, 5);
  const tok = TextTokenizer.load();
  const letter = (i: number) => 'ABCD'[samples[i].options.indexOf(samples[i].answer)];
  const wrong = (i: number) => 'ABCD'[(samples[i].options.indexOf(samples[i].answer) + 1) % 4];
  const replies = [
    `<answer> ${letter(0)} </answer>`, // right, by letter
    `<answer> ${samples[1].answer} </answer>`, // right, by option text
    `<answer> ${wrong(2)} </answer>`, // wrong
    'I cannot tell.', // invalid: names no option
    `<think> easy </think> <answer> ${letter(4).toLowerCase()} </answer>`, // right, lower-case letter
  ];
  const calls: { sequences: number; opts: GenerateOptions; text: string }[] = [];
  let next = 0;
  const scripted = {
    async generateBatch(batch: ModelBatch, opts: GenerateOptions) {
      const cu = batch.cuSeqlens as Int32Array;
      calls.push({
        sequences: cu.length - 1,
        opts,
        text: tok.decode((batch.inputIds as Int32Array).subarray(0, cu[1])),
      });
      const tokens = Array.from({ length: cu.length - 1 }, () =>
        Int32Array.from([...tok.encode(replies[next++]), tok.special.imEnd]),
      );
      return { tokens, logprobs: tokens.map((t) => new Float32Array(t.length)) };
    },
  } as unknown as Model;

  const { predictions, score } = await evaluatePolicy(scripted, samples, {
    style: 'answer',
    batchSize: 2,
    tokenizer: tok,
  });
  assert.deepEqual(
    calls.map((c) => c.sequences),
    [2, 2, 1],
  );
  for (const c of calls) {
    assert.equal(c.opts.temperature, 0);
    assert.equal(c.opts.maxNewTokens, 16);
    assert.deepEqual(c.opts.stopTokens, [tok.special.imEnd, tok.special.endOfText]);
  }
  assert.ok(
    calls[0].text.includes(POLICY_SYSTEM) &&
      calls[0].text.includes('A) ') &&
      calls[0].text.endsWith('<|im_start|>assistant\n'),
  );
  assert.deepEqual(
    predictions.map((p) => p.question_id),
    samples.map((s) => s.id),
  );
  assert.deepEqual(
    predictions.map((p) => p.raw),
    replies,
    'raw without the stop token',
  );
  assert.deepEqual(
    predictions.map((p) => p.model_answer),
    [letter(0), samples[1].answer, wrong(2), 'I cannot tell.', letter(4).toLowerCase()],
  );
  assert.deepEqual(score.overall, { accuracy: 0.6, correct: 3, total: 5 });
  assert.equal(score.invalid, 1);

  await assert.rejects(evaluatePolicy(scripted, [], { style: 'answer' }), /eval: no benchmark samples/);
  await assert.rejects(
    evaluatePolicy(scripted, [{ ...samples[0], images: ['/nonexistent/x.png'] }], { style: 'answer' }),
    new RegExp(`eval: sample '${samples[0].id}': .*nonexistent/x\\.png`),
  );
  next = 0;
  await evaluatePolicy(scripted, samples.slice(0, 1), { style: 'think', tokenizer: tok });
  assert.equal(calls[calls.length - 1].opts.maxNewTokens, 256, 'think style gets room to think');
});

test("evaluatePolicy with a model folder's settings: its max_pixels, eos list and repetition penalty reach generation", async () => {
  const world = await medsynthWorld(8, 1, 224);
  const samples = worldSamples(world).slice(0, 3);
  const tok = TextTokenizer.load();
  const folder = tempDir('eval-settings');
  fs.writeFileSync(path.join(folder, 'preprocessor_config.json'), JSON.stringify(realProcessorConfigJson()));
  fs.writeFileSync(path.join(folder, 'generation_config.json'), JSON.stringify(realGenerationConfigJson()));
  const { processor, generation } = readModelSettings(folder, tinyConfig('qwen2_vl').vision);
  const calls: { grids: number[]; pads: number; opts: GenerateOptions }[] = [];
  const scripted = {
    async generateBatch(batch: ModelBatch, opts: GenerateOptions) {
      const ids = batch.inputIds as Int32Array;
      calls.push({
        grids: Array.from(batch.imageGrids as Int32Array),
        pads: ids.filter((id) => id === tok.special.imagePad).length,
        opts,
      });
      const tokens = Array.from({ length: (batch.cuSeqlens as Int32Array).length - 1 }, () => tok.encode('A'));
      return { tokens, logprobs: tokens.map((t) => new Float32Array(t.length)) };
    },
  } as unknown as Model;
  await evaluatePolicy(scripted, samples, {
    style: 'answer',
    tokenizer: tok,
    imageOptions: processor,
    stopTokens: stopTokensOf(generation, [tok.special.imEnd, tok.special.endOfText]),
    repetitionPenalty: generation.repetitionPenalty,
  });
  assert.equal(calls.length, 1);
  // 224×224 images under max_pixels 12544: 112×112, 8×8 patches, 16 LM tokens each
  assert.deepEqual(calls[0].grids, [1, 8, 8, 1, 8, 8, 1, 8, 8]);
  assert.equal(calls[0].pads, 3 * 16);
  assert.deepEqual(calls[0].opts.stopTokens, [151645, 151643]);
  assert.equal(calls[0].opts.repetitionPenalty, 1.05);
  assert.equal(calls[0].opts.temperature, 0, 'greedy whatever the folder samples with');
});

test('medgr2 eval writes predictions that medgr2 eval score scores the same; bad input gets one clear line', async () => {
  const world = await medsynthWorld(200);
  const dir = tempDir('eval-cli');
  const modelDir = path.join(dir, 'policy');
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 4 });
  await m.save(modelDir, { sourceDir: DEFAULT_TOKENIZER_DIR });
  await m.dispose();
  const bench = path.join(world, 'medsynth.jsonl');
  const preds = path.join(dir, 'out', 'preds.jsonl');
  const r = runCli([
    'eval',
    '--model',
    modelDir,
    '--benchmark',
    bench,
    '--out',
    preds,
    '--task',
    'Modality Recognition',
    '--limit',
    '12',
    '--json',
    '--threads',
    '1',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const score = JSON.parse(r.stdout);
  assert.equal(score.overall.total, 12);
  const lines = fs
    .readFileSync(preds, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 12);
  for (const p of lines) assert.deepEqual(Object.keys(p), ['question_id', 'model_answer', 'raw']);
  const ids = new Set(
    worldSamples(world, 'Modality Recognition')
      .slice(0, 12)
      .map((s) => s.id),
  );
  assert.ok(lines.every((p) => ids.has(p.question_id)));

  const again = runCli(['eval', 'score', '--predictions', preds, '--benchmark', bench, '--allow-missing', '--json']);
  assert.equal(again.status, 0, again.stderr);
  const rescored = JSON.parse(again.stdout);
  assert.deepEqual(rescored.overall, score.overall);
  assert.equal(rescored.invalid, score.invalid);

  const table = runCli(['eval', '--model', modelDir, '--benchmark', bench, '--out', preds, '--limit', '3']);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /overall/);
  assert.match(table.stdout, /By modality/);

  const fail = (args: string[], pattern: RegExp, oneLine = true) => {
    const x = runCli(args);
    assert.notEqual(x.status, 0);
    if (oneLine) assert.equal(x.stderr.trim().split('\n').length, 1, x.stderr);
    assert.match(x.stderr.trim().split('\n')[0], pattern);
  };
  fail(
    ['eval', '--model', 'tiny-qwen2-vl', '--benchmark', bench, '--out', preds],
    /--model tiny-qwen2-vl: a trained model folder is needed here/,
  );
  fail(['eval', '--model', dir, '--benchmark', bench, '--out', preds], /not a model folder \(no config\.json\)/);
  const empty = path.join(dir, 'empty.jsonl');
  fs.writeFileSync(empty, '');
  fail(['eval', '--model', modelDir, '--benchmark', empty, '--out', preds], /--benchmark: .*empty\.jsonl: empty file/);
  fail(
    ['eval', '--model', modelDir, '--benchmark', bench, '--out', preds, '--style', 'long'],
    /--style must be one of answer, think, got "long"/,
    false,
  ); // commander adds the usage
});
