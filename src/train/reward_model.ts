// Training a scalar reward model (MedGR²'s reward model: a VLM with a regression head): each example
// is a prompt (the judge's view of a sample, with its image) and a target score; the loss is the mean
// squared error of the score head's output at the prompt's last token (Model.backwardScore). Batches
// pack by tokens, one micro-batch per optimizer step, in a seeded order per epoch; the schedule is
// lr_schedule.ts's; a non-finite step is skipped and counted, and too many in a row stop the run
// (nonfinite_guard.ts). On several ranks, micro-batches are dealt round-robin and gradients summed as SFT does.
import { assembleBatch, planBatches, type PackSample } from '../data/packing';
import type { TextTokenizer } from '../data/tokenizer';
import { DecodedImages, encodeConversation, toModelBatch, type ImageOptions } from '../model/encode';
import type { Model } from '../model/model';
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import { hashString } from '../util/prng';
import { lrAt, type LrSchedule } from './lr_schedule';
import { lossIsUsable, NonFiniteGuard } from './nonfinite_guard';

/** One prompt and the score the reward model should give it. */
export interface ScoreExample {
  images: string[];
  user: string;
  target: number;
}

export interface RewardModelOptions {
  lr: number;
  maxSteps: number;
  tokenBudget: number;
  seed: number;
  tokenizer: TextTokenizer;
  imageOptions?: ImageOptions;
  warmupSteps?: number;
  minLrRatio?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  maxSkippedSteps?: number;
  dist?: ProcessGroup;
}

export interface RewardModelStep {
  step: number;
  totalSteps: number;
  /** Mean squared error of the step's micro-batch (summed over the ranks' shares). */
  loss: number;
  lr: number;
}

async function encodeScoreExamples(
  examples: readonly ScoreExample[],
  tok: TextTokenizer,
  images: DecodedImages,
  tokenBudget: number,
): Promise<PackSample[]> {
  const out: PackSample[] = [];
  for (const [i, ex] of examples.entries()) {
    if (!Number.isFinite(ex.target)) throw new Error(`reward model: example ${i} has target ${ex.target}`);
    const s = encodeConversation(tok, await images.get(ex.images), ex.user);
    if (s.ids.length > tokenBudget)
      throw new Error(
        `reward model: example ${i} has ${s.ids.length} tokens, more than the token budget ${tokenBudget}`,
      );
    out.push(s);
  }
  return out;
}

/** Trains `model`'s score head (and the layers the model marks trainable) on the examples; returns the losses. */
export async function trainRewardModel(
  model: Model,
  examples: readonly ScoreExample[],
  o: RewardModelOptions,
  onStep?: (s: RewardModelStep) => void,
): Promise<number[]> {
  if (!(model.config.scoreLabels > 0))
    throw new Error('reward model: the model has no score head (Model.addScoreHead gives it one)');
  if (examples.length === 0) throw new Error('reward model: no training examples');
  const samples = await encodeScoreExamples(
    examples,
    o.tokenizer,
    new DecodedImages(undefined, o.imageOptions),
    o.tokenBudget,
  );
  const dist = o.dist && o.dist.worldSize > 1 ? o.dist : undefined;
  const rank = dist?.rank ?? 0;
  const worldSize = dist?.worldSize ?? 1;
  const sched: LrSchedule = {
    lr: o.lr,
    totalSteps: o.maxSteps,
    warmupSteps: Math.min(o.maxSteps, o.warmupSteps ?? 0),
    minLrRatio: o.minLrRatio ?? 0.1,
  };
  const guard = new NonFiniteGuard({ trainer: 'reward model', maxConsecutive: o.maxSkippedSteps ?? 3 });
  if (dist) await model.broadcastParameters(dist, 0);
  const lengths = samples.map((s) => s.ids.length);
  const losses: number[] = [];
  let epoch = 0;
  let plan: number[][] = [];
  let next = 0;
  for (let step = 0; step < o.maxSteps; step++) {
    // one optimizer step = worldSize micro-batches (one per rank) of the epoch's plan
    const stepBatches: number[][] = [];
    while (stepBatches.length < worldSize) {
      if (next >= plan.length) {
        plan = planBatches(lengths, { tokenBudget: o.tokenBudget, seed: hashString(`reward/${o.seed}/${epoch++}`) });
        next = 0;
      }
      stepBatches.push(plan[next++]);
    }
    const rows = stepBatches.reduce((n, b) => n + b.length, 0);
    const mine = stepBatches[rank];
    const { batch } = toModelBatch(assembleBatch(samples, mine));
    const targets = Float32Array.from(mine, (i) => examples[i].target);
    let loss = (await model.backwardScore(batch, { targets, numItems: rows }, dist ? { dist } : undefined)).loss;
    if (dist) [loss] = await allReduceNumbers(dist, [loss]);
    const lr = lrAt(step, sched);
    const stepped = await model.optimizerStep({
      lr,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: o.weightDecay ?? 0,
      maxGradNorm: o.maxGradNorm ?? 1,
      skip: !lossIsUsable(loss),
    });
    guard.record({ step: step + 1, loss, gradNorm: stepped.gradNorm, skipped: stepped.skipped });
    losses.push(loss);
    onStep?.({ step: step + 1, totalSteps: o.maxSteps, loss, lr });
  }
  return losses;
}
