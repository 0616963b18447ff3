// `medgr2 data import`: reads files in any supported format, checks every record, and returns the
// good ones as canonical Samples with a report of the bad ones (file, line, reason) and a summary.
import * as path from 'node:path';
import { detectFormat, importerFor } from './importers';
import { MODALITIES, normalizeModality, normalizeTask, OTHER, TASKS } from './importers/normalize';
import { matchOption, normalizeAnswerText } from './answer_grammar';
import { readSourceRecords } from './importers/source';
import { BadRecordError, type ImportFormat, type Importer, type RawSample, type SourceObject } from './importers/types';
import type { Sample } from './proto';

export interface ImportOptions {
  /** Skip detection and read every file as this format. */
  format?: ImportFormat;
  /** Relative image paths are resolved against this folder. */
  imagesRoot?: string;
  /** Throw on the first bad record instead of reporting it and going on. */
  strict?: boolean;
  /** Drop later copies of a sample (same images + question) instead of only counting them. */
  dedupe?: boolean;
  onProgress?: (message: string) => void;
  progressEvery?: number;
}

export interface BadRecord {
  file: string;
  line: number;
  reason: string;
}

export interface FileSummary {
  file: string;
  format: ImportFormat | 'unknown';
  records: number;
  imported: number;
  bad: number;
}

export interface ImportSummary {
  files: FileSummary[];
  records: number;
  imported: number;
  bad: number;
  /** Records whose images + question repeat an earlier record's. */
  duplicates: number;
  /** Duplicates left out (only with `dedupe`). */
  dropped: number;
  /** Records without a modality that got the one shared by the rest of their dataset. */
  modalityInferred: number;
}

export interface ImportResult {
  samples: Sample[];
  bad: BadRecord[];
  summary: ImportSummary;
}

export function formatBadRecord(b: BadRecord): string {
  return `${b.file}:${b.line}: ${b.reason}`;
}

/** OmniMedVQA paths look like "Images/<dataset>/...": the dataset when the record does not name one. */
function datasetFromImagePath(p: string): string | undefined {
  const m = /(?:^|\/)Images\/([^/]+)\//.exec(p.replace(/\\/g, '/'));
  return m ? m[1] : undefined;
}

function known(names: readonly string[], name: string | undefined): string | undefined {
  return name !== undefined && (names.includes(name) || name === OTHER) ? name : undefined;
}

function describeOptions(options: readonly string[]): string {
  return options.map((o, i) => `${String.fromCharCode(65 + i)}) ${o}`).join(', ');
}

/** The checks every format shares; throws BadRecordError with the reason. */
function finishSample(raw: RawSample, file: string, line: number, format: ImportFormat, imagesRoot?: string): Sample {
  if (raw.options.length < 2) throw new BadRecordError(`needs at least two options, has ${raw.options.length}`);
  const empty = raw.options.findIndex((o) => o.length === 0);
  if (empty >= 0) throw new BadRecordError(`option ${String.fromCharCode(65 + empty)} is empty`);
  const answerIndex = matchOption(raw.answer, raw.options);
  if (answerIndex === undefined) {
    throw new BadRecordError(`answer '${raw.answer}' is not one of the options (${describeOptions(raw.options)})`);
  }
  const images = raw.images.map((p) => (imagesRoot && !path.isAbsolute(p) ? path.resolve(imagesRoot, p) : p));
  const modalityOriginal = raw.modality ?? '';
  const taskOriginal = raw.task ?? '';
  return {
    id: raw.id ?? `${path.basename(file)}:${line}`,
    dataset: raw.dataset ?? datasetFromImagePath(raw.images[0]) ?? '',
    images,
    modality: known(MODALITIES, raw.modalityName) ?? normalizeModality(modalityOriginal),
    modalityOriginal,
    task: known(TASKS, raw.taskName) ?? normalizeTask(taskOriginal),
    taskOriginal,
    question: raw.question,
    options: raw.options,
    answer: raw.options[answerIndex],
    rationale: raw.rationale ?? '',
    provenance: { kind: 'IMPORTED', round: 0, sourceFile: file, sourceLine: line, sourceFormat: format },
    questionStem: raw.questionStem ?? '',
  };
}

function contentKey(s: Sample): string {
  return `${s.images.join('\u0000')}\u0001${normalizeAnswerText(s.question)}`;
}

/** A record without a modality takes the one every other record of its dataset has (if they agree):
 *  OmniMedVQA's "Chest CT Scan" has one record with `modality_type: null` among CT records. */
