// The safetensors format on the TypeScript side: headers, index files and shard plans.
//
// A safetensors file is: 8 bytes (u64 little-endian) N, then N bytes of JSON
//   {"__metadata__": {str: str}?, "<tensor>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// then the data; offsets are relative to the first byte after the header. TypeScript reads and
// checks headers (there is no JSON library on the native side); the addon maps the file and makes
// tensors from (file, absolute offset, dtype, shape). See native/model/safetensors_io.h.
import { promises as fsp } from 'node:fs';
import type { DtypeName } from '../native/types';

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8';

/** Each safetensors dtype we read: its size and the addon's dtype name. */
export const SAFETENSORS_DTYPES: Readonly<Record<SafetensorsDtype, { bytes: number; native: DtypeName }>> = {
  F64: { bytes: 8, native: 'f64' },
  F32: { bytes: 4, native: 'f32' },
  F16: { bytes: 2, native: 'f16' },
  BF16: { bytes: 2, native: 'bf16' },
  I64: { bytes: 8, native: 'i64' },
  I32: { bytes: 4, native: 'i32' },
  U8: { bytes: 1, native: 'u8' },
};

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPES, s);
}

/** The safetensors dtype that stores a tensor of the addon's dtype `d`. */
export function safetensorsDtypeOf(d: DtypeName): SafetensorsDtype {
  for (const [k, v] of Object.entries(SAFETENSORS_DTYPES)) if (v.native === d) return k as SafetensorsDtype;
  throw new SafetensorsError(`no safetensors dtype for "${d}"`);
}

/** One tensor of a file: where its bytes are (absolute file offset) and what they hold. */
export interface TensorDescriptor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset in the file (8 + header length + data_offsets[0]). */
  offset: number;
  nbytes: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** N: the JSON header's length in bytes. */
  headerLength: number;
  /** 8 + N: where the data (offset 0 of data_offsets) starts. */
  dataStart: number;
  metadata: Record<string, string> | null;
  /** In the order of their data in the file. */
  tensors: TensorDescriptor[];
}

