// Answer grounding: a generated question answered with the fact its description states (the answer's
// slot, or a swap when that fact is already an option), untouched where the description states none or
// agrees; seed copies refused; the default recipe's parser with the setting on and off; the count of
// grounded candidates a round record carries; and `medgr2 generate --ground-answers`'s parser with the
// descriptions a pool.jsonl may carry.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { Candidate, Sample } from '../../src/data/proto';
import { defaultCycleConfig } from '../../src/cycle/config';
import { readPool, seedCopyKey, type ParseContext } from '../../src/cycle/generator';
import { tempDir } from '../helpers/temp_dir';
import { groundedCount, groundInDescription } from '../../src/cycle/grounding';
import { cycleRecipe, describedFact, medsynthReplyParser } from '../../src/cycle/recipe';

function candidate(task: string, options: string[], answer: string, rationale: string, valid = true): Candidate {
  const sample = {
    id: 'g1-0-0',
    images: ['pool/0.png'],
    modality: 'OCT',
    task,
    question: 'Which structure is shown?',
    questionStem: 'Which structure is shown?',
    options,
    answer,
    rationale,
  } as Sample;
  return { sample, generatorRound: 1, valid, invalidReason: valid ? '' : 'no JSON object in the reply', raw: '' };
}

test('groundInDescription: the described fact takes the answer slot; the other options stay in place', () => {
  const c = candidate(
    'Anatomy Identification',
    ['Spine', 'Brain', 'Chest', 'Skin'],
    'Brain',
    'OCT of the Macula with CNV.',
  );
  const g = groundInDescription(c, describedFact);
  assert.deepEqual(g.sample.options, ['Spine', 'Macula', 'Chest', 'Skin']);
  assert.equal(g.sample.answer, 'Macula');
  assert.equal(g.valid, true);
  // the input is not modified
  assert.equal(c.sample.answer, 'Brain');
  assert.deepEqual(c.sample.options, ['Spine', 'Brain', 'Chest', 'Skin']);
});

test('groundInDescription: a described fact that is already an option swaps places with the answer', () => {
  const c = candidate(
    'Disease Diagnosis',
    ['Normal', 'Infarct', 'CNV', 'Tumor'],
    'Infarct',
    'An OCT image of the Macula showing CNV.',
  );
  const g = groundInDescription(c, describedFact);
  assert.deepEqual(g.sample.options, ['Normal', 'CNV', 'Infarct', 'Tumor']);
  assert.equal(g.sample.answer, 'CNV');
});

test('groundInDescription: unchanged when the description agrees, states nothing of the task, or the candidate is invalid', () => {
  const agrees = candidate(
    'Anatomy Identification',
    ['Spine', 'macula', 'Chest', 'Skin'],
    'macula',
    'OCT of the Macula.',
  );
  assert.equal(groundInDescription(agrees, describedFact), agrees);
  // "An OCT image." names no anatomy
  const silent = candidate('Anatomy Identification', ['Spine', 'Brain', 'Chest', 'Skin'], 'Brain', 'An OCT image.');
  assert.equal(groundInDescription(silent, describedFact), silent);
  // prose that is not a caption's phrasing states nothing
  const prose = candidate(
    'Anatomy Identification',
    ['Spine', 'Brain', 'Chest', 'Skin'],
    'Brain',
    'looks like a retina',
  );
  assert.equal(groundInDescription(prose, describedFact), prose);
  const invalid = candidate('Anatomy Identification', [], '', 'OCT of the Macula.', false);
  assert.equal(groundInDescription(invalid, describedFact), invalid);
});

test('groundInDescription: a grounded sample equal to a seed sample is invalid, as any copy', () => {
  const c = candidate('Modality Recognition', ['CT', 'MRI', 'OCT', 'X-Ray'], 'CT', 'OCT of the Macula.');
  const seedLike = { ...c.sample, options: ['OCT', 'MRI', 'CT', 'X-Ray'], answer: 'OCT' };
  const seedKeys = new Set([seedCopyKey(seedLike)]);
  const g = groundInDescription(c, describedFact, (s) => seedKeys.has(seedCopyKey(s)));
  assert.equal(g.valid, false);
  assert.match(g.invalidReason, /copied verbatim from the seed/);
});

test("the default recipe's parser grounds compact replies with generate.groundAnswers, and not without", () => {
  const seed = [
    { task: 'Anatomy Identification', options: ['Abdomen', 'Brain', 'Chest', 'Spine'] },
    { task: 'Anatomy Identification', options: ['Skin', 'Brain', 'Knee', 'Spine'] },
  ] as Sample[];
  const ctx: ParseContext = {
    id: 'g1-3-2',
    image: 'pool/3.png',
    modality: 'OCT',
    task: 'Anatomy Identification',
    round: 1,
    description: 'OCT of the Macula with Drusen.',
    vocabulary: { 'Anatomy Identification': ['Abdomen', 'Brain', 'Chest', 'Knee', 'Skin', 'Spine'] },
  };
  const raw = '{"q": "Which structure is shown?", "a": "Brain"}';
  const defaults = defaultCycleConfig('/tmp/unused');
  const on = { ...defaults, generate: { ...defaults.generate, groundAnswers: true } };
  const off = { ...on, generate: { ...on.generate, groundAnswers: false } };
  const grounded = cycleRecipe(on, seed).parseReply(raw, ctx);
  const plain = cycleRecipe(off, seed).parseReply(raw, ctx);
  assert.equal(plain.sample.answer, 'Brain');
  assert.equal(grounded.valid, true);
  assert.equal(grounded.sample.answer, 'Macula');
  assert.equal(new Set(grounded.sample.options).size, 4);
  const seedWords = ctx.vocabulary!['Anatomy Identification'];
  for (const o of grounded.sample.options.filter((x) => x !== 'Macula')) assert.ok(seedWords.includes(o), o);
  assert.equal(grounded.raw, raw, 'the reply is kept as the generator wrote it');
  assert.equal(groundedCount([grounded, plain]), 1);
});

