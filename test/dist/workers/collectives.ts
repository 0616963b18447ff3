// One rank of test/dist/process_group.test.ts. Every rank draws every rank's inputs from the shared
// SEED, so each can compute every collective's result by hand and compare. Modes:
//   check      all collectives, f64 and f32, odd lengths; prints "ok <count>" and exits 0
//   dead-peer  rank 1 leaves after joining; rank 0's allReduce must reject (its message on stderr,
//              exit code 3); exit 0 would mean the collective wrongly succeeded
//   silent-peer  rank 1 stays alive but skips the collective: rank 0 must reject at the timeout
import assert from 'node:assert/strict';
import { readDistEnv } from '../../../src/dist/env';
import { allReduceTensors, initProcessGroup, type ProcessGroup } from '../../../src/dist/process_group';
import { loadAddon } from '../../../src/native/loader';
import type { Tensor } from '../../../src/native/types';

const addon = loadAddon();
const env = readDistEnv();
const W = env.worldSize;
const seed = Number(process.env.SEED ?? '1');

// mulberry32: small, seedable, identical on every rank.
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Dt = 'f64' | 'f32';
/** Rank r's input for test `tag`, as the dtype holds it (f32 values are rounded). */
function input(tag: number, r: number, n: number, dt: Dt): number[] {
  const g = rng(seed * 7919 + tag * 104729 + r * 31);
  return Array.from({ length: n }, () => {
    const v = (g() - 0.5) * 8;
    return dt === 'f32' ? Math.fround(v) : v;
  });
}
function tensor(values: number[], dt: Dt): Tensor {
  return new addon.Tensor(dt === 'f64' ? Float64Array.from(values) : Float32Array.from(values), [values.length], {
    copy: true,
  });
}
function close(got: Tensor, want: number[], dt: Dt, what: string): void {
  const a = Array.from(got.toArray() as Float64Array | Float32Array);
  assert.equal(a.length, want.length, `${what}: length`);
  const tol = dt === 'f64' ? 1e-12 : 2e-5;
  for (let i = 0; i < a.length; i++) {
    const scale = Math.max(1, Math.abs(want[i]));
    if (Math.abs(a[i] - want[i]) > tol * scale * W)
      assert.fail(`${what}: [${i}] got ${a[i]}, want ${want[i]} (rank ${env.rank})`);
  }
}
const ranks = Array.from({ length: W }, (_, r) => r);

