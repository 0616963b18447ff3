// The cycle on several ranks (`medgr2 launch --nproc-per-node N cycle`, torchrun, Slurm, mpirun).
// Every rank runs every stage in the same order; which part of a stage a rank does:
//   - training stages (SFT, GRPO): all ranks, data-parallel (trainSft / trainGrpo with the group);
//   - batched stages (describe, generate, score, judge-eval, evaluate): each rank runs its share of
//     whole batches (util/batch_runner.ts) and every rank gets all results back, in order, through
//     small JSON files under OUT/.ranks/ -- so the records are written once, by rank 0, in the order
//     one process would write them;
//   - everything else (the world, manifests, selection, reports, model folders): rank 0 alone.
// The run folder must therefore be one every rank sees (one node, or a shared filesystem).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allReduceNumbers, type ProcessGroup } from '../dist/process_group';
import type { ZeroStage } from '../dist/zero_memory';
import { batchShare, runAllBatches, type BatchRunner } from '../util/batch_runner';
import { writeJsonAtomicSync } from '../util/atomic_write';

export class CycleRanks {
  readonly rank: number;
  readonly worldSize: number;
  private exchanges = 0;

  /** `group` undefined: one process. `scratch`: the folder for the exchanged results. */
  constructor(
    readonly group: ProcessGroup | undefined,
    readonly zero: ZeroStage,
    private readonly scratch: string,
  ) {
    this.rank = group?.rank ?? 0;
    this.worldSize = group?.worldSize ?? 1;
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /** The group when there are several ranks (what the trainers take as `dist`). */
  get dist(): ProcessGroup | undefined {
    return this.worldSize > 1 ? this.group : undefined;
  }

  async barrier(): Promise<void> {
    if (this.dist) await this.dist.barrier();
  }

  /** Whether every rank says yes (one all-reduce): ranks must agree before they branch. */
  async all(yes: boolean): Promise<boolean> {
    if (!this.dist) return yes;
    return (await allReduceNumbers(this.dist, [yes ? 1 : 0], 'min'))[0] > 0;
  }

  /** A BatchRunner over the ranks: this rank's whole batches, then every result, in item order. */
  readonly runBatches: BatchRunner = async (items, batchSize, fn) => {
    if (!this.dist) return runAllBatches(items, batchSize, fn);
    const mine = batchShare(items.length, batchSize, this.rank, this.worldSize);
    const results = mine.length ? await fn(mine.map((i) => items[i])) : [];
    if (results.length !== mine.length)
      throw new Error(`rank ${this.rank}: a batched job returned ${results.length} results for ${mine.length} items`);
    // Every rank counts the exchanges in the same order: the n-th one has the same folder everywhere.
    const dir = path.join(this.scratch, `exchange-${this.exchanges++}`);
    fs.mkdirSync(dir, { recursive: true });
    writeJsonAtomicSync(
      path.join(dir, `rank-${this.rank}.json`),
      mine.map((i, n) => [i, results[n]]),
    );
    await this.barrier(); // every part is on disk
    const all = new Array<(typeof results)[number]>(items.length);
    const seen = new Uint8Array(items.length);
    for (let r = 0; r < this.worldSize; r++) {
      const file = path.join(dir, `rank-${r}.json`);
      const part = JSON.parse(fs.readFileSync(file, 'utf8')) as [number, (typeof results)[number]][];
      for (const [i, v] of part) {
        if (!(i >= 0 && i < items.length) || seen[i]) throw new Error(`${file}: item ${i} out of range or twice`);
        seen[i] = 1;
        all[i] = v;
      }
    }
    const missing = seen.indexOf(0);
    if (missing >= 0) throw new Error(`${dir}: no rank returned item ${missing} of ${items.length}`);
    await this.barrier(); // every rank has read every part
    if (this.isMain) fs.rmSync(dir, { recursive: true, force: true });
    return all;
  };
}
