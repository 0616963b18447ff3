// The GRPO ops (docs/GRPO.md), typed (the types: ../native/grpo_types.ts). Each tensor input may be a TypedArray or a
// Tensor handle. The plain functions are synchronous and return TypedArrays (for scripts and
// tests); the *Async functions run off the JS thread and resolve to Tensor handles (for the trainer,
// on device-resident tensors). Errors name the argument: `grpo.loss: argument 'mask' must be ...`.
import { loadAddon } from '../native/loader';
import type { AdvantageOptions, FloatArray, GrpoOps } from '../native/grpo_types';

export type * from '../native/grpo_types';

function native(): GrpoOps {
  return loadAddon().grpo;
}

/** The GRPO ops; resolved on first use so that importing medgr2 never needs the addon. */
export const grpo: GrpoOps = {
  advantages: ((r: FloatArray, g: number, o?: AdvantageOptions) =>
    native().advantages(r as Float32Array, g, o)) as GrpoOps['advantages'],
  loss: (i, o) => native().loss(i, o),
  lossPacked: (i, o) => native().lossPacked(i, o),
  fusedLogprob: (i, o) => native().fusedLogprob(i, o),
  fusedLogprobBackward: (i, o) => native().fusedLogprobBackward(i, o),
  policyGradient: (i, o) => native().policyGradient(i, o),
  advantagesAsync: (r, g, o) => native().advantagesAsync(r, g, o),
  lossAsync: (i, o) => native().lossAsync(i, o),
  fusedLogprobAsync: (i, o) => native().fusedLogprobAsync(i, o),
  fusedLogprobBackwardAsync: (i, o) => native().fusedLogprobBackwardAsync(i, o),
  policyGradientAsync: (i, o) => native().policyGradientAsync(i, o),
};
