// The data generator: image (+ the target modality and task) → one multiple-choice sample as JSON.
// Every reply becomes a Candidate; a reply that does not make a usable sample is kept too, marked
// invalid with the reason (the cycle reports the generator's validity rate from them).
import { runAllBatches, type BatchRunner } from '../util/batch_runner';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { normalizeAnswerText } from '../data/answer_grammar';
import { Prng } from '../util/prng';
import type { Candidate, Sample } from '../data/proto';
import type { TextTokenizer } from '../data/tokenizer';
import type { Model } from '../model/model';
import { encodeConversation, loadImages, packInOrder, toModelBatch, type ImageOptions } from '../model/encode';
import { GENERATOR_INSTRUCTION } from './prompts';

/** An unlabelled image with what the pool says about it. */
export interface PoolImage {
  /** Path of the image file (absolute, or relative to the pool file's folder). */
  image: string;
  /** The modality the pool names for it ("" when none). */
  modality: string;
  /** What the pretrained model says the image shows (describe.ts), when the run has described it. */
  description?: string;
}

/** The generator's user turn: the instruction, then the target modality and task, and the image's
 *  description (describe.ts). */
export function generatorPrompt(hint: { modality: string; task: string; description?: string }): string {
  const lines = [GENERATOR_INSTRUCTION];
  if (hint.modality) lines.push(`Modality: ${hint.modality}`);
  if (hint.task) lines.push(`Task: ${hint.task}`);
  if (hint.description) lines.push(`Description: ${hint.description}`);
  return lines.join('\n');
}

/**
 * The compact reply (`{"q": question, "a": answer}`): the generator writes the question and its
 * answer; the three distractors are drawn from the seed's option vocabulary for the task (see
 * parseGeneratorReply). A tiny generator writing four options itself repeated one in two of three
 * replies, at any temperature.
 */
export function compactGeneratorReply(sample: Pick<Sample, 'question' | 'questionStem' | 'answer'>): string {
  return JSON.stringify({ q: sample.questionStem || sample.question, a: sample.answer });
}

/** The option strings of the seed per task: where compact replies draw their distractors from. */
export function optionVocabulary(seed: readonly Pick<Sample, 'task' | 'options'>[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const s of seed) for (const o of s.options) (out[s.task] ??= new Set()).add(o);
  return Object.fromEntries(Object.entries(out).map(([t, v]) => [t, [...v].sort()]));
}

/** The reply the generator is fine-tuned to write for a sample (the same JSON shape it must parse). */
export function generatorReply(
  sample: Pick<Sample, 'question' | 'questionStem' | 'options' | 'answer' | 'rationale' | 'modality'>,
): string {
  const rationale = sample.rationale || `The ${sample.modality} image shows ${sample.answer}.`;
  return JSON.stringify({
    question: sample.questionStem || sample.question,
    options: sample.options,
    answer: sample.answer,
    rationale,
  });
}

/** What a seed sample looks like to the copy check: question, options in order and answer, normalized. */
export function seedCopyKey(s: Pick<Sample, 'question' | 'questionStem' | 'options' | 'answer'>): string {
  return [s.questionStem || s.question, ...s.options, s.answer].map(normalizeAnswerText).join('\u0001');
}

export interface ParseContext {
  id: string;
  image: string;
  modality: string;
  task: string;
  round: number;
  /** seedCopyKey of every seed sample: a candidate equal to one of them is a copy, not new data. */
  seedKeys?: ReadonlySet<string>;
  /** The image's description the generator was given (kept as the sample's rationale). */
  description?: string;
  /** Option vocabulary per task (optionVocabulary): completes a compact reply's options. */
  vocabulary?: Readonly<Record<string, readonly string[]>>;
}

function emptySample(ctx: ParseContext): Sample {
  return {
    id: ctx.id,
    dataset: 'MedGR2-generated',
    images: [ctx.image],
    modality: ctx.modality,
    modalityOriginal: ctx.modality,
    task: ctx.task,
    taskOriginal: ctx.task,
    question: '',
    options: [],
    answer: '',
    rationale: '',
    provenance: { kind: 'GENERATED', round: ctx.round, sourceFile: '', sourceLine: 0, sourceFormat: 'generator' },
    questionStem: '',
  };
}

