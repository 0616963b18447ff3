// `medgr2 launch --nproc-per-node N [--nnodes M --node-rank R --master-addr HOST --master-port PORT]
//  COMMAND [ARGS...]`: N local ranks of `medgr2 COMMAND ARGS...` with torchrun's environment (src/dist/launch.ts).
import type { Command } from 'commander';
import { DEFAULT_MASTER_PORT } from '../dist/env';
import { describeExit, launch } from '../dist/launch';
import { parseIntOption } from './options';

export function registerLaunch(program: Command): void {
  program
    .command('launch')
    .description("start the local ranks of a distributed run of a medgr2 command (torchrun's environment contract)")
    .requiredOption(
      '--nproc-per-node <n>',
      'ranks on this node (e.g. its GPU count)',
      parseIntOption('--nproc-per-node', 1),
    )
    .option('--nnodes <m>', 'nodes in the run', parseIntOption('--nnodes', 1), 1)
    .option('--node-rank <r>', "this node's index, 0..nnodes-1", parseIntOption('--node-rank', 0), 0)
    .option('--master-addr <host>', 'address of node 0 (the rendezvous)', '127.0.0.1')
    .option(
      '--master-port <port>',
      'TCP port of the rendezvous on node 0',
      parseIntOption('--master-port', 1),
      DEFAULT_MASTER_PORT,
    )
    .option(
      '--grace <seconds>',
      'after one rank fails, how long the others get to stop before SIGKILL',
      parseIntOption('--grace', 0),
      5,
    )
    .argument('<command>', 'the medgr2 command each rank runs (sft, grpo, cycle, ...)')
    .argument('[args...]', 'its arguments')
    .passThroughOptions()
    .allowUnknownOption()
    .action(
      async (
        command: string,
        args: string[],
        o: {
          nprocPerNode: number;
          nnodes: number;
          nodeRank: number;
          masterAddr: string;
          masterPort: number;
          grace: number;
        },
      ) => {
        const result = await launch({
          argv: [process.execPath, process.argv[1], command, ...args],
          nprocPerNode: o.nprocPerNode,
          nnodes: o.nnodes,
          nodeRank: o.nodeRank,
          masterAddr: o.masterAddr,
          masterPort: o.masterPort,
          graceMs: o.grace * 1000,
        });
        if (result.failed) {
          throw new Error(`rank ${result.failed.rank} ${describeExit(result.failed)}; the other ranks were stopped`);
        }
      },
    );
}
