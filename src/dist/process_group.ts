// The process group of a distributed run, on torch.distributed's own engine (c10d, native/dist/):
// Gloo on the CPU, NCCL on CUDA devices. A single process gets a local group whose collectives do
// nothing (allGather / reduceScatter copy their one slice): no store, no sockets, no cost.
import { loadAddon } from '../native/loader';
import type { DistBackend, NativeDistributed, ReduceOpName } from '../native/dist_types';
import type { Tensor } from '../native/types';
import { readDistEnv, type DistEnv } from './env';

export type ProcessGroup = NativeDistributed;
export type { ReduceOpName };

export interface InitProcessGroupOptions {
  /** 'auto' (default): nccl when `device` is a CUDA device, gloo otherwise. */
  backend?: 'auto' | 'gloo' | 'nccl';
  /** Bound on joining and on every collective (default 30 minutes, torch.distributed's). */
  timeoutMs?: number;
  /** The device this rank trains on ("cpu", "cuda", "cuda:N"); picks the backend under 'auto'. */
  device?: string;
}

/** The backend a group over `device` uses. */
export function chooseBackend(backend: 'auto' | 'gloo' | 'nccl', device: string): Exclude<DistBackend, 'local'> {
  if (backend !== 'auto') return backend;
  return device.startsWith('cuda') ? 'nccl' : 'gloo';
}

/** Joins the group described by `env` (readDistEnv() by default); resolves once every rank has. */
export async function initProcessGroup(
  env: DistEnv = readDistEnv(),
  opts: InitProcessGroupOptions = {},
): Promise<ProcessGroup> {
  const Distributed = loadAddon().Distributed;
  if (env.worldSize === 1) return Distributed.create({ rank: 0, worldSize: 1, backend: 'local' });
  const restart = process.env.TORCHELASTIC_RESTART_COUNT;
  return Distributed.create({
    rank: env.rank,
    worldSize: env.worldSize,
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    backend: chooseBackend(opts.backend ?? 'auto', opts.device ?? 'cpu'),
    timeoutMs: opts.timeoutMs,
    agentStore: env.agentStore,
    restartCount: restart && /^\d+$/.test(restart) ? Number(restart) : 0,
  });
}

/** DDP's buckets: consecutive tensors of one dtype and device, each bucket at most `bucketBytes` (a
 *  larger tensor gets a bucket of its own). The same list gives the same buckets on every rank. */
export function planBuckets(tensors: Tensor[], bucketBytes: number): Tensor[][] {
  if (!(bucketBytes > 0)) throw new Error(`bucketBytes must be > 0, got ${bucketBytes}`);
  const open = new Map<string, { tensors: Tensor[]; bytes: number }>();
  const buckets: Tensor[][] = [];
  for (const t of tensors) {
    const key = `${t.dtype}@${t.device}`;
    let b = open.get(key);
    if (b && b.bytes + t.nbytes > bucketBytes) {
      buckets.push(b.tensors);
      b = undefined;
    }
    if (!b) {
      b = { tensors: [], bytes: 0 };
      open.set(key, b);
    }
    b.tensors.push(t);
    b.bytes += t.nbytes;
  }
  for (const b of open.values()) buckets.push(b.tensors);
  return buckets;
}

/** All-reduces `tensors` in place, one collective per bucket (each bucket flattened into one
 *  contiguous buffer natively and copied back). Mixed dtypes are fine: buckets never mix them. */
export async function allReduceTensors(
  group: ProcessGroup,
  tensors: Tensor[],
  bucketBytes: number,
  op: ReduceOpName = 'sum',
): Promise<void> {
  if (tensors.length === 0) return;
  // Issued together: the group runs them in this order, and their copies overlap the others' transfers.
  await Promise.all(planBuckets(tensors, bucketBytes).map((b) => group.allReduceFlat(b, op)));
}

/** Plain numbers reduced over the ranks (one float64 all-reduce): metrics, token counts, flags. */
export async function allReduceNumbers(
  group: ProcessGroup,
  values: readonly number[],
  op: ReduceOpName = 'sum',
): Promise<number[]> {
  const t = new (loadAddon().Tensor)(Float64Array.from(values), [values.length], { copy: true });
  try {
    await group.allReduce(t, op);
    return Array.from(t.toArray() as Float64Array);
  } finally {
    t.dispose();
  }
}
