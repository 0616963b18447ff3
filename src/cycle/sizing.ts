// Batch sizes of the instruct recipe, from the model's shape instead of fixed numbers:
//   - generation (generate, describe, eval, GRPO rollouts): as many sequences as the KV cache of the
//     memory budget holds. A sequence's cache is 2 (K and V) · layers · kv_heads · head_dim · dtype
//     bytes per token, for its prompt and every token it may add;
//   - forward passes without generation (the judge's scores): as many prompts as the token budget
//     holds, the budget the SFT micro-batches are packed to.
// Prompt lengths are bounded from above: the longest prompt text, plus every image at max_pixels, so
// a batch never outgrows its budget whatever the images' sizes (lower --max-pixels to fit more).
import type { TextConfig } from '../native/model_config';
import type { ProcessorOptions } from '../data/images/processor';
import { QWEN2VL_PATCH_RULE } from '../data/images/patchify';
import { QWEN2VL_SIZE_RULE } from '../data/images/smart_resize';
import { dtypeBytes } from '../dist/zero_memory';

/** KV-cache bytes one token adds: 2 · layers · kv_heads · head_dim · dtype bytes. */
export function kvBytesPerToken(text: Pick<TextConfig, 'numLayers' | 'numKvHeads' | 'headDim'>, dtype: string): number {
  return 2 * text.numLayers * text.numKvHeads * text.headDim * dtypeBytes(dtype);
}

/** Most LM tokens one image can take: max_pixels over the merged patch's area, plus its two vision
 *  start/end tokens. */
export function imageTokenBound(opts: Pick<ProcessorOptions, 'maxPixels' | 'patch'>): number {
  const patch = opts.patch ?? QWEN2VL_PATCH_RULE;
  const factor = patch.patchSize * patch.mergeSize;
  return Math.floor((opts.maxPixels ?? QWEN2VL_SIZE_RULE.maxPixels) / (factor * factor)) + 2;
}

export interface GenerationSizing {
  batch: number;
  bytesPerSequence: number;
  promptTokens: number;
  maxNewTokens: number;
}

/** Sequences per generate call: the budget's KV cache over one sequence's, at least 1, at most `cap`. */
export function generationBatch(o: {
  memoryBudgetMiB: number;
  bytesPerToken: number;
  promptTokens: number;
  maxNewTokens: number;
  cap: number;
}): GenerationSizing {
  if (!(o.memoryBudgetMiB > 0)) throw new Error(`generate.memoryBudgetMiB must be > 0, got ${o.memoryBudgetMiB}`);
  const bytesPerSequence = o.bytesPerToken * (o.promptTokens + o.maxNewTokens);
  const fit = Math.floor((o.memoryBudgetMiB * 2 ** 20) / bytesPerSequence);
  return {
    batch: Math.max(1, Math.min(o.cap, fit)),
    bytesPerSequence,
    promptTokens: o.promptTokens,
    maxNewTokens: o.maxNewTokens,
  };
}

/** Prompts per forward pass: the token budget over the longest prompt, at least 1, at most `cap`. */
export function forwardBatch(o: { tokenBudget: number; promptTokens: number; cap: number }): number {
  return Math.max(1, Math.min(o.cap, Math.floor(o.tokenBudget / Math.max(1, o.promptTokens))));
}

/** "12 sequences (3.1 MiB each: prompt <= 180 + 64 new tokens; budget 16384 MiB)". */
export function describeGenerationSizing(s: GenerationSizing, budgetMiB: number): string {
  const mib = s.bytesPerSequence / 2 ** 20;
  return `${s.batch} sequences (${mib < 10 ? mib.toFixed(2) : mib.toFixed(0)} MiB of KV cache each: prompt <= ${s.promptTokens} + ${s.maxNewTokens} new tokens; budget ${budgetMiB} MiB)`;
}
