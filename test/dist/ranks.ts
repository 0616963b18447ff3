// Test helpers: a free loopback port, and N real rank processes of a worker script with torchrun's
// environment, each killed at a deadline so a broken collective fails the test instead of hanging it.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RankRun {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

/** Runs test/dist/workers/<worker>.js as `worldSize` ranks over 127.0.0.1; kills them at `deadlineMs`. */
export async function runRanks(
  worker: string,
  worldSize: number,
  args: string[],
  env: NodeJS.ProcessEnv,
  deadlineMs = 45_000,
): Promise<RankRun[]> {
  const port = await freePort();
  const script = path.join(__dirname, 'workers', `${worker}.js`);
  const runs = Array.from(
    { length: worldSize },
    (_, rank) =>
      new Promise<RankRun>((resolve) => {
        const started = Date.now();
        const child = spawn(process.execPath, [script, ...args], {
          env: {
            ...process.env,
            ...env,
            RANK: String(rank),
            WORLD_SIZE: String(worldSize),
            LOCAL_RANK: String(rank),
            LOCAL_WORLD_SIZE: String(worldSize),
            MASTER_ADDR: '127.0.0.1',
            MASTER_PORT: String(port),
            // Two cores shared by every rank: one intra-op thread each.
            MEDGR2_NUM_THREADS: '1',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ rank, code, signal, stdout, stderr, ms: Date.now() - started });
        });
      }),
  );
  return Promise.all(runs);
}

export function describeRuns(runs: RankRun[]): string {
  return runs
    .map((r) => `--- rank ${r.rank}: code ${r.code} signal ${r.signal} after ${r.ms} ms\n${r.stdout}${r.stderr}`)
    .join('\n');
}
