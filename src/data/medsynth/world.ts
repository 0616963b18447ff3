// `medgr2 data synth`: writes a MedSynth world to a folder.
//
//   DIR/images/NNNNNN.png   labelled images          DIR/medsynth.jsonl  OmniMedVQA-format records
//   DIR/pool/NNNNNN.png     unlabelled images        DIR/pool.jsonl      {image_path, modality_hint}
//   DIR/captioned/NNNNNN.png captioned images       DIR/captions.jsonl  {image_path, caption} (noisy)
//   DIR/truth.jsonl         the ground truth of every image (all splits), for tests and checks
//   DIR/manifest.json       how the world was made (seed, counts, size, modalities, version)
//
// Deterministic: every image's content is a function of (seed, split, index) alone, PNGs are
// encoded with fixed options, JSON is written with fixed key order. Modalities are assigned in
// shuffled blocks, so each appears equally often (±1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { Prng } from '../../util/prng';
import { AnswerSlots, makeQuestions, type OmniRecord } from './questions';
import { captionFacts, captionText } from './captions';
import { renderImage } from './render';
import { sampleTruth, type ImageTruth } from './truth';
import { MODALITIES, type Modality } from './vocab';
import { writeFileAtomic } from '../../util/atomic_write';

export const MEDSYNTH_VERSION = 1;

export interface SynthOptions {
  out: string;
  count: number;
  seed: number;
  unlabelled?: number;
  /** Captioned images over all eight modalities (the pre-training stand-in, see captions.ts). */
  captioned?: number;
  /** Probability that a caption names a wrong modality, anatomy or finding (each on its own). */
  captionNoise?: number;
  /** Image side in pixels (a multiple of 28 keeps the model-side image unresized). */
  size?: number;
  modalities?: readonly Modality[];
  /** Called after each image with (done, total). */
  progress?: (done: number, total: number) => void;
}

export interface SynthSummary {
  images: number;
  records: number;
  pool: number;
  captioned: number;
  out: string;
}

/** PNG with fixed encoder options: same pixels, same bytes. */
export async function encodePng(rgb: Uint8Array, size: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false, progressive: false })
    .toBuffer();
}

function modalityPlan(n: number, mods: readonly Modality[], prng: Prng): Modality[] {
  const out: Modality[] = [];
  while (out.length < n) out.push(...prng.shuffle([...mods]));
  return out.slice(0, n);
}

/** Runs `fn` over 0..n-1 with at most `limit` in flight. */
async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

export async function synthesize(opts: SynthOptions): Promise<SynthSummary> {
  const { out, count, seed } = opts;
  const unlabelled = opts.unlabelled ?? 0;
  const captioned = opts.captioned ?? 0;
  const captionNoise = opts.captionNoise ?? 0;
  const size = opts.size ?? 112;
  const mods = opts.modalities ?? MODALITIES;
  if (!Number.isInteger(count) || count < 0) throw new Error(`--count: expected a whole number >= 0, got ${count}`);
  if (!Number.isInteger(unlabelled) || unlabelled < 0)
    throw new Error(`--unlabelled: expected a whole number >= 0, got ${unlabelled}`);
  if (!Number.isInteger(captioned) || captioned < 0)
    throw new Error(`--captioned: expected a whole number >= 0, got ${captioned}`);
  if (!(captionNoise >= 0 && captionNoise <= 1))
    throw new Error(`--caption-noise: expected a probability in [0, 1], got ${captionNoise}`);
  if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer, got ${seed}`);
  if (!Number.isInteger(size) || size < 56 || size > 1024)
    throw new Error(`--size: expected 56..1024 pixels, got ${size}`);
  if (mods.length === 0) throw new Error('--modalities: at least one modality');

  await fs.promises.mkdir(path.join(out, 'images'), { recursive: true });
  if (unlabelled > 0) await fs.promises.mkdir(path.join(out, 'pool'), { recursive: true });
  if (captioned > 0) await fs.promises.mkdir(path.join(out, 'captioned'), { recursive: true });

  const world = `medsynth/v${MEDSYNTH_VERSION}/seed${seed}`;
  const plan = modalityPlan(count, mods, new Prng(`${world}/labelled/modalities`));
  const poolPlan = modalityPlan(unlabelled, MODALITIES, new Prng(`${world}/pool/modalities`));
  const truths: ImageTruth[] = [];
  for (let i = 0; i < count; i++) {
    const name = String(i).padStart(6, '0');
    truths.push(sampleTruth(plan[i], size, `images/${name}.png`, 'labelled', `${world}/labelled/${i}`));
  }
  for (let i = 0; i < unlabelled; i++) {
    const name = String(i).padStart(6, '0');
    truths.push(sampleTruth(poolPlan[i], size, `pool/${name}.png`, 'pool', `${world}/pool/${i}`));
  }

  const captionPlan = modalityPlan(captioned, MODALITIES, new Prng(`${world}/captioned/modalities`));
  const captions: { image_path: string; caption: string }[] = [];
  for (let i = 0; i < captioned; i++) {
    const name = String(i).padStart(6, '0');
    const t = sampleTruth(captionPlan[i], size, `captioned/${name}.png`, 'captioned', `${world}/captioned/${i}`);
    truths.push(t);
    const prng = new Prng(`${world}/captioned/${i}/caption`);
    captions.push({ image_path: t.image_path, caption: captionText(captionFacts(t, captionNoise, prng), prng) });
  }

  // Questions in image order, with one stream for phrasing/distractors and balanced answer slots.
  const qPrng = new Prng(`${world}/questions`);
  const slots = new AnswerSlots(new Prng(`${world}/slots`));
  const records: OmniRecord[] = [];
  for (let i = 0; i < count; i++)
    records.push(...makeQuestions(truths[i], `medsynth-${seed}-${String(i).padStart(6, '0')}`, qPrng, slots));

  let done = 0;
  await pool(truths.length, 4, async (i) => {
    const t = truths[i];
    const png = await encodePng(renderImage(t), size);
    // Not one fsync per image: manifest.json is written last (atomically), and a world without it is
    // unfinished (the cycle's world stage is redone until its own manifest exists).
    await fs.promises.writeFile(path.join(out, t.image_path), png);
    opts.progress?.(++done, truths.length);
  });

  const jsonl = (rows: object[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
  await writeFileAtomic(path.join(out, 'medsynth.jsonl'), jsonl(records));
  await writeFileAtomic(path.join(out, 'truth.jsonl'), jsonl(truths));
  await writeFileAtomic(
    path.join(out, 'pool.jsonl'),
    jsonl(
      truths.filter((t) => t.split === 'pool').map((t) => ({ image_path: t.image_path, modality_hint: t.modality })),
    ),
  );
  if (captioned > 0) await writeFileAtomic(path.join(out, 'captions.jsonl'), jsonl(captions));
  const manifest = {
    dataset: 'MedSynth',
    version: MEDSYNTH_VERSION,
    seed,
    count,
    unlabelled,
    ...(captioned > 0 ? { captioned, captionNoise } : {}),
    size,
    modalities: mods,
    records: records.length,
  };
  await writeFileAtomic(path.join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return { images: count, records: records.length, pool: unlabelled, captioned, out };
}
