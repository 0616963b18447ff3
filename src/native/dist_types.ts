// The native process group (native/bridge/js_dist.cc over native/dist/) as JS sees it. Hand-written:
// keep in step with js_dist.cc. src/dist/process_group.ts wraps it for the trainer.
import type { Tensor } from './types';

export type DistBackend = 'gloo' | 'nccl' | 'local';
export type ReduceOpName = 'sum' | 'avg' | 'max' | 'min';

export interface DistributedCreateOptions {
  rank: number;
  worldSize: number;
  /** The rendezvous (TCPStore) host; required unless backend is 'local'. */
  masterAddr?: string;
  masterPort?: number;
  /** 'gloo' (CPU tensors; default), 'nccl' (CUDA tensors; CUDA builds only), 'local' (world size 1: no
   *  store, no sockets; allGather / reduceScatter copy, the others do nothing). */
  backend?: DistBackend;
  /** Bound on joining and on every collective; a dead peer rejects within it. Default 30 minutes. */
  timeoutMs?: number;
  /** torchrun's TORCHELASTIC_USE_AGENT_STORE: the agent hosts the store, every rank is a client. */
  agentStore?: boolean;
  /** TORCHELASTIC_RESTART_COUNT (keys live under /worker/attempt_<n> with an agent store). */
  restartCount?: number;
}

/** A c10d process group. Collectives resolve when done on this rank, run in the order they were
 *  called, and reject with "rank R: <collective> failed after T ms (timeout ...): <libtorch message>"
 *  when a peer dies or the timeout passes; the group is unusable after a failure. */
export interface NativeDistributed {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: DistBackend;
  readonly timeoutMs: number;
  readonly closed: boolean;
  /** In place; 'avg' needs a floating-point tensor. Default op 'sum'. */
  allReduce(tensor: Tensor, op?: ReduceOpName): Promise<void>;
  /** One allReduce over several tensors of one dtype and device (flattened into one buffer, copied back). */
  allReduceFlat(tensors: Tensor[], op?: ReduceOpName): Promise<void>;
  /** In place: every rank ends with `root`'s values. */
  broadcast(tensor: Tensor, root: number): Promise<void>;
  /** output: worldSize * input.numel elements, rank r's input at [r*n, (r+1)*n) (row-major). */
  allGather(output: Tensor, input: Tensor): Promise<void>;
  /** input: worldSize * output.numel elements; output = op over ranks of input's slice [rank*n, (rank+1)*n). */
  reduceScatter(output: Tensor, input: Tensor, op?: ReduceOpName): Promise<void>;
  barrier(): Promise<void>;
  /** Frees the backend and the store now (the GC does it otherwise). Call barrier() first so rank 0's
   *  store outlives the others' use of it. */
  close(): void;
}

export interface NativeDistributedClass {
  create(options: DistributedCreateOptions): Promise<NativeDistributed>;
}