test('a reply that proposes the described fact itself is valid with grounding, though no seed option names it', () => {
  const seed = [{ task: 'Anatomy Identification', options: ['Abdomen', 'Brain', 'Chest', 'Spine'] }] as Sample[];
  const ctx: ParseContext = {
    id: 'g2-5-1',
    image: 'pool/5.png',
    modality: 'OCT',
    task: 'Anatomy Identification',
    round: 2,
    description: 'An OCT image of the Macula.',
    vocabulary: { 'Anatomy Identification': ['Abdomen', 'Brain', 'Chest', 'Spine'] },
  };
  const raw = '{"q": "Which structure is shown?", "a": "Macula"}';
  const defaults = defaultCycleConfig('/tmp/unused');
  const on = { ...defaults, generate: { ...defaults.generate, groundAnswers: true } };
  const off = { ...on, generate: { ...on.generate, groundAnswers: false } };
  const plain = cycleRecipe(off, seed).parseReply(raw, ctx);
  assert.equal(plain.valid, false);
  assert.match(plain.invalidReason, /not in the seed's vocabulary/);
  const grounded = cycleRecipe(on, seed).parseReply(raw, ctx);
  assert.equal(grounded.valid, true, grounded.invalidReason);
  assert.equal(grounded.sample.answer, 'Macula');
  assert.equal(groundedCount([grounded]), 0, 'the generator answered so itself');
  // another task's reply is not given the anatomy
  const modality = cycleRecipe(on, seed).parseReply('{"q": "Which modality?", "a": "Macula"}', {
    ...ctx,
    task: 'Modality Recognition',
    vocabulary: { ...ctx.vocabulary, 'Modality Recognition': ['CT', 'MRI', 'OCT', 'X-Ray'] },
  });
  assert.equal(modality.valid, false);
});

test('groundedCount: valid candidates whose answer is not the one their reply proposed', () => {
  const withRaw = (c: Candidate, raw: string): Candidate => ({ ...c, raw });
  const opts = ['Spine', 'Brain', 'Chest', 'Macula'];
  const cands = [
    withRaw(candidate('Anatomy Identification', opts, 'Macula', ''), '{"q": "x", "a": "Brain"}'), // grounded
    withRaw(candidate('Anatomy Identification', opts, 'Brain', ''), '{"q": "x", "a": " brain "}'), // its own
    withRaw(candidate('Anatomy Identification', opts, 'Macula', '', false), '{"q": "x", "a": "Brain"}'), // invalid
    withRaw(candidate('Anatomy Identification', opts, 'Macula', ''), 'not JSON'), // nothing proposed
  ];
  assert.equal(groundedCount(cands), 1);
});

test("medgr2 generate's parser: --ground-answers grounds a full reply in its rationale; pool.jsonl carries descriptions", () => {
  const raw = JSON.stringify({
    question: 'Which structure is shown?',
    options: ['Brain', 'Spine', 'Knee', 'Chest'],
    answer: 'Spine',
    rationale: 'An Ultrasound image of the Kidney.',
  });
  const ctx: ParseContext = { id: 'g0-0-0', image: 'a.png', modality: '', task: 'Anatomy Identification', round: 0 };
  assert.equal(medsynthReplyParser(false)(raw, ctx).sample.answer, 'Spine');
  const g = medsynthReplyParser(true)(raw, ctx);
  assert.equal(g.sample.answer, 'Kidney');
  assert.deepEqual(g.sample.options, ['Brain', 'Kidney', 'Knee', 'Chest']);

  const dir = tempDir('pool-described');
  const file = path.join(dir, 'pool.jsonl');
  fs.writeFileSync(
    file,
    [
      JSON.stringify({
        image_path: 'a.png',
        modality_hint: 'Ultrasound',
        description: 'An Ultrasound image of the Kidney.',
      }),
      JSON.stringify({ image_path: 'b.png' }),
    ].join('\n'),
  );
  const pool = readPool(file);
  assert.equal(pool[0].description, 'An Ultrasound image of the Kidney.');
  assert.equal(pool[1].description, undefined);
  fs.writeFileSync(file, JSON.stringify({ image_path: 'a.png', description: 3 }) + '\n');
  assert.throws(() => readPool(file), /pool\.jsonl:1: 'description' must be a string/);
});
