// The native model (native/bridge/js_model.cc) as JS sees it: batches, loss specs, options and
// results of its methods. src/model/model.ts wraps it in the Model class.
import type { NativeDistributed } from './dist_types';
import type { LossOptions, LossStats } from './grpo_types';
import type { ModelConfig, ParameterSpec } from './model_config';
import type { Tensor } from './types';

export type ModelDevice = 'cpu' | 'cuda' | `cuda:${number}`;
export type ModelDtype = 'float32' | 'bfloat16' | 'float16' | 'float64';

export interface CreateOptions {
  device?: ModelDevice;
  dtype?: ModelDtype;
  /** Seed of the random initialization (normal(0, 0.02) weights, zero biases, unit norms). */
  seed?: number;
  /** 'random' (default) or 'none' (weights must then come from setParameters). */
  init?: 'random' | 'none';
}

/** A packed batch as the native model takes it (TypedArrays or Tensors). */
export interface ModelBatch {
  /** [N] token ids of all sequences laid end to end. */
  inputIds: Int32Array | Tensor;
  /** [S+1] cumulative sequence lengths. */
  cuSeqlens: Int32Array | Tensor;
  /** [P * C*Tp*p*p] (flat) or [P, 1176] image patches of all images, in the order their tokens appear. */
  pixelValues?: Float32Array | Tensor;
  /** [I * 3] (flat) or [I, 3]: each image's (t, h, w) grid in patches. */
  imageGrids?: Int32Array | Tensor;
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy. Default 1. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** HF's repetition penalty: the logit of every token already in the prompt or the reply is divided
   *  by this (multiplied when negative) before sampling. Default 1 (off). */
  repetitionPenalty?: number;
  seed?: number;
  /** One seed per sequence: each draws from its own stream, independent of the rest of the batch
   *  (then `seed` is unused). */
  seeds?: number[];
  /** Generation stops for a sequence after it emits one of these (the stop token is kept). */
  stopTokens?: number[];
}

export interface GenerateResult {
  tokens: Int32Array[];
  /** log p(token) under softmax(logits / temperature) (1 for greedy), as the GRPO loss sees it. */
  logprobs: Float32Array[];
}

export interface SftLossSpec {
  /** [N] next-token id to predict at each position, or < 0 for none (prompt, padding, last token). */
  labels: Int32Array | BigInt64Array | Tensor;
  /** Normalize by this many tokens (the global token budget of an accumulated step). Default: this batch's. */
  numItems?: number;
  temperature?: number;
}

export interface GrpoLossSpec extends LossOptions {
  /** [N] next-token ids on completion tokens, < 0 elsewhere. */
  labels: Int32Array | BigInt64Array | Tensor;
  /** [S] one advantage per sequence. */
  advantages: Float32Array | Tensor;
  /** [N] rollout-time log-probs (aligned with labels); absent: on-policy (ratio 1). */
  oldLogp?: Float32Array | Tensor;
  /** [N] reference-model log-probs; needed when beta > 0. */
  refLogp?: Float32Array | Tensor;
  temperature?: number;
  /**
   * Multiplies the loss: this micro-batch's share when one generation batch is split over several
   * micro-batches and the loss type normalizes per batch (grpo / dr_grpo: sequences here / all
   * sequences; bnpo: tokens here / all tokens). Default 1; dapo needs none (numItemsInBatch).
   */
  lossScale?: number;
  /** [N] detached weights of the policy term per token (truncated importance sampling); absent: 1. */
  isWeights?: Float32Array | Tensor;
  /** Entropy bonus: the loss gains -entropyCoef * sum_t w_t H_t (w: the loss type's token weights). Default 0. */
  entropyCoef?: number;
  /** In (0, 1]: only completion tokens whose entropy is among the top q of this micro-batch get policy
   *  gradient (the "80/20" rule); default 1 (all). */
  entropyTopQuantile?: number;
}

/** backwardScore's loss: the squared error of the score head's outputs against `targets`. */
export interface ScoreLossSpec {
  /** S * L targets, row-major ([S] for one label): one row per sequence of the batch. */
  targets: Float32Array | Float64Array | Tensor;
  /** Divide the summed squared error by this (e.g. the rows x labels of an accumulated step);
   *  default this batch's rows x labels (the mean). */
  numItems?: number;
}

