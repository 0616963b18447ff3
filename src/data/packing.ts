// Padding-free micro-batches. Sequences are grouped by a token budget (not a sample count), so every
// micro-batch costs about the same; lengths are bucketed first so a batch holds sequences of similar
// length (balanced attention cost per sequence, little waste at the budget's edge). Deterministic
// for a seed: the same samples and seed give the same batches in the same order.
import type { Grid } from './images/patchify';
import { Prng } from '../util/prng';

export interface PackImage {
  /** [t·h·w, patchDim] row-major, HF patch order. */
  pixelValues: Float32Array;
  grid: Grid;
}

export interface PackSample {
  ids: Int32Array;
  targetMask: Uint8Array;
  /** Images in the order their <|image_pad|> runs appear in `ids`. */
  images?: PackImage[];
}

/**
 * One packed micro-batch, as the native model consumes it. Sequences lie back to back; attention
 * must not cross a cuSeqlens boundary (varlen attention / block-diagonal mask).
 */
export interface PackedBatch {
  /** Which input samples, in the order they are packed (indices into the list given to the packer). */
  sampleIndices: Int32Array;
  /** [numTokens] every sequence's token ids, concatenated, no padding. */
  inputIds: Int32Array;
  /**
   * [numTokens] 1 where the token is a training target (the logits at position t−1 predict
   * inputIds[t]); the first token of every sequence is 0, so no target crosses a boundary.
   */
  targetMask: Uint8Array;
  /** [numSequences + 1] Int32: sequence i is inputIds[cuSeqlens[i] .. cuSeqlens[i+1]); cuSeqlens[0] = 0. */
  cuSeqlens: Int32Array;
  /** The longest sequence (flash-attention's max_seqlen). */
  maxSeqlen: number;
  numTokens: number;
  numSequences: number;
  /** [numPatches, patchDim] every image's patches, concatenated in image order. */
  pixelValues: Float32Array;
  numPatches: number;
  /** Values per patch (1176 for Qwen2-VL: 3 channels × 2 frames × 14 × 14). */
  patchDim: number;
  /** [numImages, 3] Int32 (t, h, w) per image, in the order their pad runs appear in inputIds. */
  imageGrids: Int32Array;
  numImages: number;
  /** [numSequences + 1] images of sequence i are rows cuImages[i] .. cuImages[i+1] of imageGrids. */
  cuImages: Int32Array;
}

export interface PackOptions {
  /** Most tokens in one micro-batch. A single longer sequence is an error (raise the budget). */
  tokenBudget: number;
  seed: number;
  /** Lengths within one bucket differ by less than this (default 64). */
  bucketWidth?: number;
  /** Most sequences in one micro-batch (default unlimited). */
  maxSequences?: number;
}

/** Groups sample indices into micro-batches by token budget; deterministic for `seed`. */
export function planBatches(lengths: ArrayLike<number>, opts: PackOptions): number[][] {
  const { tokenBudget, seed, bucketWidth = 64, maxSequences = Infinity } = opts;
  if (!(tokenBudget > 0)) throw new Error(`packing: tokenBudget must be > 0, got ${tokenBudget}`);
  const prng = new Prng(`packing/${seed}`);
  const order = prng.shuffle(Array.from({ length: lengths.length }, (_, i) => i));
  for (const i of order) {
    if (lengths[i] > tokenBudget)
      throw new Error(`packing: sample ${i} has ${lengths[i]} tokens, more than the token budget ${tokenBudget}`);
    if (!(lengths[i] > 0)) throw new Error(`packing: sample ${i} is empty`);
  }
  // Stable sort by bucket keeps the shuffled order inside a bucket.
  const bucket = (i: number): number => Math.floor(lengths[i] / bucketWidth);
  order.sort((a, b) => bucket(a) - bucket(b));
  const batches: number[][] = [];
  let cur: number[] = [];
  let used = 0;
  for (const i of order) {
    if (cur.length && (used + lengths[i] > tokenBudget || cur.length >= maxSequences)) {
      batches.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += lengths[i];
  }
  if (cur.length) batches.push(cur);
  return prng.shuffle(batches);
}

/**
 * Values per patch of the chosen samples' images: the first image's (its values over its grid's
 * patches), so a tower with other patch sizes (patch_size 7: 294) packs as Qwen2-VL's 1176 does;
 * assembleBatch then holds every other image to it. 1176 when no sample has an image.
 */
function firstPatchDim(samples: readonly PackSample[], indices: readonly number[]): number {
  for (const i of indices) {
    const img = samples[i].images?.[0];
    if (img) return img.pixelValues.length / Math.max(1, img.grid[0] * img.grid[1] * img.grid[2]);
  }
  return 1176;
}

/** Concatenates the chosen samples into one PackedBatch (`patchDim`: as the first image's, absent). */
export function assembleBatch(
  samples: readonly PackSample[],
  indices: readonly number[],
  patchDim = firstPatchDim(samples, indices),
): PackedBatch {
  if (!Number.isInteger(patchDim) || patchDim <= 0)
    throw new Error(`packing: an image's values are not a whole number of patches (${patchDim} per patch)`);
  let numTokens = 0;
  let numPatches = 0;
  let numImages = 0;
  let maxSeqlen = 0;
  for (const i of indices) {
    const s = samples[i];
    if (s.targetMask.length !== s.ids.length)
      throw new Error(`packing: sample ${i} has ${s.ids.length} ids but ${s.targetMask.length} mask values`);
    numTokens += s.ids.length;
    maxSeqlen = Math.max(maxSeqlen, s.ids.length);
    for (const [k, img] of (s.images ?? []).entries()) {
      const n = img.grid[0] * img.grid[1] * img.grid[2];
      if (img.pixelValues.length !== n * patchDim) {
        throw new Error(
          `packing: sample ${i} image ${k} has ${img.pixelValues.length} values for grid [${img.grid.join(', ')}] (expected ${n * patchDim})`,
        );
      }
      numPatches += n;
      numImages++;
    }
  }
  const batch: PackedBatch = {
    sampleIndices: Int32Array.from(indices),
    inputIds: new Int32Array(numTokens),
    targetMask: new Uint8Array(numTokens),
    cuSeqlens: new Int32Array(indices.length + 1),
    maxSeqlen,
    numTokens,
    numSequences: indices.length,
    pixelValues: new Float32Array(numPatches * patchDim),
    numPatches,
    patchDim,
    imageGrids: new Int32Array(numImages * 3),
    numImages,
    cuImages: new Int32Array(indices.length + 1),
  };
  let t = 0;
  let p = 0;
  let im = 0;
  indices.forEach((i, k) => {
    const s = samples[i];
    batch.inputIds.set(s.ids, t);
    batch.targetMask.set(s.targetMask, t);
    t += s.ids.length;
    batch.cuSeqlens[k + 1] = t;
    for (const img of s.images ?? []) {
      batch.pixelValues.set(img.pixelValues, p);
      p += img.pixelValues.length;
      batch.imageGrids.set(img.grid, 3 * im++);
    }
    batch.cuImages[k + 1] = im;
  });
  return batch;
}

/** Plans and assembles every micro-batch of an epoch. */
export function packSamples(samples: readonly PackSample[], opts: PackOptions & { patchDim?: number }): PackedBatch[] {
  return planBatches(
    samples.map((s) => s.ids.length),
    opts,
  ).map((idx) => assembleBatch(samples, idx, opts.patchDim));
}
