// StepWarnings (src/train/grpo_warnings.ts) by hand: each of the three warnings fires past its
// threshold only, and each kind repeats at most once per `every` steps, independently of the others.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StepWarnings, type StepHealthSummary } from '../../src/train/grpo_warnings';

const healthy: StepHealthSummary = { degenerateGroups: 0, groups: 8, truncatedFraction: 0, clipFraction: 0 };

function said(every: number, steps: Partial<StepHealthSummary>[]): string[] {
  const lines: string[] = [];
  const w = new StepWarnings(every, (l) => lines.push(l));
  steps.forEach((s, i) => w.check(i + 1, { ...healthy, ...s }));
  return lines;
}

test('each warning fires past its threshold only', () => {
  assert.deepEqual(said(10, [{ degenerateGroups: 4 }, { truncatedFraction: 0.5 }, { clipFraction: 0.9 }]), []);
  const lines = said(10, [{ degenerateGroups: 5 }, { truncatedFraction: 0.51 }, { clipFraction: 0.91 }]);
  assert.equal(lines.length, 3, lines.join('\n'));
  assert.match(lines[0], /step 1: 5 of 8 groups have zero reward variance/);
  assert.match(lines[1], /step 2: 51% of the completions hit --max-new-tokens/);
  assert.match(lines[2], /step 3: the clip removed the gradient of 91% of the tokens/);
  assert.deepEqual(said(10, [{ degenerateGroups: 0, groups: 0 }]), [], 'no groups: nothing to say');
});

test('each kind is said at most once per `every` steps, the kinds independently', () => {
  const clipped = { clipFraction: 0.95 };
  const both = { clipFraction: 0.95, truncatedFraction: 0.9 };
  // steps 1..7: clipped every step, truncated from step 3 on; every = 3
  const lines = said(3, [clipped, clipped, both, both, both, both, both]);
  const stepsOf = (re: RegExp) => lines.filter((l) => re.test(l)).map((l) => Number(/step (\d+)/.exec(l)?.[1]));
  assert.deepEqual(stepsOf(/the clip removed/), [1, 4, 7]);
  assert.deepEqual(stepsOf(/hit --max-new-tokens/), [3, 6]);
});
