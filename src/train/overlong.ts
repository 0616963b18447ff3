// DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), a reward term: with L = maxNewTokens and
// a buffer of B tokens before it, a completion of |y| tokens gets
//   0                      |y| <= L - B
//   ((L - B) - |y|) / B    L - B < |y| <= L        (a linear ramp from 0 down to -1)
//   -1                     |y| > L
// so the policy learns to finish before the limit instead of being cut by it. |y| counts the
// completion's tokens, its stop token included.

/** The penalty of a completion of `length` tokens; 0 when `buffer` is 0 (off). */
export function overlongPenalty(length: number, maxNewTokens: number, buffer: number): number {
  if (buffer <= 0) return 0;
  const safe = maxNewTokens - buffer;
  if (length <= safe) return 0;
  if (length > maxNewTokens) return -1;
  return (safe - length) / buffer;
}

/** The reward term's name in metrics (reward/overlong) and in each completion's terms. */
export const OVERLONG_TERM = 'overlong';
