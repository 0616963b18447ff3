// The one door through which the cycle reaches the trainers: trainSft, trainGrpo and evaluatePolicy,
// with the signatures of src/cycle/sft.ts / grpo.ts / eval (issue 6). Until those land, this file
// holds small plain implementations of its own.
// replaced by src/cycle/sft.ts / grpo.ts after merge
import { grpo } from '../grpo';
import type { Sample } from '../data/proto';
import { planBatches } from '../data/packing';
import { Prng } from '../data/prng';
import { TextTokenizer } from '../data/tokenizer';
import type { Model } from '../model/model';
import { encodeConversation, loadImages, packInOrder, toModelBatch, labelsFromTargetMask, type LoadedImage } from './encode';
import type { SftExample } from './negatives';
import { OPTION_LETTERS, POLICY_SYSTEM, policyPrompt, policyReply, type PromptStyle } from './prompts';
import { isCorrect, predictedOption, scorePredictions, type ScoreResult } from './scorer';
import type { PackSample } from '../data/packing';

export type { SftExample };

export interface SftOptions {
  lr: number;
  epochs?: number;
  maxSteps?: number;
  /** Most tokens in one micro-batch (= one optimizer step here). */
  tokenBudget: number;
  seed: number;
  imageRoot?: string;
  warmupSteps?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  /** Tokenizer to encode with; default the model's folder, else the shipped one. */
  tokenizer?: TextTokenizer;
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  loss: number;
}

export interface TrainHooks {
  onStep?: (info: StepInfo) => void | Promise<void>;
}

export interface TrainResult {
  steps: number;
  losses: number[];
}

function tokenizerOf(model: Model, given?: TextTokenizer): TextTokenizer {
  if (given) return given;
  return model.sourceDir ? TextTokenizer.load(model.sourceDir) : TextTokenizer.load();
}

/** Images of all examples, each file decoded once. */
async function imageTable(paths: Iterable<string>, imageRoot?: string): Promise<Map<string, LoadedImage>> {
  const uniq = [...new Set(paths)];
  const loaded = await loadImages(uniq, { imageRoot });
  return new Map(uniq.map((p, i) => [p, loaded[i]]));
}

/** Learning rate at `step` (0-based): linear warm-up, then cosine down to 10%. */
function lrAt(step: number, total: number, lr: number, warmup: number): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * Math.min(1, t))));
}

/** Cross-entropy on the replies; one packed micro-batch per optimizer step. */
export async function trainSft(model: Model, examples: readonly SftExample[], opts: SftOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  if (examples.length === 0) return { steps: 0, losses: [] };
  const tok = tokenizerOf(model, opts.tokenizer);
  const images = await imageTable(examples.flatMap((e) => e.images), opts.imageRoot);
  const encoded: PackSample[] = examples.map((e) => encodeConversation(tok, e.images.map((p) => images.get(p)!), e.user, { system: e.system, reply: e.reply }));
  const epochs = opts.epochs ?? 1;
  const plan: number[][] = [];
  for (let ep = 0; ep < epochs || (opts.maxSteps !== undefined && plan.length < opts.maxSteps); ep++) {
    plan.push(...planBatches(encoded.map((s) => s.ids.length), { tokenBudget: opts.tokenBudget, seed: opts.seed * 1009 + ep }));
    if (ep > 10000) break;
  }
  const total = Math.min(plan.length, opts.maxSteps ?? Infinity);
  const losses: number[] = [];
  for (let step = 0; step < total; step++) {
    const pb = packInOrder(plan[step].map((i) => encoded[i]));
    const { batch, labels } = toModelBatch(pb);
    const r = await model.backwardSft(batch, { labels });
    await model.optimizerStep({ lr: lrAt(step, total, opts.lr, opts.warmupSteps ?? Math.min(10, Math.ceil(total / 10))), weightDecay: opts.weightDecay ?? 0, maxGradNorm: opts.maxGradNorm ?? 1 });
    losses.push(r.loss);
    await hooks.onStep?.({ step: step + 1, totalSteps: total, loss: r.loss });
  }
  return { steps: total, losses };
}

