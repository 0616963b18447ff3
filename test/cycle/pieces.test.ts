// The cycle's pieces without a model: generator reply parsing and validation, the judge's reward from
// a known distribution, selection (balance, dedupe, nothing lost), constructed negatives, AUC.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleOf, scoredOf } from '../helpers/samples';
import {
  compactGeneratorReply,
  generatorPrompt,
  generatorReply,
  optionVocabulary,
  parseGeneratorReply,
  roundVocabulary,
  seedCopyKey,
} from '../../src/cycle/generator';
import { factSwaps, imageFacts, withDescriptions } from '../../src/cycle/describe';
import { rewardFromLogits, yesNoTokens } from '../../src/cycle/judge';
import { accuracyAt, auc } from '../../src/eval/auc';
import {
  constructNegative,
  constructPairs,
  confidentPairs,
  judgeExample,
  NEGATIVE_KINDS,
} from '../../src/cycle/negatives';
import { rationaleContradiction, selectCandidates } from '../../src/cycle/select';
import { describedFact } from '../../src/cycle/recipe';
import { Prng } from '../../src/util/prng';
import { TextTokenizer } from '../../src/data/tokenizer';

const ctx = { id: 'g1-0-0', image: '/x/0.png', modality: 'CT', task: 'Modality Recognition', round: 1 };

const sample = sampleOf;

test('generator replies: a good one parses; each defect is invalid with its reason, and kept raw', () => {
  const good =
    '{"question":"What imaging modality is used in this image?","options":["CT","MRI","OCT","X-Ray"],"answer":"CT","rationale":"r"}';
  const c = parseGeneratorReply(`Sure: ${good} done`, ctx);
  assert.equal(c.valid, true, c.invalidReason);
  assert.deepEqual(c.sample.options, ['CT', 'MRI', 'OCT', 'X-Ray']);
  assert.equal(c.sample.answer, 'CT');
  assert.equal(c.sample.provenance.kind, 'GENERATED');
  assert.equal(
    parseGeneratorReply(good.replace('"answer":"CT"', '"answer":"b"'), ctx).sample.answer,
    'MRI',
    'a letter names its option',
  );
  const cases: [string, RegExp][] = [
    ['no json here', /no JSON object/],
    ['{"question": "q", "options": [', /no JSON object/],
    ['{"question":"q",}', /not parseable/],
    ['{"options":["a","b","c","d"],"answer":"a"}', /question/],
    ['{"question":"q","options":["a","b","c"],"answer":"a"}', /3 entries/],
    ['{"question":"q","options":["a","b","c","A."],"answer":"a"}', /not distinct/],
    ['{"question":"q","options":["a","b","c",""],"answer":"a"}', /empty/],
    ['{"question":"q","options":["a","b","c","d"],"answer":"e"}', /not one of the options/],
    ['{"question":"q","options":["a","b","c","d"]}', /answer/],
  ];
  for (const [raw, why] of cases) {
    const bad = parseGeneratorReply(raw, ctx);
    assert.equal(bad.valid, false, raw);
    assert.match(bad.invalidReason, why, raw);
    assert.equal(bad.raw, raw);
  }
  const seed = sample();
  const copy = parseGeneratorReply(generatorReply(seed), { ...ctx, seedKeys: new Set([seedCopyKey(seed)]) });
  assert.equal(copy.valid, false);
  assert.match(copy.invalidReason, /copied/);
  // the same question with other options is new data, not a copy
  const other = parseGeneratorReply(generatorReply({ ...seed, options: ['CT', 'MRI', 'OCT', 'Microscopy'] }), {
    ...ctx,
    seedKeys: new Set([seedCopyKey(seed)]),
  });
  assert.equal(other.valid, true);
});

