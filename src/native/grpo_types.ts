// The GRPO ops of the addon (native/bridge/js_grpo.cc) as JS sees them: inputs, options, results.
// The math is docs/GRPO.md. Each tensor input may be a TypedArray or a Tensor handle.
import type { Tensor } from './types';

export type FloatArray = Float32Array | Float64Array;
export type TensorLike = FloatArray | Int32Array | BigInt64Array | Uint8Array | Tensor;
/** 'auto' (default): the fused path; 'reference': the plain ATen composition it is tested against. */
export type Impl = 'auto' | 'fused' | 'reference';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface AdvantageOptions {
  /** 'group' (default): group std; 'batch': std over the batch; 'none': Dr. GRPO (no division). */
  scale?: 'group' | 'batch' | 'none';
  /** Added to the std. Default 1e-4 (TRL). */
  eps?: number;
  impl?: Impl;
  device?: Device;
}

export interface LossOptions {
  /** Default 'dapo'. */
  lossType?: 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo';
  /** Default 0.2. */
  epsLow?: number;
  /** Default: epsLow. */
  epsHigh?: number;
  /** KL coefficient, default 0 (then refLogp may be omitted). */
  beta?: number;
  /** KL estimator, default 'k3'. */
  kl?: 'k1' | 'k2' | 'k3';
  /** dr_grpo's length; default seqLen (padded) or the longest sequence (packed). */
  maxCompletionLength?: number;
  /** dapo's denominator: active tokens in the whole generation batch (all micro-batches, all ranks).
   *  Default: this mask's sum. */
  numItemsInBatch?: number;
  /** 'token' (default): one ratio per token. 'sequence' (GSPO): one ratio per sequence, exp of the
   *  masked mean of its tokens' log-ratios, shared by its tokens; the gradient flows through the mean. */
  importanceSamplingLevel?: 'token' | 'sequence';
  /** Two-sided clipping (TRL's delta): the unclipped term's ratio is capped at delta (> 1 + epsHigh);
   *  'clip' only. Default: off. */
  delta?: number;
  /** 'clip' (default): PPO's clipped surrogate. 'cispo' (MiniMax-M1): -sg(clip(ratio, 1 - epsLow,
   *  1 + epsHigh)) A logp, so clipped tokens still get gradient (docs/GRPO.md). */
  policyLoss?: 'clip' | 'cispo';
  impl?: Impl;
  device?: Device;
}

export interface LossStats {
  /** Fraction of active tokens with ratio < 1 - epsLow and A < 0. */
  clipLowFraction: number;
  /** Fraction of active tokens with ratio > 1 + epsHigh and A > 0. */
  clipHighFraction: number;
  /** Mean KL estimate over active tokens (0 without refLogp). */
  klMean: number;
  ratioMean: number;
  /** Mean of the `entropy` input over active tokens (0 when not given). */
  entropyMean: number;
  /** Sum of the mask. */
  activeTokens: number;
  /** Fraction of sequences (with active tokens) whose sequence ratio exp(mean log-ratio) is below
   *  1 - epsLow with A < 0 (at 'sequence' level: the ratio the loss clipped). */
  seqClipLowFraction: number;
  /** The same above 1 + epsHigh with A > 0. */
  seqClipHighFraction: number;
  /** Mean |logp - oldLogp| over active tokens (0 without oldLogp). */
  logRatioAbsMean: number;
}

export interface LossInputs {
  logp: Float32Array | Float64Array | Tensor;
  oldLogp?: Float32Array | Float64Array | Tensor;
  refLogp?: Float32Array | Float64Array | Tensor;
  advantages: Float32Array | Float64Array | Tensor;
  mask: Uint8Array | Float32Array | Tensor;
  entropy?: Float32Array | Tensor;
  /** Optional detached per-token weights of the policy term (e.g. truncated importance sampling). */
  isWeights?: Float32Array | Float64Array | Tensor;
  batch: number;
  seqLen: number;
}

