// An independent float64 implementation of docs/GRPO.md, written from the formulas
// (TRL's / verl's published ones) with plain loops: no libtorch, nothing shared with native/.
// Used as ground truth for the native reference, and through finite differences for gradients.

export type Scale = 'group' | 'batch' | 'none';
export type LossType = 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo';
export type Kl = 'k1' | 'k2' | 'k3';

function unbiasedStd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

export function advantages(rewards: ArrayLike<number>, g: number, scale: Scale = 'group', eps = 1e-4): number[] {
  const all = Array.from(rewards);
  const batchStd = unbiasedStd(all.filter((r) => !Number.isNaN(r)));
  const out: number[] = [];
  for (let start = 0; start < all.length; start += g) {
    const group = all.slice(start, start + g);
    const valid = group.filter((r) => !Number.isNaN(r));
    const mean = valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : 0;
    const allEqual = valid.every((r) => r === valid[0]);
    const denom = scale === 'group' ? unbiasedStd(valid) + eps : scale === 'batch' ? batchStd + eps : 1;
    for (const r of group) out.push(Number.isNaN(r) || valid.length < 2 || allEqual ? 0 : (r - mean) / denom);
  }
  return out;
}

export interface LossCase {
  /** Row r owns tokens [offsets[r], offsets[r+1]). */
  offsets: number[];
  logp: number[];
  oldLogp?: number[];
  refLogp?: number[];
  advantages: number[];
  mask?: number[];
  entropy?: number[];
  padded: boolean;
}

export interface LossOpts {
  lossType?: LossType;
  epsLow?: number;
  epsHigh?: number;
  beta?: number;
  kl?: Kl;
  maxCompletionLength?: number;
  numItemsInBatch?: number;
}

export interface LossOut {
  loss: number;
  stats: {
    clipLowFraction: number;
    clipHighFraction: number;
    klMean: number;
    ratioMean: number;
    entropyMean: number;
    activeTokens: number;
  };
}

function klOf(kind: Kl, logp: number, ref: number): number {
  const d = ref - logp;
  if (kind === 'k1') return -d;
  if (kind === 'k2') return (d * d) / 2;
  return Math.exp(d) - d - 1;
}

/** The loss and statistics, straight from the formulas. */
export function loss(c: LossCase, o: LossOpts = {}): LossOut {
  const lossType = o.lossType ?? 'dapo';
  const epsLow = o.epsLow ?? 0.2;
  const epsHigh = o.epsHigh ?? epsLow;
  const beta = o.beta ?? 0;
  const kl = o.kl ?? 'k3';
  const B = c.advantages.length;
  const m = (i: number): number => (c.mask ? c.mask[i] : 1);
  const rowLen = (r: number): number => c.offsets[r + 1] - c.offsets[r];
  let total = 0;
  for (let i = 0; i < c.logp.length; i++) total += m(i);

  let lossSum = 0;
  let low = 0,
    high = 0,
    klSum = 0,
    ratioSum = 0,
    entSum = 0;
  const perRow: number[] = [];
  for (let r = 0; r < B; r++) {
    let rowLoss = 0,
      rowMask = 0;
    for (let i = c.offsets[r]; i < c.offsets[r + 1]; i++) {
      const mi = m(i);
      if (mi === 0) continue;
      const a = c.advantages[r];
      const old = c.oldLogp ? c.oldLogp[i] : c.logp[i];
      const ratio = Math.exp(Math.min(Math.max(c.logp[i] - old, -20), 20));
      const clipped = Math.min(Math.max(ratio, 1 - epsLow), 1 + epsHigh);
      let ell = -Math.min(ratio * a, clipped * a);
      let k = 0;
      if (c.refLogp) {
        k = klOf(kl, c.logp[i], c.refLogp[i]);
        if (beta > 0) ell += beta * k;
      }
      rowLoss += mi * ell;
      rowMask += mi;
      if (ratio < 1 - epsLow && a < 0) low += mi;
      if (ratio > 1 + epsHigh && a > 0) high += mi;
      klSum += mi * k;
      ratioSum += mi * ratio;
      if (c.entropy) entSum += mi * c.entropy[i];
    }
    perRow.push(rowLoss / Math.max(rowMask, 1));
    lossSum += rowLoss;
  }
  let value: number;
  if (lossType === 'grpo') value = perRow.reduce((a, b) => a + b, 0) / B;
  else if (lossType === 'bnpo') value = lossSum / Math.max(total, 1);
  else if (lossType === 'dr_grpo') {
    let L = o.maxCompletionLength;
    if (L === undefined)
      L = c.padded ? c.logp.length / B : Math.max(1, ...Array.from({ length: B }, (_, r) => rowLen(r)));
    value = lossSum / (B * L);
  } else value = lossSum / (o.numItemsInBatch ?? Math.max(total, 1));
  const d = total > 0 ? total : 1;
  return {
    loss: value,
    stats: {
      clipLowFraction: total > 0 ? low / d : 0,
      clipHighFraction: total > 0 ? high / d : 0,
      klMean: total > 0 && c.refLogp ? klSum / d : 0,
      ratioMean: total > 0 ? ratioSum / d : 0,
      entropyMean: total > 0 && c.entropy ? entSum / d : 0,
      activeTokens: total,
    },
  };
}

/** d loss / d logp[i] by central differences of `loss` (float64). */
export function lossGradFiniteDiff(c: LossCase, o: LossOpts, h = 1e-6): number[] {
  const grad: number[] = [];
  for (let i = 0; i < c.logp.length; i++) {
    const plus = { ...c, logp: c.logp.slice() };
    const minus = { ...c, logp: c.logp.slice() };
    plus.logp[i] += h;
    minus.logp[i] -= h;
    // oldLogp absent means "equal to logp, detached": keep the unperturbed values as old.
    if (!c.oldLogp) {
      plus.oldLogp = c.logp.slice();
      minus.oldLogp = c.logp.slice();
    }
    grad.push((loss(plus, o).loss - loss(minus, o).loss) / (2 * h));
  }
  return grad;
}

/** logp and entropy of z = h W^T / tau, row by row (float64). targets < 0: logp 0. */
export function logprob(
  hidden: ArrayLike<number>,
  weight: ArrayLike<number>,
  targets: ArrayLike<number>,
  H: number,
  tau = 1,
): { logp: number[]; entropy: number[] } {
  const N = targets.length;
  const V = weight.length / H;
  const logp: number[] = [];
  const entropy: number[] = [];
  for (let n = 0; n < N; n++) {
    const z: number[] = [];
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += hidden[n * H + k] * weight[v * H + k];
      z.push(s / tau);
    }
    const mx = Math.max(...z);
    const lse = mx + Math.log(z.reduce((a, b) => a + Math.exp(b - mx), 0));
    let ent = 0;
    for (const zv of z) ent -= Math.exp(zv - lse) * (zv - lse);
    entropy.push(ent);
    logp.push(targets[n] >= 0 ? z[targets[n]] - lse : 0);
  }
  return { logp, entropy };
}
