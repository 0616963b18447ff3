// `medgr2 info [--json] [--dist]`: versions, libtorch, CUDA devices, compiled-in features, threads; with
// --dist, this process's place in a distributed run as its launcher set it (src/dist/env.ts), as JSON.
import type { Command } from 'commander';
import { readDistEnv } from '../dist/env';
import { info, type Info } from '../index';

export function formatInfo(i: Info): string {
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const lines = [
    `medgr2          ${i.version}`,
    `node            ${i.node} (N-API ${i.napiVersion})`,
    `libtorch        ${i.torchVersion} (${i.torchSource})`,
    `CUDA available  ${yes(i.cudaAvailable)}`,
  ];
  for (const d of i.cudaDevices) {
    const gib = (d.totalMemoryBytes / 2 ** 30).toFixed(1);
    lines.push(`  cuda:${d.index}        ${d.name} (sm ${d.computeCapability}, ${gib} GiB, ${d.multiprocessors} SMs)`);
  }
  lines.push(
    `CUDA kernels    ${yes(i.cudaKernelsCompiled)}`,
    `NVTX ranges     ${yes(i.nvtxCompiled)}`,
    `threads         intra-op ${i.threads.intraOp}, inter-op ${i.threads.interOp}, hardware ${i.threads.hardware}`,
  );
  return lines.join('\n');
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the libtorch, CUDA devices and features this installation runs on')
    .option('--json', 'print one JSON object')
    .option(
      '--dist',
      'print the rank, world size and rendezvous this process was launched with (JSON; no addon needed)',
    )
    .action((opts: { json?: boolean; dist?: boolean }) => {
      if (opts.dist) {
        process.stdout.write(JSON.stringify(readDistEnv()) + '\n');
        return;
      }
      const i = info();
      process.stdout.write((opts.json ? JSON.stringify(i) : formatInfo(i)) + '\n');
    });
}
