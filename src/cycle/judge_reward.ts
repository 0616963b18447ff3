// The paper's GRPO reward: alpha x (the reward model's normalized score of the policy's answer) +
// beta x exact match of the extracted answer (MedGR², 0.8 / 0.2). The reward model judges the
// question with the option the completion answered as its key: "is this the right answer for this
// image?". Completions of one prompt that answer the same option share one judgement, so a group
// costs at most one judge forward pass over its distinct answers.
import { predictedOption } from '../data/answer_grammar';
import type { Model } from '../model/model';
import type { TextTokenizer } from '../data/tokenizer';
import { answerScore, type GrpoPrompt, type Reward } from '../train/rewards';
import { judgeRewards, type JudgeOptions } from './judge';

/** How the cycle's GRPO stage rewards a completion (config grpo.reward). */
export const GRPO_REWARDS = ['verifiable', 'reward-model'] as const;
export type GrpoRewardName = (typeof GRPO_REWARDS)[number];

/** The reward model's score of each completion's answer, in [0, 1]; 0 for a completion that answers no
 *  single option (there is no sample to judge). `score` maps a batch of judge items to their scores. */
export async function judgedAnswers(
  completions: readonly string[],
  prompt: GrpoPrompt,
  score: (answers: string[]) => Promise<number[]>,
): Promise<number[]> {
  const { options } = prompt.sample;
  const picked = completions.map((c) => predictedOption(c, options));
  const distinct = [...new Set(picked.filter((k): k is number => k !== undefined))];
  const scores = distinct.length ? await score(distinct.map((k) => options[k])) : [];
  const byOption = new Map(distinct.map((k, i) => [k, scores[i]]));
  return picked.map((k) => {
    if (k === undefined) return 0;
    const v = byOption.get(k)!;
    return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : NaN;
  });
}

/**
 * The reward-model term on a loaded judge (P(Yes) readout): the group's distinct answers judged in one
 * batch. Name 'reward_model'.
 */
export function rewardModelTerm(
  judge: Model,
  tok: TextTokenizer,
  weight: number,
  opts: Omit<JudgeOptions, 'progress' | 'runBatches'> = {},
): Reward {
  const score = (prompt: GrpoPrompt) => (answers: string[]) =>
    judgeRewards(
      judge,
      tok,
      answers.map((answer) => ({ images: prompt.images, sample: { ...prompt.sample, answer } })),
      opts,
    );
  return {
    name: 'reward_model',
    weight,
    fn: async (completion, prompt) => (await judgedAnswers([completion], prompt, score(prompt)))[0],
    group: (completions, prompt) => judgedAnswers(completions, prompt, score(prompt)),
  };
}

/** The exact-match term: the benchmark's rule against the key, or (a prompt without a key: a question
 *  whose rationale contradicted its answer) self-consistency, as the verifiable reward does. */
export function exactMatchTerm(weight: number): Reward {
  return { name: 'exact_match', weight, fn: (completion, prompt) => answerScore(completion, prompt.sample) };
}
