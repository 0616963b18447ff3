// The generative reward model: the judge (the same VLM class) sees the image and the candidate through
// judgePrompt and is asked Yes or No; the reward is P("Yes") / (P("Yes") + P("No")) of its next-token
// distribution after the generation prompt. Since both probabilities share one softmax denominator,
// that ratio is sigmoid(logit_Yes − logit_No): the rest of the vocabulary does not enter.
//
// Token ids: "Yes" and "No" as the assistant's first word (no leading space, right after
// "<|im_start|>assistant\n"). The shipped tokenizer has each as one token; a tokenizer that splits a
// word uses its first token (yesNoTokens says so in `note`), which is what the judge is trained to
// emit first, since training replies are exactly "Yes" / "No". encodeChat tokenizes a reply on its
// own, so the ids are tok.encode("Yes")[0] whatever the template: with Qwen's real tokenizer "Yes" is
// 9454 and "No" 2753, not the mid-sentence " Yes" (7414) / " No" (2308), which the reply never starts with.
//
// The graded reward model (config rewardModel 'graded') reads no tokens: readout 'head' takes its scalar
// score head's value at the prompt's last token instead (graded_pairs.ts).
//
// Readout: 'logits' reads the two entries of the full [tokens, vocab] logits (the default recipe's
// tiny vocabulary); 'logprobs' (the instruct recipe) asks the fused log-prob op for log P(Yes) and
// log P(No) at each prompt's last position, two passes that never hold a [tokens, 151936] matrix.
import { runAllBatches, type BatchRunner } from '../util/batch_runner';
import type { Candidate, ScoredCandidate, Sample } from '../data/proto';
import type { TextTokenizer } from '../data/tokenizer';
import type { Model } from '../model/model';
import type { PackedBatch } from '../data/packing';
import {
  encodeConversation,
  loadImages,
  packInOrder,
  toModelBatch,
  type ImageOptions,
  type LoadedImage,
} from '../model/encode';
import { judgePrompt } from './prompts';
import { normalizedScore } from './graded_pairs';

export interface YesNoTokens {
  yes: number;
  no: number;
  /** Set when a word is several tokens (then its first token is used). */
  note?: string;
}

export function yesNoTokens(tok: TextTokenizer): YesNoTokens {
  const yes = tok.encode('Yes');
  const no = tok.encode('No');
  if (yes.length === 0 || no.length === 0) throw new Error(`${tok.source}: "Yes" or "No" encodes to no tokens`);
  if (yes[0] === no[0])
    throw new Error(`${tok.source}: "Yes" and "No" start with the same token; the judge cannot tell them apart`);
  const notes: string[] = [];
  if (yes.length > 1) notes.push(`"Yes" is ${yes.length} tokens; using the first (${yes[0]})`);
  if (no.length > 1) notes.push(`"No" is ${no.length} tokens; using the first (${no[0]})`);
  return { yes: yes[0], no: no[0], note: notes.length ? notes.join('; ') : undefined };
}

/** P(Yes) / (P(Yes) + P(No)) from one row of logits (any temperature cancels only at 1: none used). */
export function rewardFromLogits(row: ArrayLike<number>, ids: YesNoTokens): number {
  const d = row[ids.yes] - row[ids.no];
  return d >= 0 ? 1 / (1 + Math.exp(-d)) : Math.exp(d) / (1 + Math.exp(d));
}

/** The judge's view of one pair: its images (file paths) and the sample. */
export interface JudgeItem {
  images: string[];
  sample: Pick<Sample, 'question' | 'options' | 'answer'> & Partial<Pick<Sample, 'questionStem'>>;
}

export interface JudgeOptions extends ImageOptions {
  /** Pairs per forward pass. Default 32. */
  batchSize?: number;
  /** The judge's user turn for a sample (default: prompts.ts judgePrompt). */
  prompt?: (sample: JudgeItem['sample']) => string;
  /** How P(Yes) and P(No) are read (see the file comment), or 'head': the graded reward model's score
   *  (graded_pairs.ts), normalized onto [0, 1]. Default 'logits'. */
  readout?: 'logits' | 'logprobs' | 'head';
  progress?: (done: number, total: number) => void;
  /** Where the batches run (default: all here; the cycle's ranks split them). */
  runBatches?: BatchRunner;
}

