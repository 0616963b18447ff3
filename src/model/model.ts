// The Model class: one Qwen2-VL / Qwen2.5-VL (or text-only Qwen2) held natively, with its
// optimizer. All heavy methods are async (they run off the JS thread). Batches are packed:
// sequences laid end to end with cumulative lengths, plus the images they contain in token order.
import { loadAddon } from '../native/loader';
import type { Tensor } from '../native/types';
import type { LossOptions, LossStats } from '../ops/grpo';
import { loadCheckpoint, saveCheckpoint, type CheckpointDtype } from './hf_folder';
import { loadModelConfig } from './config';
import type { ModelConfig, ParameterSpec } from './config_types';

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
  seed?: number;
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
}

export interface LossReport {
  loss: number;
  tokens: number;
  entropyMean: number;
  stats?: LossStats;
}

/** AdamW's defaults, the one table (PyTorch's torch.optim.AdamW values, without its weight decay):
 *  the trainers start from these, and the native bridge falls back to the same numbers. */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } as const;

export interface OptimizerOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global-norm clipping; 0 or absent: none. */
  maxGradNorm?: number;
}

interface NativeModel {
  parameterSpecs(): ParameterSpec[];
  parameters(): Record<string, Tensor>;
  setParameters(tensors: Record<string, Tensor>): Promise<void>;
  setTrainable(parts: { vision?: boolean; merger?: boolean; languageModel?: boolean }): void;
  setCheckpointLayers(on: boolean): void;
  info(): { parameterCount: number; device: string; dtype: string; optimizerStep: number; checkpointLayers: boolean };
  logits(batch: ModelBatch): Promise<Tensor>;
  tokenLogprobs(batch: ModelBatch, opts?: { labels?: Int32Array | Tensor; temperature?: number }): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  backwardSft(batch: ModelBatch, spec: SftLossSpec): Promise<LossReport>;
  sftLoss(batch: ModelBatch, spec: SftLossSpec): Promise<number>;
  backwardGrpo(batch: ModelBatch, spec: GrpoLossSpec): Promise<LossReport>;
  optimizerStep(opts: OptimizerOptions): Promise<{ gradNorm: number; step: number; paramsUpdated: number }>;
  zeroGrad(): void;
  gradients(): Record<string, Tensor>;
  optimizerState(): Record<string, Tensor>;
  loadOptimizerState(state: Record<string, Tensor>): void;
  ropeIndex(batch: ModelBatch): { positionIds: Int32Array; nextPositions: Int32Array };
  generate(batch: ModelBatch, opts: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}

interface NativeModelClass {
  create(config: ModelConfig, opts?: CreateOptions): Promise<NativeModel>;
}

/** Packs token sequences (no images) into a batch. */
export function packSequences(seqs: ArrayLike<number>[]): { inputIds: Int32Array; cuSeqlens: Int32Array } {
  const cuSeqlens = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => (cuSeqlens[i + 1] = cuSeqlens[i] + s.length));
  const inputIds = new Int32Array(cuSeqlens[seqs.length]);
  seqs.forEach((s, i) => inputIds.set(Array.from(s), cuSeqlens[i]));
  return { inputIds, cuSeqlens };
}

/** labels[t] = ids[t+1] inside each sequence, -100 at each sequence's last token. */
export function nextTokenLabels(inputIds: Int32Array, cuSeqlens: Int32Array): Int32Array {
  const labels = new Int32Array(inputIds.length).fill(-100);
  for (let s = 0; s + 1 < cuSeqlens.length; s++) {
    for (let t = cuSeqlens[s]; t + 1 < cuSeqlens[s + 1]; t++) labels[t] = inputIds[t + 1];
  }
  return labels;
}

export interface LoadOptions {
  device?: ModelDevice;
  dtype?: ModelDtype;
}

export interface SaveOptions {
  /** Shard above this size (bytes or "5GB"); default 5 GB like HF. */
  maxShardBytes?: number | string;
  /** Dtype of the saved weights; default the config's torch_dtype. */
  dtype?: CheckpointDtype;
  /** Copy tokenizer / processor files from here; default the folder the model was loaded from. */
  sourceDir?: string;
}

export class Model {
  private constructor(
    private native: NativeModel | null,
    readonly config: ModelConfig,
    /** The folder the weights came from (tokenizer files are copied from it on save). */
    readonly sourceDir: string | null = null,
  ) {}

  /**
   * A model from a normalized config, or from a config.json / model folder path, randomly
   * initialized (seeded), or empty with init: 'none'.
   */
  static async create(configOrPath: ModelConfig | string, opts: CreateOptions = {}): Promise<Model> {
    const config = typeof configOrPath === 'string' ? await loadModelConfig(configOrPath) : configOrPath;
    const cls = (loadAddon() as unknown as { Model: NativeModelClass }).Model;
    return new Model(await cls.create(config, opts), config);
  }

