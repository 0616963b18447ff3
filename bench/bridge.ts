// Bridge throughput: TypedArray -> tensor (borrow vs copy) and tensor -> TypedArray, in GB/s.
import { tensor } from '../src/index';
import { appendCsv, gbPerSecond, printTable, timeIt, type Row } from './harness';

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const mib of [1, 16, 128]) {
    const n = (mib * 2 ** 20) / 4;
    const array = new Float32Array(n).fill(1);
    const bytes = array.byteLength;
    const borrow = await timeIt(() => tensor(array, [n]).dispose(), { repeats: 50 });
    const copy = await timeIt(() => tensor(array, [n], { copy: true }).dispose(), { repeats: 20 });
    const t = tensor(array, [n]);
    const out = await timeIt(() => t.toArray(), { repeats: 20 });
    for (const [op, timing] of [
      ['borrow', borrow],
      ['copy', copy],
      ['toArray', out],
    ] as const) {
      rows.push({
        op: `bridge.${op}`,
        shape: `[${n}]`,
        dtype: 'f32',
        device: 'cpu',
        ms: timing.medianMs,
        'GB/s': gbPerSecond(bytes, timing.medianMs),
      });
    }
  }
  printTable('bridge: TypedArray <-> tensor (median of repeats)', rows);
  appendCsv('bridge', rows);
  return rows;
}

if (require.main === module)
  run().catch((e) => {
    console.error(e);
    process.exit(1);
  });