/** The reward of each item, in order. Images shared by several items are decoded once per batch. */
export async function judgeRewards(
  judge: Model,
  tok: TextTokenizer,
  items: readonly JudgeItem[],
  opts: JudgeOptions = {},
): Promise<number[]> {
  const ids = yesNoTokens(tok);
  const V = judge.config.text.vocabSize;
  const bs = opts.batchSize ?? 32;
  const run = opts.runBatches ?? runAllBatches;
  const prompt = opts.prompt ?? judgePrompt;
  return run(items, bs, async (mine) => {
    const out: number[] = [];
    for (let b = 0; b < mine.length; b += bs) {
      const chunk = mine.slice(b, b + bs);
      const paths = [...new Set(chunk.flatMap((it) => it.images))];
      const loaded = await loadImages(paths, opts);
      const byPath = new Map<string, LoadedImage>(paths.map((p, i) => [p, loaded[i]]));
      const prompts = chunk.map((it) =>
        encodeConversation(
          tok,
          it.images.map((p) => byPath.get(p)!),
          prompt(it.sample),
        ),
      );
      const pb = packInOrder(prompts);
      if (opts.readout === 'head') {
        // the graded reward model: its scalar head at each prompt's last token, mapped onto [0, 1]
        const scores = await judge.scores(toModelBatch(pb).batch);
        for (let i = 0; i < chunk.length; i++) out.push(normalizedScore(scores[i]));
        opts.progress?.(out.length, mine.length);
        continue;
      }
      if (opts.readout === 'logprobs') {
        out.push(...(await rewardsFromLogprobs(judge, pb, ids)));
        opts.progress?.(out.length, mine.length);
        continue;
      }
      const logits = await judge.logits(toModelBatch(pb).batch);
      try {
        const all = logits.toArray() as Float32Array;
        for (let i = 0; i < chunk.length; i++) {
          const last = pb.cuSeqlens[i + 1] - 1; // the generation prompt's last token predicts the reply
          out.push(rewardFromLogits(all.subarray(last * V, (last + 1) * V), ids));
        }
      } finally {
        logits.dispose();
      }
      opts.progress?.(out.length, mine.length);
    }
    return out;
  });
}

/** P(Yes) / (P(Yes) + P(No)) at each sequence's last position, from two log-prob passes. */
async function rewardsFromLogprobs(judge: Model, pb: PackedBatch, ids: YesNoTokens): Promise<number[]> {
  const { batch } = toModelBatch(pb);
  const n = pb.cuSeqlens.length - 1;
  const at = (id: number) => {
    const labels = new Int32Array(pb.inputIds.length).fill(-100);
    for (let i = 0; i < n; i++) labels[pb.cuSeqlens[i + 1] - 1] = id;
    return judge.tokenLogprobs(batch, { labels });
  };
  const yes = (await at(ids.yes)).logp;
  const no = (await at(ids.no)).logp;
  return Array.from({ length: n }, (_, i) => {
    const last = pb.cuSeqlens[i + 1] - 1;
    return rewardFromLogits([yes[last], no[last]], { yes: 0, no: 1 });
  });
}

export interface ScoreOptions extends JudgeOptions {
  judgeRound: number;
}

/** Scores every valid candidate; an invalid one gets reward 0 unjudged (its reason says why). */
export async function scoreCandidates(
  judge: Model,
  tok: TextTokenizer,
  candidates: readonly Candidate[],
  opts: ScoreOptions,
): Promise<ScoredCandidate[]> {
  const valid = candidates.filter((c) => c.valid);
  const rewards = await judgeRewards(
    judge,
    tok,
    valid.map((c) => ({ images: c.sample.images, sample: c.sample })),
    opts,
  );
  const byCandidate = new Map(valid.map((c, i) => [c, rewards[i]]));
  return candidates.map((c) => ({
    candidate: c,
    reward: byCandidate.get(c) ?? 0,
    judgeRound: opts.judgeRound,
    selected: false,
    selectReason: c.valid ? '' : `invalid: ${c.invalidReason}`,
  }));
}
