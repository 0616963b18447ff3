// The progress line's rate and ETA, on a clock moved by hand: the clock of a piece of work restarts
// when work of the same name starts over (an ablation chain's "round 2 policy-sft" after the main
// chain's), so its rate is its own.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { progressPrinter } from '../../src/cli/progress_line';

function capture(): { stream: NodeJS.WriteStream; lines: string[] } {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s.trimEnd()) } as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

test('progress: rate and ETA of a piece of work, its clock restarted when work of the same name starts over', () => {
  mock.timers.enable({ apis: ['Date'], now: 0 });
  try {
    const { stream, lines } = capture();
    const report = progressPrinter(stream);
    report('round 2 policy-sft (loss 1.0)', 1, 400);
    mock.timers.tick(10_000);
    report('round 2 policy-sft (loss 0.5)', 101, 400);
    assert.equal(lines.at(-1), 'round 2 policy-sft (loss 0.5) 101/400 (10.1/s, eta 30 s)');
    mock.timers.tick(30_000);
    report('round 2 policy-sft (loss 0.1)', 400, 400);
    // a minute later the same stage of another chain: its own clock
    mock.timers.tick(60_000);
    report('round 2 policy-sft (loss 2.0)', 1, 400);
    mock.timers.tick(20_000);
    report('round 2 policy-sft (loss 0.9)', 101, 400);
    assert.equal(lines.at(-1), 'round 2 policy-sft (loss 0.9) 101/400 (5.0/s, eta 59 s)');
    // done falling back also starts over; no rate yet means an unknown ETA
    mock.timers.tick(6_000);
    report('round 2 policy-sft (loss 3.0)', 0, 400);
    assert.equal(lines.at(-1), 'round 2 policy-sft (loss 3.0) 0/400 (0.0/s, eta ?)');
  } finally {
    mock.timers.reset();
  }
});
