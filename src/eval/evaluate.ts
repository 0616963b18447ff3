// The policy on a benchmark: greedy generation with the policy prompt, the answer extracted from the
// reply, scored with the MedGR² authors' rule (scorer.ts). Prompts go to the model in packed batches
// of `batchSize`; generation stops at `stopTokens` (default <|im_end|> or <|endoftext|>).
import { runAllBatches, type BatchRunner } from '../util/batch_runner';
import { answerText } from '../data/answer_grammar';
import type { Sample } from '../data/proto';
import { TextTokenizer } from '../data/tokenizer';
import type { Model } from '../model/model';
import { Progress } from '../report/progress';
import { encodeConversation, packInOrder, toModelBatch } from '../model/encode';

import { scorePredictions, type ScoreResult } from './scorer';

import { writeFileAtomicSync } from '../util/atomic_write';
import { POLICY_SYSTEM, policyPrompt, type PromptStyle } from './policy_prompt';
import { DecodedImages } from '../model/encode';
import type { ProcessorOptions } from '../data/images/processor';

export interface EvaluateOptions {
  style: PromptStyle;
  /** Default 16 in answer style, 256 in think style. */
  maxNewTokens?: number;
  /** HF's repetition penalty on the greedy decoding (default 1: off). */
  repetitionPenalty?: number;
  /** Prompts per generate call (default 16). */
  batchSize?: number;
  /** Relative image paths resolve against this folder. */
  imageRoot?: string;
  /** Default: the shipped tokenizer (configs/tokenizer). */
  tokenizer?: TextTokenizer;
  /** Default POLICY_SYSTEM (what sftExamplesFromSamples trains with). */
  system?: string;
  /** Progress line on stderr (default false). */
  progress?: boolean;
  /** Shared image cache (a trainer evaluating repeatedly passes its own). */
  images?: DecodedImages;
  /** Where the batches run (default: all here; the cycle's ranks split them, then all score). */
  runBatches?: BatchRunner;
  /** The user turn of a sample (default policyPrompt(sample, style)). */
  prompt?: (sample: Sample) => string;
  /** Tokens that end a reply (default <|im_end|> and <|endoftext|>). */
  stopTokens?: number[];
  /** Image resize bounds and patch rule (default Qwen2-VL's processor defaults; unused with `images`). */
  imageOptions?: ProcessorOptions;
  /** Called after each batch with (done, total) samples of this rank. */
  onProgress?: (done: number, total: number) => void;
}

/** One line of a predictions JSONL, as `medgr2 eval score` reads it. */
export interface PolicyPrediction {
  question_id: string;
  model_answer: string;
  raw: string;
}

export interface EvaluateResult {
  predictions: PolicyPrediction[];
  score: ScoreResult;
}

export async function evaluatePolicy(
  model: Model,
  samples: readonly Sample[],
  opts: EvaluateOptions,
): Promise<EvaluateResult> {
  if (samples.length === 0) throw new Error('eval: no benchmark samples');
  const tok = opts.tokenizer ?? TextTokenizer.load();
  const images = opts.images ?? new DecodedImages(opts.imageRoot, opts.imageOptions);
  const batchSize = opts.batchSize ?? 16;
  if (!(batchSize >= 1)) throw new Error(`eval: batchSize must be >= 1, got ${batchSize}`);
  const maxNewTokens = opts.maxNewTokens ?? (opts.style === 'think' ? 256 : 16);
  const stopTokens = opts.stopTokens ?? [tok.special.imEnd, tok.special.endOfText];
  const userTurn = opts.prompt ?? ((s: Sample) => policyPrompt(s, opts.style));
  const system = opts.system ?? POLICY_SYSTEM;
  const progress = opts.progress ? new Progress({ label: 'eval', total: samples.length, unit: 'q' }) : undefined;
  const predictions = await (opts.runBatches ?? runAllBatches)(samples, batchSize, async (mine) => {
    const out: PolicyPrediction[] = [];
    for (let start = 0; start < mine.length; start += batchSize) {
      const chunk = mine.slice(start, start + batchSize);
      const prompts = [];
      for (const s of chunk) {
        try {
          prompts.push(encodeConversation(tok, await images.get(s.images), userTurn(s), { system }));
        } catch (e) {
          throw new Error(`eval: sample '${s.id}': ${(e as Error).message}`);
        }
      }
      const { batch } = toModelBatch(packInOrder(prompts));
      const gen = await model.generateBatch(batch, {
        maxNewTokens,
        temperature: 0,
        stopTokens,
        repetitionPenalty: opts.repetitionPenalty,
      });
      gen.tokens.forEach((ids, i) => {
        const raw = tok.decode(ids, { skipSpecial: true });
        out.push({ question_id: chunk[i].id, model_answer: answerText(raw), raw });
      });
      progress?.update(out.length);
      opts.onProgress?.(out.length, mine.length);
    }
    return out;
  });
  progress?.done();
  const score = scorePredictions(
    samples,
    predictions.map((p, i) => ({ questionId: p.question_id, answer: p.model_answer, line: i + 1 })),
  );
  return { predictions, score };
}

/** Predictions as JSONL, written atomically. */
export function writePredictions(file: string, predictions: readonly PolicyPrediction[]): void {
  writeFileAtomicSync(file, predictions.map((p) => JSON.stringify(p) + '\n').join(''));
}
