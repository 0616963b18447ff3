// Training checkpoints of a run (SFT, GRPO, the cycle's stages), enough to continue exactly:
//
//   <runDir>/checkpoints/step-N/
//     config.json, model.safetensors …   the weights: a Hugging Face model folder (Model.load reads it)
//     adapter_config.json, adapter_model.safetensors   instead, in a LoRA run: the adapter (PEFT's format)
//     tokenizer.json …                   copied from `tokenizerDir` when given, so the folder is usable alone
//     optimizer.safetensors              AdamW state (moments, master weights, step) as Model.optimizerState()
//     optimizer.rank-R-of-W.safetensors  instead, under ZeRO-1/2: rank R's slices of it (one file per rank)
//     trainer_state.json                 step, data position, RNG, scheduler, fingerprint (TrainerState)
//
// A checkpoint is written into a hidden temp folder and renamed into place last, so a crash leaves
// either no step-N or a whole one; trainer_state.json is written last inside it, and `latest`
// only considers folders that have it. After a save, all but the newest `keepLast` are removed.
//
// Distributed runs: rank 0 writes the folder (every rank holds the same weights). Under ZeRO each
// rank first writes its optimizer slices into <runDir>/checkpoints/.step-N.shards/, then rank 0 moves
// them into the folder it is building, so the rename still publishes a whole checkpoint or none.
// trainer_state.json records the world size and ZeRO stage; a ZeRO checkpoint resumes only on as
// many ranks (its slices are cut for that world size; re-sharding is not supported), and is refused
// before any work otherwise.
//
// Integrity: trainer_state.json records the SHA-256 of every other file of the folder (as it is
// after the shard files moved in), and a resume checks them before it loads anything, naming the
// damaged file (checkpoint_checksums.ts); a checkpoint from before checksums resumes with a warning.
// A model with a NaN or infinite weight is never saved (the error names the tensor), and one read
// back with such a weight is refused, naming the tensor and the file.
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint, nonFiniteWeightError } from '../model/hf_folder';
import { assertFiniteWeights } from '../model/finite_weights';
import { checksumFolder, verifyChecksums, type Checksums } from './checkpoint_checksums';
import type { Model } from '../model/model';
import { replaceDirAtomic, writeJsonAtomic } from '../util/atomic_write';
import { readTensors, writeTensors } from '../model/tensor_files';
import { applyAdapter, isAdapterFolder, loadAdapter, saveAdapter } from '../model/peft_adapter';
import type { ProcessGroup } from '../dist/process_group';
import type { ZeroStage } from '../dist/zero_memory';

export const CHECKPOINTS_DIR = 'checkpoints';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_VERSION = 1;

/** Everything besides weights and optimizer that a trainer needs to continue exactly. */
export interface TrainerState {
  version: number;
  /** Which trainer wrote it ("sft", "grpo", …); a resume by another trainer is refused. */
  trainer: string;
  /** Optimizer steps done. */
  step: number;
  /** Data position: the epoch being read and the index of the next micro-batch in its plan. */
  epoch: number;
  batchIndex: number;
  /** Base seed; trainers derive every random stream from (seed, epoch / step) so this is all the
   *  RNG state they need. `rng` holds any extra generator state a trainer keeps. */
  seed: number;
  rng?: Record<string, unknown>;
  scheduler: { step: number; totalSteps: number; warmupSteps: number; lr: number; minLrRatio: number };
  /** Counters for logs (target tokens, samples seen). */
  tokensSeen: number;
  samplesSeen: number;
  /** What must not change between the run and its resume (data, batch plan options); compared on
   *  resume, a difference names the field. */
  fingerprint: Record<string, string | number | boolean>;
  /** The last logged values (for a resumed progress line). */
  metrics?: Record<string, number>;
  /** Free-form, per trainer. */
  extra?: Record<string, unknown>;
  /** How many ranks trained and how the optimizer was sharded (absent: one process, unsharded). */
  dist?: { worldSize: number; zeroStage: ZeroStage };
  /** SHA-256 of every other file of the checkpoint folder, by name; written by saveRunCheckpoint,
   *  checked on resume. Absent in checkpoints from before checksums (they resume with a warning). */
  checksums?: Checksums;
  savedAt: string;
}

