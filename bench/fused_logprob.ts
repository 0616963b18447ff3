// Fused log-probability against materialized logits + log_softmax + gather (the reference), at the
// Qwen2.5-VL-7B head shape (H = 3584, V = 151936).
//   time: forward, and forward + backward, for both paths in the same run;
//   memory: each variant runs once in a child process; extra memory = peak RSS - RSS with the
//   inputs allocated (Linux maxRSS), so allocator caches of one variant cannot hide another's peak.
// Usage: node dist/bench/fused_logprob.js [timeN=128] [memoryN=1024]
import { spawnSync } from 'node:child_process';
import { grpo, tensor } from '../src/index';
import { appendCsv, printTable, timeIt, type Row } from './harness';

const H = 3584;
const V = 151936;

function inputs(n: number) {
  let s = 7;
  const next = (): number => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5;
  const hidden = new Float32Array(n * H);
  for (let i = 0; i < hidden.length; i++) hidden[i] = next();
  const weight = new Float32Array(V * H);
  for (let i = 0; i < weight.length; i++) weight[i] = 0.05 * next();
  const targets = Int32Array.from({ length: n }, (_, i) => (i * 7919) % V);
  return { hidden: tensor(hidden, [n, H]), weight: tensor(weight, [V, H]), targets: tensor(targets) };
}

type Variant = 'fused-fwd' | 'fused-fwdbwd' | 'reference-fwd' | 'reference-fwdbwd';

async function runVariant(variant: Variant, x: ReturnType<typeof inputs>): Promise<void> {
  const impl = variant.startsWith('fused') ? 'fused' : 'reference';
  const f = await grpo.fusedLogprobAsync(x, { impl });
  if (variant.endsWith('fwdbwd')) {
    const g = await grpo.fusedLogprobBackwardAsync(
      { ...x, gradLogp: f.logp, lse: f.lse, entropy: f.entropy },
      { impl },
    );
    g.gradHidden.dispose();
    g.gradWeight.dispose();
  }
  f.logp.dispose();
  f.entropy.dispose();
  f.lse.dispose();
}

async function child(variant: Variant, n: number): Promise<void> {
  const x = inputs(n);
  const baseline = process.memoryUsage().rss;
  await runVariant(variant, x);
  const peak = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ baseline, peak }) + '\n');
}

function measureMemory(variant: Variant, n: number): number {
  const r = spawnSync(process.execPath, [__filename, '--child', variant, String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${variant} failed: ${r.stderr}`);
  const { baseline, peak } = JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
    baseline: number;
    peak: number;
  };
  return Math.max(0, peak - baseline);
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const timeN = Number(argv[0] ?? 128);
  const memN = Number(argv[1] ?? 1024);
  const rows: Row[] = [];
  const x = inputs(timeN);
  const gemm = 2 * timeN * V * H; // FLOPs of one [N,H] x [H,V] GEMM
  const times: Record<string, number> = {};
  for (const variant of ['fused-fwd', 'reference-fwd', 'fused-fwdbwd', 'reference-fwdbwd'] as Variant[]) {
    const t = await timeIt(() => runVariant(variant, x), { warmup: 1, repeats: 3, budgetMs: 20000 });
    times[variant] = t.medianMs;
    const gemms = variant === 'fused-fwd' || variant === 'reference-fwd' ? 1 : variant === 'fused-fwdbwd' ? 4 : 3;
    rows.push({
      op: 'fused_logprob',
      variant,
      shape: `N=${timeN} H=${H} V=${V}`,
      dtype: 'f32',
      device: 'cpu',
      ms: t.medianMs,
      'GEMM TFLOP/s': (gemms * gemm) / (t.medianMs / 1000) / 1e12,
      'extra MiB': '',
    });
  }
  for (const variant of ['fused-fwd', 'reference-fwd', 'fused-fwdbwd', 'reference-fwdbwd'] as Variant[]) {
    const extra = measureMemory(variant, memN);
    rows.push({
      op: 'fused_logprob',
      variant,
      shape: `N=${memN} H=${H} V=${V}`,
      dtype: 'f32',
      device: 'cpu',
      ms: '',
      'GEMM TFLOP/s': '',
      'extra MiB': extra / 2 ** 20,
    });
  }
  printTable('fused_logprob: time (first rows) and extra peak memory over the inputs (last rows)', rows);
  const mem = (v: string): number => Number(rows.find((r) => r.variant === v && r['extra MiB'] !== '')?.['extra MiB']);
  // Both backward paths must hold grad_weight ([V, H] f32): compare what each needs beyond it.
  const gradW = (V * H * 4) / 2 ** 20;
  process.stdout.write(
    `forward extra memory fused/materialized = ${(mem('fused-fwd') / mem('reference-fwd')).toFixed(3)}; ` +
      `fwd+bwd beyond grad_weight (${gradW.toFixed(0)} MiB) = ${((mem('fused-fwdbwd') - gradW) / (mem('reference-fwdbwd') - gradW)).toFixed(3)}; ` +
      `time fused/reference fwd ${(times['fused-fwd'] / times['reference-fwd']).toFixed(2)}, fwd+bwd ${(times['fused-fwdbwd'] / times['reference-fwdbwd']).toFixed(2)}\n`,
  );
  appendCsv('fused_logprob', rows);
  return rows;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const main = args[0] === '--child' ? child(args[1] as Variant, Number(args[2])) : run(args).then(() => undefined);
  main.catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