/**
 * The cycle's policy answers with the option's text ("<answer> CT </answer>"), which the scorer reads
 * like a letter. Why not the letter: a letter asks a 2-layer tiny model to see the image *and* find
 * where that word sits among the options; the text asks only the first. The letter styles of
 * prompts.ts stay available ('think' / 'answer') for real models.
 */
export type PolicyStyle = PromptStyle | 'answer-text';
const ANSWER_TEXT_INSTRUCTION = 'Give the correct option in <answer> </answer> tags.';

export function policyUser(s: Pick<Sample, 'question' | 'questionStem' | 'options'>, style: PolicyStyle): string {
  if (style !== 'answer-text') return policyPrompt(s, style);
  const options = s.options.map((o, i) => `${OPTION_LETTERS[i]}) ${o}`).join('\n');
  return `${s.questionStem || s.question}\n${options}\n${ANSWER_TEXT_INSTRUCTION}`;
}

/** The policy's SFT example for a labelled sample. */
export function policyExample(s: Sample, style: PolicyStyle): SftExample {
  const reply = style === 'answer-text' ? `<answer> ${s.answer} </answer>` : policyReply(s, style);
  return { images: s.images, user: policyUser(s, style), reply, system: POLICY_SYSTEM };
}

/** The policy's GRPO prompt for a sample. */
export function policyGrpoPrompt(s: Sample, style: PolicyStyle): GrpoPrompt {
  return { id: s.id, images: s.images, user: policyUser(s, style), system: POLICY_SYSTEM, sample: s };
}

export interface GrpoPrompt {
  id: string;
  images: string[];
  user: string;
  system?: string;
  sample: Sample;
}

export type RewardFn = (completion: string, prompt: GrpoPrompt) => number | Promise<number>;

export interface GrpoOptions {
  lr: number;
  steps: number;
  groupSize: number;
  promptsPerStep: number;
  temperature: number;
  maxNewTokens: number;
  seed: number;
  /** Weight of each reward function (default 1 each). */
  rewardWeights?: number[];
  imageRoot?: string;
  tokenizer?: TextTokenizer;
}

export interface GrpoStepInfo extends StepInfo {
  meanReward: number;
}

/** On-policy GRPO (one update per rollout): G completions per prompt, summed rewards, group advantages, DAPO loss. */
export async function trainGrpo(
  policy: Model,
  prompts: readonly GrpoPrompt[],
  rewardFns: readonly RewardFn[],
  opts: GrpoOptions,
  hooks: { onStep?: (info: GrpoStepInfo) => void | Promise<void> } = {},
): Promise<TrainResult & { meanRewards: number[] }> {
  if (prompts.length === 0 || opts.steps === 0) return { steps: 0, losses: [], meanRewards: [] };
  const tok = tokenizerOf(policy, opts.tokenizer);
  const images = await imageTable(prompts.flatMap((p) => p.images), opts.imageRoot);
  const encoded = prompts.map((p) => encodeConversation(tok, p.images.map((x) => images.get(x)!), p.user, { system: p.system }));
  const prng = new Prng(`grpo/${opts.seed}`);
  const order: number[] = [];
  const losses: number[] = [];
  const meanRewards: number[] = [];
  const G = opts.groupSize;
  for (let step = 0; step < opts.steps; step++) {
    const picked: number[] = [];
    while (picked.length < Math.min(opts.promptsPerStep, prompts.length)) {
      if (order.length === 0) order.push(...prng.shuffle(prompts.map((_, i) => i)));
      picked.push(order.pop()!);
    }
    const rollPrompts = picked.flatMap((i) => new Array<PackSample>(G).fill(encoded[i]));
    const gen = await policy.generateBatch(toModelBatch(packInOrder(rollPrompts)).batch, {
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      seed: opts.seed * 100003 + step,
      stopTokens: [tok.special.imEnd, tok.special.endOfText],
    });
    const rewards = new Float32Array(rollPrompts.length);
    for (let j = 0; j < rollPrompts.length; j++) {
      const p = prompts[picked[Math.floor(j / G)]];
      const text = tok.decode(gen.tokens[j], { skipSpecial: true });
      let r = 0;
      for (const [f, fn] of rewardFns.entries()) r += (opts.rewardWeights?.[f] ?? 1) * (await fn(text, p));
      rewards[j] = r;
    }
    meanRewards.push(rewards.reduce((a, b) => a + b, 0) / rewards.length);
    const advantages = grpo.advantages(rewards, G);
    if (advantages.every((a) => a === 0)) {
      losses.push(0);
      await hooks.onStep?.({ step: step + 1, totalSteps: opts.steps, loss: 0, meanReward: meanRewards[step] });
      continue;
    }
    // prompt + completion as one sequence; targets on the completion tokens
    const seqs: PackSample[] = rollPrompts.map((p, j) => {
      const c = gen.tokens[j];
      const ids = new Int32Array(p.ids.length + c.length);
      ids.set(p.ids);
      ids.set(c, p.ids.length);
      const targetMask = new Uint8Array(ids.length);
      targetMask.fill(1, p.ids.length);
      return { ids, targetMask, images: p.images };
    });
    const pb = packInOrder(seqs);
    const { batch } = toModelBatch(pb);
    const labels = labelsFromTargetMask(pb.inputIds, pb.targetMask, pb.cuSeqlens);
    const oldLogp = new Float32Array(pb.inputIds.length);
    seqs.forEach((s, j) => {
      const start = pb.cuSeqlens[j] + rollPrompts[j].ids.length - 1; // position that predicts completion token 0
      oldLogp.set(gen.logprobs[j], start);
    });
    const r = await policy.backwardGrpo(batch, { labels, advantages, oldLogp, temperature: opts.temperature, lossType: 'dapo' });
    await policy.optimizerStep({ lr: opts.lr, maxGradNorm: 1 });
    losses.push(r.loss);
    await hooks.onStep?.({ step: step + 1, totalSteps: opts.steps, loss: r.loss, meanReward: meanRewards[step] });
  }
  return { steps: opts.steps, losses, meanRewards };
}

