// scale_add (y = a x + b), in GB/s: the CUDA kernel on a GPU (compare with the device's copy
// bandwidth); on a CPU-only build the ATen reference (the kernel is compile-checked, not run).
import { info, tensor } from '../src/index';
import { loadAddon } from '../src/native/loader';
import { appendCsv, gbPerSecond, printTable, timeIt, type Row } from './harness';

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const cuda = info().cudaAvailable;
  for (const n of [1 << 20, 1 << 24]) {
    const host = tensor(new Float32Array(n).fill(1.5));
    const x = cuda ? await host.to('cuda') : host;
    const t = await timeIt(async () => (await loadAddon().ops.scaleAdd(x, 2, 1)).dispose(), { repeats: 20 });
    rows.push({
      op: 'scale_add',
      impl: loadAddon().ops.scaleAddUsesKernel(x) ? 'cuda kernel' : 'aten reference',
      shape: `[${n}]`,
      dtype: 'f32',
      device: x.device,
      ms: t.medianMs,
      'GB/s': gbPerSecond(8 * n, t.medianMs),
    });
  }
  printTable('scale_add: y = a x + b (read 4 B + write 4 B per element), median ms', rows);
  appendCsv('scale_add', rows);
  return rows;
}

if (require.main === module)
  run().catch((e) => {
    console.error(e);
    process.exit(1);
  });