/** safetensors' own limit on the JSON header (a larger length means a corrupt or foreign file). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function shapeText(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The JSON header's length N from the first 8 bytes; checked against the file size. */
export function headerLengthOf(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new SafetensorsError(
      `${file}: not a safetensors file: ${fileSize} bytes, too short for the 8-byte header length`,
    );
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      `${file}: corrupt safetensors header: the header length (${n} bytes) is larger than the rest of the file ` +
        `(${fileSize - 8} bytes); the file is not safetensors or is cut short`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${file}: corrupt safetensors header: header length ${n} bytes exceeds the 100 MiB limit`,
    );
  }
  if (n < 2n)
    throw new SafetensorsError(
      `${file}: corrupt safetensors header: header length ${n} bytes is too small for a JSON object`,
    );
  return Number(n);
}

/**
 * Parses and checks a header. `headerJson` is the N bytes after the length; `fileSize` the file's
 * size (for bounds). Errors name the file and the tensor.
 */
export function parseSafetensorsHeader(headerJson: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerLength = headerJson.length;
  const dataStart = 8 + headerLength;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerJson));
  } catch (err) {
    throw new SafetensorsError(`${file}: corrupt safetensors header: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SafetensorsError(`${file}: corrupt safetensors header: expected a JSON object`);
  }
  const bad = (name: string, what: string) =>
    new SafetensorsError(`${file}: corrupt safetensors header: tensor "${name}": ${what}`);
  let metadata: Record<string, string> | null = null;
  const tensors: (TensorDescriptor & { begin: number; end: number })[] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (
        typeof entry !== 'object' ||
        entry === null ||
        Array.isArray(entry) ||
        !Object.values(entry).every((v) => typeof v === 'string')
      ) {
        throw new SafetensorsError(`${file}: corrupt safetensors header: "__metadata__" must map strings to strings`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      throw bad(name, 'expected {dtype, shape, data_offsets}');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isSafetensorsDtype(dtype)) {
      throw new SafetensorsError(
        `${file}: tensor "${name}" has unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(name, `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw bad(name, `data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const need = numel(shape as number[]) * SAFETENSORS_DTYPES[dtype].bytes;
    if (end - begin !== need) {
      throw bad(
        name,
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${shapeText(shape as number[])} of ${dtype} needs ${need}`,
      );
    }
    tensors.push({ name, dtype, shape: shape as number[], offset: dataStart + begin, nbytes: need, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < tensors.length; i++) {
    const p = tensors[i - 1];
    const c = tensors[i];
    if (c.begin < p.end) {
      throw new SafetensorsError(
        `${file}: corrupt safetensors header: tensors "${p.name}" (bytes ${p.begin}..${p.end}) and "${c.name}" (bytes ${c.begin}..${c.end}) overlap`,
      );
    }
  }
  const last = tensors.reduce<(typeof tensors)[number] | null>((m, t) => (m && m.end >= t.end ? m : t), null);
  if (last && dataStart + last.end > fileSize) {
    throw new SafetensorsError(
      `${file}: truncated: tensor "${last.name}" ends at byte ${dataStart + last.end} but the file has only ${fileSize} bytes ` +
        `(${dataStart + last.end - fileSize} missing); the file was cut short (an interrupted download or copy?)`,
    );
  }
  return {
    path: file,
    fileSize,
    headerLength,
    dataStart,
    metadata,
    tensors: tensors.map(({ name, dtype, shape, offset, nbytes }) => ({ name, dtype, shape, offset, nbytes })),
  };
}

/** Reads the header of a safetensors file (only the header: the data is mapped by the addon). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await fsp.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new SafetensorsError(`${file}: cannot open (${err.code ?? err.message})`);
  });
  try {
    const { size } = await fh.stat();
    const first = new Uint8Array(8);
    await fh.read(first, 0, Math.min(8, size), 0);
    const n = headerLengthOf(first, size, file);
    const json = new Uint8Array(n);
    const { bytesRead } = await fh.read(json, 0, n, 8);
    if (bytesRead !== n)
      throw new SafetensorsError(`${file}: truncated: the header ends after ${bytesRead} of ${n} bytes`);
    return parseSafetensorsHeader(json, size, file);
  } finally {
    await fh.close();
  }
}

export interface HeaderEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

export interface BuiltHeader {
  /** The complete prefix of the file: 8-byte length + JSON header padded with spaces to 8 bytes. */
  bytes: Uint8Array;
  /** The tensors in the order their data must be written, with absolute offsets. */
  tensors: TensorDescriptor[];
  fileSize: number;
}

/**
 * The header for `entries`. Data is laid out widest dtype first and the JSON padded to a multiple
 * of 8 bytes, so every tensor starts aligned to its element size (the reader maps tensors in place)
 * with no gaps between them (safetensors' own reader rejects gaps).
 */
export function buildSafetensorsHeader(
  entries: HeaderEntry[],
  metadata: Record<string, string> = { format: 'pt' },
): BuiltHeader {
  const order = entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => SAFETENSORS_DTYPES[b.e.dtype].bytes - SAFETENSORS_DTYPES[a.e.dtype].bytes || a.i - b.i)
    .map(({ e }) => e);
  const json: Record<string, unknown> = { __metadata__: metadata };
  const seen = new Set<string>();
  let pos = 0;
  const placed: { e: HeaderEntry; begin: number; nbytes: number }[] = [];
  for (const e of order) {
    if (seen.has(e.name)) throw new SafetensorsError(`tensor "${e.name}" appears twice`);
    seen.add(e.name);
    const nbytes = numel(e.shape) * SAFETENSORS_DTYPES[e.dtype].bytes;
    json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [pos, pos + nbytes] };
    placed.push({ e, begin: pos, nbytes });
    pos += nbytes;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const bytes = new Uint8Array(8 + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  const dataStart = 8 + body.length;
  return {
    bytes,
    tensors: placed.map(({ e, begin, nbytes }) => ({
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      offset: dataStart + begin,
      nbytes,
    })),
    fileSize: dataStart + pos,
  };
}

// ----- model.safetensors.index.json -----------------------------------------------------------

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface SafetensorsIndex {
  path: string;
  totalSize: number | null;
  /** Tensor name -> shard file name (in the index's folder). */
  weightMap: Map<string, string>;
}

export function parseSafetensorsIndex(json: unknown, file: string): SafetensorsIndex {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new SafetensorsError(`${file}: expected a JSON object`);
  const { metadata, weight_map: map } = json as Record<string, unknown>;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new SafetensorsError(
      `${file}: field "weight_map" must be an object mapping tensor names to shard files, got ${JSON.stringify(map)}`,
    );
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    // A shard is a file name in the same folder: nothing that could point elsewhere.
    if (
      typeof shard !== 'string' ||
      !shard.endsWith('.safetensors') ||
      shard.includes('/') ||
      shard.includes('\\') ||
      shard.startsWith('.')
    ) {
      throw new SafetensorsError(
        `${file}: field "weight_map.${name}" must name a .safetensors file in the same folder, got ${JSON.stringify(shard)}`,
      );
    }
    weightMap.set(name, shard);
  }
  let totalSize: number | null = null;
  if (metadata !== undefined && metadata !== null) {
    const t = (metadata as Record<string, unknown>).total_size;
    if (t !== undefined && !(typeof t === 'number' && Number.isSafeInteger(t) && t >= 0)) {
      throw new SafetensorsError(
        `${file}: field "metadata.total_size" must be a non-negative integer, got ${JSON.stringify(t)}`,
      );
    }
    totalSize = (t as number | undefined) ?? null;
  }
  return { path: file, totalSize, weightMap };
}

