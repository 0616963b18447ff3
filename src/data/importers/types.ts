// What every importer turns one source record into, before the shared checks (answer among options,
// modality/task normalization, ids, image paths) make it a Sample.

export const IMPORT_FORMATS = ['omnimedvqa', 'medgr2-authors', 'r1v', 'llava', 'medgr2-jsonl'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export interface RawSample {
  id?: string;
  dataset?: string;
  images: string[];
  modality?: string;
  task?: string;
  question: string;
  /** The question without its list of options, when the importer found one. */
  questionStem?: string;
  options: string[];
  /** As written: an option's text or a letter naming one; resolved by the driver. */
  answer: string;
  rationale?: string;
  /** Already-normalized names (medgr2's own files), used instead of normalizing the originals. */
  modalityName?: string;
  taskName?: string;
}

export type SourceObject = Record<string, unknown>;

export interface Importer {
  format: ImportFormat;
  /** Does this record look like this format? (Used on a file's first records to pick the format.) */
  matches(rec: SourceObject): boolean;
  /** Converts one record; throws BadRecordError with the reason when it cannot. */
  convert(rec: SourceObject): RawSample;
}

/** A source record that cannot be imported; the driver adds the file and line. */
export class BadRecordError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'BadRecordError';
  }
}

/** A string field: trimmed; missing/empty -> undefined, or an error when `required`. Numbers are
 *  accepted as their decimal text (ids are sometimes numeric). */
export function stringField(rec: SourceObject, key: string, required: true): string;
export function stringField(rec: SourceObject, key: string, required?: false): string | undefined;
export function stringField(rec: SourceObject, key: string, required = false): string | undefined {
  const v = rec[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new BadRecordError(`field '${key}' is missing`);
    return undefined;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw new BadRecordError(`field '${key}' must be a string, got ${typeof v}`);
  const t = v.trim();
  if (!t && required) throw new BadRecordError(`field '${key}' is empty`);
  return t || undefined;
}

/** First of several alternative names that is present. */
export function firstStringField(rec: SourceObject, keys: readonly string[]): string | undefined {
  for (const k of keys) {
    const v = stringField(rec, k);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** An image field that may be one path or a list of paths. */
export function imagesField(rec: SourceObject, keys: readonly string[]): string[] {
  for (const k of keys) {
    const v = rec[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v === 'string') return [v.trim()];
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.trim() !== '')) {
      return (v as string[]).map((x) => x.trim());
    }
    throw new BadRecordError(`field '${k}' must be an image path or a list of paths`);
  }
  throw new BadRecordError(`no image: expected field '${keys[0]}'`);
}

/** A list of option strings. */
export function optionsArray(rec: SourceObject, key: string): string[] | undefined {
  const v = rec[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new BadRecordError(`field '${key}' must be a list of option texts`);
  return v.map((o, i) => {
    if (typeof o === 'number') return String(o);
    if (typeof o !== 'string') throw new BadRecordError(`${key}[${i}] must be a string`);
    return o.trim();
  });
}
