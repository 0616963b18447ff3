// Who this process is in a distributed run, read from the environment its launcher set:
//   medgr2 launch / torchrun   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//                              (torchrun's agent may already host the TCPStore: TORCHELASTIC_USE_AGENT_STORE)
//   Slurm (srun)               SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE or
//                              SLURM_TASKS_PER_NODE; MASTER_ADDR from the first host of SLURM_JOB_NODELIST
//   Open MPI (mpirun)          OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE
// None of them: a single process (rank 0 of 1). A launcher that names a rank but no rendezvous address
// is an error naming the variable, before any work.

export type Launcher = 'single' | 'torchrun' | 'slurm' | 'mpi';

export interface DistEnv {
  launcher: Launcher;
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** The launcher's agent already hosts the TCPStore: every rank connects as a client. */
  agentStore: boolean;
}

export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, min: number): number {
  const raw = env[name];
  if (raw === undefined || !/^\d+$/.test(raw.trim()))
    throw new Error(`${name}=${JSON.stringify(raw)}: expected a whole number`);
  const n = Number(raw);
  if (n < min) throw new Error(`${name}=${n}: must be >= ${min}`);
  return n;
}

function portVar(env: Env): number {
  if (env.MASTER_PORT === undefined) return DEFAULT_MASTER_PORT;
  const p = intVar(env, 'MASTER_PORT', 1);
  if (p > 65535) throw new Error(`MASTER_PORT=${p}: not a TCP port`);
  return p;
}

/** The first host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03"; "node1,node2" -> "node1". */
export function firstSlurmHost(nodeList: string): string {
  const m = /^([^,[]+)(?:\[([^\]]+)\])?/.exec(nodeList.trim());
  if (!m) throw new Error(`SLURM_JOB_NODELIST=${JSON.stringify(nodeList)}: cannot read its first host`);
  if (!m[2]) return m[1];
  const first = m[2].split(',')[0].split('-')[0];
  return m[1] + first;
}

/** SLURM_TASKS_PER_NODE "4(x2),3" -> the first node's count (4). */
function slurmTasksPerNode(env: Env): number | undefined {
  if (env.SLURM_NTASKS_PER_NODE) return intVar(env, 'SLURM_NTASKS_PER_NODE', 1);
  const m = /^(\d+)/.exec(env.SLURM_TASKS_PER_NODE ?? '');
  return m ? Number(m[1]) : undefined;
}

function checked(d: DistEnv, source: string): DistEnv {
  if (d.rank >= d.worldSize) throw new Error(`${source}: rank ${d.rank} is not below the world size ${d.worldSize}`);
  if (d.localRank >= d.localWorldSize)
    throw new Error(`${source}: local rank ${d.localRank} is not below the local world size ${d.localWorldSize}`);
  return d;
}

/** The distributed identity of this process from `env` (default: process.env). */
export function readDistEnv(env: Env = process.env): DistEnv {
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const worldSize = intVar(env, 'WORLD_SIZE', 1);
    const rank = intVar(env, 'RANK', 0);
    if (worldSize > 1 && !env.MASTER_ADDR)
      throw new Error('RANK/WORLD_SIZE are set but MASTER_ADDR is not: the ranks cannot meet');
    const localWorldSize = env.LOCAL_WORLD_SIZE !== undefined ? intVar(env, 'LOCAL_WORLD_SIZE', 1) : worldSize;
    const localRank = env.LOCAL_RANK !== undefined ? intVar(env, 'LOCAL_RANK', 0) : rank % localWorldSize;
    return checked(
      {
        launcher: 'torchrun',
        rank,
        worldSize,
        localRank,
        localWorldSize,
        masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
        masterPort: portVar(env),
        agentStore: /^(true|1)$/i.test(env.TORCHELASTIC_USE_AGENT_STORE ?? ''),
      },
      'RANK/WORLD_SIZE',
    );
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    const worldSize = intVar(env, 'SLURM_NTASKS', 1);
    const masterAddr = env.MASTER_ADDR ?? (env.SLURM_JOB_NODELIST ? firstSlurmHost(env.SLURM_JOB_NODELIST) : undefined);
    if (worldSize > 1 && !masterAddr)
      throw new Error('Slurm: neither MASTER_ADDR nor SLURM_JOB_NODELIST is set: the ranks cannot meet');
    const localWorldSize = slurmTasksPerNode(env) ?? worldSize;
    return checked(
      {
        launcher: 'slurm',
        rank: intVar(env, 'SLURM_PROCID', 0),
        worldSize,
        localRank: env.SLURM_LOCALID !== undefined ? intVar(env, 'SLURM_LOCALID', 0) : 0,
        localWorldSize,
        masterAddr: masterAddr ?? '127.0.0.1',
        masterPort: portVar(env),
        agentStore: false,
      },
      'SLURM_PROCID/SLURM_NTASKS',
    );
  }
  if (env.OMPI_COMM_WORLD_RANK !== undefined && env.OMPI_COMM_WORLD_SIZE !== undefined) {
    const worldSize = intVar(env, 'OMPI_COMM_WORLD_SIZE', 1);
    if (worldSize > 1 && !env.MASTER_ADDR)
      throw new Error('mpirun: set MASTER_ADDR (e.g. mpirun -x MASTER_ADDR=host0) so the ranks can meet');
    return checked(
      {
        launcher: 'mpi',
        rank: intVar(env, 'OMPI_COMM_WORLD_RANK', 0),
        worldSize,
        localRank: env.OMPI_COMM_WORLD_LOCAL_RANK !== undefined ? intVar(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0) : 0,
        localWorldSize:
          env.OMPI_COMM_WORLD_LOCAL_SIZE !== undefined ? intVar(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 1) : worldSize,
        masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
        masterPort: portVar(env),
        agentStore: false,
      },
      'OMPI_COMM_WORLD_RANK/SIZE',
    );
  }
  return {
    launcher: 'single',
    rank: 0,
    worldSize: 1,
    localRank: 0,
    localWorldSize: 1,
    masterAddr: '127.0.0.1',
    masterPort: DEFAULT_MASTER_PORT,
    agentStore: false,
  };
}
