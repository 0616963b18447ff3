// Data-parallel SFT step: the small config of model_step.ts on 1 and 2 real rank processes (Gloo over
// 127.0.0.1 on the CPU), for ZeRO stages 0, 1 and 2. Weak scaling: every rank trains its own fixed
// synthetic batch, so 2 ranks process twice the tokens of one per step, each rank on one intra-op
// thread (one core). Per step: total, backward, communication + optimizer, tokens/s over all ranks,
// the bytes each rank sends in the collectives medgr2 issues, and the scaling efficiency
// tokens/s(2 ranks) / (2 * tokens/s(1 rank)).
//
// Then a GRPO step (src/train/grpo_trainer.ts) of the tiny Qwen2-VL (random init, the same seed on every
// rank) on prompts of a small MedSynth world the parent makes once: ZeRO 0 on 1 and 2 ranks, ZeRO 1 on
// 2 ranks (on one rank trainGrpo has no group to shard over). Unlike the SFT rows this is strong
// scaling: every rank draws the same prompts and the step's groups are split over the ranks, so 2 ranks
// do the same global work as 1 (the very same completions: each is seeded by its prompt's position),
// and the scaling efficiency completion-tokens/s(2) / (2 * completion-tokens/s(1)) is the speed-up over
// 2. Rank 0's rank-local phases are reported; the gradient all-reduce is inside loss+backward for ZeRO-0
// (overlapped with the last backward) and inside the optimizer phase for ZeRO-1.
//
// The parent spawns the ranks as children of this file (`--rank-worker`) with torchrun's environment;
// rank 0 prints its results as one JSON line. A child exits non-zero on any error, and the parent kills
// every rank at the first failure or at a deadline, so a broken collective fails the bench, not hangs it.
//
// `--device cuda`: NCCL, each rank on cuda:LOCAL_RANK (needs 2 CUDA devices). That path is written but
// unmeasured here (CPU-only machine); on CUDA the split between the phases also depends on where the
// native calls wait for the device.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { synthesize } from '../src/data/medsynth';
import { loadSampleFile } from '../src/data/sample_files';
import { TextTokenizer } from '../src/data/tokenizer';
import { readDistEnv } from '../src/dist/env';
import { initProcessGroup, type ProcessGroup } from '../src/dist/process_group';
import { dtypeBytes, memoryPerRank, type ZeroStage } from '../src/dist/zero_memory';
import { Model, info, nextTokenLabels, packSequences, setNumThreads, tinyConfig, type ModelTypes } from '../src/index';
import { trainGrpo } from '../src/train/grpo_trainer';
import { type GrpoStepMetrics } from '../src/train/grpo_metrics';
import { grpoPromptsFromSamples } from '../src/train/grpo_rollout';
import { accuracyReward, type GrpoPrompt, type Reward } from '../src/train/rewards';
import { appendCsv, printTable, type Row } from './harness';
import { smallConfig } from './model_step';
import { Prng } from '../src/util/prng';

const WORKER_FLAG = '--rank-worker';
// Followed by the MedSynth world's folder: the worker measures GRPO instead of SFT.
const GRPO_FLAG = '--grpo-world';
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

// The GRPO step: one global batch of GRPO_PROMPTS groups of GRPO_GROUP completions, whatever the
// number of ranks (2 ranks: 2 groups each).
const GRPO_STAGES: ZeroStage[] = [0, 1];
const GRPO_PROMPTS = 4;
const GRPO_GROUP = 4;
const GRPO_NEW_TOKENS = 16;
const GRPO_WARMUP_STEPS = 1;
const GRPO_TIMED_STEPS = 5;
// 56-pixel images: 4 LM tokens each, so a prompt is mostly its text (as in test/helpers/world.ts).
const GRPO_WORLD_IMAGES = 8;
const GRPO_IMAGE_SIZE = 56;
const GRPO_DEADLINE_MS = 90_000;

type Device = 'cpu' | 'cuda';