export interface SaveRunCheckpointOptions {
  /** Keep the newest K checkpoints (0 or absent: keep all). */
  keepLast?: number;
  /** Copy tokenizer files from here (the model's own folder is used by Model.save otherwise). */
  tokenizerDir?: string;
  /** Also write the optimizer state (default true). */
  optimizer?: boolean;
  /** A distributed run: every rank calls saveRunCheckpoint under ZeRO, only rank 0 otherwise. */
  ranks?: RunRanks;
}

/** The ranks of a distributed run, as the checkpoints need them. */
export interface RunRanks {
  group: ProcessGroup;
  zeroStage: ZeroStage;
}

/** Rank `rank`'s optimizer slices in a ZeRO checkpoint. */
export function optimizerShardFile(rank: number, worldSize: number): string {
  return `optimizer.rank-${rank}-of-${worldSize}.safetensors`;
}

export function checkpointsDir(runDir: string): string {
  return path.join(runDir, CHECKPOINTS_DIR);
}

export function checkpointDir(runDir: string, step: number): string {
  return path.join(checkpointsDir(runDir), `step-${step}`);
}

/** Writes step-N atomically; returns its folder. */
export async function saveRunCheckpoint(
  runDir: string,
  model: Model,
  state: TrainerState,
  opts: SaveRunCheckpointOptions = {},
): Promise<string> {
  const root = checkpointsDir(runDir);
  await fsp.mkdir(root, { recursive: true });
  const final = checkpointDir(runDir, state.step);
  // Before anything is written (and on every rank alike: they all hold the same weights), so a
  // refused save leaves no files, no half-staged shards and no waiting rank.
  await assertFiniteWeights(model, final);
  const ranks = opts.ranks;
  const sharded = ranks !== undefined && ranks.zeroStage > 0 && opts.optimizer !== false;
  const staging = path.join(root, `.step-${state.step}.shards`);
  if (sharded) {
    const { rank, worldSize } = ranks.group;
    await fsp.mkdir(staging, { recursive: true });
    await writeTensors(path.join(staging, optimizerShardFile(rank, worldSize)), model.optimizerState());
    await ranks.group.barrier(); // every slice is on disk before rank 0 publishes the folder
    if (rank !== 0) {
      await ranks.group.barrier(); // ... and rank 0 has published it when this returns
      return final;
    }
  }
  const recorded: TrainerState = ranks
    ? { ...state, dist: { worldSize: ranks.group.worldSize, zeroStage: ranks.zeroStage } }
    : state;
  try {
    // A step-N from an earlier attempt (a resume that re-ran this step) is replaced whole.
    await replaceDirAtomic(final, async (tmp) => {
      await saveTrainedWeights(model, tmp, opts.tokenizerDir);
      if (sharded) {
        for (let r = 0; r < ranks.group.worldSize; r++) {
          const name = optimizerShardFile(r, ranks.group.worldSize);
          await fsp.rename(path.join(staging, name), path.join(tmp, name));
        }
        await fsp.rm(staging, { recursive: true, force: true });
      } else if (opts.optimizer !== false) {
        await writeTensors(path.join(tmp, OPTIMIZER_FILE), model.optimizerState());
      }
      // Checksums of what ends up in the folder (the moved-in shard files included), written last.
      const checksums = await checksumFolder(tmp, [TRAINER_STATE_FILE]);
      await writeJsonAtomic(path.join(tmp, TRAINER_STATE_FILE), { ...recorded, checksums });
    });
    if (opts.keepLast && opts.keepLast > 0) await pruneCheckpoints(runDir, opts.keepLast);
  } finally {
    if (sharded) await ranks.group.barrier();
  }
  return final;
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = checkpointsDir(runDir);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && fs.existsSync(path.join(root, e.name, TRAINER_STATE_FILE)))
    .map((e) => ({ step: Number(e.m![1]), dir: path.join(root, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Removes all but the newest `keep` checkpoints, and temp folders a crash left behind. */
export async function pruneCheckpoints(runDir: string, keep: number): Promise<void> {
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) await fsp.rm(c.dir, { recursive: true, force: true });
  const root = checkpointsDir(runDir);
  for (const name of fs.readdirSync(root)) {
    const m = /^\.step-\d+\.(?:tmp|old)-(\d+)$/.exec(name);
    if (m && Number(m[1]) !== process.pid) await fsp.rm(path.join(root, name), { recursive: true, force: true });
    // Slices a crashed sharded save left (a save in progress has moved its own out by now).
    if (/^\.step-\d+\.shards$/.test(name)) await fsp.rm(path.join(root, name), { recursive: true, force: true });
  }
}

/**
 * A checkpoint folder from a spec: "latest" (or true) = the newest complete one of the run; a
 * number = step-N of the run; anything else = a path to a checkpoint folder. Errors say what was
 * looked for.
 */
export function resolveCheckpoint(runDir: string, which: string | number | true): string {
  if (which === true || which === 'latest') {
    const all = listCheckpoints(runDir);
    if (all.length === 0) throw new Error(`resume: no complete checkpoint under ${checkpointsDir(runDir)}`);
    return all[all.length - 1].dir;
  }
  const dir = typeof which === 'number' || /^\d+$/.test(which) ? checkpointDir(runDir, Number(which)) : which;
  if (!fs.existsSync(path.join(dir, TRAINER_STATE_FILE)))
    throw new Error(`resume: ${dir} is not a complete checkpoint (no ${TRAINER_STATE_FILE})`);
  return dir;
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new Error(`${file}: cannot read the trainer state (${(e as Error).message})`);
  }
  if (state.version !== TRAINER_STATE_VERSION)
    throw new Error(`${file}: trainer state version ${state.version}, this medgr2 reads ${TRAINER_STATE_VERSION}`);
  for (const k of ['step', 'epoch', 'batchIndex', 'seed'] as const) {
    if (!Number.isInteger(state[k])) throw new Error(`${file}: "${k}" must be a whole number`);
  }
  return state;
}

/** Fields of `want` that differ in the checkpoint's fingerprint, as "name: saved X, now Y". */
export function fingerprintDiffs(saved: TrainerState['fingerprint'], want: TrainerState['fingerprint']): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(want)]);
  return [...keys]
    .filter((k) => saved[k] !== want[k])
    .map((k) => `${k}: checkpoint ${JSON.stringify(saved[k])}, now ${JSON.stringify(want[k])}`);
}

