// Safetensors headers (parse, build, each corruption its own message), index files, shard plans,
// and the addon's mmap reader / atomic writer: zero-copy views that outlive every other handle,
// conversions, errors, and a file over 100 MB.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import {
  buildSafetensorsHeader,
  parseByteSize,
  parseSafetensorsIndex,
  planShards,
  readSafetensorsHeader,
  SAFETENSORS_DTYPES,
  type TensorDescriptor,
} from '../../src/model/safetensors';
import type { NativeTensorLocation } from '../../src/native/types';
import { addon } from '../helpers/addon';
import { encodeSafetensors } from '../helpers/checkpoints';
import { tempDir } from '../helpers/temp_dir';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const st = addon.safetensors;
const dir = tempDir('safetensors');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

const locations = (descs: TensorDescriptor[]): NativeTensorLocation[] =>
  descs.map((d) => ({ name: d.name, dtype: d.dtype, shape: d.shape, offset: d.offset, nbytes: d.nbytes }));

describe('headers', () => {
  test('a file written independently parses to its tensors, offsets absolute', async () => {
    const a = f32Bytes([1, 2, 3, 4, 5, 6]);
    const b = new Uint8Array([1, 0, 2, 0]);
    const file = write(
      'two.safetensors',
      encodeSafetensors([
        { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
        { name: 'b', dtype: 'BF16', shape: [2], data: b },
      ]),
    );
    const h = await readSafetensorsHeader(file);
    assert.deepEqual(h.metadata, { format: 'pt' });
    assert.equal(h.fileSize, fs.statSync(file).size);
    assert.deepEqual(
      h.tensors.map((t) => [t.name, t.dtype, t.shape, t.offset - h.dataStart, t.nbytes]),
      [
        ['a', 'F32', [2, 3], 0, 24],
        ['b', 'BF16', [2], 24, 4],
      ],
    );
  });

  test('buildSafetensorsHeader: widest dtype first, no gaps, every tensor aligned, JSON padded to 8', () => {
    const built = buildSafetensorsHeader([
      { name: 'h', dtype: 'BF16', shape: [3] },
      { name: 'f', dtype: 'F32', shape: [5] },
      { name: 'u', dtype: 'U8', shape: [3] },
      { name: 'd', dtype: 'F64', shape: [1] },
      { name: 'e', dtype: 'F32', shape: [0] },
    ]);
    assert.equal(built.bytes.length % 8, 0);
    assert.deepEqual(
      built.tensors.map((t) => t.name),
      ['d', 'f', 'e', 'h', 'u'],
    );
    let pos = built.bytes.length;
    for (const t of built.tensors) {
      assert.equal(t.offset, pos, `${t.name} follows the previous tensor`);
      assert.equal(t.offset % SAFETENSORS_DTYPES[t.dtype].bytes, 0, `${t.name} aligned`);
      pos += t.nbytes;
    }
    assert.equal(built.fileSize, pos);
  });

  const good = () => [{ name: 'w', dtype: 'F32', shape: [2], data: f32Bytes([1, 2]) }];

  test('a header that is not JSON', async () => {
    const bytes = encodeSafetensors(good());
    bytes[8] = 0x78; // 'x' for the opening '{': the length still fits the file, the text is no longer JSON
    await assert.rejects(
      readSafetensorsHeader(write('badjson.safetensors', bytes)),
      /badjson\.safetensors: corrupt safetensors header: not valid JSON/,
    );
  });

  test('a header length larger than the file', async () => {
    const bytes = encodeSafetensors(good());
    new DataView(bytes.buffer).setBigUint64(0, 1n << 40n, true);
    await assert.rejects(
      readSafetensorsHeader(write('hugelen.safetensors', bytes)),
      /hugelen\.safetensors: corrupt safetensors header: the header length \(1099511627776 bytes\) is larger than the rest of the file/,
    );
    await assert.rejects(
      readSafetensorsHeader(write('tiny.safetensors', new Uint8Array(5))),
      /too short for the 8-byte header length/,
    );
  });

  test('a truncated file (data shorter than the offsets say)', async () => {
    const bytes = encodeSafetensors([
      { name: 'first', dtype: 'F32', shape: [4], data: f32Bytes([1, 2, 3, 4]) },
      { name: 'last', dtype: 'F32', shape: [4], data: f32Bytes([5, 6, 7, 8]) },
    ]);
    await assert.rejects(
      readSafetensorsHeader(write('cut.safetensors', bytes.subarray(0, bytes.length - 6))),
      /cut\.safetensors: truncated: tensor "last" ends at byte \d+ but the file has only \d+ bytes \(6 missing\)/,
    );
  });

  test('an unknown dtype', async () => {
    const bytes = encodeSafetensors([{ name: 'q', dtype: 'F8_E4M3', shape: [2], data: new Uint8Array(2) }]);
    await assert.rejects(
      readSafetensorsHeader(write('fp8.safetensors', bytes)),
      /fp8\.safetensors: tensor "q" has unknown dtype "F8_E4M3" \(supported: F64, F32, F16, BF16, I64, I32, U8\)/,
    );
  });

  test('sizes that disagree with the shape, and overlapping tensors', async () => {
    const wrongSize = encodeSafetensors(good(), (h) => {
      (h.w as { shape: number[] }).shape = [3];
    });
    await assert.rejects(
      readSafetensorsHeader(write('size.safetensors', wrongSize)),
      /tensor "w": data_offsets \[0, 8\] hold 8 bytes but shape \[3\] of F32 needs 12/,
    );
    const overlap = encodeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [2], data: f32Bytes([1, 2]) },
        { name: 'b', dtype: 'F32', shape: [2], data: f32Bytes([3, 4]) },
      ],
      (h) => {
        (h.b as { data_offsets: number[] }).data_offsets = [4, 12];
      },
    );
    await assert.rejects(
      readSafetensorsHeader(write('overlap.safetensors', overlap)),
      /tensors "a" \(bytes 0\.\.8\) and "b" \(bytes 4\.\.12\) overlap/,
    );
  });
});

