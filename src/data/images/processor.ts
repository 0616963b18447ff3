// The image half of the Qwen2-VL processor: file → decode → smart resize (bicubic) → normalize →
// patches [n, 1176] with their grid. Optionally through an ResizedImageCache of resized images.
import * as fs from 'node:fs';
import { cacheKey, type ResizedImageCache } from './cache';
import { decodeImage } from './decode';
import { patchify, QWEN2VL_PATCH_RULE, type Grid, type PatchRule } from './patchify';
import { resizeForModel } from './resize';
import { QWEN2VL_SIZE_RULE, type SizeRule } from './smart_resize';
import type { RgbImage } from './types';

export interface ProcessorOptions {
  minPixels?: number;
  maxPixels?: number;
  patch?: PatchRule;
  cache?: ResizedImageCache;
}

export interface ProcessedImage {
  /** [numPatches, 1176] row-major, in HF's patch order (see patchify.ts). */
  pixelValues: Float32Array;
  grid: Grid;
  numPatches: number;
  /** Model-side size in pixels (after resize). */
  width: number;
  height: number;
}

export function sizeRuleOf(opts: ProcessorOptions): SizeRule {
  const patch = opts.patch ?? QWEN2VL_PATCH_RULE;
  return {
    factor: patch.patchSize * patch.mergeSize,
    minPixels: opts.minPixels ?? QWEN2VL_SIZE_RULE.minPixels,
    maxPixels: opts.maxPixels ?? QWEN2VL_SIZE_RULE.maxPixels,
  };
}

/** Decoded and resized: the image exactly as the model sees it before normalization. */
export async function modelImage(bytes: Uint8Array, name: string, opts: ProcessorOptions = {}): Promise<RgbImage> {
  const rule = sizeRuleOf(opts);
  const key = opts.cache ? cacheKey(bytes, rule) : '';
  if (opts.cache) {
    const hit = await opts.cache.get(key);
    if (hit) return hit;
  }
  const resized = await resizeForModel(await decodeImage(bytes, name), rule);
  if (opts.cache) await opts.cache.put(key, resized);
  return resized;
}

export async function processImage(
  bytes: Uint8Array,
  name: string,
  opts: ProcessorOptions = {},
): Promise<ProcessedImage> {
  const img = await modelImage(bytes, name, opts);
  const p = patchify(img, opts.patch ?? QWEN2VL_PATCH_RULE);
  return { pixelValues: p.pixelValues, grid: p.grid, numPatches: p.numPatches, width: img.width, height: img.height };
}

export async function processImageFile(file: string, opts: ProcessorOptions = {}): Promise<ProcessedImage> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read image (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return processImage(bytes, file, opts);
}
