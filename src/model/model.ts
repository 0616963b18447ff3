// The Model class: one Qwen2-VL / Qwen2.5-VL (or text-only Qwen2) held natively, with its
// optimizer. All heavy methods are async (they run off the JS thread). Batches are packed:
// sequences laid end to end with cumulative lengths, plus the images they contain in token order.
import { loadAddon } from '../native/loader';
import type { Tensor } from '../native/types';
import type { NativeDistributed } from '../native/dist_types';
import type {
  CreateOptions,
  GenerateOptions,
  GenerateResult,
  GrpoLossSpec,
  LoraAddOptions,
  LoraSettings,
  LossReport,
  ReduceGradients,
  ModelBatch,
  ScoreHeadOptions,
  ScoreLossSpec,
  ModelDevice,
  ModelDtype,
  NativeModel,
  NonFiniteParameter,
  OptimizerOptions,
  StepReport,
  SftLossSpec,
} from '../native/model_types';
import { loadCheckpoint, nonFiniteWeightError, saveCheckpoint, type CheckpointDtype } from './hf_folder';
import { assertFiniteWeights } from './finite_weights';
import { loadModelConfig } from './config';
import type { ModelConfig, ParameterSpec } from '../native/model_config';
import { isLoraParameter, type LoraSpec } from './lora';

export type * from '../native/model_types';

