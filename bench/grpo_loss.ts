// GRPO loss forward+backward: the fused pass against the eager ATen composition of the same
// formulas (forward + autograd backward), on the same inputs in the same run, for the token-level
// loss and its variants (sequence-level ratios, two-sided clipping delta, CISPO).
// Traffic of the fused pass per token: logp, old, ref (4 B each, f32), mask (1 B), grad (4 B) = 17 B;
// the sequence-level reduction (run whenever oldLogp is given: it also feeds the sequence clip
// statistics) reads logp, old and mask once more -- not counted, so its GB/s reads low.
import { grpo, tensor, type Tensor } from '../src/index';
import type { LossOptions } from '../src/ops/grpo_ops';
import { appendCsv, gbPerSecond, printTable, timeIt, type Row } from './harness';

function randomInputs(tokens: number, seqLen: number) {
  const batch = tokens / seqLen;
  let s = 12345;
  const next = (): number => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const logp = new Float32Array(tokens);
  const old = new Float32Array(tokens);
  const ref = new Float32Array(tokens);
  const mask = new Uint8Array(tokens);
  for (let i = 0; i < tokens; i++) {
    logp[i] = -3 * next();
    old[i] = logp[i] + 0.4 * (next() - 0.5);
    ref[i] = logp[i] + 0.2 * (next() - 0.5);
    mask[i] = i % seqLen < seqLen * (0.5 + 0.5 * next()) ? 1 : 0;
  }
  const adv = Float32Array.from({ length: batch }, () => 2 * next() - 1);
  const t = (a: Float32Array | Uint8Array, shape: number[]): Tensor => tensor(a, shape);
  return {
    logp: t(logp, [batch, seqLen]),
    oldLogp: t(old, [batch, seqLen]),
    refLogp: t(ref, [batch, seqLen]),
    mask: t(mask, [batch, seqLen]),
    advantages: t(adv, [batch]),
    batch,
    seqLen,
  };
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const maxTokens = Number(argv[0] ?? 16 * 2 ** 20);
  const rows: Row[] = [];
  const seqLen = 1024;
  const base: LossOptions = { lossType: 'dapo', beta: 0.04, epsLow: 0.2, epsHigh: 0.28 };
  const variants: [string, LossOptions][] = [
    ['token', base],
    ['sequence', { ...base, importanceSamplingLevel: 'sequence' }],
    ['delta 2', { ...base, delta: 2 }],
    ['cispo', { ...base, policyLoss: 'cispo' }],
  ];
  for (let tokens = 64 * 1024; tokens <= maxTokens; tokens *= 4) {
    const inputs = randomInputs(tokens, seqLen);
    for (const [variant, opts] of variants) {
      const fused = await timeIt(
        async () => (await grpo.lossAsync(inputs, { ...opts, impl: 'fused' })).gradLogp.dispose(),
        { repeats: 10, budgetMs: 4000 },
      );
      const eager = await timeIt(
        async () => (await grpo.lossAsync(inputs, { ...opts, impl: 'reference' })).gradLogp.dispose(),
        { warmup: 1, repeats: 5, budgetMs: 8000 },
      );
      const bytes = tokens * 17;
      for (const [impl, t] of [
        ['fused', fused],
        ['eager', eager],
      ] as const) {
        rows.push({
          op: 'grpo_loss',
          variant,
          impl,
          shape: `${inputs.batch}x${seqLen}`,
          tokens,
          dtype: 'f32',
          device: 'cpu',
          ms: t.medianMs,
          'GB/s': gbPerSecond(bytes, t.medianMs),
          'x eager': eager.medianMs / t.medianMs,
        });
      }
    }
  }
  printTable('grpo_loss: forward+backward (dapo, beta 0.04, k3; variants), median ms', rows);
  appendCsv('grpo_loss', rows);
  return rows;
}

if (require.main === module)
  run(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