export interface PackedLossInputs {
  /** [N] tokens of B sequences laid end to end. */
  logp: Float32Array | Float64Array | Tensor;
  oldLogp?: Float32Array | Float64Array | Tensor;
  refLogp?: Float32Array | Float64Array | Tensor;
  advantages: Float32Array | Float64Array | Tensor;
  /** [B + 1] cumulative sequence lengths: sequence b owns tokens [cuSeqlens[b], cuSeqlens[b+1]). */
  cuSeqlens: Int32Array | Tensor;
  /** Optional [N] loss mask (e.g. prompt tokens 0); default all ones. */
  mask?: Uint8Array | Float32Array | Tensor;
  entropy?: Float32Array | Tensor;
  /** Optional detached per-token weights of the policy term (e.g. truncated importance sampling). */
  isWeights?: Float32Array | Float64Array | Tensor;
}

export interface LossResult<G> {
  loss: number;
  gradLogp: G;
  stats: LossStats;
}

export interface LogprobInputs {
  /** [N, H] final hidden states (flat N*H as a TypedArray). */
  hidden: FloatArray | Tensor;
  /** [V, H] lm_head weight (flat V*H as a TypedArray). */
  weight: FloatArray | Tensor;
  /** [N] target ids; < 0 means "no target" (logp 0, no gradient). */
  targets: Int32Array | BigInt64Array | Tensor;
}

export interface LogprobOptions {
  /** Sampling temperature tau: logits are h W^T / tau. Default 1. */
  temperature?: number;
  /** Tokens per chunk; default from a memory budget (64 MiB of logits on CPU, 256 MiB on CUDA). */
  chunkTokens?: number;
  /** Vocabulary tile (online logsumexp across tiles); default whole vocabulary on CPU, 16384 on CUDA. */
  vocabTile?: number;
  impl?: Impl;
  device?: Device;
}

export interface LogprobResult<A> {
  logp: A;
  entropy: A;
  /** logsumexp of the logits: pass it back to the backward to skip recomputing the forward. */
  lse: A;
}

export interface LogprobBackwardInputs extends LogprobInputs {
  gradLogp: FloatArray | Tensor;
  gradEntropy?: FloatArray | Tensor;
  lse?: FloatArray | Tensor;
  entropy?: FloatArray | Tensor;
}

export interface LogprobGrads<A> {
  gradHidden: A;
  gradWeight: A;
}

export interface PolicyGradientInputs extends LogprobInputs {
  oldLogp?: FloatArray | Tensor;
  refLogp?: FloatArray | Tensor;
  advantages: FloatArray | Tensor;
  cuSeqlens: Int32Array | Tensor;
  mask?: Uint8Array | Float32Array | Tensor;
}

export interface PolicyGradientResult<A> extends LogprobGrads<A> {
  loss: number;
  logp: A;
  entropy: A;
  stats: LossStats;
}

export interface GrpoOps {
  advantages(rewards: Float32Array, groupSize: number, opts?: AdvantageOptions): Float32Array;
  advantages(rewards: Float64Array, groupSize: number, opts?: AdvantageOptions): Float64Array;
  loss(inputs: LossInputs, opts?: LossOptions): LossResult<Float32Array>;
  lossPacked(inputs: PackedLossInputs, opts?: LossOptions): LossResult<Float32Array>;
  fusedLogprob(inputs: LogprobInputs, opts?: LogprobOptions): LogprobResult<Float32Array>;
  fusedLogprobBackward(inputs: LogprobBackwardInputs, opts?: LogprobOptions): LogprobGrads<Float32Array>;
  /** hidden, lm_head -> fused logprob -> packed GRPO loss -> backward, through libtorch autograd. */
  policyGradient(inputs: PolicyGradientInputs, opts?: LossOptions & LogprobOptions): PolicyGradientResult<Float32Array>;

  advantagesAsync(rewards: FloatArray | Tensor, groupSize: number, opts?: AdvantageOptions): Promise<Tensor>;
  /** Padded inputs (logp [B, T] or flat with batch/seqLen) or packed inputs (with cuSeqlens). */
  lossAsync(inputs: LossInputs | PackedLossInputs, opts?: LossOptions): Promise<LossResult<Tensor>>;
  fusedLogprobAsync(inputs: LogprobInputs, opts?: LogprobOptions): Promise<LogprobResult<Tensor>>;
  fusedLogprobBackwardAsync(inputs: LogprobBackwardInputs, opts?: LogprobOptions): Promise<LogprobGrads<Tensor>>;
  policyGradientAsync(
    inputs: PolicyGradientInputs,
    opts?: LossOptions & LogprobOptions,
  ): Promise<PolicyGradientResult<Tensor>>;
}
