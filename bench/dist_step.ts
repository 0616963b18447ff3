// Data-parallel SFT step: the small config of model_step.ts on 1 and 2 real rank processes (Gloo over
// 127.0.0.1 on the CPU), for ZeRO stages 0, 1 and 2. Weak scaling: every rank trains its own fixed
// synthetic batch, so 2 ranks process twice the tokens of one per step, each rank on one intra-op
// thread (one core). Per step: total, backward, communication + optimizer, tokens/s over all ranks,
// the bytes each rank sends in the collectives medgr2 issues, and the scaling efficiency
// tokens/s(2 ranks) / (2 * tokens/s(1 rank)).
//
// The parent spawns the ranks as children of this file (`--rank-worker`) with torchrun's environment;
// rank 0 prints its results as one JSON line. A child exits non-zero on any error, and the parent kills
// every rank at the first failure or at a deadline, so a broken collective fails the bench, not hangs it.
//
// `--device cuda`: NCCL, each rank on cuda:LOCAL_RANK (needs 2 CUDA devices). That path is written but
// unmeasured here (CPU-only machine); on CUDA the split between the phases also depends on where the
// native calls wait for the device.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { readDistEnv } from '../src/dist/env';
import { initProcessGroup, type ProcessGroup } from '../src/dist/process_group';
import { dtypeBytes, memoryPerRank, type ZeroStage } from '../src/dist/zero_memory';
import { Model, info, nextTokenLabels, packSequences, setNumThreads, tinyConfig, type ModelTypes } from '../src/index';
import { appendCsv, printTable, type Row } from './harness';

const WORKER_FLAG = '--rank-worker';
const RESULT_PREFIX = 'dist_step result ';
const WORLD_SIZES = [1, 2];
const STAGES: ZeroStage[] = [0, 1, 2];
const SEQS_PER_RANK = 4;
const SEQ_LEN = 256;
// Random ids below the tiny vocabulary's special tokens (bos 757 .. video 763): an image token in a
// text-only batch would ask for image features.
const TOKEN_RANGE = 700;
const SEED = 1;
const WARMUP_STEPS = 1;
const TIMED_STEPS = 5;
// A dead peer surfaces as an error on the survivors within this; the parent's deadline is the backstop.
const GROUP_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 90_000;
const MIB = 1024 * 1024;

type Device = 'cpu' | 'cuda';

function deviceOf(argv: string[]): Device {
  return argv.includes('--device') && argv[argv.indexOf('--device') + 1] === 'cuda' ? 'cuda' : 'cpu';
}

/** model_step.ts's small config (not exported there): 4 decoder layers of width 256. */
function smallConfig(): ModelTypes.ModelConfig {
  const c = tinyConfig('qwen2_vl', { tie: false });
  return {
    ...c,
    text: {
      ...c.text,
      hiddenSize: 256,
      intermediateSize: 704,
      numLayers: 4,
      numHeads: 8,
      numKvHeads: 2,
      headDim: 32,
      mropeSection: [4, 6, 6],
    },
    vision: c.vision && { ...c.vision, embedDim: 128, numHeads: 4, mlpHiddenDim: 512, depth: 4, outHiddenSize: 256 },
  };
}

/** Seconds of one step's phases; allReduce and adamw are ZeRO-0's split of reduceStep. */
interface Phases {
  total: number;
  backward: number;
  allReduce: number;
  adamw: number;
  reduceStep: number;
}

/** What rank 0 reports for one ZeRO stage: the median of each phase over the timed steps. */
interface StageResult extends Phases {
  stage: ZeroStage;
  worldSize: number;
  backend: string;
  device: string;
  tokensPerRank: number;
  parameters: number;
  trainable: number;
  dtype: string;
}

// mulberry32: small and seedable, so each rank's batch is the same from run to run.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rank `rank`'s packed text-only batch: different data on each rank, as in data-parallel training. */
function syntheticBatch(rank: number): { batch: ModelTypes.ModelBatch; labels: Int32Array; labelled: number } {
  const next = rng(SEED * 7919 + rank);
  const seqs = Array.from({ length: SEQS_PER_RANK }, () =>
    Int32Array.from({ length: SEQ_LEN }, () => Math.floor(next() * TOKEN_RANGE)),
  );
  const batch = packSequences(seqs);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  return { batch, labels, labelled: labels.filter((l) => l >= 0).length };
}

