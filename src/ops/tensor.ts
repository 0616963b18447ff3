// Tensors on the JS side: the native handle class plus a typed factory.
import { loadAddon } from '../native/loader';
import type { AnyTypedArray, Tensor, TensorOptions } from '../native/types';

export type { Tensor, TensorOptions, DtypeName, DeviceName, AnyTypedArray } from '../native/types';

/** A tensor over `array` (borrowed, not copied, unless options.copy). Shape defaults to [length]. */
export function tensor(array: AnyTypedArray, shape?: number[], options?: TensorOptions): Tensor {
  const { Tensor } = loadAddon();
  return new Tensor(array, shape, options);
}

export function isTensor(value: unknown): value is Tensor {
  return value instanceof loadAddon().Tensor;
}
