// Record framing (TFRecord), CRC32C, torn tails and corruption, atomic and append writers, typed files.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c, maskCrc, maskedCrc32c } from '../../src/data/crc32c';
import {
  frameRecord,
  readRecordFile,
  RecordCorruptError,
  RecordWriter,
  writeRecordFileAtomic,
} from '../../src/data/records';
import { MessageWriter, readMessageFile, readSamples, writeSamples } from '../../src/data/record_files';
import type { Sample } from '../../src/data/proto';
import { rng } from '../helpers/numeric';
import { tempDir } from '../helpers/temp_dir';

/** Bit-at-a-time CRC32C straight from the definition: the slow twin of the table version. */
function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffffn;
  for (const b of bytes) {
    crc ^= BigInt(b);
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0x82f63b78n : crc >> 1n;
  }
  return Number(crc ^ 0xffffffffn);
}

function maskBig(crc: number): number {
  const c = BigInt(crc);
  const rotated = ((c >> 15n) | (c << 17n)) & 0xffffffffn;
  return Number((rotated + 0xa282ead8n) % 2n ** 32n);
}

function randomPayloads(seed: number, n: number): Buffer[] {
  const rand = rng(seed);
  const sizes = [0, 1, 7, 8, 13, 300, 70_000];
  return Array.from({ length: n }, (_, i) => {
    const size = i < sizes.length ? sizes[i] : Math.floor(rand() * 5000);
    return Buffer.from(Array.from({ length: size }, () => Math.floor(rand() * 256)));
  });
}

test('CRC32C of "123456789" is 0xE3069283, and table and bitwise versions agree', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const rand = rng(1);
  for (const n of [1, 3, 64, 1001]) {
    const bytes = Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    assert.equal(crc32c(bytes), crc32cBitwise(bytes), `length ${n}`);
  }
});

test('the mask is ((crc >>> 15) | (crc << 17)) + 0xa282ead8 mod 2^32', () => {
  for (const c of [0, 1, 0xe3069283, 0xffffffff, 0x80000000, 0x12345678]) assert.equal(maskCrc(c), maskBig(c));
});

test('a frame is length, masked CRC of the length, payload, masked CRC of the payload', () => {
  const payload = Buffer.from('hello, records');
  const frame = frameRecord(payload);
  assert.equal(frame.length, 8 + 4 + payload.length + 4);
  assert.equal(frame.readBigUInt64LE(0), BigInt(payload.length));
  assert.equal(frame.readUInt32LE(8), maskBig(crc32cBitwise(frame.subarray(0, 8))));
  assert.deepEqual(frame.subarray(12, 12 + payload.length), payload);
  assert.equal(frame.readUInt32LE(12 + payload.length), maskBig(crc32cBitwise(payload)));
  assert.equal(maskedCrc32c(payload), maskBig(crc32cBitwise(payload)));
});