/** The first balanced {...} of the text (a reply may carry words around its JSON). */
function jsonObjectText(raw: string): string | undefined {
  const start = raw.indexOf('{');
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < raw.length; i++) {
    const c = raw[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return raw.slice(start, i + 1);
  }
  return undefined;
}

/**
 * One generator reply → a Candidate. Valid when it parses as one JSON object with a non-empty
 * "question", exactly four distinct non-empty "options" (compared normalized), an "answer" that is
 * one of them (its text, or its letter A–D), and it is not a copy of a seed sample (same question,
 * options in the same order and answer). "rationale" is optional.
 */
export function parseGeneratorReply(raw: string, ctx: ParseContext): Candidate {
  const sample = emptySample(ctx);
  const invalid = (reason: string): Candidate => ({
    sample,
    generatorRound: ctx.round,
    valid: false,
    invalidReason: reason,
    raw,
  });
  const text = jsonObjectText(raw);
  if (text === undefined) return invalid('no JSON object in the reply');
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    return invalid(`not parseable JSON (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return invalid('the JSON is not an object');
  const o = obj as Record<string, unknown>;
  if (o.question === undefined && o.q !== undefined) o.question = o.q;
  if (o.answer === undefined && o.a !== undefined) o.answer = o.a;
  if (o.options === undefined && ctx.vocabulary && typeof o.answer === 'string' && o.answer.trim()) {
    // a compact reply: three distractors from the seed's options for the task, the answer in a drawn slot
    const vocab = ctx.vocabulary[ctx.task] ?? [];
    const a = o.answer.trim();
    if (!vocab.some((v) => normalizeAnswerText(v) === normalizeAnswerText(a))) {
      if (typeof o.question === 'string') sample.question = sample.questionStem = o.question.trim();
      return invalid(`"answer" is not in the seed's vocabulary for ${ctx.task}`);
    }
    const prng = new Prng(`generator-options/${ctx.id}`);
    const distractors = prng
      .shuffle(vocab.filter((v) => normalizeAnswerText(v) !== normalizeAnswerText(a)))
      .slice(0, 3);
    if (distractors.length < 3) return invalid(`the seed's vocabulary for ${ctx.task} has fewer than four options`);
    const slot = Math.floor(prng.next() * 4);
    o.options = [...distractors.slice(0, slot), a, ...distractors.slice(slot)];
  }
  if (typeof o.question !== 'string' || !o.question.trim()) return invalid('"question" missing or empty');
  sample.question = sample.questionStem = o.question.trim();
  if (!Array.isArray(o.options)) return invalid('"options" missing or not a list');
  if (o.options.length !== 4) return invalid(`"options" has ${o.options.length} entries, expected 4`);
  if (o.options.some((x) => typeof x !== 'string' || !x.trim())) return invalid('an option is empty or not a string');
  sample.options = (o.options as string[]).map((x) => x.trim());
  if (new Set(sample.options.map(normalizeAnswerText)).size !== 4) return invalid('options are not distinct');
  if (typeof o.answer !== 'string' || !o.answer.trim()) return invalid('"answer" missing or empty');
  const a = o.answer.trim();
  let k = sample.options.findIndex((x) => normalizeAnswerText(x) === normalizeAnswerText(a));
  if (k < 0 && /^[A-Da-d]$/.test(a)) k = a.toUpperCase().charCodeAt(0) - 65;
  if (k < 0) return invalid('"answer" is not one of the options');
  sample.answer = sample.options[k];
  if (typeof o.rationale === 'string') sample.rationale = o.rationale.trim();
  else if (ctx.description) sample.rationale = ctx.description;
  if (ctx.seedKeys?.has(seedCopyKey(sample))) return invalid('copied verbatim from the seed set');
  return { sample, generatorRound: ctx.round, valid: true, invalidReason: '', raw };
}

/** Reads a pool: a folder of images (no hints), or a pool.jsonl of {image_path, modality_hint,
 *  description?} (description: what a pretrained model says the image shows, as describe-pool writes). */
