// What each rank holds for training, by ZeRO stage: the numbers printed at the start of a
// distributed run (so a user sees what fits before the first step) and the README's table.
//
// medgr2's optimizer keeps float32 Adam moments (4 + 4 bytes per trainable parameter) and float32
// master weights (4 bytes) for parameters stored in another dtype (native/train/adamw.h,
// zero_adamw.h). ZeRO-1/2 divide that state by the world size. The
// gradients live in the parameters' dtype during backward on every stage: medgr2's ZeRO-2 reduces
// them at the optimizer step, not inside backward, so its peak gradient memory is stage 1's (it
// frees each bucket's full gradients as soon as their slice is reduced). Activations are not counted.

export type ZeroStage = 0 | 1 | 2;

export interface MemoryPlanInput {
  /** Elements of every parameter (frozen ones included). */
  parameters: number;
  /** Elements of the parameters that train. */
  trainable: number;
  /** Bytes of one element of the compute dtype (2 for bf16/f16, 4 for f32). */
  dtypeBytes: number;
  worldSize: number;
  stage: ZeroStage;
}

export interface MemoryPerRank {
  weights: number;
  gradients: number;
  optimizer: number;
  total: number;
}

/** Bytes per rank, before activations. */
export function memoryPerRank(m: MemoryPlanInput): MemoryPerRank {
  if (!(m.worldSize >= 1)) throw new Error(`memoryPerRank: worldSize must be >= 1, got ${m.worldSize}`);
  const weights = m.parameters * m.dtypeBytes;
  const gradients = m.trainable * m.dtypeBytes;
  const masterBytes = m.dtypeBytes !== 4 ? 4 : 0;
  const optimizerPerParam = 8 + masterBytes;
  const optimizer = m.stage === 0 ? m.trainable * optimizerPerParam : (m.trainable * optimizerPerParam) / m.worldSize;
  return { weights, gradients, optimizer, total: weights + gradients + optimizer };
}

/** Bytes of one element of a libtorch dtype as Model.info names it ("Float", "BFloat16", "Half", "Double"). */
const DTYPE_BYTES: Record<string, number> = {
  double: 8,
  float64: 8,
  float: 4,
  float32: 4,
  bfloat16: 2,
  half: 2,
  float16: 2,
};

/** Bytes of a dtype as libtorch (Model.info: "BFloat16", "Float") or config.json ("bfloat16") names it. */
export function dtypeBytes(name: string): number {
  const b = DTYPE_BYTES[name.toLowerCase()];
  if (b === undefined) throw new Error(`dtypeBytes: unknown dtype "${name}"`);
  return b;
}

/** The plan of a model as Model.info describes it (its parameters, what trains, its dtype). */
export function memoryPlanOf(
  info: { parameterCount: number; trainableCount: number; dtype: string },
  worldSize: number,
  stage: ZeroStage,
): MemoryPlanInput {
  return {
    parameters: info.parameterCount,
    trainable: info.trainableCount,
    dtypeBytes: dtypeBytes(info.dtype),
    worldSize,
    stage,
  };
}

/** 1536 -> "1.5 KiB"; binary units, one decimal. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** One line: "memory per rank (ZeRO-2, 8 ranks): weights …, gradients …, optimizer … = … before activations". */
export function describeMemoryPerRank(m: MemoryPlanInput): string {
  const r = memoryPerRank(m);
  return (
    `memory per rank (ZeRO-${m.stage}, ${m.worldSize} rank${m.worldSize === 1 ? '' : 's'}): ` +
    `weights ${formatBytes(r.weights)}, gradients ${formatBytes(r.gradients)}, ` +
    `optimizer ${formatBytes(r.optimizer)} = ${formatBytes(r.total)} before activations`
  );
}
