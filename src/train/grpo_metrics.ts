// What one GRPO step reports, and its flat form for metrics.jsonl and TensorBoard.

export interface MeanStd {
  mean: number;
  std: number;
}

export interface GrpoStepMetrics {
  step: number;
  lr: number;
  /** Summed over micro-batches, averaged over iterations. */
  loss: number;
  gradNorm: number;
  /** Weighted total reward over every completion generated this step, dropped groups included (NaN ones left out). */
  reward: MeanStd;
  /** Each reward term by name (non-NaN completions). */
  rewards: Record<string, MeanStd>;
  /** Fraction of completions that name the key option (whatever the reward terms are). */
  accuracy: number;
  /** Completions whose total reward was NaN. */
  unscorable: number;
  kl: number;
  clipLow: number;
  clipHigh: number;
  /** Mean ratio on the first iteration (1 up to generation/training numerics). */
  ratio: number;
  entropy: number;
  /** Sequences whose sequence ratio exp(mean log-ratio) was clipped (docs/GRPO.md). */
  seqClipLow: number;
  seqClipHigh: number;
  /** Mean |logp - oldLogp| over the trained tokens (all iterations). */
  logRatioAbs: number;
  /** Entropy of the tokens that got policy gradient (entropyTopQuantile), and their share. */
  entropyKept: { mean: number; fraction: number };
  /** Rollout vs trainer log-probs of the first micro-batch before the update (grpo_logprob_passes.ts). */
  mismatch: { maxAbs: number; meanAbs: number; kl: number };
  /** Mean summed KL per completion taken from the rewards (klInReward); NaN when off. */
  klInReward: number;
  /** Updates skipped for a non-finite loss or gradient norm: this step, and in the whole run. */
  skipped: { step: number; total: number };
  completionLength: { mean: number; max: number; truncatedFraction: number };
  groups: { kept: number; dropped: number; degenerate: number; samplingRounds: number; underfilled: number };
  /** Completion tokens of the kept groups (dapo's N) and those trained on. */
  tokens: { completion: number; trained: number };
  /** Seconds. */
  time: {
    rollout: number;
    reward: number;
    logprobRef: number;
    logprobOld: number;
    logprobCheck: number;
    lossBackward: number;
    optimizer: number;
    total: number;
  };
}

export function meanStd(xs: readonly number[]): MeanStd {
  const v = xs.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return { mean: NaN, std: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

/** Metrics as slash-grouped scalars for metrics.jsonl and TensorBoard: train/* (loss, lr, reward,
 *  accuracy, KL, clip fractions, ...), reward/<term> and reward/<term>_std, completion/*, groups/*,
 *  tokens/*, time/* (seconds). */
export function flattenMetrics(m: GrpoStepMetrics): Record<string, number> {
  const out: Record<string, number> = {
    'train/loss': m.loss,
    'train/lr': m.lr,
    'train/grad_norm': m.gradNorm,
    'train/reward': m.reward.mean,
    'train/reward_std': m.reward.std,
    'train/accuracy': m.accuracy,
    'train/unscorable': m.unscorable,
    'train/kl': m.kl,
    'train/clip_low': m.clipLow,
    'train/clip_high': m.clipHigh,
    'train/ratio': m.ratio,
    'train/entropy': m.entropy,
    'train/seq_clip_low': m.seqClipLow,
    'train/seq_clip_high': m.seqClipHigh,
    'train/log_ratio_abs': m.logRatioAbs,
    'train/entropy_kept': m.entropyKept.mean,
    'train/entropy_kept_fraction': m.entropyKept.fraction,
    'train/kl_in_reward': m.klInReward,
    'train/skipped_steps': m.skipped.total,
    'mismatch/max_abs_logp': m.mismatch.maxAbs,
    'mismatch/mean_abs_logp': m.mismatch.meanAbs,
    'mismatch/kl': m.mismatch.kl,
  };
  for (const [name, v] of Object.entries(m.rewards)) {
    out[`reward/${name}`] = v.mean;
    out[`reward/${name}_std`] = v.std;
  }
  Object.assign(out, {
    'completion/length_mean': m.completionLength.mean,
    'completion/length_max': m.completionLength.max,
    'completion/truncated_fraction': m.completionLength.truncatedFraction,
    'groups/kept': m.groups.kept,
    'groups/dropped': m.groups.dropped,
    'groups/degenerate': m.groups.degenerate,
    'groups/sampling_rounds': m.groups.samplingRounds,
    'groups/underfilled': m.groups.underfilled,
    'tokens/completion': m.tokens.completion,
    'tokens/trained': m.tokens.trained,
  });
  for (const [k, v] of Object.entries(m.time)) out[`time/${k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())}`] = v;
  return out;
}