test('a sample whose rationale names another answer of its task is not selected, and the reason names it', () => {
  const vocab = ['Brain', 'Chest', 'Macula', 'Retina', 'Skin'];
  assert.equal(rationaleContradiction({ rationale: 'OCT of the Macula with CNV.', answer: 'Brain' }, vocab), 'Macula');
  assert.equal(
    rationaleContradiction({ rationale: 'OCT of the Macula with CNV.', answer: 'macula' }, vocab),
    '',
    'the answer is the named one',
  );
  assert.equal(
    rationaleContradiction({ rationale: 'An OCT image with CNV.', answer: 'Brain' }, vocab),
    '',
    'names none of them',
  );
  assert.equal(rationaleContradiction({ rationale: '', answer: 'Brain' }, vocab), '');
  assert.equal(
    rationaleContradiction({ rationale: 'The Retina and the Macula.', answer: 'Skin' }, vocab),
    'Macula, Retina',
  );
  assert.equal(
    rationaleContradiction({ rationale: 'The Retina and the Macula.', answer: 'Retina' }, vocab),
    '',
    'one of the named',
  );
  const anat = {
    ...ctx,
    task: 'Anatomy Identification',
    description: 'OCT of the Macula with CNV.',
    vocabulary: { 'Anatomy Identification': vocab },
  };
  const scored = ['Brain', 'Macula', 'Skin'].map((a, i) => ({
    candidate: parseGeneratorReply(`{"q":"What anatomical structure is shown in this image? (${i})","a":"${a}"}`, {
      ...anat,
      id: `g-${i}`,
    }),
    reward: 0.9 - 0.1 * i,
    judgeRound: 1,
    selected: false,
    selectReason: '',
  }));
  for (const s of scored)
    assert.equal(s.candidate.valid, true, 'well-formed: the generator check does not read the rationale');
  // the vocabulary comes from the candidates' own options, so a lone file can be selected from
  const sel = selectCandidates(scored, { topFraction: 1 });
  assert.deepEqual(
    sel.map((s) => s.selected),
    [false, true, false],
  );
  assert.match(sel[0].selectReason, /"Brain" contradicts its rationale, which names Macula/);
  assert.deepEqual(
    selectCandidates(scored, { topFraction: 1, keepContradicted: true }).map((s) => s.selected),
    [true, true, true],
  );
});

test('a finding the description states contradicts another answer, also when no option names it', () => {
  // "CNV" is in no candidate's options, so the option vocabulary cannot see the contradiction
  const options = ['Infarct', 'Nodule', 'Hemorrhage', 'Cavity'];
  const dis = (id: string, answer: string, rationale: string, reward: number) =>
    scoredOf(id, reward, { images: [`/img/${id}.png`], task: 'Disease Diagnosis', answer, options, rationale });
  const scored = [
    dis('a', 'Infarct', 'OCT of the Macula with CNV.', 0.9),
    dis('b', 'Infarct', 'A CT image of the Brain showing Infarct.', 0.8),
    dis('c', 'Nodule', 'This X-Ray image shows the Chest with no abnormality.', 0.7),
    dis('d', 'Cavity', 'garbled words', 0.6),
  ];
  assert.deepEqual(
    selectCandidates(scored, { topFraction: 1 }).map((s) => s.selected),
    [true, true, true, true],
    'without statedFact: only the option vocabulary',
  );
  const sel = selectCandidates(scored, { topFraction: 1, statedFact: describedFact });
  assert.deepEqual(
    sel.map((s) => s.selected),
    [false, true, false, true],
  );
  assert.match(sel[0].selectReason, /^contradicted: the answer "Infarct" contradicts its rationale, which names CNV/);
  assert.match(sel[2].selectReason, /which names Normal/);
  assert.equal(describedFact({ task: 'Modality Recognition', rationale: 'OCT of the Macula with CNV.' }), 'OCT');
  assert.equal(describedFact({ task: 'Anatomy Identification', rationale: 'OCT of the Macula with CNV.' }), 'Macula');
  assert.equal(describedFact({ task: 'Anatomy Identification', rationale: 'An MRI image.' }), undefined, 'not stated');
  assert.equal(describedFact({ task: 'Lesion Grading', rationale: 'OCT of the Macula with CNV.' }), undefined);
});

