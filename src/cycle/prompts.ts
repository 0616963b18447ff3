// The prompts of the cycle's two other roles (one model class, three prompts; the policy's is
// ../eval/policy_prompt.ts): the generator writes samples, the reward model judges them. Worded as
// in the corpus the tiny tokenizer's merges were learned from (scripts/make_tokenizer.ts), so the
// tiny models see compact token sequences.
import type { Sample } from '../data/proto';

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
