// Group advantages: fused (one loop per group) against the eager ATen composition.
import { grpo } from '../src/index';
import { appendCsv, printTable, timeIt, type Row } from './harness';

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [batch, group] of [
    [512, 8],
    [65536, 16],
    [1 << 20, 8],
  ]) {
    const rewards = Float32Array.from({ length: batch }, (_, i) => ((i * 2654435761) % 1000) / 1000);
    const fused = await timeIt(() => grpo.advantages(rewards, group, { impl: 'fused' }), { repeats: 20 });
    const eager = await timeIt(() => grpo.advantages(rewards, group, { impl: 'reference' }), { repeats: 20 });
    for (const [impl, t] of [
      ['fused', fused],
      ['eager', eager],
    ] as const) {
      rows.push({
        op: 'grpo_advantages',
        impl,
        shape: `${batch}/${group}`,
        dtype: 'f32',
        device: 'cpu',
        ms: t.medianMs,
        'x eager': eager.medianMs / t.medianMs,
      });
    }
  }
  printTable('grpo_advantages: median ms', rows);
  appendCsv('grpo_advantages', rows);
  return rows;
}

if (require.main === module)
  run().catch((e) => {
    console.error(e);
    process.exit(1);
  });
