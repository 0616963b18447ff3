// The generator writes its question from a description of the image, and the description comes from
// the pretrained model (the run's initial weights), which the generator's fine-tuning never touches.
//
// Why: a pretrained model can describe an image of any modality it saw in pre-training; fine-tuned on
// a seed of four modalities, the tiny generator forgets that and names a seed modality for every pool
// image (measured: 0 right of ~120 held-out Modality Recognition candidates, with the modality hint in
// its prompt and with the description written by the generator itself before its question). Given the
// description, the generator has only to pick the fact its task asks for out of it, a copy that works for
// names the seed never answered with. Its warm-up teaches the copy: each seed sample also appears with
// its image's modality swapped for another name in the description, the hint and (for a modality
// question) the answer, so the answer follows the description, not a seed-only classifier of the pixels.
import { runAllBatches, type BatchRunner } from '../util/batch_runner';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sample } from '../data/proto';
import { captionText, type CaptionFacts } from '../data/medsynth/captions';
import { Prng } from '../util/prng';
import type { TextTokenizer } from '../data/tokenizer';
import type { Model } from '../model/model';
import type { SftExample } from '../train/sft';
import { encodeConversation, loadImages, packInOrder, toModelBatch, type ImageOptions } from '../model/encode';

/** The instruction the pre-training captions answer (cycle's pretrain stage). */
export const CAPTION_PROMPT = 'Describe this image.';

/** The fact a task's answer states about its image. */
const FACT_OF_TASK: Record<string, keyof CaptionFacts> = {
  'Modality Recognition': 'modality',
  'Anatomy Identification': 'anatomy',
  'Disease Diagnosis': 'disease',
  'Lesion Grading': 'grade',
};

/** The tasks whose answer states a fact of the image (factOfTask). */
export const FACT_TASKS: readonly string[] = Object.keys(FACT_OF_TASK);

/** Which fact of its image a task's answer states (undefined for tasks about something else, e.g. a count). */
export function factOfTask(task: string): keyof CaptionFacts | undefined {
  return FACT_OF_TASK[task];
}

/** The pre-training examples: each captioned image, asked to be described, with its caption as the reply. */
export function captionExamples(file: string): SftExample[] {
  if (!fs.existsSync(file)) return [];
  const root = path.dirname(path.resolve(file));
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((line, i) => {
      let rec: { image_path?: unknown; caption?: unknown };
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`${file}:${i + 1}: not a JSON object`);
      }
      if (typeof rec.image_path !== 'string' || typeof rec.caption !== 'string' || !rec.caption)
        throw new Error(`${file}:${i + 1}: expected {"image_path", "caption"}`);
      return { images: [path.resolve(root, rec.image_path)], user: CAPTION_PROMPT, reply: rec.caption };
    });
}

/** Per image (its first path): what the samples about it state, and the samples' modality field. */
export function imageFacts(samples: readonly Sample[]): Map<string, CaptionFacts> {
  const out = new Map<string, CaptionFacts>();
  for (const s of samples) {
    const key = s.images[0] ?? '';
    const f = out.get(key) ?? out.set(key, { modality: '', anatomy: '', disease: '' }).get(key)!;
    if (s.modality && !f.modality) f.modality = s.modality;
    const field = FACT_OF_TASK[s.task];
    if (field && s.answer) f[field] = s.answer;
  }
  return out;
}

/** The samples with their image's description as rationale (where they have none), worded as a caption. */
export function withDescriptions(samples: readonly Sample[]): Sample[] {
  const facts = imageFacts(samples);
  return samples.map((s) => {
    const f = facts.get(s.images[0] ?? '');
    if (s.rationale || !f) return s;
    // drawn per image (by file name: the run's folder must not change the draw), so every question
    // about an image comes with the same description
    return { ...s, rationale: captionText(f, new Prng(`describe/${path.basename(s.images[0] ?? '')}`)) };
  });
}

