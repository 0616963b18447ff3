// Append-only record files framed as TFRecord, so a torn write is detected and never silently read:
//   uint64 LE  payload length
//   uint32 LE  masked CRC32C of the 8 length bytes
//   bytes      payload
//   uint32 LE  masked CRC32C of the payload
// The length has its own CRC so that a damaged length is caught before it is trusted.
import * as fs from 'node:fs';
import { maskedCrc32c } from './crc32c';
import { writeViaTempSync } from '../util/atomic_write';

const HEADER_BYTES = 12;
const FOOTER_BYTES = 4;
/** Userland buffer size before bytes are handed to the kernel (fsync happens only at flush/close). */
const WRITE_BUFFER_BYTES = 1 << 20;

/** One framed record: header, payload, footer. */
export function frameRecord(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + FOOTER_BYTES);
  out.writeBigUInt64LE(BigInt(payload.length), 0);
  out.writeUInt32LE(maskedCrc32c(out, 0, 8), 8);
  out.set(payload, HEADER_BYTES);
  out.writeUInt32LE(maskedCrc32c(payload), HEADER_BYTES + payload.length);
  return out;
}

/** A record in the middle of a file failed its CRC: the file is damaged, not merely cut short. */
export class RecordCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    what: string,
  ) {
    super(`${file}: corrupt record at byte offset ${offset}: ${what}`);
    this.name = 'RecordCorruptError';
  }
}

/** A final record that the file ends in the middle of (a write that a crash cut short). */
export interface TornTail {
  offset: number; // where the incomplete record starts
  bytesIgnored: number; // bytes from there to the end of the file
  recordsIgnored: number; // always 1: only the last record can be incomplete
}

export interface RecordScan {
  payloads: Buffer[];
  offsets: number[]; // byte offset of each record's frame
  fileBytes: number;
  validBytes: number; // end of the last complete record
  tornTail?: TornTail;
}

export interface ReadOptions {
  /** Called with a one-line warning when a torn tail is found (default: none; callers decide). */
  onWarning?: (message: string) => void;
}

/** Splits a whole file's bytes into record payloads (views into `bytes`, not copies). */
export function scanRecords(bytes: Buffer, file: string, opts: ReadOptions = {}): RecordScan {
  const payloads: Buffer[] = [];
  const offsets: number[] = [];
  let pos = 0;
  let tornTail: TornTail | undefined;
  while (pos < bytes.length) {
    const remaining = bytes.length - pos;
    if (remaining < HEADER_BYTES) {
      tornTail = { offset: pos, bytesIgnored: remaining, recordsIgnored: 1 };
      break;
    }
    const lengthCrc = bytes.readUInt32LE(pos + 8);
    if (maskedCrc32c(bytes, pos, pos + 8) !== lengthCrc) {
      throw new RecordCorruptError(file, pos, 'length CRC mismatch (not a record file, or damaged)');
    }
    const length = bytes.readBigUInt64LE(pos);
    if (length > BigInt(remaining - HEADER_BYTES - FOOTER_BYTES)) {
      tornTail = { offset: pos, bytesIgnored: remaining, recordsIgnored: 1 };
      break;
    }
    const start = pos + HEADER_BYTES;
    const end = start + Number(length);
    if (maskedCrc32c(bytes, start, end) !== bytes.readUInt32LE(end)) {
      throw new RecordCorruptError(file, pos, `payload CRC mismatch (${Number(length)}-byte payload)`);
    }
    offsets.push(pos);
    payloads.push(bytes.subarray(start, end));
    pos = end + FOOTER_BYTES;
  }
  const validBytes = tornTail ? tornTail.offset : pos;
  if (tornTail && opts.onWarning) {
    opts.onWarning(
      `${file}: torn tail: ignored ${tornTail.bytesIgnored} byte(s) of an incomplete final record at offset ` +
        `${tornTail.offset} (${payloads.length} complete record(s) kept)`,
    );
  }
  return { payloads, offsets, fileBytes: bytes.length, validBytes, tornTail };
}

/** Reads every record of a file. Throws RecordCorruptError on a CRC mismatch; a torn tail is reported
 *  in the result (and through `onWarning`) and otherwise ignored. */
export function readRecordFile(file: string, opts: ReadOptions = {}): RecordScan {
  return scanRecords(fs.readFileSync(file), file, opts);
}

/** True when `file` starts with a valid TFRecord frame header (cheap: reads 12 bytes). */
export function looksLikeRecordFile(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    if (fs.readSync(fd, head, 0, HEADER_BYTES, 0) < HEADER_BYTES) return false;
    return maskedCrc32c(head, 0, 8) === head.readUInt32LE(8);
  } finally {
    fs.closeSync(fd);
  }
}

export interface WriterOptions {
  /** Keep the records already in the file and add after them (a torn tail is cut off first). */
  append?: boolean;
  onWarning?: (message: string) => void;
}

/** Appends framed records to a file. Bytes reach the disk durably only at `flush()` / `close()`,
 *  which fsync: call flush at each checkpoint; a crash between checkpoints leaves at worst a torn tail. */
export class RecordWriter {
  private fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Records in the file before this writer opened it (append mode). */
  readonly existingRecords: number;
  /** The torn tail that was cut off when opening for append, if any. */
  readonly recoveredTail?: TornTail;
  recordsWritten = 0;

  constructor(
    readonly file: string,
    opts: WriterOptions = {},
  ) {
    let existing = 0;
    if (opts.append && fs.existsSync(file) && fs.statSync(file).size > 0) {
      const scan = readRecordFile(file, { onWarning: opts.onWarning });
      existing = scan.payloads.length;
      if (scan.tornTail) {
        // New records must not land after garbage, or the reader would call the file corrupt.
        fs.truncateSync(file, scan.validBytes);
        this.recoveredTail = scan.tornTail;
      }
    }
    this.existingRecords = existing;
    this.fd = fs.openSync(file, opts.append ? 'a' : 'w');
  }

  write(payload: Uint8Array): void {
    if (this.fd < 0) throw new Error(`${this.file}: write after close`);
    const frame = frameRecord(payload);
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    this.recordsWritten++;
    if (this.pendingBytes >= WRITE_BUFFER_BYTES) this.writePending();
  }

  /** Writes what is buffered and fsyncs: everything written so far survives a crash. */
  flush(): void {
    if (this.fd < 0) return;
    this.writePending();
    fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  private writePending(): void {
    if (this.pendingBytes === 0) return;
    const all = Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (off < all.length) off += fs.writeSync(this.fd, all, off, all.length - off);
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/** Writes a whole record file so that readers see either the old file or the complete new one:
 *  temp file in the same folder, fsync, rename over the target, fsync the folder. */
export function writeRecordFileAtomic(file: string, payloads: Iterable<Uint8Array>): number {
  return writeViaTempSync(file, (tmp) => {
    let count = 0;
    const writer = new RecordWriter(tmp);
    for (const p of payloads) {
      writer.write(p);
      count++;
    }
    writer.close();
    return count;
  });
}
