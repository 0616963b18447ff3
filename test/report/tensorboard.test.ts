// TensorBoard event files: name, first event, scalar events, and one record's bytes checked by hand
// against TensorFlow's event.proto / summary.proto and the TFRecord framing.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { maskedCrc32c } from '../../src/data/crc32c';
import { decodeMessage } from '../../src/data/proto';
import { readRecordFile } from '../../src/data/records';
import { TensorBoardWriter } from '../../src/report/tensorboard';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

interface EventObject {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: { value: Array<{ tag: string; simpleValue: number }> };
}

function withDir(fn: (dir: string) => void): void {
  const dir = tempDir('tb');
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('event file: events.out.tfevents.<secs>.<host>, brain.Event:2 first, then scalar summaries', () => {
  withDir((dir) => {
    const w = new TensorBoardWriter(path.join(dir, 'logs'), { wallTime: 1700000123.75, host: 'node-1' });
    assert.equal(path.basename(w.file), 'events.out.tfevents.1700000123.node-1');
    w.scalars({ 'train/loss': 2.5, 'train/lr': 1e-5 }, 1, 1700000124);
    w.scalar('train/loss', 0.1, 2, 1700000125);
    w.scalar('train/loss', NaN, 3, 1700000126);
    w.close();
    const events = readRecordFile(w.file).payloads.map((p) => decodeMessage<EventObject>('tensorboard.Event', p));
    assert.equal(events.length, 4);
    assert.equal(events[0].fileVersion, 'brain.Event:2');
    assert.equal(events[0].wallTime, 1700000123.75);
    assert.equal(events[0].summary, undefined);
    assert.deepEqual(events[1], {
      wallTime: 1700000124,
      step: 1,
      summary: {
        value: [
          { tag: 'train/loss', simpleValue: 2.5 },
          { tag: 'train/lr', simpleValue: Math.fround(1e-5) },
        ],
      },
    });
    assert.equal(events[2].summary!.value[0].simpleValue, Math.fround(0.1)); // simple_value is a float
    assert.ok(Number.isNaN(events[3].summary!.value[0].simpleValue));
    // A second writer in the same second gets its own file instead of truncating the first.
    const w2 = new TensorBoardWriter(path.join(dir, 'logs'), { wallTime: 1700000123.9, host: 'node-1' });
    w2.close();
    assert.notEqual(w2.file, w.file);
    assert.equal(readRecordFile(w.file).payloads.length, 4);
  });
});

test('one scalar record matches the bytes worked out by hand from the spec', () => {
  withDir((dir) => {
    const w = new TensorBoardWriter(dir, { wallTime: 1, host: 'h' });
    w.scalar('loss', 0.25, 3, 1.5);
    w.close();
    const bytes = fs.readFileSync(w.file);
    const firstLength = Number(bytes.readBigUInt64LE(0));
    const at = 12 + firstLength + 4; // the second record: our scalar event

    // Summary.Value { tag = 1 (string): "loss", simple_value = 2 (float): 0.25 }
    const value = Buffer.concat([
      Buffer.from([0x0a, 0x04]),
      Buffer.from('loss'), // field 1, wire type 2, length 4
      Buffer.from([0x15, 0x00, 0x00, 0x80, 0x3e]), // field 2, wire type 5 (fixed32), 0.25f LE
    ]);
    const summary = Buffer.concat([Buffer.from([0x0a, value.length]), value]); // Summary { value = 1 }
    const event = Buffer.concat([
      Buffer.from([0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]), // wall_time = 1 (double, wire type 1): 1.5 LE
      Buffer.from([0x10, 0x03]), // step = 2 (varint): 3
      Buffer.from([0x2a, summary.length]),
      summary, // summary = 5 (wire type 2)
    ]);
    assert.equal(bytes.readBigUInt64LE(at), BigInt(event.length));
    assert.equal(bytes.readUInt32LE(at + 8), maskedCrc32c(bytes, at, at + 8));
    assert.deepEqual(bytes.subarray(at + 12, at + 12 + event.length), event);
    assert.equal(bytes.readUInt32LE(at + 12 + event.length), maskedCrc32c(event));
    assert.equal(at + 12 + event.length + 4, bytes.length);
  });
});

test('medgr2 inspect prints an event file as JSON lines', () => {
  withDir((dir) => {
    const w = new TensorBoardWriter(dir, { wallTime: 10, host: 'h' });
    w.scalar('acc', 0.5, 7, 11);
    w.close();
    const r = runCli(['inspect', w.file]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { wallTime: 10, step: 0, fileVersion: 'brain.Event:2' },
      { wallTime: 11, step: 7, summary: { value: [{ tag: 'acc', simpleValue: 0.5 }] } },
    ]);
  });
});