export function readPool(poolPath: string): PoolImage[] {
  if (!fs.existsSync(poolPath))
    throw new Error(`${poolPath}: no such pool (expected a folder of images or a pool.jsonl)`);
  if (fs.statSync(poolPath).isDirectory()) {
    const jsonl = path.join(poolPath, 'pool.jsonl');
    if (fs.existsSync(jsonl)) return readPool(jsonl);
    const files = fs
      .readdirSync(poolPath)
      .filter((f) => /\.(png|jpe?g|bmp|tiff?|dcm)$/i.test(f))
      .sort();
    if (files.length === 0) throw new Error(`${poolPath}: no images in the pool folder`);
    return files.map((f) => ({ image: path.resolve(poolPath, f), modality: '' }));
  }
  const root = path.dirname(path.resolve(poolPath));
  const out: PoolImage[] = [];
  fs.readFileSync(poolPath, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        throw new Error(`${poolPath}:${i + 1}: not a JSON object`);
      }
      const img = rec.image_path ?? rec.image;
      if (typeof img !== 'string' || !img) throw new Error(`${poolPath}:${i + 1}: missing 'image_path'`);
      const hint = rec.modality_hint ?? rec.modality ?? '';
      if (rec.description !== undefined && typeof rec.description !== 'string')
        throw new Error(`${poolPath}:${i + 1}: 'description' must be a string`);
      out.push({
        image: path.isAbsolute(img) ? img : path.join(root, img),
        modality: typeof hint === 'string' ? hint : '',
        ...(rec.description ? { description: rec.description as string } : {}),
      });
    });
  if (out.length === 0) throw new Error(`${poolPath}: empty pool`);
  return out;
}

export interface GenerateOptions extends ImageOptions {
  /** Candidates per image. */
  perImage: number;
  temperature: number;
  topP: number;
  /** Top-k sampling (0 or absent: off). */
  topK?: number;
  /** HF's repetition penalty (absent: 1, off). */
  repetitionPenalty?: number;
  /** Tasks to ask for, with weights ({"Disease Diagnosis": 2, ...}); drawn per candidate. */
  taskMix: Record<string, number>;
  seed: number;
  /** Prompts per generateBatch call. */
  batchSize: number;
  round: number;
  maxNewTokens?: number;
  seedKeys?: ReadonlySet<string>;
  vocabulary?: Readonly<Record<string, readonly string[]>>;
  /** Called after each batch with (done, total) candidates. */
  progress?: (done: number, total: number) => void;
  /** Where the batches run (default: all here; the cycle's ranks split them). */
  runBatches?: BatchRunner;
  /** The user turn of a job (default generatorPrompt: the default recipe's compact instruction). */
  prompt?: (ctx: ParseContext) => string;
  /** A reply → a Candidate (default parseGeneratorReply). */
  parse?: (raw: string, ctx: ParseContext) => Candidate;
  /** Tokens that end a reply (default <|im_end|> and <|endoftext|>). */
  stopTokens?: number[];
}

function drawTask(mix: Record<string, number>, prng: Prng): string {
  const entries = Object.entries(mix).filter(([, w]) => w > 0);
  if (entries.length === 0) throw new Error('generate: the task mix is empty');
  const total = entries.reduce((s, [, w]) => s + w, 0);
  let u = prng.next() * total;
  for (const [t, w] of entries) if ((u -= w) < 0) return t;
  return entries[entries.length - 1][0];
}

