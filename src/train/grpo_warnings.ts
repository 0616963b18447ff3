// The GRPO run's warnings about a step that trains little or badly -- the peers' most-reported
// silent failures -- each repeated at most once per `every` steps so a long run's log stays readable.

export interface StepHealthSummary {
  /** Groups whose rewards were all equal (no learning signal), of all groups generated this step. */
  degenerateGroups: number;
  groups: number;
  /** Completions cut by maxNewTokens. */
  truncatedFraction: number;
  /** clipLow + clipHigh: tokens whose gradient the clip removed. */
  clipFraction: number;
}

export class StepWarnings {
  private readonly lastSaid = new Map<string, number>();

  constructor(
    private readonly every: number,
    private readonly warn: (line: string) => void,
  ) {}

  check(step: number, s: StepHealthSummary): void {
    if (s.groups > 0 && s.degenerateGroups > s.groups / 2)
      this.say(
        step,
        'zero-variance',
        `grpo: warning: step ${step}: ${s.degenerateGroups} of ${s.groups} groups have zero reward variance ` +
          '(no learning signal); raise --temperature or --group-size, or use --dynamic-sampling',
      );
    if (s.truncatedFraction > 0.5)
      this.say(
        step,
        'truncated',
        `grpo: warning: step ${step}: ${(100 * s.truncatedFraction).toFixed(0)}% of the completions hit --max-new-tokens; ` +
          'raise it, or use --overlong-buffer / --mask-truncated-completions',
      );
    if (s.clipFraction > 0.9)
      this.say(
        step,
        'clipped',
        `grpo: warning: step ${step}: the clip removed the gradient of ${(100 * s.clipFraction).toFixed(0)}% of the tokens ` +
          '(the policy moved far from its rollouts); lower --lr or --num-iterations',
      );
  }

  private say(step: number, kind: string, line: string): void {
    const last = this.lastSaid.get(kind);
    if (last !== undefined && step - last < this.every) return;
    this.lastSaid.set(kind, step);
    this.warn(line);
  }
}
