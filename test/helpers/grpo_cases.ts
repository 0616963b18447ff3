// Random GRPO loss inputs shared by the loss tests: padded rows of random length (row 1 always
// empty), ratios spread across the clip range, and their float64-reference form.
import { randn, rng } from './addon';
import type * as ref from './grpo_reference';

export interface Padded {
  B: number;
  T: number;
  logp: Float64Array;
  oldLogp: Float64Array;
  refLogp: Float64Array;
  advantages: Float64Array;
  mask: Uint8Array;
  entropy: Float64Array;
}

/** Random padded inputs: rows of random length (some empty), ratios spread across the clip range. */
export function makePadded(seed: number, B: number, T: number, awayFromKinks = false): Padded {
  const r = rng(seed);
  const logp = Float64Array.from({ length: B * T }, () => -0.05 - 3 * r());
  const oldLogp = new Float64Array(B * T);
  for (let i = 0; i < B * T; i++) {
    let lr = 0.5 * randn(r, 1)[0];
    // Finite differences need every ratio away from 1 - eps and 1 + eps (kinks of the clip).
    if (awayFromKinks)
      while (
        Math.abs(Math.exp(lr) - 0.8) < 0.02 ||
        Math.abs(Math.exp(lr) - 1.3) < 0.02 ||
        Math.abs(Math.exp(lr) - 1.2) < 0.02
      )
        lr += 0.05;
    oldLogp[i] = logp[i] - lr;
  }
  const refLogp = Float64Array.from(logp, (v) => v + 0.3 * randn(r, 1)[0]);
  const advantages = Float64Array.from(randn(r, B));
  const mask = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = b === 1 ? 0 : Math.floor(r() * (T + 1)); // row 1 is always empty
    for (let t = 0; t < len; t++) mask[b * T + t] = 1;
  }
  const entropy = Float64Array.from({ length: B * T }, () => 2 * r());
  return { B, T, logp, oldLogp, refLogp, advantages, mask, entropy };
}

export function toCase(p: Padded, withOld: boolean, withRef: boolean): ref.LossCase {
  return {
    offsets: Array.from({ length: p.B + 1 }, (_, b) => b * p.T),
    logp: Array.from(p.logp),
    oldLogp: withOld ? Array.from(p.oldLogp) : undefined,
    refLogp: withRef ? Array.from(p.refLogp) : undefined,
    advantages: Array.from(p.advantages),
    mask: Array.from(p.mask),
    entropy: Array.from(p.entropy),
    padded: true,
  };
}

/** The packed form of padded inputs: each row's active prefix (mask-1 tokens are a prefix in
 *  makePadded) laid end to end, with its cumulative lengths and a gather of any [B, T] array. */
export function packedFromPadded(p: Padded): { cu: Int32Array; gather: (a: Float64Array) => Float64Array } {
  const lens = Array.from({ length: p.B }, (_, b) =>
    p.mask.subarray(b * p.T, (b + 1) * p.T).reduce((a, m) => a + m, 0),
  );
  const cu = new Int32Array(p.B + 1);
  for (let b = 0; b < p.B; b++) cu[b + 1] = cu[b] + lens[b];
  const gather = (a: Float64Array): Float64Array => {
    const out = new Float64Array(cu[p.B]);
    for (let b = 0; b < p.B; b++) for (let t = 0; t < lens[b]; t++) out[cu[b] + t] = a[b * p.T + t];
    return out;
  };
  return { cu, gather };
}

/** grpo.loss inputs of the padded case (oldLogp only `withOld`; isWeights when given). */
export function paddedInputs(p: Padded, withOld: boolean, isWeights?: Float64Array) {
  return {
    logp: p.logp,
    oldLogp: withOld ? p.oldLogp : undefined,
    refLogp: p.refLogp,
    advantages: p.advantages,
    mask: p.mask,
    entropy: Float32Array.from(p.entropy),
    isWeights,
    batch: p.B,
    seqLen: p.T,
  };
}
