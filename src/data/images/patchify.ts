// Normalization and patchification exactly as transformers' Qwen2VLImageProcessor.
//
// Output: Float32Array [n, C·T·P·P] = [n, 1176] for C = 3 channels, T = 2 temporal, P = 14, with the
// grid [t, h, w] in patches (t = frames / T, h = H / P, w = W / P, n = t·h·w).
//
// Element order (HF reshapes to [t, T, C, h/M, M, P, w/M, M, P] and transposes to
// [t, h/M, w/M, M, M, C, T, P, P], M = merge size 2):
//   patches run over   gt, then bh (h/M), then bw (w/M), then mh (M), then mw (M)
//     so the M×M patches that the merger fuses into one LM token are consecutive;
//     patch (gt, bh, bw, mh, mw) covers pixel rows (bh·M + mh)·P … +P, columns (bw·M + mw)·P … +P;
//   inside a patch, values run over channel c, then temporal tt, then row y (P), then column x (P).
// A single image is one frame repeated to T frames, so tt = 0 and tt = 1 hold the same values.
//
// Values: HF rescales in float64 then casts to float32, and normalizes in float32 ((x − mean) / std
// with float32 mean/std). The lookup table below rounds at the same points, so values match bit
// for bit given the same resized pixels.
import type { RgbImage } from './types';

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface PatchRule {
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
  mean: readonly number[];
  std: readonly number[];
}

export const QWEN2VL_PATCH_RULE: PatchRule = {
  patchSize: 14,
  mergeSize: 2,
  temporalPatchSize: 2,
  mean: CLIP_MEAN,
  std: CLIP_STD,
};

export type Grid = [number, number, number];

export interface Patches {
  /** [numPatches, patchDim] row-major. */
  pixelValues: Float32Array;
  /** [t, h, w] in patches. */
  grid: Grid;
  numPatches: number;
  /** C · T · P · P (1176 for Qwen2-VL). */
  patchDim: number;
}

/** Per channel, the 256 normalized values of a byte, rounded as HF rounds them. */
export function normalizationTable(rule: Pick<PatchRule, 'mean' | 'std'> = QWEN2VL_PATCH_RULE): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(rule.mean[c]);
    const std = Math.fround(rule.std[c]);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = Math.fround(Math.fround(Math.fround(v * (1 / 255)) - mean) / std);
  }
  return lut;
}

const defaultTable = normalizationTable();

/** Patchifies one resized image (a single frame). Its sides must be multiples of P·M. */
export function patchify(img: RgbImage, rule: PatchRule = QWEN2VL_PATCH_RULE): Patches {
  const { patchSize: P, mergeSize: M, temporalPatchSize: T } = rule;
  const factor = P * M;
  if (img.width % factor !== 0 || img.height % factor !== 0) {
    throw new Error(
      `patchify: image ${img.width}x${img.height} is not a multiple of ${factor} on both sides; resize it first`,
    );
  }
  const lut = rule === QWEN2VL_PATCH_RULE ? defaultTable : normalizationTable(rule);
  const gh = img.height / P;
  const gw = img.width / P;
  const n = gh * gw;
  const plane = P * P;
  const patchDim = 3 * T * plane;
  const out = new Float32Array(n * patchDim);
  const src = img.data;
  const W = img.width;
  let o = 0;
  for (let bh = 0; bh < gh / M; bh++) {
    for (let bw = 0; bw < gw / M; bw++) {
      for (let mh = 0; mh < M; mh++) {
        for (let mw = 0; mw < M; mw++) {
          const row0 = (bh * M + mh) * P;
          const col0 = (bw * M + mw) * P;
          // Frame 0 of the patch, channel by channel; then copy it into the other temporal slots.
          for (let c = 0; c < 3; c++) {
            const base = o + c * T * plane;
            const table = c * 256;
            let k = base;
            for (let y = 0; y < P; y++) {
              let s = 3 * ((row0 + y) * W + col0) + c;
              for (let x = 0; x < P; x++, s += 3) out[k++] = lut[table + src[s]];
            }
            for (let tt = 1; tt < T; tt++) out.copyWithin(base + tt * plane, base, base + plane);
          }
          o += patchDim;
        }
      }
    }
  }
  return { pixelValues: out, grid: [1, gh, gw], numPatches: n, patchDim };
}

/** LM tokens an image takes after the M×M merge: t·h·w / M². */
export function imageTokenCount(grid: Grid, mergeSize = 2): number {
  return (grid[0] * grid[1] * grid[2]) / (mergeSize * mergeSize);
}