  /** A Hugging Face model folder (config.json + safetensors, single file or sharded; either name layout). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Model> {
    const { config, tensors } = await loadCheckpoint(dir);
    const cls = (loadAddon() as unknown as { Model: NativeModelClass }).Model;
    const model = new Model(await cls.create(config, { ...opts, init: 'none' }), config, dir);
    try {
      await model.setParameters(Object.fromEntries(tensors));
    } finally {
      for (const t of tensors.values()) t.dispose(); // drop the file mappings: the model holds copies
    }
    return model;
  }

  /** Writes config.json + safetensors (+ index when sharded) that any HF-compatible tool loads. */
  async save(dir: string, opts: SaveOptions = {}): Promise<void> {
    await saveCheckpoint(dir, this.config, this.parameters(), {
      maxShardBytes: opts.maxShardBytes,
      dtype: opts.dtype,
      sourceDir: opts.sourceDir ?? this.sourceDir ?? undefined,
    });
  }

  private get n(): NativeModel {
    if (!this.native) throw new Error('Model: the model has been disposed');
    return this.native;
  }

  get info(): ReturnType<NativeModel['info']> {
    return this.n.info();
  }
  parameterSpecs(): ParameterSpec[] {
    return this.n.parameterSpecs();
  }
  /** The weights as Tensor handles that share the model's memory (read them, save them). */
  parameters(): Record<string, Tensor> {
    return this.n.parameters();
  }
  /** Replaces every weight (copied into the model's dtype and device); names and shapes must match. */
  async setParameters(tensors: Record<string, Tensor>): Promise<void> {
    return this.n.setParameters(tensors);
  }
  setTrainable(parts: { vision?: boolean; merger?: boolean; languageModel?: boolean }): void {
    this.n.setTrainable(parts);
  }
  /** Per-layer activation checkpointing (recompute in backward) for the vision blocks and decoder layers. */
  setCheckpointLayers(on: boolean): void {
    this.n.setCheckpointLayers(on);
  }

  async logits(batch: ModelBatch): Promise<Tensor> {
    return this.n.logits(batch);
  }
  /** Per-token log p(label) and entropy of a packed batch (labels default to each next token). */
  async batchLogprobs(batch: ModelBatch, opts?: { labels?: Int32Array | Tensor; temperature?: number }): Promise<{ logp: Float32Array; entropy: Float32Array }> {
    return this.n.tokenLogprobs(batch, opts);
  }
  /** Text only: out[i][t] = log p(seqs[i][t+1] | seqs[i][0..t]). */
  async tokenLogprobs(seqs: Int32Array[]): Promise<Float32Array[]> {
    const batch = packSequences(seqs);
    const { logp } = await this.n.tokenLogprobs(batch);
    return seqs.map((s, i) => logp.slice(batch.cuSeqlens[i], batch.cuSeqlens[i] + Math.max(0, s.length - 1)));
  }
  /** Text-only prompts. */
  async generate(prompts: Int32Array[], opts: GenerateOptions): Promise<GenerateResult> {
    return this.n.generate(packSequences(prompts), opts);
  }
  /** Prompts with images (a packed batch). */
  async generateBatch(batch: ModelBatch, opts: GenerateOptions): Promise<GenerateResult> {
    return this.n.generate(batch, opts);
  }
  ropeIndex(batch: ModelBatch): { positionIds: Int32Array; nextPositions: Int32Array } {
    return this.n.ropeIndex(batch);
  }

  /** Cross-entropy on the labelled tokens, backward: gradients accumulate until optimizerStep. */
  async backwardSft(batch: ModelBatch, spec: SftLossSpec): Promise<LossReport> {
    return this.n.backwardSft(batch, spec);
  }
  async sftLoss(batch: ModelBatch, spec: SftLossSpec): Promise<number> {
    return this.n.sftLoss(batch, spec);
  }
  /** Token-level GRPO loss through the fused logprob, backward: gradients accumulate. */
  async backwardGrpo(batch: ModelBatch, spec: GrpoLossSpec): Promise<LossReport> {
    return this.n.backwardGrpo(batch, spec);
  }
  /** AdamW step (global-norm clipping first) on the accumulated gradients, then zeroes them. */
  async optimizerStep(opts: OptimizerOptions): Promise<{ gradNorm: number; step: number; paramsUpdated: number }> {
    return this.n.optimizerStep({ ...ADAMW_DEFAULTS, ...opts });
  }
  zeroGrad(): void {
    this.n.zeroGrad();
  }
  gradients(): Record<string, Tensor> {
    return this.n.gradients();
  }
  optimizerState(): Record<string, Tensor> {
    return this.n.optimizerState();
  }
  loadOptimizerState(state: Record<string, Tensor>): void {
    this.n.loadOptimizerState(state);
  }

  async dispose(): Promise<void> {
    this.native?.dispose();
    this.native = null;
  }
}
