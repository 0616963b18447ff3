// The c10d process group over real processes on 127.0.0.1 (Gloo): every collective against values
// computed by hand, for 2 and 3 ranks; a dead peer turns into an error within the timeout; a single
// process gets the local group (no store, no sockets). Every test is bounded: ranks are killed at 45 s.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allReduceTensors, chooseBackend, initProcessGroup, planBuckets } from '../../src/dist/process_group';
import { addon } from '../helpers/addon';
import { describeRuns, runRanks } from './ranks';

const seed = () => String(1 + Math.floor(Math.random() * 1e6));

for (const worldSize of [2, 3]) {
  test(`gloo collectives match hand-computed values on ${worldSize} ranks`, { timeout: 60_000 }, async () => {
    const runs = await runRanks('collectives', worldSize, ['check'], { SEED: seed() });
    for (const r of runs) {
      assert.equal(r.code, 0, describeRuns(runs));
      assert.match(r.stdout, /^ok \d+$/m, describeRuns(runs));
    }
  });
}

test(
  'a dead peer makes the next collective reject within the timeout, naming the collective and the lost rank',
  { timeout: 60_000 },
  async (t) => {
    const runs = await runRanks('collectives', 2, ['dead-peer'], { SEED: seed(), DIST_TIMEOUT_MS: '3000' }, 40_000);
    const [r0, r1] = runs;
    assert.equal(r1.code, 0, describeRuns(runs));
    assert.equal(r0.code, 3, describeRuns(runs));
    assert.match(r0.stderr, /rank 0: allReduce failed after \d+ ms \(timeout 3000 ms\)/, describeRuns(runs));
    // The census after the failure: rank 1 never reports to the store, so it is the one named.
    assert.match(r0.stderr, /lost: rank 1 \(no report within 3000 ms/, describeRuns(runs));
    assert.ok(r0.ms < 20_000, `rank 0 took ${r0.ms} ms\n${describeRuns(runs)}`);
    t.diagnostic(r0.stderr.trim());
  },
);

test('a live peer that skips a collective: rejected at the timeout, not a hang', { timeout: 60_000 }, async (t) => {
  const runs = await runRanks('collectives', 2, ['silent-peer'], { SEED: seed(), DIST_TIMEOUT_MS: '3000' }, 40_000);
  const [r0] = runs;
  assert.equal(r0.code, 3, describeRuns(runs));
  const m = /rejected after (\d+) ms: rank 0: allReduce failed after \d+ ms \(timeout 3000 ms\)/.exec(r0.stderr);
  assert.ok(m, describeRuns(runs));
  const ms = Number(m[1]);
  assert.ok(ms >= 2500 && ms < 15_000, `rejected after ${ms} ms\n${describeRuns(runs)}`);
  t.diagnostic(r0.stderr.trim());
});

test('world size 1: a local group, collectives without sockets', { timeout: 20_000 }, async () => {
  const g = await initProcessGroup({
    launcher: 'single',
    rank: 0,
    worldSize: 1,
    localRank: 0,
    localWorldSize: 1,
    masterAddr: '127.0.0.1',
    masterPort: 1,
    agentStore: false,
  });
  assert.equal(g.backend, 'local');
  assert.equal(g.worldSize, 1);
  const t = new addon.Tensor(new Float64Array([1, 2, 3]), [3], { copy: true });
  await g.allReduce(t, 'avg');
  await g.broadcast(t, 0);
  assert.deepEqual(Array.from(t.toArray() as Float64Array), [1, 2, 3]);
  const out = new addon.Tensor(new Float64Array(3), [3], { copy: true });
  await g.allGather(out, t);
  assert.deepEqual(Array.from(out.toArray() as Float64Array), [1, 2, 3]);
  const rs = new addon.Tensor(new Float64Array(3), [3], { copy: true });
  await g.reduceScatter(rs, t);
  assert.deepEqual(Array.from(rs.toArray() as Float64Array), [1, 2, 3]);
  await allReduceTensors(g, [t, out], 8);
  await g.barrier();
  g.close();
  assert.equal(g.closed, true);
  await assert.rejects(g.allReduce(t), /closed/);
});

test('argument errors reject with a TypeError naming the argument', { timeout: 20_000 }, async () => {
  await assert.rejects(
    addon.Distributed.create({ rank: 2, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 1 }),
    /options\.rank/,
  );
  await assert.rejects(addon.Distributed.create({ rank: 0, worldSize: 2, backend: 'local' }), /options\.backend/);
  if (!addon.info().cudaAvailable) {
    // A CPU libtorch has no NCCL: said at once, before any store is made.
    await assert.rejects(
      addon.Distributed.create({
        rank: 0,
        worldSize: 2,
        masterAddr: '127.0.0.1',
        masterPort: 1,
        backend: 'nccl',
        timeoutMs: 2000,
      }),
      /this libtorch has no NCCL/,
    );
  }
  const g = await addon.Distributed.create({ rank: 0, worldSize: 1, backend: 'local' });
  const i = new addon.Tensor(new Int32Array([1, 2]));
  await assert.rejects(g.allReduce(i, 'avg'), (e: Error) => e instanceof TypeError && /floating-point/.test(e.message));
  await assert.rejects(g.allReduce(i, 'prod' as never), /op/);
  await assert.rejects(g.allGather(new addon.Tensor(new Int32Array(3)), i), /output/);
  await assert.rejects(g.broadcast(i, 1), /root/);
  g.close();
});

test('buckets: per dtype, in order, bounded by bytes', () => {
  const f = (n: number) => new addon.Tensor(new Float32Array(n));
  const d = (n: number) => new addon.Tensor(new Float64Array(n));
  const ts = [f(4), d(2), f(4), f(16), d(1)];
  const b = planBuckets(ts, 32);
  assert.deepEqual(
    b.map((x) => x.map((t) => ts.indexOf(t))),
    [[0, 2], [3], [1, 4]],
  );
  assert.equal(chooseBackend('auto', 'cuda:1'), 'nccl');
  assert.equal(chooseBackend('auto', 'cpu'), 'gloo');
});
