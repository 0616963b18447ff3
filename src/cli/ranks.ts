// The options and the frame a command needs to run on several ranks (under `medgr2 launch`, torchrun,
// Slurm or mpirun: WORLD_SIZE > 1): join the process group before loading anything, run, wait for
// every rank, leave. On one rank nothing of this happens. Shared by `medgr2 sft` and `medgr2 grpo`.
import { readDistEnv } from '../dist/env';
import { initProcessGroup, type ProcessGroup } from '../dist/process_group';
import type { ZeroStage } from '../dist/zero_memory';
import type { ConfigSchema } from './config';

export const RANKS_SCHEMA: ConfigSchema = [
  {
    key: 'distBackend',
    type: 'string',
    default: 'auto',
    choices: ['auto', 'gloo', 'nccl'],
    help: 'process-group backend when launched on several ranks (auto: nccl on CUDA, gloo on the CPU)',
  },
  {
    key: 'distTimeout',
    type: 'number',
    default: 300,
    min: 1,
    help: 'seconds a rank waits on joining and on each collective before failing',
  },
  {
    key: 'zero',
    type: 'int',
    default: 0,
    min: 0,
    max: 2,
    help: 'on several ranks: 0 = every rank holds the optimizer (DDP); 1 / 2 = ZeRO, the optimizer state sharded over the ranks',
  },
];

export interface RanksConfig {
  device: string;
  distBackend: 'auto' | 'gloo' | 'nccl';
  distTimeout: number;
  zero: ZeroStage;
}

/**
 * Runs `body` with the process group when launched on several ranks (undefined on one). Each rank
 * takes the CUDA device of its LOCAL_RANK when --device is plain "cuda". Rank 0 may host the store,
 * so no rank leaves before every rank is done.
 */
export async function withRanks<C extends RanksConfig, T>(
  command: string,
  cfg: C,
  body: (cfg: C, dist: ProcessGroup | undefined) => Promise<T>,
): Promise<T> {
  const env = readDistEnv();
  if (env.worldSize <= 1) return body(cfg, undefined);
  const mine = cfg.device === 'cuda' ? { ...cfg, device: `cuda:${env.localRank}` } : cfg;
  const dist = await initProcessGroup(env, {
    backend: mine.distBackend,
    timeoutMs: Math.round(mine.distTimeout * 1000),
    device: mine.device,
  });
  try {
    if (dist.rank === 0)
      process.stderr.write(
        `${command}: data parallel over ${dist.worldSize} ranks (backend ${dist.backend}, ${env.launcher}, ZeRO-${mine.zero})\n`,
      );
    const result = await body(mine, dist);
    await dist.barrier();
    return result;
  } finally {
    dist.close();
  }
}
