// The model layer: configuration (config.json), parameter names and shapes, safetensors IO,
// checkpoints, the Model class and the tiny configs.
export type * from '../native/model_config';
export { parseModelConfig, modelConfigToJson, loadModelConfig, ModelConfigError } from './config';
export { expectedParameters, canonicalName, parameterCount } from './parameters';
export {
  readSafetensorsHeader,
  parseSafetensorsHeader,
  buildSafetensorsHeader,
  readSafetensorsIndex,
  parseSafetensorsIndex,
  formatSafetensorsIndex,
  planShards,
  parseByteSize,
  SafetensorsError,
  DEFAULT_MAX_SHARD_BYTES,
  SAFETENSORS_DTYPES,
} from './safetensors';
export type {
  SafetensorsDtype,
  TensorDescriptor,
  SafetensorsHeader,
  SafetensorsIndex,
  ShardPlan,
  HeaderEntry,
} from './safetensors';
export { loadCheckpoint, saveCheckpoint, CheckpointError, COMPANION_FILES } from './hf_folder';
export type {
  Checkpoint,
  CheckpointDtype,
  LoadCheckpointOptions,
  SaveCheckpointOptions,
  SavedCheckpoint,
} from './hf_folder';
export {
  LORA_DEFAULTS,
  DECODER_PROJECTIONS,
  LoraError,
  isLoraParameter,
  loraModules,
  loraScale,
  resolveLoraSpec,
  peftTensorName,
  targetModulesPattern,
} from './lora';
export type { LoraSpec, PeftLayout } from './lora';
export {
  saveAdapter,
  loadAdapter,
  applyAdapter,
  adapterConfig,
  isAdapterFolder,
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
} from './peft_adapter';
export type { LoadedAdapter, SaveAdapterOptions } from './peft_adapter';
export * from './model';
export * from './tiny';