/** One optimizer step as the sft trainer takes it (src/train/sft.ts), each phase timed. */
async function sftStep(
  model: Model,
  dist: ProcessGroup,
  stage: ZeroStage,
  batch: ModelTypes.ModelBatch,
  spec: ModelTypes.SftLossSpec,
): Promise<Phases> {
  const t0 = performance.now();
  await model.backwardSft(batch, spec);
  const t1 = performance.now();
  // Under ZeRO the optimizer step reduces the gradients itself.
  if (stage === 0) await model.allReduceGradients(dist);
  const t2 = performance.now();
  await model.optimizerStep({ lr: 1e-5 });
  const t3 = performance.now();
  const s = (ms: number): number => ms / 1000;
  return { total: s(t3 - t0), backward: s(t1 - t0), allReduce: s(t2 - t1), adamw: s(t3 - t2), reduceStep: s(t3 - t1) };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function medianPhases(steps: Phases[]): Phases {
  const of = (k: keyof Phases): number => median(steps.map((p) => p[k]));
  return {
    total: of('total'),
    backward: of('backward'),
    allReduce: of('allReduce'),
    adamw: of('adamw'),
    reduceStep: of('reduceStep'),
  };
}

/** One ZeRO stage on this rank: a fresh model, warm-up, then the timed steps. Every rank runs the same
 *  number of steps (a rank that stopped early would leave the others waiting in a collective). */
async function measureStage(
  dist: ProcessGroup,
  stage: ZeroStage,
  device: ModelTypes.ModelDevice,
): Promise<StageResult> {
  const model = await Model.create(smallConfig(), { seed: 1, device, dtype: 'float32' });
  try {
    // A text-only batch never reaches the vision tower or the merger. Left trainable, ZeRO-1/2 would
    // still reduce and gather their zero gradients while ZeRO-0 skips them (no gradient on any rank),
    // so the stages would move different sets; frozen, every stage moves exactly the trainable set.
    model.setTrainable({ vision: false, merger: false });
    if (stage > 0) model.shardOptimizer(dist, { stage: stage as 1 | 2 });
    await model.broadcastParameters(dist, 0);
    const { batch, labels, labelled } = syntheticBatch(dist.rank);
    // The global target count, so the gradients summed over the ranks are the mean over all tokens.
    const spec = { labels, numItems: labelled * dist.worldSize };
    for (let i = 0; i < WARMUP_STEPS; i++) await sftStep(model, dist, stage, batch, spec);
    await dist.barrier();
    const steps: Phases[] = [];
    for (let i = 0; i < TIMED_STEPS; i++) steps.push(await sftStep(model, dist, stage, batch, spec));
    const i = model.info;
    return {
      ...medianPhases(steps),
      stage,
      worldSize: dist.worldSize,
      backend: dist.backend,
      device,
      tokensPerRank: SEQS_PER_RANK * SEQ_LEN,
      parameters: i.parameterCount,
      trainable: i.trainableCount,
      dtype: i.dtype,
    };
  } finally {
    await model.dispose();
  }
}

/** A child process: one rank. Rank 0 prints every stage's result; collectives keep the ranks in step,
 *  so rank 0's step time is the group's (a rank waiting for a slower peer counts it as communication). */
async function rankWorker(device: Device): Promise<void> {
  setNumThreads(1);
  const env = readDistEnv();
  const modelDevice: ModelTypes.ModelDevice = device === 'cuda' ? `cuda:${env.localRank}` : 'cpu';
  const dist = await initProcessGroup(env, {
    backend: device === 'cuda' ? 'nccl' : 'gloo',
    timeoutMs: GROUP_TIMEOUT_MS,
    device: modelDevice,
  });
  try {
    const results: StageResult[] = [];
    for (const stage of STAGES) results.push(await measureStage(dist, stage, modelDevice));
    if (dist.rank === 0) process.stdout.write(RESULT_PREFIX + JSON.stringify(results) + '\n');
    // Rank 0 hosts the store: the others must be done with it before it closes.
    await dist.barrier();
  } finally {
    dist.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves with the child's stdout when it exits 0; rejects naming the rank otherwise. */
function exited(child: ChildProcess, rank: number): Promise<string> {
  let stdout = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolve(stdout) : reject(new Error(`rank ${rank} exited with code ${code} (signal ${signal})`)),
    );
  });
}