/** The facts factSwaps can swap: a grade is not (a grading sample gets no swapped copy). */
const SWAPPABLE = ['modality', 'anatomy', 'disease'] as const;
export type SwappableFact = (typeof SWAPPABLE)[number];
const isSwappable = (f: keyof CaptionFacts | undefined): f is SwappableFact =>
  (SWAPPABLE as readonly string[]).includes(f ?? '');

/**
 * One copy of each sample whose task states a fact, with the facts named in `fields` replaced by other
 * names from the option vocabulary of their tasks: in the description (the modality also in the hint)
 * and, where the sample's task asks for a swapped fact, in the answer. The image stays; for a swapped
 * fact only the description tells the answer.
 *
 * The default swaps the modality alone. Swapping the anatomy too taught the copy of the anatomy in some
 * runs (held-out pool images' anatomy right in 74 % of candidates) and, in others, with the same
 * settings but other draws, the opposite: with five swapped copies per original the answer is "not the
 * image's anatomy" five times in six, and a generator that has not found the copy learns exactly that
 * (2-14 % right, below chance). The modality, repeated in the hint line, is copied in every run.
 */
export function factSwaps(
  samples: readonly Sample[],
  vocabulary: Readonly<Record<string, readonly string[]>>,
  seed: number,
  fields: readonly SwappableFact[] = ['modality'],
): Sample[] {
  const facts = imageFacts(samples);
  const names: Record<SwappableFact, readonly string[]> = {
    modality: vocabulary['Modality Recognition'] ?? [],
    anatomy: vocabulary['Anatomy Identification'] ?? [],
    disease: vocabulary['Disease Diagnosis'] ?? [],
  };
  const out: Sample[] = [];
  for (const s of samples) {
    const field = FACT_OF_TASK[s.task];
    const f = facts.get(s.images[0] ?? '');
    if (!isSwappable(field) || !f) continue;
    const prng = new Prng(`fact-swap/${seed}/${s.id}`);
    const swap = (k: SwappableFact): string => {
      const others = names[k].filter((n) => n !== f[k]);
      return fields.includes(k) && f[k] && others.length ? prng.pick(others) : f[k];
    };
    // a grade the image's samples state stays in the description (it is never swapped)
    const g: CaptionFacts = {
      modality: swap('modality'),
      anatomy: swap('anatomy'),
      disease: swap('disease'),
      ...(f.grade ? { grade: f.grade } : {}),
    };
    if (g.modality === f.modality && g.anatomy === f.anatomy && g.disease === f.disease) continue;
    out.push({
      ...s,
      id: `${s.id}/swap-${seed}`,
      modality: g.modality,
      answer: g[field] || s.answer,
      rationale: captionText(g, prng),
    });
  }
  return out;
}

/** Greedy captions of the images by `model` (the pretrained weights), in order. */
export async function describeImages(
  model: Model,
  tok: TextTokenizer,
  images: readonly string[],
  opts: ImageOptions & {
    batchSize?: number;
    maxNewTokens?: number;
    progress?: (done: number, total: number) => void;
    /** Where the batches run (default: all here; the cycle's ranks split them). */
    runBatches?: BatchRunner;
    /** Tokens that end a reply (default <|im_end|> and <|endoftext|>). */
    stopTokens?: number[];
  } = {},
): Promise<string[]> {
  const batchSize = opts.batchSize ?? 64;
  return (opts.runBatches ?? runAllBatches)(images, batchSize, async (mine) => {
    const out: string[] = [];
    for (let b = 0; b < mine.length; b += batchSize) {
      const loaded = await loadImages(mine.slice(b, b + batchSize), opts);
      const { batch } = toModelBatch(packInOrder(loaded.map((img) => encodeConversation(tok, [img], CAPTION_PROMPT))));
      const gen = await model.generateBatch(batch, {
        maxNewTokens: opts.maxNewTokens ?? 32,
        temperature: 0,
        stopTokens: opts.stopTokens ?? [tok.special.imEnd, tok.special.endOfText],
      });
      for (const t of gen.tokens) out.push(tok.decode(t, { skipSpecial: true }).trim());
      opts.progress?.(out.length, mine.length);
    }
    return out;
  });
}
