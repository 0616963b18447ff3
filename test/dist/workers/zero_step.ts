// ZeRO's sharded optimizer step against the unsharded AdamW, on the Model API, run on every rank by
// test/dist/zero.test.ts. Rank r trains its own batches; the sharded model's step (it reduces the
// gradients itself) must give the weights of an unsharded model that ran every rank's batches. Then
// the sharded optimizer state round-trips: a fresh sharded model given the weights and state continues
// exactly. STAGE=0 is data parallelism instead: the gradients are summed by the last backward itself,
// bucket by bucket while it runs (small buckets, so several start before it ends). Prints one JSON
// line; exits 3 on a failed check. Env: DTYPE (float32 | bfloat16), STAGE (0 | 1 | 2).
import { readDistEnv } from '../../../src/dist/env';
import { initProcessGroup } from '../../../src/dist/process_group';
import { Model, nextTokenLabels, packSequences, tinyConfig } from '../../../src/index';
import type { ModelDtype } from '../../../src/model/model';
import type { Tensor as TensorHandle } from '../../../src/native/types';
import { loadAddon } from '../../../src/native/loader';

const env = readDistEnv();
const { Tensor } = loadAddon();
const dtype = (process.env.DTYPE ?? 'float32') as ModelDtype;
const stage = Number(process.env.STAGE ?? '1') as 0 | 1 | 2;
const BUCKET_BYTES = 64 * 1024;
const config = tinyConfig('qwen2_vl');
// bf16: no clipping, so both sides see the very same update (the norms are summed in another order).
const step = { lr: 1e-2, weightDecay: 0.1, maxGradNorm: dtype === 'float32' ? 0.5 : 0 };

/** Rank r's batch of step t: three text sequences of odd lengths, ids below the special tokens. */
function batchOf(r: number, t: number): { inputIds: Int32Array; cuSeqlens: Int32Array; labels: Int32Array } {
  let a = (r * 7919 + t * 104729 + 1) >>> 0;
  const next = (): number => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a % 700;
  };
  const seqs = [17 + r, 9, 30 - t].map((n) => Array.from({ length: n }, next));
  const packed = packSequences(seqs);
  return { ...packed, labels: nextTokenLabels(packed.inputIds, packed.cuSeqlens) };
}

function labelled(b: { labels: Int32Array }): number {
  return b.labels.filter((l) => l >= 0).length;
}

function maxDiff(a: Record<string, TensorHandle>, b: Record<string, TensorHandle>): number {
  let d = 0;
  for (const [name, t] of Object.entries(a)) {
    const x = t.toArray() as Float32Array;
    const y = b[name].toArray() as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}

async function main(): Promise<void> {
  const group = await initProcessGroup(env, { backend: 'gloo', timeoutMs: 30_000 });
  const W = group.worldSize;
  const sharded = await Model.create(config, { seed: 3, dtype });
  const reference = await Model.create(config, { seed: 3, dtype });
  if (stage > 0) sharded.shardOptimizer(group, { stage: stage as 1 | 2 });
  let overlapped = 0;
  let buckets = 0;
  const norms: [number, number][] = [];
  let resumed: Model | undefined;
  let keys: string[] = [];
  for (let t = 0; t < 3; t++) {
    const all = Array.from({ length: W }, (_, r) => batchOf(r, t));
    const numItems = all.reduce((s, b) => s + labelled(b), 0);
    for (const m of resumed ? [sharded, resumed] : [sharded]) {
      const mine = all[env.rank];
      const reduce = stage === 0 ? { dist: group, bucketBytes: BUCKET_BYTES } : undefined;
      const rep = await m.backwardSft(mine, { labels: mine.labels, numItems }, reduce);
      if (m === sharded && stage === 0) {
        overlapped += rep.bucketsOverlapped ?? 0;
        buckets += rep.buckets ?? 0;
      }
    }
    const got = await sharded.optimizerStep(step);
    if (resumed) await resumed.optimizerStep(step);
    for (const b of all) await reference.backwardSft(b, { labels: b.labels, numItems });
    const want = await reference.optimizerStep(step);
    norms.push([got.gradNorm, want.gradNorm]);
    if (t === 1) {
      // the state after two steps, into a fresh sharded model with these weights
      const state = sharded.optimizerState();
      keys = Object.keys(state).sort();
      resumed = await Model.create(config, { init: 'none', dtype });
      await resumed.setParameters(sharded.parameters());
      if (stage > 0) resumed.shardOptimizer(group, { stage: stage as 1 | 2 });
      resumed.loadOptimizerState(state);
      for (const v of Object.values(state)) v.dispose();
    }
  }
  const vsReference = maxDiff(sharded.parameters(), reference.parameters());
  const vsResumed = maxDiff(sharded.parameters(), (resumed as Model).parameters());
  // One more step that only the last rank asks to skip: every rank must skip it (no rank may wait
  // alone in a collective) and no weight may move.
  let lastSkipped: boolean | undefined;
  let movedBySkip: number | undefined;
  if (stage > 0) {
    // parameters() are live views: keep copies of the values
    const before = Object.fromEntries(
      Object.entries(sharded.parameters()).map(([k, t]) => [
        k,
        new Tensor(t.toArray(), t.shape, { copy: true, dtype: t.dtype }),
      ]),
    );
    const mine = batchOf(env.rank, 9);
    await sharded.backwardSft(mine, { labels: mine.labels });
    lastSkipped = (await sharded.optimizerStep({ ...step, skip: env.rank === W - 1 })).skipped;
    movedBySkip = maxDiff(sharded.parameters(), before);
  }
  console.log(
    JSON.stringify({
      rank: env.rank,
      vsReference,
      vsResumed,
      norms,
      keys,
      buckets,
      overlapped,
      lastSkipped,
      movedBySkip,
    }),
  );
  await group.barrier();
  group.close();
}

main().catch((e) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(3);
});