test('compact generator replies: question and answer; distractors from the seed vocabulary of the task', () => {
  const seed = [
    sample(),
    sample({ options: ['MRI', 'CT', 'Ultrasound', 'Microscopy'], answer: 'MRI' }),
    sample({ task: 'Anatomy Identification', options: ['Brain', 'Chest', 'Knee', 'Skin'], answer: 'Brain' }),
  ];
  const vocabulary = optionVocabulary(seed);
  assert.deepEqual(vocabulary['Modality Recognition'], ['CT', 'MRI', 'Microscopy', 'OCT', 'Ultrasound', 'X-Ray']);
  const reply = compactGeneratorReply({
    question: 'What imaging modality is used in this image?',
    questionStem: '',
    answer: 'OCT',
  });
  assert.equal(reply, '{"q":"What imaging modality is used in this image?","a":"OCT"}');
  const c = parseGeneratorReply(reply, { ...ctx, vocabulary });
  assert.equal(c.valid, true, c.invalidReason);
  assert.equal(c.sample.answer, 'OCT');
  assert.equal(c.sample.options.length, 4);
  assert.equal(new Set(c.sample.options).size, 4);
  assert.ok(
    c.sample.options.includes('OCT') && c.sample.options.every((o) => vocabulary['Modality Recognition'].includes(o)),
  );
  assert.deepEqual(
    parseGeneratorReply(reply, { ...ctx, vocabulary }).sample.options,
    c.sample.options,
    'the draw is fixed by the id',
  );
  const out = parseGeneratorReply('{"q":"q","a":"Liver"}', { ...ctx, vocabulary });
  assert.equal(out.valid, false);
  assert.match(out.invalidReason, /vocabulary/);
  assert.match(
    parseGeneratorReply('{"q":"q","a":"Brain"}', { ...ctx, vocabulary: { 'Modality Recognition': ['Brain', 'Chest'] } })
      .invalidReason,
    /fewer than four/,
  );
});

test('round vocabulary: answers proposed twice for a task join it, unless the seed uses them for another task', () => {
  const seedVocab = {
    'Modality Recognition': ['CT', 'MRI', 'OCT', 'X-Ray'],
    'Anatomy Identification': ['Brain', 'Chest', 'Knee', 'Retina'],
  };
  const r = (a: string, task: string) => ({ raw: `{"q":"q","a":"${a}"}`, task });
  const replies = [
    r('Fundus photography', 'Modality Recognition'),
    r(' fundus photography ', 'Modality Recognition'), // twice (normalized): joins
    r('Microscopy', 'Modality Recognition'), // once: does not
    r('Brain', 'Modality Recognition'),
    r('Brain', 'Modality Recognition'), // the seed's organ: wrong kind of answer
    r('Macula', 'Anatomy Identification'),
    r('Macula', 'Anatomy Identification'),
    r('Drusen', 'Disease Diagnosis'),
    r('Drusen', 'Disease Diagnosis'), // a task the seed vocabulary lacks
    { raw: 'not json', task: 'Modality Recognition' },
    { raw: '{"q":"q"}', task: 'Modality Recognition' },
  ];
  const v = roundVocabulary(seedVocab, replies);
  assert.deepEqual(v['Modality Recognition'], ['CT', 'Fundus photography', 'MRI', 'OCT', 'X-Ray']);
  assert.deepEqual(v['Anatomy Identification'], ['Brain', 'Chest', 'Knee', 'Macula', 'Retina']);
  assert.deepEqual(v['Disease Diagnosis'], ['Drusen']);
  assert.deepEqual(
    seedVocab['Modality Recognition'],
    ['CT', 'MRI', 'OCT', 'X-Ray'],
    'the seed vocabulary is not modified',
  );
  const c = parseGeneratorReply('{"q":"What imaging modality is used in this image?","a":"Fundus photography"}', {
    ...ctx,
    vocabulary: v,
  });
  assert.equal(c.valid, true, c.invalidReason);
  assert.equal(roundVocabulary(seedVocab, replies, 3)['Modality Recognition'].length, 4, 'minCount 3: nothing joins');
});

