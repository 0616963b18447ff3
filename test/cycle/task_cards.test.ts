// Task cards (issue 17's cross-task): a card's reply is its question answered with the fact the
// image's description states, or nothing; cards are checked field by field from a config; a round's
// card candidates are parsed like the generator's replies, marked as the card's, and counted apart
// from the generator's validity.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultCycleConfig, mergeCycleConfig } from '../../src/cycle/config';
import { optionVocabulary, type PoolImage } from '../../src/cycle/generator';
import { cycleRecipe, describedFact } from '../../src/cycle/recipe';
import { generatorValidity } from '../../src/cycle/report';
import {
  CARD_SOURCE,
  cardCandidates,
  cardCounts,
  cardReply,
  cardVocabulary,
  cardsForSeed,
  checkCardTasks,
  checkTaskCard,
  writtenByCard,
  type TaskCard,
} from '../../src/cycle/task_cards';
import type { Sample } from '../../src/data/proto';
const GRADING: TaskCard = {
  task: 'Lesion Grading',
  question: 'What is the grade of the lesion in this image?',
  options: ['Grade 1', 'Grade 2', 'Grade 3', 'Grade 4'],
};

test('cardReply: the card question answered with the described grade; nothing without one', () => {
  assert.equal(
    cardReply(GRADING, 'CT of the Liver with Tumor, Grade 3.', describedFact),
    JSON.stringify({ q: GRADING.question, a: 'Grade 3' }),
  );
  assert.equal(cardReply(GRADING, 'CT of the Liver with Tumor.', describedFact), undefined, 'no grade named');
  assert.equal(cardReply(GRADING, 'CT of the Liver, normal.', describedFact), undefined);
  assert.equal(cardReply(GRADING, undefined, describedFact), undefined, 'no description');
  assert.equal(cardReply(GRADING, 'some free prose', describedFact), undefined);
  const threeGrades = { ...GRADING, options: ['Grade 1', 'Grade 2', 'Grade 4', 'Grade 5'] };
  assert.equal(cardReply(threeGrades, 'CT of the Liver with Tumor, Grade 3.', describedFact), undefined, 'not offered');
});