function inferMissingModalities(samples: Sample[]): number {
  const byDataset = new Map<string, Set<string>>();
  for (const s of samples) {
    if (!s.modalityOriginal || s.modality === OTHER) continue;
    let set = byDataset.get(s.dataset);
    if (!set) byDataset.set(s.dataset, (set = new Set()));
    set.add(s.modality);
  }
  let inferred = 0;
  for (const s of samples) {
    if (s.modalityOriginal || !s.dataset) continue;
    const set = byDataset.get(s.dataset);
    if (set && set.size === 1) {
      s.modality = [...set][0];
      inferred++;
    }
  }
  return inferred;
}

/** Why no importer took a file, naming the fields its first record has (often: no options). */
function undetectedFormatReason(values: readonly unknown[]): string {
  const first = values.find((v) => typeof v === 'object' && v !== null && !Array.isArray(v)) as
    SourceObject | undefined;
  const base =
    "cannot tell the format (no record looks like OmniMedVQA, the MedGR² authors' JSONL, R1-V, LLaVA or medgr2 JSONL)";
  if (!first) return `${base}: no JSON object records`;
  const fields = Object.keys(first).join(', ');
  const hasOptions =
    Object.keys(first).some((k) => /^option/.test(k)) ||
    /choose one of the following/i.test(String(first.question ?? ''));
  return `${base}; the first record has fields ${fields}${hasOptions ? '' : ' and no answer options (option_A…, options[], or a "Please choose one of the following: …" list)'}: pass --format if it is one of these`;
}

export function importFiles(files: readonly string[], opts: ImportOptions = {}): ImportResult {
  const samples: Sample[] = [];
  const bad: BadRecord[] = [];
  const fileSummaries: FileSummary[] = [];
  const byId = new Map<string, { where: string; key: string }>();
  const seenContent = new Set<string>();
  let duplicates = 0;
  let dropped = 0;
  let records = 0;
  const every = opts.progressEvery ?? 5000;

  const reject = (b: BadRecord, fs: FileSummary): void => {
    if (opts.strict) throw new Error(`${formatBadRecord(b)} (--strict: stopping at the first bad record)`);
    bad.push(b);
    fs.bad++;
  };

  for (const file of files) {
    const source = readSourceRecords(file);
    const importer: Importer | undefined = opts.format
      ? importerFor(opts.format)
      : detectFormat(source.values.map((v) => v.value));
    const fsum: FileSummary = { file, format: importer?.format ?? 'unknown', records: 0, imported: 0, bad: 0 };
    fileSummaries.push(fsum);
    if (!importer) throw new Error(`${file}: ${undetectedFormatReason(source.values.map((v) => v.value))}`);
    // Parse errors and records interleave by line, so report them in file order.
    const items = [
      ...source.errors.map((e) => ({ line: e.line, error: e.reason, value: undefined as unknown })),
      ...source.values.map((v) => ({ line: v.line, error: undefined as string | undefined, value: v.value })),
    ].sort((a, b) => a.line - b.line);
    for (const item of items) {
      records++;
      fsum.records++;
      if (records % every === 0) opts.onProgress?.(`import: ${records} records read (${file})`);
      if (item.error !== undefined) {
        reject({ file, line: item.line, reason: item.error }, fsum);
        continue;
      }
      const v = item.value;
      let sample: Sample;
      try {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRecordError('not a JSON object');
        sample = finishSample(importer.convert(v as SourceObject), file, item.line, importer.format, opts.imagesRoot);
      } catch (err) {
        if (!(err instanceof BadRecordError)) throw err;
        reject({ file, line: item.line, reason: err.message }, fsum);
        continue;
      }
      const key = contentKey(sample);
      const where = `${file}:${item.line}`;
      const prior = byId.get(sample.id);
      if (prior && prior.key !== key) {
        reject(
          {
            file,
            line: item.line,
            reason: `id '${sample.id}' is already used by a different record at ${prior.where}`,
          },
          fsum,
        );
        continue;
      }
      if (seenContent.has(key)) {
        duplicates++;
        if (opts.dedupe) {
          dropped++;
          continue;
        }
      }
      seenContent.add(key);
      if (!prior) byId.set(sample.id, { where, key });
      samples.push(sample);
      fsum.imported++;
    }
  }
  const modalityInferred = inferMissingModalities(samples);
  return {
    samples,
    bad,
    summary: {
      files: fileSummaries,
      records,
      imported: samples.length,
      bad: bad.length,
      duplicates,
      dropped,
      modalityInferred,
    },
  };
}