test("descriptions: an image's facts from its samples, one caption per image, fact swaps move description and answer together", () => {
  const img = ['/x/ct1.png'];
  const seed = [
    sample({ id: 'm', images: img }),
    sample({
      id: 'a',
      images: img,
      task: 'Anatomy Identification',
      question: 'Which part of the body is shown in this image?',
      options: ['Brain', 'Chest', 'Knee', 'Retina'],
      answer: 'Chest',
    }),
    sample({
      id: 'd',
      images: img,
      task: 'Disease Diagnosis',
      question: 'What is the most likely diagnosis?',
      options: ['Normal', 'Tumor', 'Infarct', 'Hemorrhage'],
      answer: 'Infarct',
    }),
    sample({
      id: 'o',
      images: ['/x/mri.png'],
      modality: 'MRI',
      answer: 'MRI',
      task: 'Lesion Grading',
      options: ['Grade 1', 'Grade 2', 'Grade 3', 'Grade 4'],
    }),
  ];
  seed[3].answer = 'Grade 2';
  assert.deepEqual(imageFacts(seed).get('/x/ct1.png'), { modality: 'CT', anatomy: 'Chest', disease: 'Infarct' });
  assert.deepEqual(
    imageFacts(seed).get('/x/mri.png'),
    { modality: 'MRI', anatomy: '', disease: '', grade: 'Grade 2' },
    'a grading sample states its grade',
  );
  const counting = { ...seed[3], id: 'c', images: ['/x/cells.png'], task: 'Other Biological Attributes', answer: '3' };
  assert.deepEqual(
    imageFacts([counting]).get('/x/cells.png'),
    { modality: 'MRI', anatomy: '', disease: '' },
    'a task that states no fact adds none',
  );
  const described = withDescriptions(seed);
  const d = described[0].rationale;
  assert.match(d, /\bCT\b/);
  assert.match(d, /Chest/);
  assert.match(d, /Infarct/);
  assert.ok(
    described.slice(0, 3).every((s) => s.rationale === d),
    'the same description for every question about the image',
  );
  assert.match(
    described[3].rationale,
    /^(An MRI image|MRI)\.$/,
    `only the modality is known: '${described[3].rationale}'`,
  );
  assert.equal(withDescriptions([sample({ rationale: 'given' })])[0].rationale, 'given');

  const vocabulary = {
    'Modality Recognition': ['CT', 'MRI', 'OCT', 'Ultrasound'],
    'Anatomy Identification': ['Brain', 'Chest', 'Retina'],
    'Disease Diagnosis': ['Infarct', 'Normal', 'Tumor'],
  };
  const swaps = factSwaps(seed, vocabulary, 3, ['modality', 'anatomy', 'disease']);
  assert.equal(swaps.length, 3, 'one per sample whose task states a fact');
  for (const s of swaps) {
    assert.ok(s.rationale.includes(s.modality), `the hint follows the description: ${s.modality} / ${s.rationale}`);
    assert.ok(
      s.rationale.includes(s.answer),
      `the answer is in the description as spelled: ${s.answer} / ${s.rationale}`,
    );
    assert.equal(s.images, img, 'the image stays');
  }
  assert.notEqual(swaps[0].answer, 'CT');
  assert.deepEqual(factSwaps(seed, vocabulary, 3, ['modality', 'anatomy', 'disease']), swaps, 'deterministic');
  // the default swaps the modality alone: a modality question's answer moves, the others keep theirs
  const modalityOnly = factSwaps(seed, vocabulary, 3);
  assert.deepEqual(
    modalityOnly.map((s) => s.answer === s.modality),
    [true, false, false],
  );
  assert.deepEqual(
    modalityOnly.slice(1).map((s) => s.answer),
    ['Chest', 'Infarct'],
  );
  for (const s of modalityOnly) {
    assert.notEqual(s.modality, 'CT');
    assert.ok(
      s.rationale.includes(s.modality) && s.rationale.includes('Chest') && s.rationale.includes('Infarct'),
      s.rationale,
    );
  }

  assert.match(
    generatorPrompt({ modality: 'CT', task: 'Modality Recognition', description: d }),
    new RegExp(`\nDescription: ${d.replace(/[.]/g, '\\.')}$`),
  );
});