/** K candidates per pool image, in pool order (image i's k-th candidate has id g{round}-{i}-{k}). */
export async function generateCandidates(
  generator: Model,
  tok: TextTokenizer,
  pool: readonly PoolImage[],
  opts: GenerateOptions,
): Promise<Candidate[]> {
  const jobs: { index: number; img: number; ctx: ParseContext }[] = [];
  pool.forEach((p, i) => {
    for (let k = 0; k < opts.perImage; k++) {
      const task = drawTask(opts.taskMix, new Prng(`generate/${opts.seed}/${opts.round}/${i}/${k}`));
      jobs.push({
        index: jobs.length,
        img: i,
        ctx: {
          id: `g${opts.round}-${i}-${k}`,
          image: p.image,
          modality: p.modality,
          task,
          description: p.description,
          round: opts.round,
          seedKeys: opts.seedKeys,
          vocabulary: opts.vocabulary,
        },
      });
    }
  });
  const stop = opts.stopTokens ?? [tok.special.imEnd, tok.special.endOfText];
  const prompt = opts.prompt ?? generatorPrompt;
  const parse = opts.parse ?? parseGeneratorReply;
  const raws = await (opts.runBatches ?? runAllBatches)(jobs, opts.batchSize, async (mine) => {
    const out: string[] = [];
    for (let b = 0; b < mine.length; b += opts.batchSize) {
      const chunk = mine.slice(b, b + opts.batchSize);
      const uniq = [...new Set(chunk.map((j) => j.img))];
      const loaded = await loadImages(
        uniq.map((i) => pool[i].image),
        opts,
      );
      const imgOf = new Map(uniq.map((i, n) => [i, loaded[n]]));
      const prompts = chunk.map((j) => encodeConversation(tok, [imgOf.get(j.img)!], prompt(j.ctx)));
      const { batch } = toModelBatch(packInOrder(prompts));
      const gen = await generator.generateBatch(batch, {
        maxNewTokens: opts.maxNewTokens ?? 96,
        temperature: opts.temperature,
        topP: opts.topP,
        topK: opts.topK || undefined,
        repetitionPenalty: opts.repetitionPenalty,
        // the batch's offset in the whole job list (not in this rank's share): the same seed on any rank
        seed: opts.seed * 1000003 + opts.round * 7919 + chunk[0].index,
        stopTokens: stop,
      });
      chunk.forEach((_, n) => out.push(tok.decode(gen.tokens[n], { skipSpecial: true })));
      opts.progress?.(out.length, mine.length);
    }
    return out;
  });
  const vocabulary =
    opts.vocabulary &&
    roundVocabulary(
      opts.vocabulary,
      raws.map((raw, i) => ({ raw, task: jobs[i].ctx.task })),
    );
  return raws.map((raw, i) => parse(raw, { ...jobs[i].ctx, vocabulary }));
}

/** The answer a reply proposes ("a" or "answer"), or undefined when it has none. */
export function proposedAnswer(raw: string): string | undefined {
  const text = jsonObjectText(raw);
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    const a = o?.a ?? o?.answer;
    return typeof a === 'string' && a.trim() ? a.trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The seed's option vocabulary, widened by the round's own answers: an answer proposed by at least
 * `minCount` replies for a task joins that task's options, unless the seed uses it for another task
 * (then it is the wrong kind of answer: an organ given for a modality question). Without this, an
 * image of a modality the seed never showed could only ever get the seed's names for its findings.
 */
export function roundVocabulary(
  seedVocabulary: Readonly<Record<string, readonly string[]>>,
  replies: readonly { raw: string; task: string }[],
  minCount = 2,
): Record<string, string[]> {
  const taskOf = new Map<string, Set<string>>();
  for (const [task, words] of Object.entries(seedVocabulary)) {
    for (const w of words) {
      const key = normalizeAnswerText(w);
      (taskOf.get(key) ?? taskOf.set(key, new Set()).get(key)!).add(task);
    }
  }
  const counts = new Map<string, Map<string, { text: string; n: number }>>();
  for (const { raw, task } of replies) {
    const a = proposedAnswer(raw);
    if (a === undefined) continue;
    const key = normalizeAnswerText(a);
    const perTask = counts.get(task) ?? counts.set(task, new Map()).get(task)!;
    const c = perTask.get(key) ?? perTask.set(key, { text: a, n: 0 }).get(key)!;
    c.n++;
  }
  const out: Record<string, string[]> = Object.fromEntries(Object.entries(seedVocabulary).map(([t, v]) => [t, [...v]]));
  for (const [task, perTask] of counts) {
    const words = (out[task] ??= []);
    const known = new Set(words.map(normalizeAnswerText));
    for (const [key, { text, n }] of [...perTask].sort((x, y) => x[0].localeCompare(y[0]))) {
      if (n < minCount || known.has(key)) continue;
      const elsewhere = taskOf.get(key);
      if (elsewhere && !elsewhere.has(task)) continue;
      words.push(text);
      known.add(key);
    }
    words.sort();
  }
  return out;
}
