// The reply grammar: what is written is read back, and replies are read as the scorer reads them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answerText, followsGrammar, formatReply, predictedOption, thinkPart } from '../../src/data/answer_grammar';

test('answerText: the text in <answer> tags, else the whole reply, trimmed', () => {
  assert.equal(answerText('<answer> C </answer>'), 'C');
  assert.equal(
    answerText('<think> it is round </think> <answer>B) Fundus photography</answer>'),
    'B) Fundus photography',
  );
  assert.equal(answerText('<ANSWER>\n d \n</ANSWER> trailing words'), 'd');
  assert.equal(answerText('  C) CT \n'), 'C) CT');
  assert.equal(
    answerText('<answer> A </answer> or maybe <answer> B </answer>'),
    'A',
    'the first, as the scorer reads it',
  );
  assert.equal(answerText('<answer> C'), '<answer> C', 'an unclosed tag is no tag');
  assert.equal(answerText(''), '');
});

test('formatReply writes what followsGrammar accepts and the readers read back', () => {
  const think = formatReply('Macula', 'OCT of the Macula with CNV.');
  assert.equal(think, '<think> OCT of the Macula with CNV. </think> <answer> Macula </answer>');
  assert.ok(followsGrammar(think, 'think'));
  assert.ok(!followsGrammar(think, 'answer'), 'a thought is not the answer-only form');
  assert.equal(answerText(think), 'Macula');
  assert.deepEqual(thinkPart(think), { thought: ' OCT of the Macula with CNV. ', rest: ' <answer> Macula </answer>' });
  const answer = formatReply('C');
  assert.ok(followsGrammar(answer, 'answer'));
  assert.equal(predictedOption(answer, ['CT', 'MRI', 'OCT']), 2);
  assert.ok(!followsGrammar('<answer>  </answer>', 'answer'), 'an empty part');
  assert.ok(!followsGrammar('<think> a <answer> b </answer> </think> <answer> c </answer>', 'think'), 'nested tags');
  assert.ok(!followsGrammar('so: <answer> c </answer>', 'answer'), 'text around the reply');
  assert.equal(thinkPart('<answer> c </answer>'), undefined);
});