/** addScoreHead's options. */
export interface ScoreHeadOptions {
  /** Rows of score.weight (1: one scalar reward per sequence). Default 1. */
  labels?: number;
  /** Seed of the Normal(0, std) initialization. Default 0. */
  seed?: number;
  /** Default 0.02 (the other weights' initialization). */
  std?: number;
}

/** addLora's options. */
export interface LoraAddOptions {
  /** Full module names without ".weight", as in parameterSpecs(): e.g. "model.layers.1.mlp.down_proj",
   *  "visual.blocks.0.attn.qkv", "visual.merger.mlp.0". Only linear projections (decoder q/k/v/o and
   *  gate/up/down, vision attn.qkv / attn.proj / MLP, merger mlp.0 / mlp.2). */
  modules: string[];
  /** r >= 1 (every adapter of a model has the same r). */
  rank: number;
  /** Seed of A's initialization (PEFT's: Uniform(-1/sqrt(in), 1/sqrt(in)), modules in the given order);
   *  B starts at zero. Default 0. */
  seed?: number;
}

/** setLora's settings: each one given changes, the others stay. */
export interface LoraSettings {
  /** lora_alpha / r (the caller computes it). Default 1. */
  scale?: number;
  /** Dropout on the adapters' input, in [0, 1): in backwardSft / backwardGrpo / backwardScore only. Default 0. */
  dropout?: number;
  /** false: the base model's outputs exactly (the adapters stay, and still train if backward runs). Default true. */
  enabled?: boolean;
  /** Restarts the dropout masks' streams: training forward n after this call draws module M's mask from
   *  (seed, n, M), with activation recomputation or without. Default stream: seed 0 at creation. */
  seed?: number;
}

/** The last backward of an optimizer step on a rank: its gradients (accumulated over the step) are
 *  summed over the ranks of `dist` bucket by bucket while backward runs, as DDP does (bucketBytes
 *  default 25 MiB). A collective: every rank's last backward of the step passes it, and a rank with no
 *  backward in the step calls allReduceGradients instead (the same collectives). */
export interface ReduceGradients {
  dist: NativeDistributed;
  bucketBytes?: number;
}

export interface LossReport {
  loss: number;
  tokens: number;
  entropyMean: number;
  /** With ReduceGradients: the buckets, and how many were started before backward ended. */
  buckets?: number;
  bucketsOverlapped?: number;
  stats?: GrpoLossStats;
}

/** backwardGrpo's statistics: the loss op's, and the entropy top-quantile mask's. */
export interface GrpoLossStats extends LossStats {
  /** Mean entropy of the tokens that got policy gradient (all of them when entropyTopQuantile is 1). */
  entropyKeptMean: number;
  /** Their share of the completion tokens. */
  entropyKeptFraction: number;
}

export interface OptimizerOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global-norm clipping; 0 or absent: none. */
  maxGradNorm?: number;
  /** Update nothing this step (the gradients are dropped), e.g. after a non-finite loss. A non-finite
   *  gradient norm skips the step by itself. Sharded (ZeRO), one rank's skip skips every rank (it makes
   *  the global norm NaN); unsharded data parallel, agree on it first (each rank steps alone). */
  skip?: boolean;
}

/** What optimizerStep did. */
export interface StepReport {
  /** The global gradient norm before clipping (NaN/Infinity when a gradient was not finite). */
  gradNorm: number;
  /** Optimizer steps taken so far (a skipped step does not count). */
  step: number;
  paramsUpdated: number;
  /** True when nothing was updated: `skip` was given or the gradient norm was not finite. */
  skipped: boolean;
}

/** A parameter holding NaN or infinite values: its name and how many of its elements are. */
export interface NonFiniteParameter {
  name: string;
  count: number;
}