test('judge reward: P(Yes)/(P(Yes)+P(No)) from a known distribution, whatever the other tokens', () => {
  const tok = TextTokenizer.load();
  const ids = yesNoTokens(tok);
  assert.equal(ids.note, undefined, 'the shipped tokenizer has Yes and No as single tokens');
  assert.equal(tok.decode([ids.yes]), 'Yes');
  assert.equal(tok.decode([ids.no]), 'No');
  const row = new Float32Array(768).fill(-1);
  // p(Yes) = 0.3, p(No) = 0.1 of some softmax: logits log 0.3 and log 0.1 (+ any constant)
  row[ids.yes] = Math.log(0.3) + 5;
  row[ids.no] = Math.log(0.1) + 5;
  row[7] = 9; // a large other token changes nothing
  assert.ok(Math.abs(rewardFromLogits(row, ids) - 0.75) < 1e-6);
  row[ids.yes] = -1000;
  row[ids.no] = 1000;
  assert.equal(rewardFromLogits(row, ids), 0);
});

const scored = scoredOf;

test('selection: threshold, dedupe keeps the best copy, balance caps groups, nothing is lost', () => {
  const items = [
    scored('a', 0.9, { images: ['1'] }),
    scored('b', 0.95, { images: ['1'], question: 'what imaging modality is used in this image' }), // duplicate of a (normalized)
    scored('c', 0.2, { images: ['2'] }),
    scored('d', 0.8, { images: ['3'], modality: 'MRI' }),
    scored('e', 0.7, { images: ['4'] }),
    scored('f', 0.99, { images: ['5'] }, false),
  ];
  const out = selectCandidates(items, { threshold: 0.5 });
  assert.equal(out.length, items.length);
  assert.deepEqual(
    out.map((s) => s.candidate.sample.id),
    items.map((s) => s.candidate.sample.id),
    'input order kept',
  );
  const by = Object.fromEntries(out.map((s) => [s.candidate.sample.id, s]));
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => by[k].selected),
    [false, true, false, true, true, false],
  );
  assert.match(by.a.selectReason, /duplicate of b/);
  assert.match(by.c.selectReason, /below threshold/);
  assert.match(by.f.selectReason, /invalid/);
  assert.equal(by.c.reward, 0.2, 'scores stay');

  // top-2 balanced with one slot per group: the CT group's second best gives way to MRI
  const bal = selectCandidates(items, { topK: 2, balance: true, maxPerGroup: 1 });
  assert.deepEqual(
    bal
      .filter((s) => s.selected)
      .map((s) => s.candidate.sample.id)
      .sort(),
    ['b', 'd'],
  );
  assert.match(bal.find((s) => s.candidate.sample.id === 'e')!.selectReason, /over quota for CT/);
  // top-k refills from over-quota groups when the other groups run out
  const refill = selectCandidates(items, { topK: 3, balance: true, maxPerGroup: 1 });
  assert.equal(refill.filter((s) => s.selected).length, 3);
  // random ranking keeps as many as the threshold would
  const rnd = selectCandidates(items, { threshold: 0.5, rankBy: 'random', seed: 3 });
  assert.equal(rnd.filter((s) => s.selected).length, 3);
  assert.throws(() => selectCandidates(items, { threshold: 0.5, topK: 2 }), /one of a threshold/);

  // top half (rounded) of each group's valid, de-duplicated candidates: CT keeps b, e of b, e, c; MRI keeps d
  const half = selectCandidates(items, { topFraction: 0.5, balance: true });
  assert.deepEqual(
    half
      .filter((s) => s.selected)
      .map((s) => s.candidate.sample.id)
      .sort(),
    ['b', 'd', 'e'],
  );
  assert.match(half.find((s) => s.candidate.sample.id === 'c')!.selectReason, /outside the top 50%/);
  assert.equal(half.length, items.length, 'nothing lost');
  const halfRnd = selectCandidates(items, { topFraction: 0.5, rankBy: 'random', seed: 3 });
  assert.equal(halfRnd.filter((s) => s.selected).length, 3, 'the random ablation keeps as many per group');
  assert.throws(() => selectCandidates(items, { topFraction: 0 }), /top-fraction/);

  // a floor with the top fraction: a group's top members must also reach it (the paper's tau); the random
  // ablation keeps as many of each group as the filter does
  const floored = selectCandidates(items, { topFraction: 0.5, floor: 0.75, balance: true });
  const keptIds = floored.filter((s) => s.selected).map((s) => s.candidate.sample.id);
  const rewards = new Map(items.map((s) => [s.candidate.sample.id, s.reward]));
  assert.ok(
    keptIds.every((id) => rewards.get(id)! >= 0.75),
    keptIds.join(),
  );
  assert.ok(keptIds.length < 3, 'the floor removed a top-half member');
  assert.ok(floored.some((s) => /below the floor 0.75/.test(s.selectReason)));
  const flooredRnd = selectCandidates(items, { topFraction: 0.5, floor: 0.75, rankBy: 'random', seed: 3 });
  assert.equal(flooredRnd.filter((s) => s.selected).length, keptIds.length);
  assert.throws(() => selectCandidates(items, { floor: 0.5 }), /floor goes with a top fraction/);
});