/** The weights a checkpoint holds: the whole model, or only the adapter of a LoRA run (its base is
 *  the unchanged model the run started from). */
async function saveTrainedWeights(model: Model, dir: string, tokenizerDir: string | undefined): Promise<void> {
  if (!model.hasLora) return model.save(dir, { sourceDir: tokenizerDir });
  await saveAdapter(model, dir, { spec: model.loraSpec, baseModel: model.sourceDir ?? 'unknown' });
}

async function loadTrainedWeights(dir: string, model: Model): Promise<void> {
  let files = new Map<string, string>();
  if (isAdapterFolder(dir)) {
    if (!model.hasLora) throw new Error(`resume: ${dir} holds a LoRA adapter, but this run trains the whole model`);
    await applyAdapter(model, await loadAdapter(dir, model.config));
  } else {
    if (model.hasLora) throw new Error(`resume: ${dir} holds whole weights, but this run trains a LoRA adapter`);
    const { tensors, files: sources } = await loadCheckpoint(dir, { checkFinite: false });
    files = sources;
    try {
      await model.setParameters(Object.fromEntries(tensors));
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }
  // Checked natively once the weights are in (faster than loadCheckpoint's scan); a checkpoint with
  // checksums cannot get here with NaN weights (they are never saved), an older one can.
  const bad = await model.nonFiniteParameter();
  if (bad) throw nonFiniteWeightError(dir, files, bad);
}

/**
 * Restores weights and optimizer state from a checkpoint folder into `model` and returns the trainer
 * state. The model must have the checkpoint's architecture (names and shapes are checked).
 */
export async function loadRunCheckpoint(dir: string, model: Model, ranks?: RunRanks): Promise<TrainerState> {
  const state = readTrainerState(dir);
  const optFile = optimizerFileFor(dir, state, ranks);
  await verifyCheckpointFiles(dir, state, ranks);
  await loadTrainedWeights(dir, model);
  if (state.dist && state.dist.zeroStage > 0 && !fs.existsSync(optFile))
    throw new Error(`resume: ${optFile} is missing (a ZeRO checkpoint holds one optimizer file per rank)`);
  if (fs.existsSync(optFile)) {
    const opt = await readTensors(optFile);
    try {
      model.loadOptimizerState(opt);
    } finally {
      for (const t of Object.values(opt)) t.dispose();
    }
  }
  return state;
}

/**
 * Checks the checkpoint's files against the SHA-256 sums its trainer state records, before anything
 * is loaded. Each rank checks what it reads: everything but the other ranks' optimizer slices.
 */
async function verifyCheckpointFiles(dir: string, state: TrainerState, ranks: RunRanks | undefined): Promise<void> {
  if (!state.checksums) {
    if ((ranks?.group.rank ?? 0) === 0)
      process.stderr.write(
        `resume: warning: ${dir} records no checksums (saved by an older medgr2), so its files are not verified\n`,
      );
    return;
  }
  const rank = ranks?.group.rank ?? 0;
  const worldSize = ranks?.group.worldSize ?? 1;
  const mine = optimizerShardFile(rank, worldSize);
  const isShard = (f: string) => /^optimizer\.rank-\d+-of-\d+\.safetensors$/.test(f);
  await verifyChecksums(dir, state.checksums, (f) => !isShard(f) || f === mine);
}

/**
 * The optimizer file this rank resumes from, after checking that the checkpoint's sharding fits this
 * run's: a ZeRO checkpoint needs the same world size and a ZeRO run (stage 1 and 2 share a layout);
 * an unsharded one (a single process or ZeRO-0) resumes on any number of ranks with ZeRO-0.
 */
function optimizerFileFor(dir: string, state: TrainerState, ranks: RunRanks | undefined): string {
  const saved = state.dist ?? { worldSize: 1, zeroStage: 0 as ZeroStage };
  const worldSize = ranks?.group.worldSize ?? 1;
  const zeroStage = ranks?.zeroStage ?? 0;
  const was = `${saved.worldSize} rank${saved.worldSize === 1 ? '' : 's'} with ZeRO-${saved.zeroStage}`;
  const now = `${worldSize} rank${worldSize === 1 ? '' : 's'} with ZeRO-${zeroStage}`;
  if (saved.zeroStage > 0 && (zeroStage === 0 || saved.worldSize !== worldSize))
    throw new Error(
      `resume: ${dir} was saved by ${was}; its optimizer slices fit only ${saved.worldSize} ranks with ZeRO-1 or -2 ` +
        `(re-sharding is not supported), and this run has ${now}`,
    );
  if (saved.zeroStage === 0 && zeroStage > 0)
    throw new Error(
      `resume: ${dir} holds an unsharded optimizer (saved by ${was}); resume it with --zero 0, not ${now}`,
    );
  return zeroStage > 0
    ? path.join(dir, optimizerShardFile(ranks?.group.rank ?? 0, worldSize))
    : path.join(dir, OPTIMIZER_FILE);
}

/**
 * Resumes a run: loads checkpoint `which` of `runDir` (true: the latest) into `model` and returns its
 * trainer state, after checking that it was written by `trainer` for the same run (`fingerprint`:
 * what must be unchanged for the resumed run to repeat the uninterrupted one; `needs` says what).
 */
export async function resumeRun(
  runDir: string,
  which: string | number | true,
  model: Model,
  trainer: TrainerState['trainer'],
  fingerprint: TrainerState['fingerprint'],
  needs: string,
  ranks?: RunRanks,
): Promise<{ dir: string; state: TrainerState }> {
  const dir = resolveCheckpoint(runDir, which);
  const state = await loadRunCheckpoint(dir, model, ranks);
  if (state.trainer !== trainer)
    throw new Error(`resume: ${dir} was written by the ${state.trainer} trainer, not ${trainer}`);
  const diffs = fingerprintDiffs(state.fingerprint, fingerprint);
  if (diffs.length)
    throw new Error(`resume: ${dir} belongs to a different run (${diffs.join('; ')}); an exact resume needs ${needs}`);
  return { dir, state };
}