export interface NativeModel {
  parameterSpecs(): ParameterSpec[];
  parameters(): Record<string, Tensor>;
  setParameters(tensors: Record<string, Tensor>): Promise<void>;
  setTrainable(parts: { vision?: boolean; merger?: boolean; languageModel?: boolean }): void;
  setCheckpointLayers(on: boolean): void;
  info(): {
    parameterCount: number;
    /** Elements of the parameters that train (setTrainable). */
    trainableCount: number;
    device: string;
    dtype: string;
    optimizerStep: number;
    /** 0 unsharded, else the ZeRO stage set by shardOptimizer. */
    zeroStage: number;
    /** Elements of this rank's optimizer slices (0 unsharded or before the first step / load). */
    optimizerShardNumel: number;
    checkpointLayers: boolean;
    /** Labels of the score head (0: none). */
    scoreLabels: number;
    /** Modules with a LoRA adapter (0: none), their rank (0: none) and the adapter settings. */
    loraModules: number;
    loraRank: number;
    loraScale: number;
    loraDropout: number;
    loraEnabled: boolean;
  };
  logits(batch: ModelBatch): Promise<Tensor>;
  tokenLogprobs(
    batch: ModelBatch,
    opts?: { labels?: Int32Array | Tensor; temperature?: number },
  ): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  backwardSft(batch: ModelBatch, spec: SftLossSpec, reduce?: ReduceGradients): Promise<LossReport>;
  sftLoss(batch: ModelBatch, spec: SftLossSpec): Promise<number>;
  backwardGrpo(batch: ModelBatch, spec: GrpoLossSpec, reduce?: ReduceGradients): Promise<LossReport>;
  /** [S, L] scores at each sequence's last token: float32 (float64 for a float64 model), no gradient. */
  scores(batch: ModelBatch): Promise<Tensor>;
  /** The score head's squared-error loss, backward: gradients accumulate. tokens = S, entropyMean 0. */
  backwardScore(batch: ModelBatch, spec: ScoreLossSpec, reduce?: ReduceGradients): Promise<LossReport>;
  /** A fresh score head (throws when the model has one); the config's scoreLabels is then `labels`. */
  addScoreHead(opts?: ScoreHeadOptions): void;
  optimizerStep(opts: OptimizerOptions): Promise<StepReport>;
  zeroGrad(): void;
  /** The first parameter (by name) with a NaN or infinity, or null when all are finite. */
  nonFiniteParameter(): Promise<NonFiniteParameter | null>;
  gradients(): Record<string, Tensor>;
  /** Sums the trainable parameters' gradients over the ranks of `dist`, in place (DDP buckets of one
   *  dtype, bucketBytes each, default 25 MiB). A parameter with no gradient on this rank takes part as
   *  zeros; one with none on any rank keeps none. Every rank must call it at the same point. */
  allReduceGradients(dist: NativeDistributed, opts?: { bucketBytes?: number }): Promise<void>;
  /** Every parameter (frozen ones too) takes rank `root`'s values (default 0). */
  broadcastParameters(dist: NativeDistributed, root?: number): Promise<void>;
  /** ZeRO stage 1 or 2 over `dist` from now on (null: back to the unsharded AdamW); the optimizer
   *  starts empty. Sharded, optimizerStep is a collective (every rank calls it) that reduces the
   *  gradients itself (no allReduceGradients), and the optimizer state is this rank's slices:
   *  "step", "zero.master", "zero.exp_avg", "zero.exp_avg_sq". */
  shardOptimizer(dist: NativeDistributed | null, opts?: { stage: 1 | 2; bucketBytes?: number }): void;
  optimizerState(): Record<string, Tensor>;
  loadOptimizerState(state: Record<string, Tensor>): void;
  ropeIndex(batch: ModelBatch): { positionIds: Int32Array; nextPositions: Int32Array };
  generate(batch: ModelBatch, opts: GenerateOptions): Promise<GenerateResult>;
  /** Fresh LoRA adapters (<module>.lora_A.weight [r, in], <module>.lora_B.weight [out, r]) in the model's
   *  parameters; they always train. Throws naming the module (unknown, not a projection, already adapted). */
  addLora(opts: LoraAddOptions): void;
  setLora(settings: LoraSettings): void;
  /** Adds or replaces adapter tensors by full name (copied into the model's dtype and device); rejects,
   *  changing nothing, naming the tensor when a name, shape or rank is wrong. */
  setLoraTensors(tensors: Record<string, Tensor>): Promise<void>;
  /** Drops every adapter (and its optimizer state); returns how many modules had one. */
  removeLora(): number;
  /** W += scale * B A for every adapted module (float32 math, float64 for a float64 model; also when
   *  disabled), then drops the adapters; resolves to how many modules were merged. */
  mergeLora(): Promise<number>;
  dispose(): void;
}

export interface NativeModelClass {
  create(config: ModelConfig, opts?: CreateOptions): Promise<NativeModel>;
}