/** Runs `worldSize` ranks of this file over 127.0.0.1 and returns rank 0's results. */
async function launch(worldSize: number, device: Device): Promise<StageResult[]> {
  const port = await freePort();
  const children = Array.from({ length: worldSize }, (_, rank) =>
    spawn(process.execPath, [__filename, WORKER_FLAG, '--device', device], {
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(worldSize),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const deadline = setTimeout(() => {
    process.stderr.write(`dist_step: ${worldSize} rank(s) still running after ${DEADLINE_MS} ms: killed\n`);
    killAll();
  }, DEADLINE_MS);
  try {
    const outputs = await Promise.all(children.map(exited));
    const line = outputs[0].split('\n').find((l) => l.startsWith(RESULT_PREFIX));
    if (!line) throw new Error('rank 0 exited 0 without printing its results');
    return JSON.parse(line.slice(RESULT_PREFIX.length)) as StageResult[];
  } catch (e) {
    // One failed rank leaves its peers blocked in a collective: end them now, not at their timeout.
    killAll();
    throw e;
  } finally {
    clearTimeout(deadline);
  }
}

/** Bytes one rank sends per step in the gradient and weight collectives medgr2 issues, for ring
 *  algorithms: an all-reduce of B bytes sends 2(N-1)/N * B per rank, an all-gather or a reduce-scatter
 *  (N-1)/N * B. Left out: the all-reduce of one flag per trainable tensor (which have a gradient), ZeRO's
 *  8-byte norm all-reduce, and ZeRO's padding of each 25 MiB bucket to a multiple of N (< N elements):
 *  hundreds of bytes, whose latency is in the measured times all the same. */
function bytesSentPerRank(stage: ZeroStage, backend: string, worldSize: number, gradBytes: number): number {
  const share = (worldSize - 1) / worldSize;
  const allReduce = 2 * share * gradBytes;
  if (stage === 0) return allReduce;
  // ZeRO-1 all-reduces the gradients (as DeepSpeed's stage 1) and keeps its slice. ZeRO-2
  // reduce-scatters them, but Gloo on libtorch 1.13 has no reduce-scatter: medgr2 all-reduces there
  // too (native/dist/collectives.cc), so on Gloo both stages move 1.5x ZeRO-0's bytes; NCCL's
  // reduce-scatter + all-gather would move what one all-reduce does.
  const reduce = stage === 2 && backend === 'nccl' ? share * gradBytes : allReduce;
  return reduce + share * gradBytes;
}

function tokensPerSecond(r: StageResult): number {
  return (r.tokensPerRank * r.worldSize) / r.total;
}

function toRow(r: StageResult, single: StageResult | undefined): Row {
  // float32 here, so the wire dtype is the parameters' (Gloo would also send bfloat16 as float32).
  const gradBytes = r.trainable * dtypeBytes(r.dtype);
  const zero0 = r.stage === 0;
  const optimizer = memoryPerRank({
    parameters: r.parameters,
    trainable: r.trainable,
    dtypeBytes: dtypeBytes(r.dtype),
    worldSize: r.worldSize,
    stage: r.stage,
  }).optimizer;
  return {
    ranks: r.worldSize,
    zero: r.stage,
    backend: r.backend,
    device: r.device,
    'tokens/step': r.tokensPerRank * r.worldSize,
    'step s': r.total,
    'backward s': r.backward,
    'allreduce s': zero0 ? r.allReduce : '',
    'adamw s': zero0 ? r.adamw : '',
    'reduce+step s': r.reduceStep,
    'tokens/s': tokensPerSecond(r),
    scaling: single && r.worldSize > 1 ? tokensPerSecond(r) / (r.worldSize * tokensPerSecond(single)) : '',
    'MiB sent/rank': bytesSentPerRank(r.stage, r.backend, r.worldSize, gradBytes) / MIB,
    'ideal MiB': (2 * ((r.worldSize - 1) / r.worldSize) * gradBytes) / MIB,
    'optimizer MiB/rank': optimizer / MIB,
  };
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const device = deviceOf(argv);
  if (device === 'cuda' && info().cudaDevices.length < Math.max(...WORLD_SIZES))
    throw new Error(`dist_step --device cuda: needs ${Math.max(...WORLD_SIZES)} CUDA devices, one per rank`);
  const results: StageResult[] = [];
  for (const n of WORLD_SIZES) results.push(...(await launch(n, device)));
  const rows = results.map((r) =>
    toRow(
      r,
      results.find((s) => s.worldSize === 1 && s.stage === r.stage),
    ),
  );
  printTable(
    `dist_step: data-parallel SFT step, small config, ${SEQS_PER_RANK}x${SEQ_LEN} tokens per rank, ` +
      `median of ${TIMED_STEPS} steps, 1 intra-op thread per rank`,
    rows,
  );
  process.stdout.write('dist_step: no GRPO row: the GRPO row waits for GRPO on ranks (it runs on one process only)\n');
  appendCsv('dist_step', rows);
  return rows;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  (argv.includes(WORKER_FLAG) ? rankWorker(deviceOf(argv)) : run(argv)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
