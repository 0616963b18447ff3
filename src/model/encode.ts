// From canonical samples to what the native model eats: images through the Qwen2-VL processor,
// conversations through the chat template, packed micro-batches, and next-token labels.
//
// Label convention: the packer's targetMask[t] = 1 means "token t is predicted from position t-1";
// the model's labels[t] is the id predicted *at* position t (-100: no loss). So
// labels[t] = inputIds[t+1] when targetMask[t+1] = 1 inside the same sequence.
import * as path from 'node:path';
import type { ChatMessage } from '../data/chat_template';
import { encodeChat } from '../data/chat_template';
import { QWEN2VL_PATCH_RULE, type Grid } from '../data/images/patchify';
import { processImageFile, type ProcessorOptions } from '../data/images/processor';
import { assembleBatch, type PackedBatch, type PackSample } from '../data/packing';
import type { TextTokenizer } from '../data/tokenizer';
import type { ModelBatch } from './model';

export interface ImageOptions extends ProcessorOptions {
  /** Relative image paths resolve against this folder. */
  imageRoot?: string;
}

export interface LoadedImage {
  pixelValues: Float32Array;
  grid: Grid;
  /** The processor's merge size (patches per side fused into one LM token); default 2. */
  mergeSize?: number;
}

/** Decodes, resizes and patchifies each image file; errors name the file. */
export async function loadImages(paths: readonly string[], opts: ImageOptions = {}): Promise<LoadedImage[]> {
  const out: LoadedImage[] = [];
  for (const p of paths) {
    const file = opts.imageRoot && !path.isAbsolute(p) ? path.join(opts.imageRoot, p) : p;
    const img = await processImageFile(file, opts);
    out.push({ pixelValues: img.pixelValues, grid: img.grid, mergeSize: (opts.patch ?? QWEN2VL_PATCH_RULE).mergeSize });
  }
  return out;
}

/**
 * One conversation with its images as a packable sample. With `reply`, the reply tokens (and the
 * closing <|im_end|>) are the targets; without it, the sample is a generation prompt. Each image
 * takes t·h·w / merge² <|image_pad|> tokens, merge being the size its processor patched it with.
 */
export function encodeConversation(
  tok: TextTokenizer,
  images: readonly LoadedImage[],
  user: string,
  opts: { system?: string; reply?: string } = {},
): PackSample {
  const messages: ChatMessage[] = [];
  if (opts.system !== undefined) messages.push({ role: 'system', content: opts.system });
  messages.push({
    role: 'user',
    content: [...images.map(() => ({ type: 'image' as const })), { type: 'text' as const, text: user }],
  });
  if (opts.reply !== undefined) messages.push({ role: 'assistant', content: opts.reply });
  const merges = new Set(images.map((i) => i.mergeSize ?? QWEN2VL_PATCH_RULE.mergeSize));
  if (merges.size > 1) throw new Error(`images patched with different merge sizes (${[...merges].join(', ')})`);
  const enc = encodeChat(
    tok,
    messages,
    images.map((i) => i.grid),
    { addGenerationPrompt: opts.reply === undefined, mergeSize: [...merges][0] },
  );
  return {
    ids: enc.ids,
    targetMask: enc.targetMask,
    images: images.map((i) => ({ pixelValues: i.pixelValues, grid: i.grid })),
  };
}

/** labels[t] = inputIds[t+1] where targetMask[t+1] = 1 within one sequence, else -100. */
export function labelsFromTargetMask(inputIds: Int32Array, targetMask: Uint8Array, cuSeqlens: Int32Array): Int32Array {
  const labels = new Int32Array(inputIds.length).fill(-100);
  for (let s = 0; s + 1 < cuSeqlens.length; s++) {
    for (let t = cuSeqlens[s]; t + 1 < cuSeqlens[s + 1]; t++) {
      if (targetMask[t + 1]) labels[t] = inputIds[t + 1];
    }
  }
  return labels;
}

/** The native model's batch (and labels) for a packed micro-batch. */
export function toModelBatch(pb: PackedBatch): { batch: ModelBatch; labels: Int32Array } {
  const batch: ModelBatch = { inputIds: pb.inputIds, cuSeqlens: pb.cuSeqlens };
  if (pb.numImages > 0) {
    batch.pixelValues = pb.pixelValues;
    batch.imageGrids = pb.imageGrids;
  }
  return { batch, labels: labelsFromTargetMask(pb.inputIds, pb.targetMask, pb.cuSeqlens) };
}

/** All samples as one packed batch, in the given order (generation prompts, scoring). */
export function packInOrder(samples: readonly PackSample[]): PackedBatch {
  return assembleBatch(
    samples,
    samples.map((_, i) => i),
  );
}

/** Decodes each distinct image file once; shared by every example of a run. */
export class DecodedImages {
  private cache = new Map<string, LoadedImage>();
  /** `options`: the processor's resize bounds and patch rule (default Qwen2-VL's), the same for every image. */
  constructor(
    private readonly imageRoot?: string,
    private readonly options: ProcessorOptions = {},
  ) {}

  resolve(p: string): string {
    return this.imageRoot && !path.isAbsolute(p) ? path.join(this.imageRoot, p) : p;
  }

  async get(paths: readonly string[]): Promise<LoadedImage[]> {
    const out: LoadedImage[] = [];
    for (const p of paths) {
      const file = this.resolve(p);
      let img = this.cache.get(file);
      if (!img) {
        [img] = await loadImages([file], this.options);
        this.cache.set(file, img);
      }
      out.push(img);
    }
    return out;
  }

  get size(): number {
    return this.cache.size;
  }
}
