// The shape of the native addon as JS sees it, the one declaration of it (the GRPO ops and the model
// in grpo_types.ts and model_types.ts beside this file). Hand-written: keep in step with
// native/bridge/*.cc.
import type { GrpoOps } from './grpo_types';
import type { NativeModelClass } from './model_types';
import type { NativeDistributedClass } from './dist_types';

export type DtypeName = 'f32' | 'f64' | 'i32' | 'i64' | 'u8' | 'bf16' | 'f16';
export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;
export type TypedArrayFor<D extends DtypeName> = D extends 'f32'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'i32'
      ? Int32Array
      : D extends 'i64'
        ? BigInt64Array
        : D extends 'u8'
          ? Uint8Array
          : Uint16Array;
export type AnyTypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

export interface TensorOptions {
  /** Default: from the array type (Float32Array -> f32, ...); required for Uint16Array (bf16 or f16). */
  dtype?: DtypeName;
  /** Copy the data instead of borrowing the array's memory. Default false (borrow). */
  copy?: boolean;
  /** Element strides into the array; default contiguous (row-major). */
  strides?: number[];
}

/** A handle to a native tensor. Its memory is freed by dispose() or, failing that, by the GC. */
export interface Tensor {
  readonly shape: number[];
  readonly strides: number[];
  readonly dtype: DtypeName;
  readonly device: string;
  readonly numel: number;
  readonly nbytes: number;
  readonly isContiguous: boolean;
  readonly disposed: boolean;
  /** A copy of the data, row-major, in the dtype's TypedArray (bf16/f16 bits as Uint16Array). */
  toArray(): AnyTypedArray;
  /** A copy on another device. */
  to(device: DeviceName): Promise<Tensor>;
  /** A view with two dimensions swapped (not contiguous). */
  transpose(dim0: number, dim1: number): Tensor;
  contiguous(): Tensor;
  dispose(): void;
  toString(): string;
}

export interface TensorConstructor {
  new (array: AnyTypedArray, shape?: number[], options?: TensorOptions): Tensor;
  prototype: Tensor;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  computeCapability: string;
  totalMemoryBytes: number;
  multiprocessors: number;
}

export interface NativeInfo {
  torchVersion: string;
  /** Where the build found libtorch: "system", "python3 (...)" or "MEDGR2_LIBTORCH=...". */
  torchSource: string;
  cudaAvailable: boolean;
  cudaDevices: CudaDeviceInfo[];
  cudaKernelsCompiled: boolean;
  nvtxCompiled: boolean;
  threads: { intraOp: number; interOp: number; hardware: number };
  napiVersion: number;
}

export interface NativeTensorOps {
  /** The bridge's demo op (y = a·x + b; a CUDA kernel on a GPU): for tests and bench/scale_add only, not
   *  in the package's public `ops`. */
  scaleAdd(x: Tensor, a: number, b: number): Promise<Tensor>;
  scaleAddUsesKernel(x: Tensor): boolean;
  matmul(a: Tensor, b: Tensor): Promise<Tensor>;
}

/** Where one tensor's bytes are in a file (see src/model/safetensors.ts for the header side). */
export interface NativeTensorLocation {
  name: string;
  /** The addon's dtype name ("f32", "bf16", ...) or safetensors' ("F32", "BF16", ...). */
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  /** numel * element size (checked). */
  nbytes: number;
}

export interface NativeWriteEntry {
  /** For error messages. */
  name: string;
  /** The dtype written (the tensor is converted when it differs). */
  dtype: string;
  /** numel * element size of the written tensor (checked). */
  nbytes: number;
}

export interface NativeSafetensors {
  /** Maps `path` (MAP_PRIVATE) and makes the tensors: views of the mapping without `options.dtype`
   *  (or when it equals a tensor's dtype), converted copies otherwise. */
  readTensors(
    path: string,
    descriptors: NativeTensorLocation[],
    options?: { dtype?: string },
  ): Promise<Record<string, Tensor>>;
  /** Writes `headerBytes` (8-byte length + JSON) and each tensor's bytes to `path.tmp-<pid>`, fsyncs, renames. */
  writeSafetensors(
    path: string,
    headerBytes: Uint8Array,
    tensors: Tensor[],
    entries: NativeWriteEntry[],
  ): Promise<void>;
  /** Whether the tensor's data lies in a live file mapping (it was read without a copy). */
  isMapped(tensor: Tensor): boolean;
  /** File mappings alive now (each is released with the last tensor made from it). */
  liveMappings(): number;
}

export interface NativeAddon {
  Tensor: TensorConstructor;
  Model: NativeModelClass;
  Distributed: NativeDistributedClass;
  grpo: GrpoOps;
  safetensors: NativeSafetensors;
  info(): NativeInfo;
  setNumThreads(n: number): void;
  ops: NativeTensorOps;
  nvtx: { push(name: string): void; pop(): void };
}