async function check(g: ProcessGroup): Promise<number> {
  let checks = 0;
  let tag = 0;
  for (const dt of ['f64', 'f32'] as Dt[]) {
    for (const n of [7, 1001]) {
      for (const op of ['sum', 'avg', 'max', 'min'] as const) {
        const all = ranks.map((r) => input(tag, r, n, dt));
        const t = tensor(all[env.rank], dt);
        await g.allReduce(t, op);
        const want = Array.from({ length: n }, (_, i) => {
          const col = all.map((x) => x[i]);
          if (op === 'max') return Math.max(...col);
          if (op === 'min') return Math.min(...col);
          const s = col.reduce((p, q) => p + q, 0);
          return op === 'avg' ? s / W : s;
        });
        close(t, want, dt, `allReduce ${op} ${dt} n=${n}`);
        checks++;
        tag++;
      }
      {
        const root = W - 1;
        const all = ranks.map((r) => input(tag++, r, n, dt));
        const t = tensor(all[env.rank], dt);
        await g.broadcast(t, root);
        close(t, all[root], dt, `broadcast ${dt} n=${n}`);
        checks++;
      }
      {
        const all = ranks.map((r) => input(tag++, r, n, dt));
        const out = tensor(new Array<number>(W * n).fill(-1), dt);
        await g.allGather(out, tensor(all[env.rank], dt));
        close(out, all.flat(), dt, `allGather ${dt} n=${n}`);
        checks++;
      }
      for (const op of ['sum', 'avg'] as const) {
        const all = ranks.map((r) => input(tag, r, W * n, dt));
        tag++;
        const out = tensor(new Array<number>(n).fill(-1), dt);
        await g.reduceScatter(out, tensor(all[env.rank], dt), op);
        const want = Array.from({ length: n }, (_, i) => {
          const s = all.reduce((p, x) => p + x[env.rank * n + i], 0);
          return op === 'avg' ? s / W : s;
        });
        close(out, want, dt, `reduceScatter ${op} ${dt} n=${n}`);
        checks++;
      }
    }
  }
  // DDP buckets over mixed dtypes: f32 and f64 tensors interleaved, buckets of ~64 bytes.
  {
    const sizes: [number, Dt][] = [
      [7, 'f32'],
      [3, 'f64'],
      [1001, 'f32'],
      [5, 'f64'],
      [2, 'f32'],
      [9, 'f64'],
    ];
    const all = sizes.map(([n, dt]) => ranks.map((r) => input(tag++, r, n, dt)));
    const ts = sizes.map(([, dt], k) => tensor(all[k][env.rank], dt));
    await allReduceTensors(g, ts, 64, 'avg');
    sizes.forEach(([n, dt], k) => {
      const want = Array.from({ length: n }, (_, i) => all[k].reduce((p, x) => p + x[i], 0) / W);
      close(ts[k], want, dt, `allReduceTensors #${k} ${dt} n=${n}`);
      checks++;
    });
  }
  // bf16 (Gloo reduces it as f32): small integers, exact in bf16. bf16 bits = the top half of f32's.
  {
    const bits = (v: number) => new Uint16Array(new Float32Array([v]).buffer)[1];
    const vals = ranks.map((r) => Array.from({ length: 5 }, (_, i) => r + i));
    const t = new addon.Tensor(Uint16Array.from(vals[env.rank].map(bits)), [5], { dtype: 'bf16', copy: true });
    await g.allReduce(t, 'sum');
    const want = Array.from({ length: 5 }, (_, i) => ranks.reduce((p, r) => p + vals[r][i], 0));
    assert.deepEqual(Array.from(t.toArray() as Uint16Array), want.map(bits), 'allReduce bf16');
    checks++;
  }
  // Several collectives started before any is awaited still pair up across ranks in call order.
  {
    const all = ranks.map((r) => input(tag++, r, 7, 'f64'));
    const a = tensor(all[env.rank], 'f64');
    const b = tensor(all[env.rank], 'f64');
    await Promise.all([g.allReduce(a, 'max'), g.allReduce(b, 'min'), g.barrier()]);
    close(
      a,
      all[0].map((_, i) => Math.max(...all.map((x) => x[i]))),
      'f64',
      'concurrent max',
    );
    close(
      b,
      all[0].map((_, i) => Math.min(...all.map((x) => x[i]))),
      'f64',
      'concurrent min',
    );
    checks += 2;
  }
  return checks;
}

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'check';
  const timeoutMs = Number(process.env.DIST_TIMEOUT_MS ?? '20000');
  const g = await initProcessGroup(env, { backend: 'gloo', timeoutMs });
  assert.equal(g.rank, env.rank);
  assert.equal(g.worldSize, W);
  assert.equal(g.backend, 'gloo');
  if (mode === 'check') {
    const checks = await check(g);
    await g.barrier();
    g.close();
    console.log(`ok ${checks}`);
    return;
  }
  if (mode === 'dead-peer' || mode === 'silent-peer') {
    await g.barrier();
    // dead-peer: rank 1 leaves without a word; silent-peer: it stays alive but never joins the collective.
    if (env.rank === 1 && mode === 'dead-peer') process.exit(0);
    if (env.rank === 1) {
      await new Promise((r) => setTimeout(r, 6000));
      process.exit(0);
    }
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    try {
      await g.allReduce(tensor([1, 2, 3], 'f32'));
    } catch (e) {
      console.error(`rejected after ${Date.now() - started} ms: ${(e as Error).message}`);
      process.exit(3);
    }
    console.log('allReduce resolved despite a dead peer');
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});
