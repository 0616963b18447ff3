// The instruct recipe's pieces (--model): the three generator prompts, the tolerant JSON reply
// parser, the judge's prompt and its Yes/No ids on Qwen's real tokenizer (and the log-prob readout
// agreeing with the logits one), Med-R1's policy format with letters or option text (both scored),
// the batch sizing, and the recipe's config rule.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { instructCycleConfig, defaultCycleConfig, mergeCycleConfig, recipeOf } from '../../src/cycle/config';
import {
  answerFormatOf,
  instructGeneratorPrompt,
  instructJudgePrompt,
  instructPolicyExample,
  instructPolicyPrompt,
  instructPolicyReply,
  jsonObjectTexts,
  parseInstructReply,
} from '../../src/cycle/instruct_prompts';
import { judgeRewards, yesNoTokens } from '../../src/cycle/judge';
import { judgeExampleWith } from '../../src/cycle/negatives';
import { cycleRecipe } from '../../src/cycle/recipe';
import { generationBatch, imageTokenBound, kvBytesPerToken, forwardBatch } from '../../src/cycle/sizing';
import { predictedOption, followsGrammar } from '../../src/data/answer_grammar';
import { encodePng } from '../../src/data/medsynth/world';
import type { Sample } from '../../src/data/proto';
import { TextTokenizer } from '../../src/data/tokenizer';
import { encodeConversation } from '../../src/model/encode';
import { Model } from '../../src/model/model';
import { tinyConfig } from '../../src/model/tiny';
import { scorePredictions } from '../../src/eval/scorer';
import { runCli } from '../helpers/cli';
import { QWEN_TOKENIZER_DIR, writeQwenTokenizerFiles } from '../helpers/real_vocab_model';
import { tempDir } from '../helpers/temp_dir';

const ctx = { id: 'g1-0-0', image: '/x/0.png', modality: 'CT', task: 'Disease Diagnosis', round: 1 };
const OBJ = {
  question: 'Which abnormality is visible in this chest image?',
  options: ['Pneumonia', 'Normal', 'Pneumothorax', 'Effusion'],
  answer: 'Pneumothorax',
  rationale: 'The lung edge is visible with no markings beyond it.',
};

function sample(over: Partial<Sample> = {}): Sample {
  return {
    id: 's',
    dataset: 'd',
    images: ['/x/a.png'],
    modality: 'X-Ray',
    modalityOriginal: 'X-Ray',
    task: 'Disease Diagnosis',
    taskOriginal: 'Disease Diagnosis',
    question: OBJ.question,
    options: [...OBJ.options],
    answer: 'Pneumothorax',
    rationale: '',
    provenance: { kind: 'SEED', round: 0, sourceFile: '', sourceLine: 0, sourceFormat: 'omnimedvqa' },
    questionStem: '',
    ...over,
  };
}

test('generator prompts: three styles in plain language, each asking for the JSON sample', () => {
  const hint = { modality: 'CT', task: 'Disease Diagnosis' };
  const direct = instructGeneratorPrompt('direct', hint);
  const step = instructGeneratorPrompt('step', hint);
  const meta = instructGeneratorPrompt('metacognitive', hint);
  for (const p of [direct, step, meta]) {
    assert.match(p, /one multiple-choice question/);
    assert.match(p, /four options/);
    for (const k of ['question', 'options', 'answer', 'rationale']) assert.ok(p.includes(`"${k}"`), k);
    assert.match(p, /The image is a CT image\./);
    assert.match(p, /of this type: Disease Diagnosis/);
  }
  assert.match(direct, /Output only the JSON object\./);
  assert.match(step, /step by step/);
  assert.match(meta, /confident/);
  assert.match(meta, /answered from the image alone/);
  assert.equal(new Set([direct, step, meta]).size, 3);
  // no hints, no hint lines
  assert.doesNotMatch(instructGeneratorPrompt('direct', { modality: '', task: '' }), /image is a|of this type/);
  assert.equal(instructCycleConfig().generatorPrompt, 'metacognitive', 'the paper found metacognitive best');
});