export async function readSafetensorsIndex(file: string): Promise<SafetensorsIndex> {
  const text = await fsp.readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseSafetensorsIndex(json, file);
}

/** The index file's text, as transformers writes it (names sorted, 2-space indent). */
export function formatSafetensorsIndex(totalSize: number, weightMap: Iterable<[string, string]>): string {
  const sorted = [...weightMap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return (
    JSON.stringify({ metadata: { total_size: totalSize }, weight_map: Object.fromEntries(sorted) }, null, 2) + '\n'
  );
}

// ----- shard planning ---------------------------------------------------------------------------

/** transformers' default max_shard_size, "5GB" (decimal: 5e9 bytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** A byte count from a number or a size like "5GB", "500MB", "2GiB" (decimal and binary units). */
export function parseByteSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!(Number.isFinite(size) && size > 0))
      throw new SafetensorsError(`maxShardBytes must be a positive number of bytes, got ${size}`);
    return Math.floor(size);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
  if (!m)
    throw new SafetensorsError(
      `maxShardBytes must be bytes or a size like "5GB" or "500MiB", got ${JSON.stringify(size)}`,
    );
  const unit = (m[2] ?? 'B').toUpperCase();
  const pow = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0] as 'B' | 'K' | 'M' | 'G' | 'T'];
  const base = unit.includes('I') ? 1024 : 1000;
  const bytes = Math.floor(parseFloat(m[1]) * base ** pow);
  if (bytes <= 0) throw new SafetensorsError(`maxShardBytes must be positive, got ${JSON.stringify(size)}`);
  return bytes;
}

export interface ShardPlan {
  file: string;
  names: string[];
  bytes: number;
}

/**
 * Splits tensors (in order) into shards of at most `maxShardBytes` of data each, as transformers
 * does: a new shard starts when the next tensor would overflow the current one; a tensor larger
 * than the limit gets a shard of its own. One shard is named model.safetensors, several
 * model-00001-of-0000N.safetensors.
 */
export function planShards(
  entries: { name: string; nbytes: number }[],
  maxShardBytes: number = DEFAULT_MAX_SHARD_BYTES,
): ShardPlan[] {
  const shards: { names: string[]; bytes: number }[] = [];
  let cur: { names: string[]; bytes: number } | null = null;
  for (const e of entries) {
    if (!cur || (cur.names.length > 0 && cur.bytes + e.nbytes > maxShardBytes)) {
      cur = { names: [], bytes: 0 };
      shards.push(cur);
    }
    cur.names.push(e.name);
    cur.bytes += e.nbytes;
  }
  if (shards.length === 0) shards.push({ names: [], bytes: 0 });
  const n = shards.length;
  const pad = (k: number) => String(k).padStart(5, '0');
  return shards.map((s, i) => ({ ...s, file: n === 1 ? SINGLE_FILE : `model-${pad(i + 1)}-of-${pad(n)}.safetensors` }));
}
