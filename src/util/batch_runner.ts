// How a batched job (describe, generate, judge, evaluate: a loop over fixed-size batches) is spread
// over the ranks of a run. The job hands its items, its batch size and its own per-batch loop to a
// runner; one process runs everything, a rank of several runs only its share of *whole batches* and
// gets every item's result back in order (src/cycle/ranks.ts). Whole batches, not items: each batch
// then holds exactly what it holds on one process, so batched numerics and per-batch seeds -- and so
// the results -- do not depend on the number of ranks.

/** `fn` gets consecutive whole batches (the last one may be short) and returns one result per item. */
export type BatchRunner = <T, R>(
  items: readonly T[],
  batchSize: number,
  fn: (mine: T[]) => Promise<R[]>,
) => Promise<R[]>;

/** One process: every batch here. */
export const runAllBatches: BatchRunner = async (items, _batchSize, fn) => (items.length ? fn([...items]) : []);

/** The item indices of the batches rank `rank` of `worldSize` runs: batch k goes to rank k mod worldSize. */
export function batchShare(count: number, batchSize: number, rank: number, worldSize: number): number[] {
  if (!(batchSize >= 1)) throw new Error(`batchShare: batchSize must be >= 1, got ${batchSize}`);
  const out: number[] = [];
  for (let k = rank, start = rank * batchSize; start < count; k += worldSize, start = k * batchSize)
    for (let i = start; i < Math.min(count, start + batchSize); i++) out.push(i);
  return out;
}
