// Data-parallel SFT (`--zero 0`) on real processes: `medgr2 launch --nproc-per-node 2 sft ...` (Gloo
// over loopback, CPU) against the same run as one process. The ranks split each step's micro-batches
// and sum their gradients, so the per-step losses and the final weights must be the single process's
// up to float rounding (the sums run in another order).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { readMetrics } from '../../src/report/metrics';
import { runCli } from '../helpers/cli';
import { medsynthWorld, tempDir } from '../helpers/world';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The float32 tensors of a single-file safetensors model. */
function readF32Safetensors(file: string): Map<string, Float32Array> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const out = new Map<string, Float32Array>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(e.dtype, 'F32', `${name}: dtype`);
    const [a, b] = e.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

function trainLosses(out: string): Map<number, { loss: number; micro: number }> {
  const m = new Map<number, { loss: number; micro: number }>();
  for (const r of readMetrics(path.join(out, 'metrics.jsonl'))) {
    const rec = r as unknown as Record<string, number>;
    if (typeof rec['train/loss'] === 'number')
      m.set(rec.step, { loss: rec['train/loss'], micro: rec['train/micro_batches'] });
  }
  return m;
}

test(
  'medgr2 launch --nproc-per-node 2 sft matches the single-process run (losses and final weights)',
  { timeout: 180_000 },
  async (t) => {
    const world = await medsynthWorld(40);
    const dir = tempDir();
    const common = [
      '--model',
      'tiny-qwen2-vl',
      '--data',
      path.join(world, 'medsynth.jsonl'),
      '--task',
      'Modality Recognition',
      '--max-steps',
      '4',
      '--token-budget',
      '600',
      '--global-tokens',
      '100',
      '--lr',
      '1e-3',
      '--seed',
      '5',
      '--threads',
      '1',
      '--warmup-steps',
      '1',
    ];
    const single = path.join(dir, 'single');
    const dp = path.join(dir, 'dp');
    const t0 = Date.now();
    const r1 = runCli(['sft', ...common, '--out', single]);
    assert.equal(r1.status, 0, `single: ${r1.stderr}`);
    const t1 = Date.now();
    const port = await freePort();
    const r2 = runCli([
      'launch',
      '--nproc-per-node',
      '2',
      '--master-port',
      String(port),
      'sft',
      ...common,
      '--out',
      dp,
    ]);
    assert.equal(r2.status, 0, `dp: ${r2.stdout}\n${r2.stderr}`);
    t.diagnostic(`single ${((t1 - t0) / 1000).toFixed(1)} s, 2 ranks ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    assert.match(r2.stderr, /sft: data parallel over 2 ranks \(backend gloo/);
    // Only rank 0 speaks on stdout: one summary line (launch prefixes each rank's lines with "[rank R] ").
    const lines = r2.stdout
      .trim()
      .split('\n')
      .filter((l) => l.includes('{'));
    assert.equal(lines.length, 1, r2.stdout);
    assert.match(lines[0], /^\[rank 0\] /);
    assert.equal(JSON.parse(lines[0].slice(lines[0].indexOf('{'))).worldSize, 2);

    const a = trainLosses(single);
    const b = trainLosses(dp);
    assert.deepEqual([...b.keys()], [...a.keys()]);
    assert.equal(a.size, 4);
    assert.ok(
      [...a.values()].some((v) => v.micro >= 2),
      `some step holds several micro-batches: ${JSON.stringify([...a.values()])}`,
    );
    for (const [step, { loss }] of a) {
      const got = (b.get(step) as { loss: number }).loss;
      assert.ok(Math.abs(got - loss) <= 1e-4 * Math.abs(loss), `step ${step}: loss ${got} vs single ${loss}`);
    }

    const wa = readF32Safetensors(path.join(single, 'final', 'model.safetensors'));
    const wb = readF32Safetensors(path.join(dp, 'final', 'model.safetensors'));
    assert.deepEqual([...wb.keys()].sort(), [...wa.keys()].sort());
    let maxDiff = 0;
    for (const [name, x] of wa) {
      const y = wb.get(name) as Float32Array;
      assert.equal(y.length, x.length, name);
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
    }
    t.diagnostic(`max |w_single - w_dp| = ${maxDiff.toExponential(2)} over ${wa.size} tensors`);
    assert.ok(maxDiff < 1e-5, `final weights differ by ${maxDiff}`);
  },
);
