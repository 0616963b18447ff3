// Learning rate per optimizer step: linear warm-up, then cosine decay to minLrRatio · lr (or a
// constant peak). The one schedule of every trainer (SFT, GRPO, the cycle's stages).
//
//   step k = 0, 1, …, total−1 (the k-th optimizer step of the run)
//   k <  W:  lr · (k + 1) / W                       (the first step already moves: no wasted step at 0)
//   k >= W:  lr · (m + (1 − m) · ½ (1 + cos(π · p))),  p = (k − W) / max(1, total − W − 1) in [0, 1]
//
// so the first step after warm-up runs at the peak lr and the last step at exactly m · lr. The
// schedule is a pure function of the step: a resumed run needs only the step count to be exact.

export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Optimizer steps of the whole run. */
  totalSteps: number;
  /** Warm-up steps (already resolved from a ratio by warmupStepsFor). */
  warmupSteps: number;
  /** Final lr as a fraction of the peak (0: decay to zero). */
  minLrRatio: number;
  /** After warm-up: cosine decay (default) or the peak throughout. */
  shape?: 'cosine' | 'constant';
}

/** Warm-up steps: an explicit count when > 0, else ceil(ratio · total). */
export function warmupStepsFor(totalSteps: number, warmupRatio: number, warmupSteps = 0): number {
  if (warmupSteps > 0) return Math.min(warmupSteps, totalSteps);
  return Math.min(totalSteps, Math.ceil(Math.max(0, warmupRatio) * totalSteps));
}

export function lrAt(step: number, s: LrSchedule): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (s.shape === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps - 1);
  const p = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  return s.lr * (s.minLrRatio + (1 - s.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
}
