// Reading what a training run wrote, for tests that compare two runs: the final weights.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The float32 tensors of a single-file safetensors model. */
export function readF32Safetensors(file: string): Map<string, Float32Array> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const out = new Map<string, Float32Array>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(e.dtype, 'F32', `${name}: dtype`);
    const [a, b] = e.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

/** The largest |a - b| over every weight of two runs' final/ folders (the same names required). */
export function maxWeightDiff(runA: string, runB: string, file = 'model.safetensors'): number {
  const wa = readF32Safetensors(path.join(runA, 'final', file));
  const wb = readF32Safetensors(path.join(runB, 'final', file));
  assert.deepEqual([...wb.keys()].sort(), [...wa.keys()].sort());
  let maxDiff = 0;
  for (const [name, x] of wa) {
    const y = wb.get(name) as Float32Array;
    assert.equal(y.length, x.length, name);
    for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
  }
  return maxDiff;
}
