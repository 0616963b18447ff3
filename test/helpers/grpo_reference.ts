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
  /** Detached per-token weights of the policy term (truncated IS); absent: 1. */
  isWeights?: number[];
  /** CISPO's clipped weight is a stop-gradient: when given, it is computed from these log-probs
   *  (the unperturbed ones, for finite differences) instead of logp. */
  weightLogp?: number[];
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
  importanceSamplingLevel?: 'token' | 'sequence';
  delta?: number;
  policyLoss?: 'clip' | 'cispo';
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
    seqClipLowFraction: number;
    seqClipHighFraction: number;
    logRatioAbsMean: number;
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
  const sequenceLevel = o.importanceSamplingLevel === 'sequence';
  const cispo = o.policyLoss === 'cispo';
  const delta = o.delta ?? Infinity;
  const B = c.advantages.length;
  const m = (i: number): number => (c.mask ? c.mask[i] : 1);
  const rowLen = (r: number): number => c.offsets[r + 1] - c.offsets[r];
  const clampLr = (x: number): number => Math.min(Math.max(x, -20), 20);
  let total = 0;
  for (let i = 0; i < c.logp.length; i++) total += m(i);
  // Each row's masked mean log-ratio (GSPO's sequence log-ratio); 0 for a row without active tokens.
  const tokenLr = (i: number, lp: number[] = c.logp): number => lp[i] - (c.oldLogp ? c.oldLogp[i] : lp[i]);
  const rowLr = (r: number, lp: number[] = c.logp): number => {
    let num = 0,
      den = 0;
    for (let i = c.offsets[r]; i < c.offsets[r + 1]; i++)
      if (m(i) !== 0) {
        num += m(i) * tokenLr(i, lp);
        den += m(i);
      }
    return den > 0 ? num / den : 0;
  };
  let seqRows = 0,
    seqLow = 0,
    seqHigh = 0,
    absLr = 0;
  for (let r = 0; r < B; r++) {
    let active = 0;
    for (let i = c.offsets[r]; i < c.offsets[r + 1]; i++) active += m(i);
    if (active === 0) continue;
    seqRows++;
    const rho = Math.exp(clampLr(rowLr(r)));
    if (rho < 1 - epsLow && c.advantages[r] < 0) seqLow++;
    if (rho > 1 + epsHigh && c.advantages[r] > 0) seqHigh++;
  }

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
      const ratio = Math.exp(clampLr(sequenceLevel ? rowLr(r) : tokenLr(i)));
      const clipped = Math.min(Math.max(ratio, 1 - epsLow), 1 + epsHigh);
      const isw = c.isWeights ? c.isWeights[i] : 1;
      let ell: number;
      if (cispo) {
        const wl = c.weightLogp ?? c.logp;
        const weightRatio = Math.exp(clampLr(sequenceLevel ? rowLr(r, wl) : tokenLr(i, wl)));
        const weight = Math.min(Math.max(weightRatio, 1 - epsLow), 1 + epsHigh);
        ell = -isw * weight * a * c.logp[i];
      } else ell = -isw * Math.min(Math.min(ratio, delta) * a, clipped * a);
      let k = 0;
      if (c.refLogp) {
        k = klOf(kl, c.logp[i], c.refLogp[i]);
        if (beta > 0) ell += beta * k;
      }
      rowLoss += mi * ell;
      rowMask += mi;
      // Clipped: for 'clip', the tokens whose gradient the clip removed; for CISPO, the tokens
      // whose weight the clip changed.
      if (ratio < 1 - epsLow && (cispo || a < 0)) low += mi;
      if (ratio > 1 + epsHigh && (cispo || a > 0)) high += mi;
      absLr += mi * Math.abs(tokenLr(i));
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
      seqClipLowFraction: seqRows > 0 ? seqLow / seqRows : 0,
      seqClipHighFraction: seqRows > 0 ? seqHigh / seqRows : 0,
      logRatioAbsMean: total > 0 ? absLr / d : 0,
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
    // CISPO's weight is a stop-gradient: both sides use the unperturbed log-probs for it.
    plus.weightLogp = c.logp;
    minus.weightLogp = c.logp;
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