function deviceOf(argv: string[]): Device {
  return argv.includes('--device') && argv[argv.indexOf('--device') + 1] === 'cuda' ? 'cuda' : 'cpu';
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

/** Rank `rank`'s packed text-only batch: different data on each rank, as in data-parallel training. */
function syntheticBatch(rank: number): { batch: ModelTypes.ModelBatch; labels: Int32Array; labelled: number } {
  const prng = new Prng(`dist_step/${SEED}/rank${rank}`);
  const seqs = Array.from({ length: SEQS_PER_RANK }, () =>
    Int32Array.from({ length: SEQ_LEN }, () => Math.floor(prng.next() * TOKEN_RANGE)),
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
  // ZeRO-0 as the trainer runs it: the step's (only) backward sums the gradients over the ranks while
  // it runs (DDP's overlap), so its reduction is inside "backward" and "allreduce" stays ~0. Under ZeRO
  // the optimizer step reduces the gradients itself.
  await model.backwardSft(batch, spec, stage === 0 && dist.worldSize > 1 ? { dist } : undefined);
  const t1 = performance.now();
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

async function measureSft(dist: ProcessGroup, device: ModelTypes.ModelDevice): Promise<StageResult[]> {
  const results: StageResult[] = [];
  for (const stage of STAGES) results.push(await measureStage(dist, stage, device));
  return results;
}

/** Seconds of one GRPO step on rank 0 (other: what no phase times -- the all-reduces of the scores
 *  and metrics, including the wait for a slower peer), its global completion tokens, and their rate. */
interface GrpoPhases {
  total: number;
  rollout: number;
  reward: number;
  lossBackward: number;
  optimizer: number;
  other: number;
  completionTokens: number;
  trainedTokens: number;
  tokensPerSecond: number;
}

/** What rank 0 reports for one ZeRO stage of GRPO: the median of each field over the timed steps. */
interface GrpoResult extends GrpoPhases {
  stage: ZeroStage;
  worldSize: number;
  backend: string;
  device: string;
}

function grpoPhases(m: GrpoStepMetrics): GrpoPhases {
  const t = m.time;
  return {
    total: t.total,
    rollout: t.rollout,
    reward: t.reward,
    lossBackward: t.lossBackward,
    optimizer: t.optimizer,
    other: t.total - (t.rollout + t.reward + t.logprobRef + t.logprobOld + t.lossBackward + t.optimizer),
    completionTokens: m.tokens.completion,
    trainedTokens: m.tokens.trained,
    tokensPerSecond: m.tokens.completion / t.total,
  };
}

function medianGrpoPhases(steps: GrpoPhases[]): GrpoPhases {
  const keys = Object.keys(steps[0]) as (keyof GrpoPhases)[];
  return Object.fromEntries(keys.map((k) => [k, median(steps.map((p) => p[k]))])) as unknown as GrpoPhases;
}

/** The world's multiple-choice samples (absolute image paths) as the policy's prompts. */
function grpoPrompts(world: string): GrpoPrompt[] {
  const samples = loadSampleFile(path.join(world, 'medsynth.jsonl'))
    .filter((s) => s.options.length >= 2)
    .map((s) => ({ ...s, images: s.images.map((p) => path.join(world, p)) }));
  if (samples.length < GRPO_PROMPTS)
    throw new Error(`dist_step: ${world} has ${samples.length} multiple-choice samples, GRPO needs ${GRPO_PROMPTS}`);
  return grpoPromptsFromSamples(samples, 'answer');
}

/** Accuracy alone is 0 for nearly every completion of a random model: every group would be flat and
 *  nothing trained. The completion's length gives each group a spread, so every step runs backward. */
function grpoRewards(): Reward[] {
  return [accuracyReward(), { name: 'length', weight: 1, fn: (c) => c.length / 20 }];
}

/** GRPO_WARMUP_STEPS + GRPO_TIMED_STEPS steps of one ZeRO stage on a fresh policy (trainGrpo
 *  broadcasts rank 0's weights; the same seed everywhere makes that a no-op). */
async function measureGrpoStage(
  dist: ProcessGroup,
  stage: ZeroStage,
  device: ModelTypes.ModelDevice,
  prompts: GrpoPrompt[],
  tokenizer: TextTokenizer,
): Promise<GrpoResult> {
  const model = await Model.create(tinyConfig('qwen2_vl'), { seed: SEED, device, dtype: 'float32' });
  try {
    const steps: GrpoPhases[] = [];
    await trainGrpo(
      model,
      prompts,
      grpoRewards(),
      {
        tokenizer,
        steps: GRPO_WARMUP_STEPS + GRPO_TIMED_STEPS,
        promptsPerStep: GRPO_PROMPTS,
        groupSize: GRPO_GROUP,
        maxNewTokens: GRPO_NEW_TOKENS,
        temperature: 1,
        beta: 0,
        lr: 1e-5,
        seed: SEED,
        progress: false,
        dist,
        zero: stage,
      },
      { onStep: (m) => void steps.push(grpoPhases(m)) },
    );
    return {
      ...medianGrpoPhases(steps.slice(GRPO_WARMUP_STEPS)),
      stage,
      worldSize: dist.worldSize,
      backend: dist.backend,
      device,
    };
  } finally {
    await model.dispose();
  }
}

async function measureGrpo(dist: ProcessGroup, device: ModelTypes.ModelDevice, world: string): Promise<GrpoResult[]> {
  const prompts = grpoPrompts(world);
  const tokenizer = TextTokenizer.load();
  const results: GrpoResult[] = [];
  // One rank has no group: trainGrpo runs ZeRO 0 whatever it is asked.
  for (const stage of dist.worldSize > 1 ? GRPO_STAGES : [0 as ZeroStage])
    results.push(await measureGrpoStage(dist, stage, device, prompts, tokenizer));
  return results;
}

function flagValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** A child process: one rank. Rank 0 prints every stage's result; collectives keep the ranks in step,
 *  so rank 0's step time is the group's (a rank waiting for a slower peer counts it as communication). */
async function rankWorker(argv: string[]): Promise<void> {
  const device = deviceOf(argv);
  const world = flagValue(argv, GRPO_FLAG);
  setNumThreads(1);
  const env = readDistEnv();
  const modelDevice: ModelTypes.ModelDevice = device === 'cuda' ? `cuda:${env.localRank}` : 'cpu';
  const dist = await initProcessGroup(env, {
    backend: device === 'cuda' ? 'nccl' : 'gloo',
    timeoutMs: GROUP_TIMEOUT_MS,
    device: modelDevice,
  });
  try {
    const results = world ? await measureGrpo(dist, modelDevice, world) : await measureSft(dist, modelDevice);
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

/** Runs `worldSize` ranks of this file (with `args`) over 127.0.0.1 and returns rank 0's results. */
async function launch<T>(worldSize: number, device: Device, args: string[], deadlineMs: number): Promise<T> {
  const port = await freePort();
  const children = Array.from({ length: worldSize }, (_, rank) =>
    spawn(process.execPath, [__filename, WORKER_FLAG, '--device', device, ...args], {
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
    process.stderr.write(`dist_step: ${worldSize} rank(s) still running after ${deadlineMs} ms: killed\n`);
    killAll();
  }, deadlineMs);
  try {
    const outputs = await Promise.all(children.map(exited));
    const line = outputs[0].split('\n').find((l) => l.startsWith(RESULT_PREFIX));
    if (!line) throw new Error('rank 0 exited 0 without printing its results');
    return JSON.parse(line.slice(RESULT_PREFIX.length)) as T;
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

function grpoRow(r: GrpoResult, single: GrpoResult | undefined): Row {
  return {
    ranks: r.worldSize,
    zero: r.stage,
    backend: r.backend,
    device: r.device,
    'groups/rank': GRPO_PROMPTS / r.worldSize,
    'completion tok/step': r.completionTokens,
    'trained tok/step': r.trainedTokens,
    'step s': r.total,
    'rollout s': r.rollout,
    'reward s': r.reward,
    'loss+backward s': r.lossBackward,
    'optimizer s': r.optimizer,
    'other s': r.other,
    'completion tok/s': r.tokensPerSecond,
    scaling: single && r.worldSize > 1 ? r.tokensPerSecond / (r.worldSize * single.tokensPerSecond) : '',
  };
}

/** The GRPO rows: a MedSynth world made once here, its folder passed to every rank. */
async function runGrpo(device: Device): Promise<Row[]> {
  const world = fs.mkdtempSync(path.join(os.tmpdir(), 'medgr2-bench-dist-'));
  try {
    await synthesize({ out: world, count: GRPO_WORLD_IMAGES, seed: SEED, size: GRPO_IMAGE_SIZE });
    const results: GrpoResult[] = [];
    for (const n of WORLD_SIZES)
      results.push(...(await launch<GrpoResult[]>(n, device, [GRPO_FLAG, world], GRPO_DEADLINE_MS)));
    // Every stage against one rank (which runs ZeRO 0 only).
    const single = results.find((r) => r.worldSize === 1);
    return results.map((r) => grpoRow(r, single));
  } finally {
    fs.rmSync(world, { recursive: true, force: true });
  }
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const device = deviceOf(argv);
  if (device === 'cuda' && info().cudaDevices.length < Math.max(...WORLD_SIZES))
    throw new Error(`dist_step --device cuda: needs ${Math.max(...WORLD_SIZES)} CUDA devices, one per rank`);
  const results: StageResult[] = [];
  for (const n of WORLD_SIZES) results.push(...(await launch<StageResult[]>(n, device, [], DEADLINE_MS)));
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
  appendCsv('dist_step', rows);
  const grpoRows = await runGrpo(device);
  printTable(
    `dist_step: GRPO step, strong scaling (the same ${GRPO_PROMPTS} prompts x ${GRPO_GROUP} completions x ` +
      `${GRPO_NEW_TOKENS} new tokens split over the ranks), tiny qwen2_vl, beta 0, median of ` +
      `${GRPO_TIMED_STEPS} steps after ${GRPO_WARMUP_STEPS}, rank 0's phases (the gradient reduction in ` +
      `loss+backward for ZeRO 0, in optimizer for ZeRO 1), 1 intra-op thread per rank`,
    grpoRows,
  );
  // Its own file: its columns are not the SFT rows' (appendCsv writes a header only to a new file).
  appendCsv('dist_step_grpo', grpoRows);
  return [...rows, ...grpoRows];
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  (argv.includes(WORKER_FLAG) ? rankWorker(argv) : run(argv)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