/** Accuracy reward: 1 when the completion names the sample's key (scorer rules), else 0. */
export const accuracyReward: RewardFn = (completion, prompt) => (isCorrect(prompt.sample, predictedOption(completion, prompt.sample.options)) ? 1 : 0);

/** Format reward (answer-only styles): the reply is exactly one "<answer> … </answer>". */
export const answerFormatReward: RewardFn = (completion) => (/^\s*<answer>[^<]+<\/answer>\s*$/.test(completion) ? 1 : 0);

export interface EvalOptions {
  style: PolicyStyle;
  maxNewTokens: number;
  imageRoot?: string;
  batchSize?: number;
  tokenizer?: TextTokenizer;
}

export interface PolicyPrediction {
  questionId: string;
  answer: string;
  raw: string;
}

/** Greedy answers to every sample, scored with the MedGR² authors' rule (scorer.ts). */
export async function evaluatePolicy(model: Model, samples: readonly Sample[], opts: EvalOptions): Promise<{ predictions: PolicyPrediction[]; score: ScoreResult }> {
  const tok = tokenizerOf(model, opts.tokenizer);
  const bs = opts.batchSize ?? 64;
  const predictions: PolicyPrediction[] = [];
  for (let b = 0; b < samples.length; b += bs) {
    const chunk = samples.slice(b, b + bs);
    const images = await imageTable(chunk.flatMap((s) => s.images), opts.imageRoot);
    const enc = chunk.map((s) => encodeConversation(tok, s.images.map((p) => images.get(p)!), policyUser(s, opts.style), { system: POLICY_SYSTEM }));
    const gen = await model.generateBatch(toModelBatch(packInOrder(enc)).batch, { maxNewTokens: opts.maxNewTokens, temperature: 0, stopTokens: [tok.special.imEnd, tok.special.endOfText] });
    chunk.forEach((s, i) => {
      const raw = tok.decode(gen.tokens[i], { skipSpecial: true });
      predictions.push({ questionId: s.id, answer: raw, raw });
    });
  }
  const score = scorePredictions(samples, predictions.map((p, i) => ({ questionId: p.questionId, answer: p.answer, line: i + 1 })));
  return { predictions, score };
}
