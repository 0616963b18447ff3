// Per-token quantities the GRPO trainer derives from two sets of log-probs of the same completion
// tokens (label positions only): the rollout engine's against the trainer's (the mismatch metrics
// and truncated importance sampling), and the policy's against the reference's (KL in the reward).
// Pure functions over aligned [N] arrays, so each is checked by hand in tests.

/** Sums over the label tokens of |trainer - rollout|, its max, and the k3 estimate of
 *  KL(rollout || trainer) with samples from the rollout: e^d - d - 1, d = trainer - rollout. */
export interface MismatchSums {
  sumAbs: number;
  maxAbs: number;
  sumKl: number;
  tokens: number;
}

export function mismatchSums(rollout: Float32Array, trainer: Float32Array, labels: Int32Array): MismatchSums {
  const out: MismatchSums = { sumAbs: 0, maxAbs: 0, sumKl: 0, tokens: 0 };
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) continue;
    const d = trainer[i] - rollout[i];
    out.sumAbs += Math.abs(d);
    out.maxAbs = Math.max(out.maxAbs, Math.abs(d));
    out.sumKl += Math.expm1(d) - d;
    out.tokens++;
  }
  return out;
}

/** Truncated importance sampling (verl's TIS): min(exp(old - rollout), cap) at each label token, 0
 *  elsewhere -- the rollout engine sampled, the trainer's old log-probs are the policy it corrects to. */
export function truncatedIsWeights(
  old: Float32Array,
  rollout: Float32Array,
  labels: Int32Array,
  cap: number,
): Float32Array {
  const w = new Float32Array(labels.length);
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) w[i] = Math.min(Math.exp(old[i] - rollout[i]), cap);
  return w;
}

/** One token's KL(policy || reference) estimate from d = ref - logp (docs/GRPO.md). */
export function klEstimate(kind: 'k1' | 'k2' | 'k3', logp: number, ref: number): number {
  const d = ref - logp;
  if (kind === 'k1') return -d;
  if (kind === 'k2') return (d * d) / 2;
  return Math.expm1(d) - d;
}

/** Each packed sequence's summed KL over its label tokens (verl's use_kl_in_reward penalty). */
export function klPerSequence(
  kind: 'k1' | 'k2' | 'k3',
  logp: Float32Array,
  ref: Float32Array,
  labels: Int32Array,
  cuSeqlens: Int32Array,
): number[] {
  const out: number[] = [];
  for (let s = 0; s + 1 < cuSeqlens.length; s++) {
    let sum = 0;
    for (let i = cuSeqlens[s]; i < cuSeqlens[s + 1]; i++) if (labels[i] >= 0) sum += klEstimate(kind, logp[i], ref[i]);
    out.push(sum);
  }
  return out;
}