test('checkTaskCard and the config: cards read from a config, every bad field named', () => {
  const cfg = mergeCycleConfig(defaultCycleConfig(), { generate: { taskCards: [GRADING] } }, 'cards.json');
  assert.deepEqual(cfg.generate.taskCards, [GRADING]);
  assert.equal(cfg.generate.perImage, defaultCycleConfig().generate.perImage, 'the rest of the group stays');
  assert.deepEqual(
    mergeCycleConfig(defaultCycleConfig(), { generate: { task_cards: [] } }, 'x').generate.taskCards,
    [],
  );
  const bad: [unknown, RegExp][] = [
    ['Lesion Grading', /cards\.json: key "generate\.taskCards\[0\]" expects \{"task"/],
    [{ ...GRADING, task: '' }, /"generate\.taskCards\[0\]\.task" expects a task name/],
    [{ ...GRADING, task: 'Counting' }, /\.task" names 'Counting', which states no fact/],
    [{ ...GRADING, question: 3 }, /\.question" expects the question's text/],
    [{ ...GRADING, options: ['Grade 1', 2] }, /\.options" expects a list of answer strings/],
    [{ ...GRADING, options: ['Grade 1', 'Grade 2', 'grade 1', 'Grade 4'] }, /at least four distinct answers/],
    [{ ...GRADING, options: ['Grade 1', 'Grade 2'] }, /at least four distinct answers/],
  ];
  for (const [card, msg] of bad)
    assert.throws(() => mergeCycleConfig(defaultCycleConfig(), { generate: { taskCards: [card] } }, 'cards.json'), msg);
  assert.throws(
    () => mergeCycleConfig(defaultCycleConfig(), { generate: { taskCards: GRADING } }, 'cards.json'),
    /"generate\.taskCards" expects a list of task cards/,
  );
  assert.throws(() => checkCardTasks([GRADING, GRADING]), /two cards for 'Lesion Grading'/);
  // a card of a task the seed asks itself is not used
  const diagnosis = { ...GRADING, task: 'Disease Diagnosis' };
  assert.deepEqual(cardsForSeed([GRADING, diagnosis], [{ task: 'Disease Diagnosis' }]), [GRADING]);
  assert.deepEqual(cardVocabulary([GRADING]), { 'Lesion Grading': GRADING.options });
  assert.ok(checkTaskCard(GRADING, 'x', 'generate.taskCards[0]') !== GRADING, 'a copy');
});

test('cardCandidates: one per pool image whose description names a grade, parsed, marked; cardCounts', () => {
  const seed = [{ task: 'Disease Diagnosis', options: ['Tumor', 'Normal', 'Hemorrhage', 'Infarct'] }] as Sample[];
  const cfg = mergeCycleConfig(defaultCycleConfig(), { generate: { taskCards: [GRADING] } }, 'x');
  const recipe = cycleRecipe(cfg, seed);
  assert.deepEqual(recipe.vocabulary, { ...optionVocabulary(seed), 'Lesion Grading': GRADING.options });
  const pool: PoolImage[] = [
    { image: '/p/0.png', modality: 'CT', description: 'CT of the Brain with Tumor, Grade 2.' },
    { image: '/p/1.png', modality: 'CT', description: 'CT of the Brain, normal.' },
    { image: '/p/2.png', modality: '' },
    { image: '/p/3.png', modality: 'OCT', description: 'This OCT image shows the Macula with CNV, Grade 4.' },
  ];
  const cands = cardCandidates(
    pool,
    [GRADING],
    { round: 2, vocabulary: recipe.vocabulary },
    recipe.parseReply,
    describedFact,
  );
  assert.deepEqual(
    cands.map((c) => [c.sample.id, c.sample.answer, c.sample.modality]),
    [
      ['g2-0-card0', 'Grade 2', 'CT'],
      ['g2-3-card0', 'Grade 4', 'OCT'],
    ],
  );
  for (const c of cands) {
    assert.ok(c.valid, c.invalidReason);
    assert.equal(c.sample.task, 'Lesion Grading');
    assert.equal(c.sample.question, GRADING.question);
    assert.deepEqual([...c.sample.options].sort(), GRADING.options);
    assert.equal(c.sample.provenance?.sourceFormat, CARD_SOURCE);
    assert.ok(writtenByCard(c));
    assert.equal(c.sample.provenance?.kind, 'GENERATED');
    assert.equal(c.sample.images[0], pool[Number(c.sample.id.split('-')[1])].image);
  }
  assert.match(cands[1].sample.rationale, /Grade 4/, "the description is the sample's rationale");
  assert.deepEqual(cardCandidates(pool, [], { round: 1 }, recipe.parseReply, describedFact), []);
  assert.deepEqual(defaultCycleConfig().generate.taskCards, [GRADING], 'the default run has the grading card');
  const gradingSeed = [...seed, { task: 'Lesion Grading', options: GRADING.options }] as Sample[];
  assert.deepEqual(cycleRecipe(defaultCycleConfig(), gradingSeed).taskCards, [], 'a seed that grades needs no card');
  assert.deepEqual(cycleRecipe(defaultCycleConfig(), seed).taskCards, [GRADING]);
  const generated = {
    candidate: { sample: { provenance: { sourceFormat: 'generator' } } as Sample, valid: false },
    selected: false,
  };
  assert.equal(writtenByCard(generated.candidate), false);
  const round = [{ candidate: cands[0], selected: true }, { candidate: cands[1], selected: false }, generated];
  assert.deepEqual(cardCounts(round, [GRADING]), { candidates: 2, valid: 2, kept: 1 });
  assert.equal(cardCounts(round, []), undefined, 'no cards: no count');
  // the generator's validity leaves the cards' candidates out: 1 valid of its 3 here
  assert.equal(generatorValidity({ candidates: 5, valid: 3, taskCards: { candidates: 2, valid: 2, kept: 1 } }), 1 / 3);
  assert.equal(generatorValidity({ candidates: 4, valid: 3 }), 0.75);
});
