// Starts the local ranks of a distributed run, as torchrun does: one child process per rank with
// torchrun's environment contract (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), each output line prefixed with its rank. When one rank fails (non-zero exit or a
// signal), the others are stopped (SIGTERM, then SIGKILL after a grace period) and the result names the
// rank that failed first: a dead rank never leaves the rest waiting in a collective.
import { spawn, type ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';

export interface LaunchOptions {
  /** The command each rank runs: [executable, ...args]. */
  argv: string[];
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** Extra environment for every rank. */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds between SIGTERM and SIGKILL when stopping the other ranks. */
  graceMs?: number;
  /** Where the prefixed lines go (default: this process's stdout / stderr). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every rank exited with 0. */
  exitCode: number;
  exits: RankExit[];
  /** The first rank that failed, when one did. */
  failed?: RankExit;
}

export function describeExit(e: RankExit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

function checkOptions(
  o: LaunchOptions,
): Required<Pick<LaunchOptions, 'nnodes' | 'nodeRank' | 'masterAddr' | 'masterPort' | 'graceMs'>> {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(o.nprocPerNode) || o.nprocPerNode < 1)
    throw new Error(`--nproc-per-node must be a whole number >= 1, got ${o.nprocPerNode}`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new Error(`--nnodes must be a whole number >= 1, got ${nnodes}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes)
    throw new Error(`--node-rank must be in 0..${nnodes - 1}, got ${nodeRank}`);
  if (o.argv.length === 0) throw new Error('launch: no command to run');
  return {
    nnodes,
    nodeRank,
    masterAddr: o.masterAddr ?? '127.0.0.1',
    masterPort: o.masterPort ?? 29500,
    graceMs: o.graceMs ?? 5000,
  };
}

function prefixLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): Promise<void> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: from, crlfDelay: Infinity });
    rl.on('line', (line) => to.write(`${prefix}${line}\n`));
    rl.on('close', () => resolve());
  });
}

/** Runs the local ranks to the end; see the file comment. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const c = checkOptions(o);
  const worldSize = o.nprocPerNode * c.nnodes;
  const out = o.stdout ?? process.stdout;
  const err = o.stderr ?? process.stderr;
  const children: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let failed: RankExit | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const stopOthers = (): void => {
    for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
    }, c.graceMs);
    killTimer.unref();
  };
  // The launcher's own interrupt reaches every rank (a terminal's Ctrl-C reaches them anyway; a
  // scheduler's SIGTERM to the launcher alone would not).
  const forward = (sig: NodeJS.Signals) => () => {
    for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  try {
    const done: Promise<void>[] = [];
    for (let local = 0; local < o.nprocPerNode; local++) {
      const rank = c.nodeRank * o.nprocPerNode + local;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...o.env,
        RANK: String(rank),
        LOCAL_RANK: String(local),
        WORLD_SIZE: String(worldSize),
        LOCAL_WORLD_SIZE: String(o.nprocPerNode),
        GROUP_RANK: String(c.nodeRank),
        MASTER_ADDR: c.masterAddr,
        MASTER_PORT: String(c.masterPort),
      };
      const child = spawn(o.argv[0], o.argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const prefix = `[rank ${rank}] `;
      const streams = [prefixLines(child.stdout!, out, prefix), prefixLines(child.stderr!, err, prefix)];
      done.push(
        new Promise<void>((resolve) => {
          child.on('error', (e) => {
            err.write(`${prefix}cannot start ${o.argv[0]}: ${e.message}\n`);
          });
          child.on('close', (code, signal) => {
            const e: RankExit = { rank, code, signal };
            exits.push(e);
            if ((code !== 0 || signal) && !failed) {
              failed = e;
              stopOthers();
            }
            void Promise.all(streams).then(() => resolve());
          });
        }),
      );
    }
    await Promise.all(done);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (killTimer) clearTimeout(killTimer);
  }
  exits.sort((a, b) => a.rank - b.rank);
  return { exitCode: failed ? 1 : 0, exits, failed };
}
