// The rule every trainer follows when a step's loss or gradient norm is NaN or infinite: that update
// is skipped (the optimizer leaves weights and AdamW state untouched: pass `skip` when the loss was
// not finite, a non-finite gradient norm skips by itself), counted, and said on stderr; after
// `maxConsecutive` skips in a row the run stops with an error naming the step and the quantity.
//
// Why skip rather than stop at once: one bad batch (an overflow on an outlier, mostly in bf16) is
// survivable, and skipping it is what mixed-precision trainers do. Why stop at all: a skipped step
// leaves the weights as they were, so when the next steps' batches are non-finite too the weights
// themselves have gone bad (a too-high learning rate), and going on only spends compute on a run
// that trains nothing, then reports success.

/** What a trainer knows after computing a step's loss and asking the optimizer to step. */
export interface StepHealth {
  /** 1-based: the step just attempted. */
  step: number;
  loss: number;
  /** The global gradient norm the optimizer reported (NaN/Infinity when a gradient was not finite). */
  gradNorm: number;
  /** What the optimizer reported: true when it updated nothing. */
  skipped: boolean;
}

export interface NonFiniteGuardOptions {
  /** Which trainer, for messages ("sft", "grpo"). */
  trainer: string;
  /** Consecutive skipped updates that stop the run (>= 1). */
  maxConsecutive: number;
  /** The advice at the end of the stop message. */
  hint?: string;
  /** Where the one-line note of each skip goes (default stderr; silence it on ranks other than 0). */
  warn?: (line: string) => void;
  /** Skips counted before (a resumed run keeps its total). */
  skippedBefore?: number;
}

export const DEFAULT_NONFINITE_HINT =
  'lower --lr or check the data (--max-skipped-steps sets how many skips in a row stop a run)';

/** Whether a loss may be used: the trainer passes `skip: !lossIsUsable(loss)` to optimizerStep. */
export function lossIsUsable(loss: number): boolean {
  return Number.isFinite(loss);
}

/** Keeps the counts and applies the rule; one per training run. */
export class NonFiniteGuard {
  private total: number;
  /** The current run of consecutive skips: its first step and why that step was skipped. */
  private streak: { first: number; reason: string; count: number } | null = null;

  constructor(private readonly o: NonFiniteGuardOptions) {
    if (!(Number.isInteger(o.maxConsecutive) && o.maxConsecutive >= 1))
      throw new Error(`${o.trainer}: maxSkippedSteps must be a whole number >= 1, got ${o.maxConsecutive}`);
    this.total = o.skippedBefore ?? 0;
  }

  /** Skipped updates so far (with those before a resume): the train/skipped_steps metric. */
  get skippedSteps(): number {
    return this.total;
  }

  /**
   * Records one step. Returns whether its update was skipped (a non-finite loss or gradient norm, or
   * the optimizer said so); writes a line naming the step and the quantity for a skip; throws after
   * maxConsecutive skips in a row, naming the last step and the first non-finite quantity.
   */
  record(h: StepHealth): boolean {
    const reason = skipReason(h);
    if (reason === null) {
      this.streak = null;
      return false;
    }
    this.total++;
    if (this.streak) this.streak.count++;
    else this.streak = { first: h.step, reason, count: 1 };
    const warn = this.o.warn ?? ((line: string) => process.stderr.write(line + '\n'));
    warn(
      `${this.o.trainer}: step ${h.step}: ${reason}, the update was skipped ` +
        `(${this.streak.count} in a row, ${this.total} in all; the run stops at ${this.o.maxConsecutive} in a row)`,
    );
    if (this.streak.count >= this.o.maxConsecutive) {
      const { first, count } = this.streak;
      const steps = first === h.step ? `step ${h.step}` : `steps ${first}-${h.step}`;
      throw new Error(
        `${this.o.trainer}: stopped at step ${h.step} after ${count} consecutive skipped updates (${steps}): ` +
          `${this.streak.reason} at step ${first}; ${this.o.hint ?? DEFAULT_NONFINITE_HINT}`,
      );
    }
    return true;
  }
}

/** Why a step's update is skipped ("the loss was NaN"), or null when it is not. The loss comes first:
 *  it is computed first, and a non-finite loss makes the gradients non-finite too. */
function skipReason(h: StepHealth): string | null {
  if (!Number.isFinite(h.loss)) return `the loss was ${h.loss}`;
  if (!Number.isFinite(h.gradNorm)) return `the gradient norm was ${h.gradNorm}`;
  if (h.skipped) return 'the optimizer skipped the update';
  return null;
}
