// The distributed identity from each launcher's environment, and the errors for half-set ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstSlurmHost, readDistEnv } from '../../src/dist/env';

test('no launcher: rank 0 of 1', () => {
  const d = readDistEnv({});
  assert.deepEqual([d.launcher, d.rank, d.worldSize, d.localRank, d.localWorldSize], ['single', 0, 1, 0, 1]);
});

test("torchrun's contract (also medgr2 launch's), with the agent's store", () => {
  const d = readDistEnv({
    RANK: '5',
    WORLD_SIZE: '8',
    LOCAL_RANK: '1',
    LOCAL_WORLD_SIZE: '4',
    MASTER_ADDR: 'node0',
    MASTER_PORT: '1234',
    TORCHELASTIC_USE_AGENT_STORE: 'True',
  });
  assert.deepEqual(d, {
    launcher: 'torchrun',
    rank: 5,
    worldSize: 8,
    localRank: 1,
    localWorldSize: 4,
    masterAddr: 'node0',
    masterPort: 1234,
    agentStore: true,
  });
});

test('Slurm: ranks from SLURM_*, the rendezvous on the first host of the node list', () => {
  const d = readDistEnv({
    SLURM_PROCID: '6',
    SLURM_NTASKS: '8',
    SLURM_LOCALID: '2',
    SLURM_TASKS_PER_NODE: '4(x2)',
    SLURM_JOB_NODELIST: 'gpu[03-04]',
  });
  assert.deepEqual(
    [d.launcher, d.rank, d.worldSize, d.localRank, d.localWorldSize, d.masterAddr, d.masterPort],
    ['slurm', 6, 8, 2, 4, 'gpu03', 29500],
  );
  assert.equal(firstSlurmHost('node7,node9'), 'node7');
  assert.equal(firstSlurmHost('a[10,12-14],b1'), 'a10');
  assert.equal(
    readDistEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'x', MASTER_ADDR: 'y' }).masterAddr,
    'y',
    'MASTER_ADDR wins',
  );
});

test('Open MPI: OMPI_COMM_WORLD_*', () => {
  const d = readDistEnv({
    OMPI_COMM_WORLD_RANK: '3',
    OMPI_COMM_WORLD_SIZE: '4',
    OMPI_COMM_WORLD_LOCAL_RANK: '1',
    OMPI_COMM_WORLD_LOCAL_SIZE: '2',
    MASTER_ADDR: 'h0',
  });
  assert.deepEqual(
    [d.launcher, d.rank, d.worldSize, d.localRank, d.localWorldSize, d.masterAddr],
    ['mpi', 3, 4, 1, 2, 'h0'],
  );
});

test('half-set or wrong variables are errors naming the variable', () => {
  assert.throws(() => readDistEnv({ RANK: '1', WORLD_SIZE: '2' }), /MASTER_ADDR is not/);
  assert.throws(
    () => readDistEnv({ RANK: 'one', WORLD_SIZE: '2', MASTER_ADDR: 'h' }),
    /RANK="one": expected a whole number/,
  );
  assert.throws(
    () => readDistEnv({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'h' }),
    /rank 2 is not below the world size 2/,
  );
  assert.throws(
    () => readDistEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '70000' }),
    /MASTER_PORT=70000: not a TCP port/,
  );
  assert.throws(() => readDistEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2' }), /SLURM_JOB_NODELIST/);
  assert.throws(() => readDistEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' }), /mpirun: set MASTER_ADDR/);
});
