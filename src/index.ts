// The medgr2 library: `require('medgr2')`.
import { loadAddon } from './native/loader';
import type { NativeInfo, NativeTensorOps, Tensor as NativeTensor, TensorConstructor } from './native/types';
import { packageVersion } from './version';

export { tensor, isTensor } from './tensor';
export { grpo } from './grpo';
export { Model, packSequences, nextTokenLabels, tinyConfig, TINY_TOKENS } from './model/index';
export {
  loadModelConfig,
  parseModelConfig,
  modelConfigToJson,
  expectedParameters,
  canonicalName,
  loadCheckpoint,
  saveCheckpoint,
  ModelConfigError,
  SafetensorsError,
  CheckpointError,
} from './model';
export type * as ModelTypes from './model';
export type * as GrpoTypes from './grpo';
export type { TensorOptions, DtypeName, DeviceName, AnyTypedArray } from './tensor';
export { AddonLoadError, loadAddon } from './native/loader';

// Trainers and evaluation (the `medgr2 sft` / `medgr2 grpo` / `medgr2 eval` loops), for scripts.
export { trainSft, sftExamplesFromSamples, SFT_DEFAULTS } from './cycle/sft';
export type { SftExample, SftOptions, SftHooks, SftResult, SftStepReport, SftEvalReport } from './cycle/sft';
export { trainGrpo, grpoPromptsFromSamples, resolveGrpoOptions, flattenMetrics, GRPO_DEFAULTS } from './cycle/grpo';
export type { GrpoOptions, ResolvedGrpoOptions, GrpoHooks, GrpoStepMetrics, RolloutGroup, MeanStd } from './cycle/grpo';
export {
  accuracyReward,
  formatReward,
  judgeReward,
  defaultRewards,
  loadRewardModule,
  parseRewardWeights,
  accuracyScore,
  scoreCompletion,
} from './cycle/rewards';
export type { GrpoPrompt, Reward, RewardFn, JudgeFn } from './cycle/rewards';
export { evaluatePolicy, writePredictions, extractAnswer } from './cycle/evaluate';
export type { EvaluateOptions, EvaluateResult, PolicyPrediction } from './cycle/evaluate';
export { scorePredictions, readPredictions } from './cycle/scorer';
export type { ScoreResult, Prediction } from './cycle/scorer';
export type { PromptStyle } from './cycle/prompts';
export { TextTokenizer } from './data/tokenizer';
export { loadSampleFile } from './data/sample_files';
export type { Sample } from './data/proto';
export { MetricsLogger, readMetrics } from './report/metrics';
export { Progress } from './report/progress';
export { listCheckpoints, readTrainerState } from './cycle/run_checkpoint';
export type { TrainerState } from './cycle/run_checkpoint';
export type { NativeInfo, CudaDeviceInfo } from './native/types';

export const version = packageVersion;

export interface Info extends NativeInfo {
  version: string;
  node: string;
}

/** What this installation runs on: versions, CUDA devices, compiled-in features, threads. */
export function info(): Info {
  return { version: packageVersion, node: process.version, ...loadAddon().info() };
}

/**
 * The Tensor class (`new Tensor(array, shape?, options?)`, `x instanceof Tensor`). Resolved on first
 * use, so that `require('medgr2')` works (for --help, data tools) even before the addon is built.
 */
// eslint-disable-next-line prefer-const
export let Tensor: TensorConstructor;
/** A native tensor handle (the instance type of `Tensor`). */
export type Tensor = NativeTensor;
Object.defineProperty(exports, 'Tensor', { enumerable: true, get: () => loadAddon().Tensor });

/** Small general tensor ops (all async). */
export const ops: NativeTensorOps = {
  scaleAdd: (x, a, b) => loadAddon().ops.scaleAdd(x, a, b),
  scaleAddUsesKernel: (x) => loadAddon().ops.scaleAddUsesKernel(x),
  matmul: (a, b) => loadAddon().ops.matmul(a, b),
};

/** NVTX ranges around phases of a TypeScript loop (no-ops unless built with CUDA and profiled). */
export const nvtx = {
  push: (name: string): void => loadAddon().nvtx.push(name),
  pop: (): void => loadAddon().nvtx.pop(),
  async range<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    loadAddon().nvtx.push(name);
    try {
      return await fn();
    } finally {
      loadAddon().nvtx.pop();
    }
  },
};

/** libtorch's intra-op thread count (process-wide). */
export function setNumThreads(n: number): void {
  loadAddon().setNumThreads(n);
}
