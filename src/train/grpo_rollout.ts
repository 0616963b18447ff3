// GRPO's rollout phase: which prompts a step draws, and G sampled completions for each (seeded per
// (seed, step, round, chunk), so a resumed run samples as the uninterrupted one did).
import type { PackSample } from '../data/packing';
import { assembleBatch } from '../data/packing';
import { Prng } from '../util/prng';
import type { Sample } from '../data/proto';
import type { TextTokenizer } from '../data/tokenizer';
import { Model, type ModelBatch } from '../model/model';
import { encodeConversation, loadImages, toModelBatch, type ImageOptions } from '../model/encode';
import { type GrpoPrompt } from './rewards';
import { POLICY_SYSTEM, policyPrompt, type PromptStyle } from '../eval/policy_prompt';
import { type ResolvedGrpoOptions } from './grpo_options';

export interface RolloutGroup {
  prompt: GrpoPrompt;
  encoded: PackSample;
  /** Per completion: tokens (stop token kept), log-probs, decoded text (stop token dropped). */
  tokens: Int32Array[];
  logprobs: Float32Array[];
  texts: string[];
  truncated: boolean[];
  /** [completion][term] and the weighted totals. */
  terms: number[][];
  rewards: number[];
}

/** The policy's GRPO prompts for samples: question + lettered options + the style's instruction. */
export function grpoPromptsFromSamples(
  samples: readonly Sample[],
  style: PromptStyle,
  system: string = POLICY_SYSTEM,
): GrpoPrompt[] {
  return samples.map((s) => ({ id: s.id, images: [...s.images], user: policyPrompt(s, style), system, sample: s }));
}

/** Shuffled passes over the prompts, reshuffled each epoch; the order of epoch e is a pure function
 *  of (seed, e), so `state()` (epochs started, position in the current one) is all a resume needs. */
export class PromptSampler {
  private order: number[] = [];
  private pos = 0;
  private epoch = 0;
  constructor(
    private readonly count: number,
    private readonly seed: number,
  ) {
    if (count <= 0) throw new Error('grpo: no prompts');
  }
  private shuffled(epoch: number): number[] {
    return new Prng(`grpo/prompts/${this.seed}/${epoch}`).shuffle(Array.from({ length: this.count }, (_, i) => i));
  }
  next(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      if (this.pos >= this.order.length) {
        this.order = this.shuffled(this.epoch++);
        this.pos = 0;
      }
      out.push(this.order[this.pos++]);
    }
    return out;
  }
  /** `epoch`: shuffles drawn so far (the current one is epoch - 1); `pos`: the next index in it. */
  state(): { epoch: number; pos: number } {
    return { epoch: this.epoch, pos: this.pos };
  }
  restore(s: { epoch: number; pos: number }): void {
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.pos) && s.pos >= 0 && s.pos <= this.count)) {
      throw new Error(`grpo: bad prompt sampler state ${JSON.stringify(s)}`);
    }
    this.epoch = s.epoch;
    this.order = s.epoch > 0 ? this.shuffled(s.epoch - 1) : [];
    this.pos = s.epoch > 0 ? s.pos : 0;
  }
}

/** All non-NaN rewards of a group equal (or fewer than two of them): no learning signal. */
export function isDegenerate(rewards: readonly number[]): boolean {
  const v = rewards.filter((r) => !Number.isNaN(r));
  return v.length < 2 || v.every((r) => r === v[0]);
}

/** The sampling seed of (seed, step, round, prompt, completion): a pure function, so a resumed run samples as an
 *  uninterrupted one would. */
export function seedFor(seed: number, ...parts: number[]): number {
  let h = seed >>> 0;
  for (const p of parts) h = (Math.imul(h ^ (p >>> 0), 0x9e3779b1) + 0x7f4a7c15) >>> 0;
  return h & 0x7fffffff;
}

/** Encodes prompts (images through the processor, chat template with the generation prompt). */
export async function encodePrompts(
  tok: TextTokenizer,
  prompts: readonly GrpoPrompt[],
  images: ImageOptions = {},
): Promise<PackSample[]> {
  const out: PackSample[] = [];
  for (const p of prompts) {
    const imgs = await loadImages(p.images, images);
    out.push(encodeConversation(tok, imgs, p.user, { system: p.system }));
  }
  return out;
}

function withoutImages(batch: ModelBatch, numImages: number): ModelBatch {
  return numImages > 0 ? batch : { inputIds: batch.inputIds, cuSeqlens: batch.cuSeqlens };
}

/** G sampled completions for each prompt (one generateBatch per `generationBatch` sequences), each
 *  ending at one of `stops` (the model folder's eos ids; default <|im_end|> and <|endoftext|>).
 *  `groupSeeds[g]` seeds prompt g's completions (completion k draws from seedFor(groupSeeds[g], k)):
 *  a completion does not depend on which other prompts share its batch or its rank. */
export async function generateRollouts(
  policy: Model,
  tok: TextTokenizer,
  prompts: readonly GrpoPrompt[],
  encoded: readonly PackSample[],
  o: Pick<ResolvedGrpoOptions, 'groupSize' | 'maxNewTokens' | 'temperature' | 'topP' | 'topK' | 'generationBatch'> &
    Partial<Pick<ResolvedGrpoOptions, 'repetitionPenalty'>>,
  groupSeeds: readonly number[],
  stops: readonly number[] = [tok.special.imEnd, tok.special.endOfText],
): Promise<Omit<RolloutGroup, 'terms' | 'rewards'>[]> {
  if (groupSeeds.length !== prompts.length)
    throw new Error(`generateRollouts: ${groupSeeds.length} seeds for ${prompts.length} prompts`);
  const G = o.groupSize;
  const flat: PackSample[] = [];
  const seeds: number[] = [];
  encoded.forEach((e, g) => {
    for (let k = 0; k < G; k++) {
      flat.push(e);
      seeds.push(seedFor(groupSeeds[g], k));
    }
  });
  const tokens: Int32Array[] = [];
  const logprobs: Float32Array[] = [];
  for (let start = 0; start < flat.length; start += o.generationBatch) {
    const part = flat.slice(start, start + o.generationBatch);
    const pb = assembleBatch(
      part,
      part.map((_, i) => i),
    );
    const { batch } = toModelBatch(pb);
    const res = await policy.generateBatch(withoutImages(batch, pb.numImages), {
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      topP: o.topP < 1 ? o.topP : undefined,
      topK: o.topK > 0 ? o.topK : undefined,
      repetitionPenalty:
        o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1 ? o.repetitionPenalty : undefined,
      seeds: seeds.slice(start, start + o.generationBatch),
      stopTokens: [...stops],
    });
    tokens.push(...res.tokens);
    logprobs.push(...res.logprobs);
  }
  return prompts.map((prompt, g) => {
    const tk = tokens.slice(g * G, (g + 1) * G);
    const stopped = tk.map((t) => t.length > 0 && stops.includes(t[t.length - 1]));
    return {
      prompt,
      encoded: encoded[g],
      tokens: tk,
      logprobs: logprobs.slice(g * G, (g + 1) * G),
      texts: tk.map((t, i) => tok.decode(stopped[i] ? t.subarray(0, t.length - 1) : t)),
      truncated: stopped.map((s) => !s),
    };
  });
}
