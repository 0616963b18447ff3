// The policy's prompt (question, lettered options, the reply-format instruction) and the reply SFT
// teaches it, in the grammar of ../data/answer_grammar.ts. Worded as in the corpus the tiny
// tokenizer's merges were learned from (scripts/make_tokenizer.ts).
import type { Sample } from '../data/proto';
import { formatReply, type ReplyStyle } from '../data/answer_grammar';

export type PromptStyle = ReplyStyle;
export const OPTION_LETTERS = ['A', 'B', 'C', 'D', 'E', 'F'] as const;

export const POLICY_SYSTEM = 'You are a medical imaging expert. Look at the image and answer the question.';
const THINK_INSTRUCTION =
  'First think about the question step by step in <think> </think> tags, then give the letter of the correct option in <answer> </answer> tags.';
const ANSWER_INSTRUCTION = 'Give the letter of the correct option in <answer> </answer> tags.';

/** The question with its lettered options and the output-format instruction. */
export function policyPrompt(
  sample: Pick<Sample, 'question' | 'questionStem' | 'options'>,
  style: PromptStyle,
): string {
  const stem = sample.questionStem || sample.question;
  const options = sample.options.map((o, i) => `${OPTION_LETTERS[i]}) ${o}`).join('\n');
  return `${stem}\n${options}\n${style === 'think' ? THINK_INSTRUCTION : ANSWER_INSTRUCTION}`;
}

/** The reply SFT teaches: the option's letter (or, with `answer: 'text'`, its text) in <answer> tags,
 *  after a short rationale in think style. */
export function policyReply(
  sample: Pick<Sample, 'options' | 'answer' | 'rationale' | 'modality'>,
  style: PromptStyle,
  answer: 'letter' | 'text' = 'letter',
): string {
  const k = sample.options.indexOf(sample.answer);
  if (k < 0) throw new Error(`policyReply: answer "${sample.answer}" is not among the options`);
  const named = answer === 'text' ? sample.answer : OPTION_LETTERS[k];
  if (style === 'answer') return formatReply(named);
  return formatReply(
    named,
    sample.rationale || `The image is a ${sample.modality} image. The answer is ${sample.answer}.`,
  );
}
