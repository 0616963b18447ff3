// The prompts of the three roles (one model class, three prompts): the policy answers, the generator
// writes samples, the reward model judges them. Worded as in the corpus the tiny tokenizer's merges
// were learned from (scripts/make_tokenizer.ts), so the tiny models see compact token sequences.
import type { Sample } from '../data/proto';

export type PromptStyle = 'think' | 'answer';
export const OPTION_LETTERS = ['A', 'B', 'C', 'D', 'E', 'F'] as const;

export const POLICY_SYSTEM = 'You are a medical imaging expert. Look at the image and answer the question.';
const THINK_INSTRUCTION =
  'First think about the question step by step in <think> </think> tags, then give the letter of the correct option in <answer> </answer> tags.';
const ANSWER_INSTRUCTION = 'Give the letter of the correct option in <answer> </answer> tags.';

/** The question with its lettered options and the output-format instruction. */
export function policyPrompt(sample: Pick<Sample, 'question' | 'questionStem' | 'options'>, style: PromptStyle): string {
  const stem = sample.questionStem || sample.question;
  const options = sample.options.map((o, i) => `${OPTION_LETTERS[i]}) ${o}`).join('\n');
  return `${stem}\n${options}\n${style === 'think' ? THINK_INSTRUCTION : ANSWER_INSTRUCTION}`;
}

/** The reply SFT teaches: the letter in <answer> tags (after a short rationale in think style). */
export function policyReply(sample: Pick<Sample, 'options' | 'answer' | 'rationale' | 'modality'>, style: PromptStyle): string {
  const k = sample.options.indexOf(sample.answer);
  if (k < 0) throw new Error(`policyReply: answer "${sample.answer}" is not among the options`);
  const letter = OPTION_LETTERS[k];
  if (style === 'answer') return `<answer> ${letter} </answer>`;
  const why = sample.rationale || `The image is a ${sample.modality} image. The answer is ${sample.answer}.`;
  return `<think> ${why} </think> <answer> ${letter} </answer>`;
}

export const GENERATOR_INSTRUCTION =
  'Write one multiple-choice question about this medical image, with four options and the correct answer, as JSON with the keys "q" (question) and "a" (answer).';

export const JUDGE_INSTRUCTION = 'Is this answer right for the image? Yes or No.';

/**
 * The judge's view of a candidate: the question, the Yes/No question, then the proposed answer last.
 * Layout matters for a small model: the reward is read right after the prompt, so the answer sits as
 * close to that position as the chat template allows, and nothing long (options, instructions) comes
 * between them. With the options and a long instruction after the answer, the tiny model's Yes/No
 * loss stayed at ln 2 (AUC 0.5) for the whole warm-up.
 */
export function judgePrompt(candidate: Pick<Sample, 'question' | 'options' | 'answer'>): string {
  return `Question: ${candidate.question}\n${JUDGE_INSTRUCTION}\nAnswer: ${candidate.answer}`;
}