test('generator replies: JSON in a fence, among text, after a reflection with braces; answers as letters or text', () => {
  const json = JSON.stringify(OBJ);
  const ok = (raw: string, answer = 'Pneumothorax') => {
    const c = parseInstructReply(raw, ctx);
    assert.equal(c.valid, true, `${c.invalidReason} <- ${raw}`);
    assert.equal(c.sample.answer, answer);
    assert.deepEqual(c.sample.options, OBJ.options);
    assert.equal(c.sample.rationale, OBJ.rationale);
    assert.equal(c.raw, raw, 'the whole reply is kept');
    return c;
  };
  ok(json);
  ok('```json\n' + json + '\n```');
  ok(`Here is the question:\n${json}\nI hope this helps.`);
  ok(`Reflection: I am confident of {the lung edge}. A set {a, b} is not JSON.\n\`\`\`json\n${json}\n\`\`\``);
  ok(`1. I see a pneumothorax. {"note": "draft"}\nFinal:\n${json}`);
  ok(JSON.stringify({ ...OBJ, answer: 'C' }));
  ok(JSON.stringify({ ...OBJ, answer: 'c' }));
  ok(JSON.stringify({ ...OBJ, answer: '(C)' }));
  ok(JSON.stringify({ ...OBJ, answer: 'C) Pneumothorax' }));
  ok(JSON.stringify({ ...OBJ, answer: 'pneumothorax.' }));
  ok(JSON.stringify({ ...OBJ, options: { A: 'Pneumonia', B: 'Normal', C: 'Pneumothorax', D: 'Effusion' } }));
  ok(JSON.stringify({ ...OBJ, options: OBJ.options.map((o, i) => `${'ABCD'[i]}) ${o}`), answer: 'C' }));
  const bad = (raw: string, re: RegExp) => {
    const c = parseInstructReply(raw, ctx);
    assert.equal(c.valid, false, raw);
    assert.match(c.invalidReason, re);
    assert.equal(c.raw, raw);
  };
  bad('I cannot write a question for this image.', /no JSON object/);
  bad('{"question": "x", "options": [', /no JSON object/);
  bad(JSON.stringify({ ...OBJ, options: OBJ.options.slice(0, 3) }), /has 3 entries, expected 4/);
  bad(JSON.stringify({ ...OBJ, options: [...OBJ.options, 'Mass'] }), /has 5 entries/);
  bad(JSON.stringify({ ...OBJ, answer: 'E' }), /not one of the options/);
  bad(JSON.stringify({ ...OBJ, answer: 'Fracture' }), /not one of the options/);
  bad(JSON.stringify({ ...OBJ, question: '' }), /"question" missing/);
  bad(JSON.stringify({ ...OBJ, options: ['A', 'a', 'B', 'C'] }), /not distinct/);
  assert.deepEqual(jsonObjectTexts('a {"x": "}"} b {"y": {"z": 1}}'), ['{"x": "}"}', '{"y": {"z": 1}}']);
});

test("the judge: prompt, and Yes/No ids on Qwen's tokenizer are the reply's first tokens", () => {
  const p = instructJudgePrompt(sample());
  assert.match(p, /Question: Which abnormality/);
  assert.match(p, /A\) Pneumonia\nB\) Normal\nC\) Pneumothorax\nD\) Effusion/);
  assert.match(p, /Proposed answer: C\) Pneumothorax/);
  assert.match(
    p,
    /Can the question be answered from the image, and is the proposed answer correct\? Reply with Yes or No only\./,
  );

  const dir = tempDir('qwen-tok');
  writeQwenTokenizerFiles(dir);
  const tok = TextTokenizer.load(dir);
  const ids = yesNoTokens(tok);
  assert.deepEqual(ids, { yes: 9454, no: 2753, note: undefined }, 'single tokens "Yes" / "No", not " Yes" (7414)');
  assert.equal(tok.encode(' Yes')[0], 7414);
  // the judge is trained on exactly those ids: the first target token of its Yes / No reply
  for (const [label, id] of [
    [true, ids.yes],
    [false, ids.no],
  ] as const) {
    const ex = judgeExampleWith(instructJudgePrompt)({ images: [], sample: sample(), label, kind: 'positive' });
    const enc = encodeConversation(tok, [], ex.user, { reply: ex.reply });
    const first = enc.targetMask.indexOf(1);
    assert.equal(enc.ids[first], id, `first reply token of "${ex.reply}"`);
    assert.equal(tok.decode(enc.ids.subarray(first - 3, first)), '<|im_start|>assistant\n');
  }
  assert.ok(fs.existsSync(path.join(QWEN_TOKENIZER_DIR, 'tokenizer.json')));
});