test('records written by the writer read back exactly, past the write buffer size', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'a.rec');
    const payloads = [...randomPayloads(2, 20), Buffer.alloc(1_500_000, 7)];
    const w = new RecordWriter(file);
    payloads.forEach((p, i) => {
      w.write(p);
      if (i === 5) w.flush();
    });
    w.close();
    const scan = readRecordFile(file);
    assert.equal(scan.tornTail, undefined);
    assert.equal(scan.payloads.length, payloads.length);
    scan.payloads.forEach((p, i) => assert.deepEqual(p, payloads[i], `record ${i}`));
    assert.equal(scan.validBytes, fs.statSync(file).size);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn tail is reported (bytes, one record), warned about, and ignored; a clean cut is no tear', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 't.rec');
    const payloads = randomPayloads(3, 10);
    writeRecordFileAtomic(file, payloads);
    const full = fs.readFileSync(file);
    const lastOffset = full.length - (12 + payloads[9].length + 4);
    for (const cut of [1, 5, 11, 12, 12 + Math.floor(payloads[9].length / 2), 12 + payloads[9].length + 3]) {
      fs.writeFileSync(file, full.subarray(0, lastOffset + cut));
      const warnings: string[] = [];
      const scan = readRecordFile(file, { onWarning: (m) => warnings.push(m) });
      assert.equal(scan.payloads.length, 9, `cut ${cut}`);
      assert.deepEqual(scan.tornTail, { offset: lastOffset, bytesIgnored: cut, recordsIgnored: 1 });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], new RegExp(`ignored ${cut} byte`));
    }
    fs.writeFileSync(file, full.subarray(0, lastOffset));
    assert.equal(readRecordFile(file).tornTail, undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a flipped byte anywhere in a complete record is corruption, with the file and byte offset', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'c.rec');
    const payloads = randomPayloads(4, 8).map((p, i) => (p.length === 0 ? Buffer.from([i]) : p));
    writeRecordFileAtomic(file, payloads);
    const full = fs.readFileSync(file);
    const offsets = readRecordFile(file).offsets;
    for (const [record, within] of [
      [3, 2], // the length
      [3, 9], // the length's CRC
      [3, 12], // first payload byte
      [7, 12], // the last record's payload: still corruption, not a torn tail
      [5, 12 + payloads[5].length + 1], // the payload CRC
    ]) {
      const damaged = Buffer.from(full);
      damaged[offsets[record] + within] ^= 0x10;
      fs.writeFileSync(file, damaged);
      assert.throws(
        () => readRecordFile(file),
        (err: unknown) =>
          err instanceof RecordCorruptError &&
          err.offset === offsets[record] &&
          err.message.includes(file) &&
          err.message.includes(`byte offset ${offsets[record]}`),
        `record ${record} byte ${within}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('appending cuts a torn tail off first, so new records never follow garbage', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'app.rec');
    const w = new RecordWriter(file);
    for (const s of ['a', 'bb', 'ccc']) w.write(Buffer.from(s));
    w.close();
    fs.appendFileSync(file, frameRecord(Buffer.from('torn')).subarray(0, 9));
    const w2 = new RecordWriter(file, { append: true });
    assert.equal(w2.existingRecords, 3);
    assert.equal(w2.recoveredTail?.bytesIgnored, 9);
    w2.write(Buffer.from('dddd'));
    w2.close();
    const scan = readRecordFile(file);
    assert.equal(scan.tornTail, undefined);
    assert.deepEqual(
      scan.payloads.map((p) => p.toString()),
      ['a', 'bb', 'ccc', 'dddd'],
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the atomic writer replaces a file whole and leaves no temporary behind', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'w.rec');
    writeRecordFileAtomic(file, [Buffer.from('old')]);
    writeRecordFileAtomic(file, [Buffer.from('new1'), Buffer.from('new2')]);
    assert.deepEqual(
      readRecordFile(file).payloads.map((p) => p.toString()),
      ['new1', 'new2'],
    );
    assert.deepEqual(fs.readdirSync(dir), ['w.rec']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function sample(i: number): Sample {
  return {
    id: `s${i}`,
    dataset: 'Chest CT Scan',
    images: [`Images/Chest CT Scan/${i}.png`, ...(i % 2 ? ['second.png'] : [])],
    modality: 'CT',
    modalityOriginal: 'CT(Computed Tomography)',
    task: 'Disease Diagnosis',
    taskOriginal: 'Disease Diagnosis',
    question: `Question ${i}? Ünïcødé ✓`,
    options: ['A thing', 'B thing', 'C thing', 'D thing'],
    answer: 'C thing',
    rationale: i % 3 ? '' : 'because',
    provenance: {
      kind: 'IMPORTED',
      round: 0,
      sourceFile: 'x.jsonl',
      sourceLine: i + 1,
      sourceFormat: 'medgr2-authors',
    },
    questionStem: `Question ${i}?`,
  };
}

test('Samples round-trip through a typed record file; same samples give the same bytes', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 's.rec');
    const samples = Array.from({ length: 25 }, (_, i) => sample(i));
    assert.equal(writeSamples(file, samples), 25);
    const back = readSamples(file);
    assert.equal(back.typeName, 'medgr2.Sample');
    assert.deepEqual(back.messages, samples);
    const again = path.join(dir, 's2.rec');
    writeSamples(again, samples);
    assert.deepEqual(fs.readFileSync(again), fs.readFileSync(file));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('MessageWriter appends under one header and refuses a file of another type', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'm.rec');
    const manifest = {
      stage: 'import',
      inputs: ['a.json'],
      outputs: ['b.rec'],
      configJson: '{"x":1}',
      startedAt: 1700000000.5,
      finishedAt: 1700000001.25,
      status: 'SUCCEEDED',
      error: '',
      version: '0.1.0',
      round: 2,
    };
    const w = new MessageWriter(file, 'medgr2.RunManifest');
    w.write(manifest);
    w.close();
    const w2 = new MessageWriter(file, 'medgr2.RunManifest', { append: true });
    w2.write({ ...manifest, stage: 'split', status: 'FAILED', error: 'boom' });
    w2.close();
    const back = readMessageFile(file);
    assert.equal(back.typeName, 'medgr2.RunManifest');
    assert.deepEqual(back.messages, [manifest, { ...manifest, stage: 'split', status: 'FAILED', error: 'boom' }]);
    assert.throws(() => new MessageWriter(file, 'medgr2.Sample', { append: true }), /cannot append medgr2.Sample/);
    assert.throws(() => readSamples(file), /expected a record file of medgr2.Sample, found medgr2.RunManifest/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Candidates and scored candidates nest the sample', () => {
  const dir = tempDir('records');
  try {
    const file = path.join(dir, 'sc.rec');
    const scored = {
      candidate: {
        sample: sample(1),
        generatorRound: 3,
        valid: false,
        invalidReason: 'answer not among options',
        raw: '<q>…',
      },
      reward: 0.8125,
      judgeRound: 3,
      selected: true,
      selectReason: '',
    };
    const w = new MessageWriter(file, 'medgr2.ScoredCandidate');
    w.write(scored);
    w.close();
    assert.deepEqual(readMessageFile(file).messages, [scored]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