/** AdamW's defaults, the one table (PyTorch's torch.optim.AdamW values, without its weight decay):
 *  the trainers start from these, and the native bridge falls back to the same numbers. */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } as const;

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
    private cfg: ModelConfig,
    /** The folder the weights came from (tokenizer files are copied from it on save). */
    readonly sourceDir: string | null = null,
  ) {}

  /** The model's configuration (scoreLabels follows addScoreHead). */
  get config(): ModelConfig {
    return this.cfg;
  }

  /** The LoRA settings of the adapter the model carries (set by whoever adds or loads one: the
   *  trainers, applyAdapter), written into adapter_config.json when it is saved. */
  private spec: LoraSpec | null = null;
  get loraSpec(): LoraSpec {
    if (!this.spec) throw new Error('Model: the model carries no LoRA adapter');
    return this.spec;
  }
  set loraSpec(spec: LoraSpec) {
    this.spec = spec;
  }
  /** Whether the model carries LoRA adapters (they then are what trains). */
  get hasLora(): boolean {
    return this.n.info().loraModules > 0;
  }

  /**
   * A model from a normalized config, or from a config.json / model folder path, randomly
   * initialized (seeded), or empty with init: 'none'.
   */
  static async create(configOrPath: ModelConfig | string, opts: CreateOptions = {}): Promise<Model> {
    const config = typeof configOrPath === 'string' ? await loadModelConfig(configOrPath) : configOrPath;
    const cls = loadAddon().Model;
    return new Model(await cls.create(config, opts), config);
  }

  /** A Hugging Face model folder (config.json + safetensors, single file or sharded; either name
   *  layout). A NaN or infinite weight is an error naming the tensor and its file. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Model> {
    // The finite check runs natively once the weights are in (one pass on the model's device)
    // rather than as loadCheckpoint's scan in JS.
    const { config, tensors, files } = await loadCheckpoint(dir, { checkFinite: false });
    const cls = loadAddon().Model;
    const model = new Model(await cls.create(config, { ...opts, init: 'none' }), config, dir);
    try {
      await model.setParameters(Object.fromEntries(tensors));
      const bad = await model.nonFiniteParameter();
      if (bad) throw nonFiniteWeightError(dir, files, bad);
    } catch (err) {
      await model.dispose();
      throw err;
    } finally {
      for (const t of tensors.values()) t.dispose(); // drop the file mappings: the model holds copies
    }
    return model;
  }

  /** Writes config.json + safetensors (+ index when sharded) that any HF-compatible tool loads.
   *  Refuses, writing nothing, when a weight is NaN or infinite (the error names the tensor).
   *  Base weights only: LoRA adapters are not written (the PEFT adapter writer saves them; mergeLora()
   *  first to save a merged model). */
  async save(dir: string, opts: SaveOptions = {}): Promise<void> {
    await assertFiniteWeights(this, dir);
    const base = Object.fromEntries(Object.entries(this.parameters()).filter(([name]) => !isLoraParameter(name)));
    await saveCheckpoint(dir, this.config, base, {
      maxShardBytes: opts.maxShardBytes,
      dtype: opts.dtype,
      sourceDir: opts.sourceDir ?? this.sourceDir ?? undefined,
      checkFinite: false, // just checked natively
    });
  }

  private get n(): NativeModel {
    if (!this.native) throw new Error('Model: the model has been disposed');
    return this.native;
  }

  get info(): ReturnType<NativeModel['info']> {
    return this.n.info();
  }
  /** The base weights' names and shapes (LoRA adapters are not listed: see loraParameters). */
  parameterSpecs(): ParameterSpec[] {
    return this.n.parameterSpecs();
  }
  /** The weights as Tensor handles that share the model's memory (read them, save them), LoRA
   *  adapters included. */
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
  /** Activation recomputation: each decoder layer's activations are recomputed in backward instead of
   *  kept (less memory, one more forward). The native call keeps its historical name. */
  setRecomputeActivations(on: boolean): void {
    this.n.setCheckpointLayers(on);
  }

  async logits(batch: ModelBatch): Promise<Tensor> {
    return this.n.logits(batch);
  }
  /** Per-token log p(label) and entropy of a packed batch (labels default to each next token). */
  async tokenLogprobs(
    batch: ModelBatch,
    opts?: { labels?: Int32Array | Tensor; temperature?: number },
  ): Promise<{ logp: Float32Array; entropy: Float32Array }> {
    return this.n.tokenLogprobs(batch, opts);
  }
  /** Text only: out[i][t] = log p(seqs[i][t+1] | seqs[i][0..t]). */
  async sequenceLogprobs(seqs: Int32Array[]): Promise<Float32Array[]> {
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
  /** `reduce`: the step's last backward on this rank, its gradients summed over the ranks while it
   *  runs (see ReduceGradients). */
  async backwardSft(batch: ModelBatch, spec: SftLossSpec, reduce?: ReduceGradients): Promise<LossReport> {
    return reduce ? this.n.backwardSft(batch, spec, reduce) : this.n.backwardSft(batch, spec);
  }
  async sftLoss(batch: ModelBatch, spec: SftLossSpec): Promise<number> {
    return this.n.sftLoss(batch, spec);
  }
  /** Token-level GRPO loss through the fused logprob, backward: gradients accumulate. */
  async backwardGrpo(batch: ModelBatch, spec: GrpoLossSpec, reduce?: ReduceGradients): Promise<LossReport> {
    return reduce ? this.n.backwardGrpo(batch, spec, reduce) : this.n.backwardGrpo(batch, spec);
  }
  /** The score head (config.scoreLabels > 0) at each sequence's last token: S x L float32 values,
   *  row-major (the reward model's scalar per sequence when L is 1). No gradient. */
  async scores(batch: ModelBatch): Promise<Float32Array> {
    const t = await this.n.scores(batch);
    try {
      const values = t.toArray();
      return values instanceof Float32Array ? values : Float32Array.from(values as Float64Array);
    } finally {
      t.dispose();
    }
  }
  /** scores() as an [S, L] Tensor in the model's accumulation dtype: float64 for a float64 model
   *  (reference and gradient checks), float32 otherwise. */
  async scoreTensor(batch: ModelBatch): Promise<Tensor> {
    return this.n.scores(batch);
  }
  /** Squared error of the scores against `spec.targets` (mean over rows x labels unless numItems),
   *  backward: gradients accumulate until optimizerStep. A model without a score head rejects. */
  async backwardScore(batch: ModelBatch, spec: ScoreLossSpec, reduce?: ReduceGradients): Promise<LossReport> {
    return reduce ? this.n.backwardScore(batch, spec, reduce) : this.n.backwardScore(batch, spec);
  }
  /** Gives the model a fresh score head (e.g. a pretrained causal LM becoming a reward model; its LM
   *  head stays, so it still generates). Trains when the language model does; save() then writes a
   *  *ForSequenceClassification folder. Throws when the model already has a head. */
  addScoreHead(opts: ScoreHeadOptions = {}): void {
    const labels = opts.labels ?? 1;
    this.n.addScoreHead({ labels, seed: opts.seed ?? 0, std: opts.std ?? 0.02 });
    this.cfg = { ...this.cfg, scoreLabels: labels };
  }
  /** AdamW step (global-norm clipping first) on the accumulated gradients, then zeroes them. */
  /** AdamW; a non-finite gradient norm (or opts.skip) leaves weights and optimizer state untouched. */
  async optimizerStep(opts: OptimizerOptions): Promise<StepReport> {
    return this.n.optimizerStep({ ...ADAMW_DEFAULTS, ...opts });
  }
  /** The first parameter holding a NaN or infinity (name and count), or null when every weight is finite. */
  async nonFiniteParameter(): Promise<NonFiniteParameter | null> {
    return this.n.nonFiniteParameter();
  }
  zeroGrad(): void {
    this.n.zeroGrad();
  }
  gradients(): Record<string, Tensor> {
    return this.n.gradients();
  }
  /** Data parallelism: the accumulated gradients summed over the ranks of `dist`, in place (see
   *  NativeModel.allReduceGradients). Every rank calls it once per optimizer step, before the step. */
  async allReduceGradients(dist: NativeDistributed, opts: { bucketBytes?: number } = {}): Promise<void> {
    return this.n.allReduceGradients(dist, opts);
  }
  /** Every rank takes rank `root`'s weights (every rank calls it). */
  async broadcastParameters(dist: NativeDistributed, root = 0): Promise<void> {
    return this.n.broadcastParameters(dist, root);
  }
  /** ZeRO-1/2: the optimizer sharded over `dist` (see NativeModel.shardOptimizer); null undoes it. */
  shardOptimizer(dist: NativeDistributed | null, opts?: { stage: 1 | 2; bucketBytes?: number }): void {
    this.n.shardOptimizer(dist, opts);
  }
  optimizerState(): Record<string, Tensor> {
    return this.n.optimizerState();
  }
  loadOptimizerState(state: Record<string, Tensor>): void {
    this.n.loadOptimizerState(state);
  }

  /** Fresh LoRA adapters on `opts.modules` (A as PEFT initializes it, B = 0: the outputs do not change
   *  until they train). They always train, whatever setTrainable says; freeze the base with
   *  setTrainable({ vision: false, merger: false, languageModel: false }). */
  addLora(opts: LoraAddOptions): void {
    this.n.addLora({ ...opts, seed: opts.seed ?? 0 });
  }
  /** Changes the given adapter settings (scale = lora_alpha / r, dropout, enabled, dropout seed). */
  setLora(settings: LoraSettings): void {
    this.n.setLora(settings);
  }
  /** Adds or replaces adapter tensors by full name ("<module>.lora_A.weight" [r, in],
   *  "<module>.lora_B.weight" [out, r]), e.g. read from a PEFT adapter file. */
  async setLoraTensors(tensors: Record<string, Tensor>): Promise<void> {
    return this.n.setLoraTensors(tensors);
  }
  /** Drops every adapter; returns how many modules had one. */
  removeLora(): number {
    return this.n.removeLora();
  }
  /** Folds the adapters into the base weights (W += scale * B A) and drops them; save() then writes
   *  the merged model. Resolves to how many modules were merged. */
  async mergeLora(): Promise<number> {
    return this.n.mergeLora();
  }
  /** The adapter tensors (sharing the model's memory), by full name. */
  loraParameters(): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(this.parameters()).filter(([name]) => isLoraParameter(name)));
  }

  async dispose(): Promise<void> {
    this.native?.dispose();
    this.native = null;
  }
}