test('the judge: the log-prob readout gives the logits readout within float error', async () => {
  const dir = tempDir('judge-readout');
  const img = path.join(dir, 'a.png');
  fs.writeFileSync(
    img,
    await encodePng(
      new Uint8Array(56 * 56 * 3).map((_, i) => (i * 37) % 251),
      56,
    ),
  );
  const tok = TextTokenizer.load();
  const model = await Model.create(tinyConfig('qwen2_vl'), { seed: 3 });
  try {
    const items = [
      { images: [img], sample: sample() },
      { images: [img], sample: sample({ answer: 'Normal' }) },
      { images: [], sample: sample({ question: 'Is this a long question about nothing in particular?' }) },
    ];
    const a = await judgeRewards(model, tok, items, { prompt: instructJudgePrompt });
    const b = await judgeRewards(model, tok, items, { prompt: instructJudgePrompt, readout: 'logprobs', batchSize: 2 });
    assert.equal(b.length, 3);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${a[i]} vs ${b[i]}`);
    assert.ok(new Set(a.map((x) => x.toFixed(6))).size > 1, 'the items get different rewards');
  } finally {
    await model.dispose();
  }
});

test("the policy: Med-R1's format, answers as letters or text as the seed keys them; the scorer reads both", () => {
  const s = sample();
  const text = instructPolicyPrompt(s, 'text');
  const letter = instructPolicyPrompt(s, 'letter');
  assert.match(text, /^Which abnormality is visible in this chest image\?\nA\) Pneumonia\n/);
  assert.match(text, /inside <think> <\/think> tags, then give the final answer, the text of the correct option/);
  assert.match(letter, /the letter of the correct option, inside <answer> <\/answer> tags/);
  const rText = instructPolicyReply(s, 'text');
  const rLetter = instructPolicyReply({ ...s, rationale: 'The lung edge is visible.' }, 'letter');
  assert.match(
    rText,
    /^<think> The question asks about the disease diagnosis in this X-Ray image\. .*<\/think> <answer> Pneumothorax <\/answer>$/,
  );
  assert.equal(rLetter, '<think> The lung edge is visible. </think> <answer> C </answer>');
  for (const r of [rText, rLetter]) {
    assert.ok(followsGrammar(r, 'think'), r);
    assert.equal(predictedOption(r, s.options), 2);
  }
  const score = scorePredictions(
    [s, { ...s, id: 't' }],
    [
      { questionId: 's', answer: 'Pneumothorax', line: 1 },
      { questionId: 't', answer: 'C', line: 2 },
    ],
  );
  assert.equal(score.overall.correct, 2, 'option text and letter both scored right');
  const ex = instructPolicyExample(s, 'text');
  assert.equal(ex.system, 'You are a helpful assistant.');
  assert.equal(answerFormatOf([s, s]), 'text', "OmniMedVQA's gt_answer is the option text");
  const r1v = sample({ provenance: { ...s.provenance, sourceFormat: 'r1v' } });
  assert.equal(answerFormatOf([r1v, r1v, s]), 'letter', "R1-V / Med-R1's keys are letters");
});

test('batch sizing: KV cache per token from the shape, image tokens at max_pixels, batches within budgets', () => {
  // Qwen2.5-VL-7B: 28 layers, 4 KV heads of 128, bf16 -> 57,344 bytes a token
  assert.equal(kvBytesPerToken({ numLayers: 28, numKvHeads: 4, headDim: 128 }, 'BFloat16'), 57344);
  assert.equal(kvBytesPerToken({ numLayers: 2, numKvHeads: 1, headDim: 8 }, 'Float'), 128);
  const patch = { patchSize: 14, mergeSize: 2, temporalPatchSize: 2, mean: [0, 0, 0], std: [1, 1, 1] };
  assert.equal(imageTokenBound({ maxPixels: 12544, patch }), 18);
  assert.equal(imageTokenBound({ maxPixels: 1280 * 28 * 28, patch }), 1282);
  const g = generationBatch({
    memoryBudgetMiB: 1024,
    bytesPerToken: 57344,
    promptTokens: 1500,
    maxNewTokens: 548,
    cap: 256,
  });
  assert.equal(g.bytesPerSequence, 57344 * 2048);
  assert.equal(g.batch, 9); // 1 GiB / 112 MiB
  assert.equal(
    generationBatch({ memoryBudgetMiB: 1, bytesPerToken: 57344, promptTokens: 1500, maxNewTokens: 548, cap: 256 })
      .batch,
    1,
  );
  assert.equal(
    generationBatch({ memoryBudgetMiB: 1e6, bytesPerToken: 1, promptTokens: 1, maxNewTokens: 1, cap: 7 }).batch,
    7,
  );
  assert.equal(forwardBatch({ tokenBudget: 4096, promptTokens: 1000, cap: 256 }), 4);
  assert.equal(forwardBatch({ tokenBudget: 100, promptTokens: 1000, cap: 256 }), 1);
});

test('the recipe rule: --model means the instruct recipe, its warm-ups off unless the config asks', () => {
  assert.equal(recipeOf(defaultCycleConfig()), 'medsynth');
  assert.equal(recipeOf({ model: 'dir' }), 'instruct');
  const i = instructCycleConfig();
  assert.deepEqual(
    [i.warmup.generatorSteps, i.warmup.judgeSteps, i.warmup.factSwaps, i.warmup.describePool],
    [0, 0, 0, false],
  );
  assert.ok(i.generate.memoryBudgetMiB! > 0);
  const asked = mergeCycleConfig(
    i,
    { warmup: { generatorSteps: 50, describePool: true }, generatorPrompt: 'step' },
    'c.json',
  );
  assert.equal(asked.warmup.generatorSteps, 50);
  assert.equal(asked.warmup.judgeSteps, 0);
  assert.equal(asked.warmup.describePool, true);
  assert.equal(asked.generatorPrompt, 'step');
  // the default config gains no keys (its runs' config.json and resumes are unchanged)
  assert.ok(!('generatorPrompt' in defaultCycleConfig()) && !('memoryBudgetMiB' in defaultCycleConfig().generate));
  const d = mergeCycleConfig(defaultCycleConfig(), { generate: { memoryBudgetMiB: 512 }, maxPixels: 50176 }, 'c.json');
  assert.equal(d.generate.memoryBudgetMiB, 512);
  assert.equal(d.maxPixels, 50176);
  assert.throws(
    () => mergeCycleConfig(i, { generatorPrompt: 'socratic' }, 'c.json'),
    /c\.json: key "generatorPrompt" expects one of direct, step, metacognitive/,
  );
  assert.throws(() => mergeCycleConfig(i, { answerFormat: 'number' }, 'c.json'), /expects one of letter, text/);
  assert.throws(() => mergeCycleConfig(i, { warmup: { describePool: 1 } }, 'c.json'), /expects true or false/);
  // the default recipe keeps its own pieces
  const m = cycleRecipe(defaultCycleConfig(), [sample()]);
  assert.equal(m.name, 'medsynth');
  assert.equal(m.judgeReadout, 'logits');
  assert.deepEqual(m.images, {});
});

test('medgr2 cycle: the instruct flags are refused without --model, a bad style is named', () => {
  const out = path.join(tempDir('cycle-flags'), 'run');
  const r = runCli(['cycle', '--generator-prompt', 'step', '--out', out]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--generator-prompt \(config key generatorPrompt\): only with --model/);
  const r2 = runCli(['cycle', '--model', 'x', '--generator-prompt', 'socratic', '--out', out]);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /--generator-prompt: direct, step, metacognitive, got 'socratic'/);
  assert.ok(!fs.existsSync(out));
});
