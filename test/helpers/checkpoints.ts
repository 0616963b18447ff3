// Test helpers for model folders: random parameters for a config, a pure-TypeScript safetensors
// encoder (for hand-made and deliberately broken files), raw bytes of tensors for bit-exact checks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../../src/native/model_config';
import { expectedParameters } from '../../src/model/parameters';
import { SAFETENSORS_DTYPES, type SafetensorsDtype } from '../../src/model/safetensors';
import type { AnyTypedArray, DtypeName, Tensor } from '../../src/native/types';
import { addon } from './addon';
import { rng } from './numeric';

export const repoConfigs = path.resolve(__dirname, '..', '..', '..', 'configs', 'models');

/** Random finite values of `dtype` for `n` elements (bf16/f16 as raw bits with a tame exponent). */
export function randomArray(dtype: DtypeName, n: number, rand: () => number): AnyTypedArray {
  switch (dtype) {
    case 'f32': {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (rand() - 0.5) * 0.2;
      return a;
    }
    case 'f64': {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = (rand() - 0.5) * 0.2;
      return a;
    }
    case 'bf16': {
      const a = new Uint16Array(n);
      // sign | exponent 110..133 | 7 mantissa bits
      for (let i = 0; i < n; i++)
        a[i] = ((rand() < 0.5 ? 1 : 0) << 15) | ((110 + Math.floor(rand() * 24)) << 7) | Math.floor(rand() * 128);
      return a;
    }
    case 'f16': {
      const a = new Uint16Array(n);
      // sign | exponent 5..20 | 10 mantissa bits
      for (let i = 0; i < n; i++)
        a[i] = ((rand() < 0.5 ? 1 : 0) << 15) | ((5 + Math.floor(rand() * 16)) << 10) | Math.floor(rand() * 1024);
      return a;
    }
    default:
      throw new Error(`randomArray: ${dtype} not supported`);
  }
}

/** A random tensor for every parameter of `cfg` (hub names), all of `dtype` unless `dtypeOf` says otherwise. */
export function randomTensors(
  cfg: ModelConfig,
  {
    seed = 1,
    dtype = 'f32',
    dtypeOf,
  }: { seed?: number; dtype?: DtypeName; dtypeOf?: (name: string) => DtypeName } = {},
): Map<string, Tensor> {
  const rand = rng(seed);
  const out = new Map<string, Tensor>();
  for (const spec of expectedParameters(cfg)) {
    const d = dtypeOf ? dtypeOf(spec.name) : dtype;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    out.set(spec.name, new addon.Tensor(randomArray(d, n, rand), spec.shape, { dtype: d }));
  }
  return out;
}

/** The raw bytes of a tensor (a copy), for bit-exact comparison. */
export function tensorBytes(t: Tensor): Uint8Array {
  const a = t.toArray();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/**
 * A safetensors file as bytes, written independently of src/model/safetensors.ts (the code under
 * test): entries in the order given, offsets consecutive. `mutate` may edit the header object.
 */
export function encodeSafetensors(entries: RawEntry[], mutate?: (header: Record<string, unknown>) => void): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let pos = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [pos, pos + e.data.length] };
    pos += e.data.length;
  }
  mutate?.(header);
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += ' ';
  const out = new Uint8Array(8 + json.length + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(Buffer.from(json, 'utf8'), 8);
  let at = 8 + json.length;
  for (const e of entries) {
    out.set(e.data, at);
    at += e.data.length;
  }
  return out;
}

/** Raw entries (bytes) for `tensors`, renamed by `rename`. */
export function rawEntries(tensors: Map<string, Tensor>, rename: (n: string) => string = (n) => n): RawEntry[] {
  const dt: Record<string, SafetensorsDtype> = { f32: 'F32', bf16: 'BF16', f16: 'F16', f64: 'F64' };
  return [...tensors].map(([name, t]) => ({
    name: rename(name),
    dtype: dt[t.dtype],
    shape: t.shape,
    data: tensorBytes(t),
  }));
}

/** A model folder written by hand: config.json plus one safetensors file of `entries`. */
export function writeFolder(dir: string, config: unknown, entries: RawEntry[], file = 'model.safetensors'): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  fs.writeFileSync(path.join(dir, file), encodeSafetensors(entries));
}

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

export { SAFETENSORS_DTYPES };
