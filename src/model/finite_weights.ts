// Weights with NaN or infinity are never written and never loaded: a model folder that holds them
// loads fine, generates garbage and scores 0% without a word, and a training run that saved them
// has nothing to resume from. This file has the one scan for tensors that are not in a Model (the
// Model asks its native side, Model.nonFiniteParameter, which is far faster) and the error texts,
// so that every refusal names the folder, the tensor and, when loading, the file.
import type { AnyTypedArray, Tensor } from '../native/types';

/** A tensor holding NaN or infinite values: its name and how many of its elements are. */
export interface NonFiniteTensor {
  name: string;
  count: number;
}

/** How many elements of `data` (in `dtype`) are NaN or infinite. bf16 and f16 arrive as their bits:
 *  an all-ones exponent is an infinity or a NaN. Integer tensors are always finite. */
function countNonFinite(data: AnyTypedArray, dtype: Tensor['dtype']): number {
  let bad = 0;
  if (dtype === 'f32' || dtype === 'f64') {
    const xs = data as Float32Array | Float64Array;
    for (let i = 0; i < xs.length; i++) if (!Number.isFinite(xs[i])) bad++;
  } else if (dtype === 'bf16' || dtype === 'f16') {
    const mask = dtype === 'bf16' ? 0x7f80 : 0x7c00;
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) if ((bits[i] & mask) === mask) bad++;
  }
  return bad;
}

/** The first tensor (in the order given) with NaN or infinite values, or null when all are finite.
 *  Copies one tensor at a time to the CPU, so memory grows by the largest tensor only. */
export async function findNonFiniteTensor(tensors: Iterable<[string, Tensor]>): Promise<NonFiniteTensor | null> {
  for (const [name, t] of tensors) {
    if (!['f32', 'f64', 'bf16', 'f16'].includes(t.dtype)) continue;
    const onCpu = t.device === 'cpu' ? t : await t.to('cpu');
    try {
      const count = countNonFinite(onCpu.toArray(), t.dtype);
      if (count > 0) return { name, count };
    } finally {
      if (onCpu !== t) onCpu.dispose();
    }
  }
  return null;
}

const values = (n: number) => `${n} non-finite value${n === 1 ? '' : 's'}`;

/** "refusing to write DIR: model.layers.0.mlp.up_proj.weight has 12 non-finite values (NaN or infinity)". */
export function refuseToWrite(dir: string, bad: NonFiniteTensor): Error {
  return new Error(
    `refusing to write ${dir}: ${bad.name} has ${values(bad.count)} (NaN or infinity); ` +
      'a model with such weights only produces garbage',
  );
}

/** "DIR/FILE: tensor NAME has N non-finite values (NaN or infinity): refusing to load these weights". */
export function nonFiniteLoadMessage(dir: string, file: string | undefined, bad: NonFiniteTensor): string {
  const where = file ? `${dir}/${file}` : dir;
  return (
    `${where}: tensor "${bad.name}" has ${values(bad.count)} (NaN or infinity): refusing to load these weights ` +
    '(the file is damaged or was saved from a diverged run)'
  );
}

/** Throws refuseToWrite(dir, …) when `model` holds a NaN or infinite weight (asked natively). */
export async function assertFiniteWeights(
  model: { nonFiniteParameter(): Promise<NonFiniteTensor | null> },
  dir: string,
): Promise<void> {
  const bad = await model.nonFiniteParameter();
  if (bad) throw refuseToWrite(dir, bad);
}
