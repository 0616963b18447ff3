// TensorBoard event files for scalar metrics: `events.out.tfevents.<secs>.<host>` in a log folder,
// framed as TFRecord (src/data/records.ts). The first event carries file_version "brain.Event:2",
// which TensorBoard checks; every later event holds one Summary of simple_value scalars.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeMessage } from '../data/proto';
import { RecordWriter } from '../data/records';

export const EVENT_FILE_VERSION = 'brain.Event:2';

export interface TensorBoardWriterOptions {
  /** Seconds since the epoch, for the file name and the first event (default: now). */
  wallTime?: number;
  /** Host name in the file name (default: os.hostname()). */
  host?: string;
}

export class TensorBoardWriter {
  readonly file: string;
  private writer: RecordWriter;

  constructor(logDir: string, opts: TensorBoardWriterOptions = {}) {
    fs.mkdirSync(logDir, { recursive: true });
    const wallTime = opts.wallTime ?? Date.now() / 1000;
    const host = (opts.host ?? os.hostname()).replace(/[^A-Za-z0-9._-]/g, '_');
    const base = path.join(logDir, `events.out.tfevents.${Math.floor(wallTime)}.${host}`);
    // Two writers started in the same second must not share (and truncate) one file.
    let file = base;
    for (let n = 1; fs.existsSync(file); n++) file = `${base}.${n}`;
    this.file = file;
    this.writer = new RecordWriter(file);
    this.writer.write(encodeMessage('tensorboard.Event', { wallTime, fileVersion: EVENT_FILE_VERSION }));
    this.writer.flush();
  }

  /** One event holding every scalar of `values` at `step`. Non-finite values are written as they are
   *  (TensorBoard shows NaN / inf), so a diverging run stays visible. */
  scalars(values: Record<string, number>, step: number, wallTime = Date.now() / 1000): void {
    const value = Object.entries(values).map(([tag, simpleValue]) => ({ tag, simpleValue }));
    if (value.length === 0) return;
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`TensorBoard step must be a non-negative integer, got ${step}`);
    this.writer.write(encodeMessage('tensorboard.Event', { wallTime, step, summary: { value } }));
  }

  scalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.scalars({ [tag]: value }, step, wallTime);
  }

  /** Durable checkpoint: everything logged so far is on disk. */
  flush(): void {
    this.writer.flush();
  }

  close(): void {
    this.writer.close();
  }
}
