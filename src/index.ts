// The medgr2 library: `require('medgr2')`.
import { loadAddon } from './native/loader';
import type { NativeInfo, NativeTensorOps, Tensor as NativeTensor, TensorConstructor } from './native/types';
import { packageVersion } from './version';

export { tensor, isTensor } from './ops/tensor';
export { grpo } from './ops/grpo_ops';
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
  resolveLoraSpec,
  loraModules,
  saveAdapter,
  loadAdapter,
  applyAdapter,
  isAdapterFolder,
  LoraError,
  LORA_DEFAULTS,
} from './model';
export type * as ModelTypes from './model';
export type * as GrpoTypes from './ops/grpo_ops';
export type { TensorOptions, DtypeName, DeviceName, AnyTypedArray } from './ops/tensor';
export { AddonLoadError, loadAddon } from './native/loader';

// Trainers and evaluation (the `medgr2 sft` / `medgr2 grpo` / `medgr2 eval` loops), for scripts.
export { trainSft, sftExamplesFromSamples, SFT_DEFAULTS } from './train/sft';
export type { SftExample, SftOptions, SftHooks, SftResult, SftStepReport, SftEvalReport } from './train/sft';
export { trainGrpo, type GrpoHooks } from './train/grpo_trainer';
export { useLoraAdapter, adapterOffReference } from './train/lora_training';
export { resolveGrpoOptions, GRPO_DEFAULTS, type GrpoOptions, type ResolvedGrpoOptions } from './train/grpo_options';
export { grpoPromptsFromSamples, type RolloutGroup } from './train/grpo_rollout';
export { flattenMetrics, type GrpoStepMetrics, type MeanStd } from './train/grpo_metrics';
export {
  accuracyReward,
  formatReward,
  judgeReward,
  defaultRewards,
  loadRewardModule,
  parseRewardWeights,
  accuracyScore,
  scoreCompletion,
} from './train/rewards';
export type { GrpoPrompt, Reward, RewardFn, JudgeFn } from './train/rewards';
export { evaluatePolicy, writePredictions } from './eval/evaluate';
export {
  answerText,
  extractOption,
  followsGrammar,
  formatReply,
  matchOption,
  normalizeAnswerText,
  optionsNamedIn,
  predictedOption,
} from './data/answer_grammar';
export type { EvaluateOptions, EvaluateResult, PolicyPrediction } from './eval/evaluate';
export { scorePredictions, readPredictions } from './eval/scorer';
export type { ScoreResult, Prediction } from './eval/scorer';
export type { PromptStyle } from './eval/policy_prompt';
export { TextTokenizer } from './data/tokenizer';
export { Tokenizer, type Message, type ApplyChatTemplateOptions } from './data/model_tokenizer';
export { loadSampleFile } from './data/sample_files';
export type { Sample } from './data/proto';
export { MetricsLogger, readMetrics } from './report/metrics';
export { Progress } from './report/progress';
export { listCheckpoints, readTrainerState } from './train/run_state';
export type { TrainerState } from './train/run_state';
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
export let Tensor: TensorConstructor;
/** A native tensor handle (the instance type of `Tensor`). */
export type Tensor = NativeTensor;
Object.defineProperty(exports, 'Tensor', { enumerable: true, get: () => loadAddon().Tensor });

/** Small general tensor ops (all async). */
export const ops: Pick<NativeTensorOps, 'matmul'> = {
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
