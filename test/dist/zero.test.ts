// ZeRO-1/2's sharded AdamW against the unsharded one on 2 and 3 real ranks (Gloo, loopback), in
// float32 and in bfloat16 (where the ranks keep float32 master slices): the weights after three
// steps, the gradient norms, the state's keys, and an exact continuation from a saved state
// (test/dist/workers/zero_step.ts does the work on every rank).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRuns, runRanks } from './ranks';

interface Report {
  rank: number;
  vsReference: number;
  vsResumed: number;
  norms: [number, number][];
  keys: string[];
  buckets: number;
  overlapped: number;
  /** ZeRO: a step only the last rank asked to skip -- skipped here too, and how far weights moved. */
  lastSkipped?: boolean;
  movedBySkip?: number;
}

for (const [dtype, stage, worldSize] of [
  ['float32', 1, 2],
  ['float32', 2, 3],
  ['bfloat16', 2, 2],
  ['bfloat16', 0, 2],
  ['float32', 0, 3],
] as const) {
  test(
    `${stage ? `ZeRO-${stage}` : 'DDP (reduction overlapped with backward)'} on ${worldSize} ranks, ${dtype}: the unsharded step's weights; the state resumes exactly`,
    {
      timeout: 120_000,
    },
    async (t) => {
      const runs = await runRanks('zero_step', worldSize, [], { DTYPE: dtype, STAGE: String(stage) }, 90_000);
      for (const r of runs) assert.equal(r.code, 0, describeRuns(runs));
      for (const r of runs) {
        const rep = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Report;
        if (stage > 0) {
          const master = dtype === 'bfloat16' ? ['zero.master'] : [];
          assert.deepEqual(rep.keys, ['step', 'zero.exp_avg', 'zero.exp_avg_sq', ...master].sort(), 'state keys');
          assert.equal(rep.lastSkipped, true, `rank ${rep.rank}: one rank's skip did not skip this rank`);
          assert.equal(rep.movedBySkip, 0, `rank ${rep.rank}: a skipped step moved the weights`);
        } else {
          // DDP: 64 KiB buckets; backward produced enough gradients to start some before it ended
          assert.ok(rep.buckets > 3, `rank ${rep.rank}: ${rep.buckets} buckets`);
          assert.ok(rep.overlapped >= 1, `rank ${rep.rank}: no bucket started during backward`);
          if (rep.rank === 0) t.diagnostic(`${rep.overlapped} of ${rep.buckets} buckets started during backward`);
        }
        for (const [got, want] of rep.norms)
          assert.ok(Math.abs(got - want) <= 1e-5 * want, `rank ${rep.rank}: grad norm ${got} vs ${want}`);
        // bfloat16 on 2 ranks (no clipping): two gradients summed once, as the unsharded accumulation
        // rounds them, so the weights match. float32 clips at 0.5 by a norm summed in another order
        // (and 3 ranks sum the gradients in another order): a relative 1e-7 that Adam turns into up to
        // ~2e-3 lr where a moment nearly cancels over the steps (libtorch 2.6: 1.9e-5; 1.13: 7e-9).
        // A wrong slice would be off by ~lr (1e-2).
        const tol = dtype === 'bfloat16' ? 1e-6 : 1e-4;
        assert.ok(rep.vsReference <= tol, `rank ${rep.rank}: weights differ by ${rep.vsReference}`);
        assert.equal(rep.vsResumed, 0, `rank ${rep.rank}: the resumed model drifted by ${rep.vsResumed}`);
        if (rep.rank === 0) t.diagnostic(`max |w_ranks - w_one_process| = ${rep.vsReference.toExponential(2)}`);
      }
    },
  );
}