describe('index files and shard plans', () => {
  test('parseSafetensorsIndex', () => {
    const idx = parseSafetensorsIndex(
      { metadata: { total_size: 16 }, weight_map: { a: 'model-00001-of-00002.safetensors' } },
      'i.json',
    );
    assert.equal(idx.totalSize, 16);
    assert.equal(idx.weightMap.get('a'), 'model-00001-of-00002.safetensors');
    assert.throws(
      () => parseSafetensorsIndex({ weight_map: { a: '../elsewhere.safetensors' } }, 'i.json'),
      /i\.json: field "weight_map\.a" must name a \.safetensors file in the same folder/,
    );
    assert.throws(() => parseSafetensorsIndex({ weights: {} }, 'i.json'), /field "weight_map" must be an object/);
  });

  test('planShards splits like transformers; one shard is model.safetensors', () => {
    const e = (name: string, nbytes: number) => ({ name, nbytes });
    assert.deepEqual(
      planShards([e('a', 10), e('b', 10)], 100).map((s) => [s.file, s.names]),
      [['model.safetensors', ['a', 'b']]],
    );
    assert.deepEqual(
      planShards([e('a', 60), e('b', 50), e('c', 200), e('d', 1)], 100).map((s) => [s.file, s.names, s.bytes]),
      [
        ['model-00001-of-00004.safetensors', ['a'], 60],
        ['model-00002-of-00004.safetensors', ['b'], 50],
        ['model-00003-of-00004.safetensors', ['c'], 200],
        ['model-00004-of-00004.safetensors', ['d'], 1],
      ],
    );
    assert.deepEqual(
      [parseByteSize('5GB'), parseByteSize('500MiB'), parseByteSize(1234.7), parseByteSize('2kb')],
      [5e9, 500 * 2 ** 20, 1234, 2000],
    );
    assert.throws(() => parseByteSize('lots'), /maxShardBytes must be bytes or a size like "5GB"/);
  });
});