test('negatives: every kind is a wrong pair; positives and negatives as Yes/No SFT examples', () => {
  const seed = [
    sample({ id: '1', images: ['/a.png'] }),
    sample({ id: '2', images: ['/b.png'], options: ['MRI', 'CT', 'OCT', 'X-Ray'], answer: 'MRI', modality: 'MRI' }),
    sample({
      id: '3',
      images: ['/c.png'],
      task: 'Anatomy Identification',
      question: 'Which part?',
      options: ['Brain', 'Chest', 'Knee', 'Skin'],
      answer: 'Brain',
    }),
    sample({ id: '4', images: ['/d.png'], modality: 'X-Ray', options: ['X-Ray', 'CT', 'OCT', 'MRI'], answer: 'X-Ray' }),
  ];
  const prng = new Prng('t');
  for (const kind of NEGATIVE_KINDS) {
    const n = constructNegative(seed[0], kind, seed, prng);
    assert.ok(n, kind);
    assert.equal(n!.label, false);
    const truthOfImage = seed.find((s) => s.images[0] === n!.images[0] && s.task === n!.sample.task);
    const right =
      truthOfImage !== undefined &&
      truthOfImage.answer === n!.sample.answer &&
      n!.images[0] === seed[0].images[0] &&
      n!.sample.options.includes(n!.sample.answer) &&
      kind !== 'off-modality';
    assert.ok(!right, `${kind} must not be a correct pair`);
  }
  const shuffled = constructNegative(seed[0], 'shuffled-options', seed, prng)!;
  assert.equal(
    shuffled.sample.options.indexOf(shuffled.sample.answer),
    seed[0].options.indexOf('CT'),
    'the key keeps its position',
  );
  assert.notEqual(shuffled.sample.answer, 'CT');
  const pairs = constructPairs(seed, { seed: 1 });
  assert.equal(pairs.filter((p) => p.label).length, 4);
  assert.equal(pairs.filter((p) => !p.label).length, 4);
  const ex = pairs.map(judgeExample);
  assert.deepEqual(new Set(ex.map((e) => e.reply)), new Set(['Yes', 'No']));
  assert.match(ex[0].user, /Is this answer right for the image\? Yes or No\.\nAnswer: /);
  const conf = confidentPairs([scored('x', 0.95), scored('y', 0.5), scored('z', 0.05), scored('w', 0.99, {}, false)]);
  assert.deepEqual(
    conf.map((p) => [p.sample.id, p.label]),
    [
      ['x', true],
      ['z', false],
    ],
  );
});

test('AUC and accuracy against hand-computed values', () => {
  // positives 0.9, 0.4; negatives 0.6, 0.1, 0.4: pairs (pos > neg) = 0.9>all (3) + 0.4>0.1 (1) + 0.4=0.4 (½) = 4.5 of 6
  assert.equal(auc([0.9, 0.4, 0.6, 0.1, 0.4], [true, true, false, false, false]), 0.75);
  assert.equal(auc([0.1, 0.2, 0.3, 0.4], [false, false, true, true]), 1);
  assert.equal(auc([0.1, 0.2, 0.3, 0.4], [true, true, false, false]), 0);
  assert.equal(auc([0.5, 0.5], [true, false]), 0.5);
  assert.ok(Number.isNaN(auc([0.5], [true])));
  assert.equal(accuracyAt([0.9, 0.4, 0.6, 0.1, 0.4], [true, true, false, false, false]), 0.6);
});