describe('native reader and writer', () => {
  test('write then read back: bit-exact, zero-copy views of the mapping, converted copies on request', async () => {
    const values = Float32Array.from({ length: 24 }, (_, i) => i * 0.37 - 3);
    const bits = Uint16Array.from({ length: 6 }, (_, i) => 0x3f80 + i);
    const a = new addon.Tensor(values, [4, 6]);
    const b = new addon.Tensor(bits, [6], { dtype: 'bf16' });
    const built = buildSafetensorsHeader([
      { name: 'a', dtype: 'F32', shape: [4, 6] },
      { name: 'b', dtype: 'BF16', shape: [6] },
    ]);
    const file = path.join(dir, 'rw.safetensors');
    await st.writeSafetensors(
      file,
      built.bytes,
      [a, b],
      built.tensors.map((t) => ({ name: t.name, dtype: t.dtype, nbytes: t.nbytes })),
    );
    assert.equal(fs.statSync(file).size, built.fileSize);
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.includes('.tmp-')),
      [],
      'no temp file left',
    );

    const h = await readSafetensorsHeader(file);
    const base = st.liveMappings();
    const got = await st.readTensors(file, locations(h.tensors));
    assert.equal(st.liveMappings(), base + 1);
    assert.deepEqual(got.a.shape, [4, 6]);
    assert.equal(got.b.dtype, 'bf16');
    assert.deepEqual(got.a.toArray(), values);
    assert.deepEqual(got.b.toArray(), bits);
    assert.equal(st.isMapped(got.a), true);
    assert.equal(st.isMapped(got.b), true);
    assert.equal(st.isMapped(a), false);

    // f32 -> bf16 on read rounds to nearest even, into memory of its own.
    const conv = await st.readTensors(file, locations(h.tensors), { dtype: 'bf16' });
    assert.equal(st.isMapped(conv.a), false);
    const u32 = new Uint32Array(values.buffer);
    const expected = Uint16Array.from(u32, (u) => (u + 0x7fff + ((u >>> 16) & 1)) >>> 16);
    assert.deepEqual(conv.a.toArray(), expected);
    assert.deepEqual(conv.b.toArray(), bits, 'already bf16: unchanged');
    assert.equal(st.isMapped(conv.b), true, 'already bf16: still a view of (a second) mapping');
    assert.equal(st.liveMappings(), base + 2);

    // A mapping lives exactly as long as the last tensor made from it.
    got.a.dispose();
    assert.equal(st.liveMappings(), base + 2);
    got.b.dispose();
    assert.equal(st.liveMappings(), base + 1);
    conv.b.dispose();
    assert.equal(st.liveMappings(), base);
  });

  test('a mapped tensor stays valid when every other handle is dropped and the GC runs', async () => {
    const n = 1 << 16;
    const names = ['keep', 'x', 'y', 'z'];
    const built = buildSafetensorsHeader(names.map((name) => ({ name, dtype: 'F32' as const, shape: [n] })));
    const file = path.join(dir, 'gc.safetensors');
    const src = names.map(
      (_, k) =>
        new addon.Tensor(
          Float32Array.from({ length: n }, (_, i) => k * 1e6 + i),
          [n],
        ),
    );
    await st.writeSafetensors(
      file,
      built.bytes,
      src,
      built.tensors.map((t) => ({ name: t.name, dtype: t.dtype, nbytes: t.nbytes })),
    );
    gc();
    const base = st.liveMappings();
    const locs = locations((await readSafetensorsHeader(file)).tensors);
    let keep = (await st.readTensors(file, locs)).keep; // the other three handles are garbage at once
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 200; k++) new addon.Tensor(new Float32Array(4096), [4096]);
      gc();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(st.isMapped(keep), true);
    const back = keep.toArray() as Float32Array;
    assert.equal(back[0], 0);
    assert.equal(back[n - 1], n - 1);
    // A save over the mapped file (rename of a new file) leaves the mapped bytes as they were.
    const other = names.map(() => new addon.Tensor(new Float32Array(n).fill(-1), [n]));
    await st.writeSafetensors(
      file,
      built.bytes,
      other,
      built.tensors.map((t) => ({ name: t.name, dtype: t.dtype, nbytes: t.nbytes })),
    );
    assert.equal((keep.toArray() as Float32Array)[n - 1], n - 1);
    keep.dispose();
    keep = undefined as never;
    gc();
    await new Promise((r) => setImmediate(r));
    assert.equal(st.liveMappings(), base, 'the mapping is released with its last tensor');
  });

  test('errors name the file and the tensor; a failed write leaves nothing behind', async () => {
    await assert.rejects(
      st.readTensors(path.join(dir, 'absent.safetensors'), []),
      /absent\.safetensors: cannot open \(No such file/,
    );
    const file = write(
      'small.safetensors',
      encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: f32Bytes([1, 2]) }]),
    );
    await assert.rejects(
      st.readTensors(file, [{ name: 'w', dtype: 'F32', shape: [100], offset: 16, nbytes: 400 }]),
      /small\.safetensors: truncated: tensor "w" needs bytes 16\.\.416 but the file has only \d+ bytes/,
    );
    await assert.rejects(
      st.readTensors(file, [{ name: 'w', dtype: 'F32', shape: [3], offset: 16, nbytes: 8 }]),
      /tensor "w": 8 bytes given for shape \[3\] of Float, which needs 12/,
    );
    await assert.rejects(
      st.readTensors(file, [{ name: 'w', dtype: 'Q4', shape: [2], offset: 16, nbytes: 8 }]),
      /safetensors\.readTensors: argument 'descriptors\[0\]\.dtype' must be one of/,
    );

    const target = path.join(dir, 'never.safetensors');
    const built = buildSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [4] }]);
    await assert.rejects(
      st.writeSafetensors(
        target,
        built.bytes,
        [new addon.Tensor(new Float32Array(3), [3])],
        [{ name: 'w', dtype: 'f32', nbytes: 16 }],
      ),
      /never\.safetensors: tensor "w" has 12 bytes \(shape \[3\]\) but the header gives it 16/,
    );
    assert.equal(fs.existsSync(target), false);
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.includes('.tmp-')),
      [],
    );
  });

  test('a file over 100 MB reads (mapped and converted)', async () => {
    const n = 27_000_000; // 108 MB of f32
    const values = new Float32Array(n);
    for (let i = 0; i < n; i += 4096) values[i] = i;
    values[n - 1] = 42.5;
    const built = buildSafetensorsHeader([{ name: 'big', dtype: 'F32', shape: [n] }]);
    const file = path.join(dir, 'big.safetensors');
    await st.writeSafetensors(
      file,
      built.bytes,
      [new addon.Tensor(values, [n])],
      [{ name: 'big', dtype: 'F32', nbytes: n * 4 }],
    );
    const locs = locations((await readSafetensorsHeader(file)).tensors);
    const mapped = (await st.readTensors(file, locs)).big;
    const back = mapped.toArray() as Float32Array;
    assert.equal(back[4096 * 1000], 4096 * 1000);
    assert.equal(back[n - 1], 42.5);
    mapped.dispose();
    const half = (await st.readTensors(file, locs, { dtype: 'f16' })).big;
    assert.equal(half.dtype, 'f16');
    assert.equal(half.numel, n);
    half.dispose();
    fs.rmSync(file);
  });
});
