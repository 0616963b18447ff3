// Typed record files: a FileHeader record naming the message type, then one protobuf message per
// record. Also recognizes TensorBoard event files, so one reader serves `medgr2 inspect`.
import * as fs from 'node:fs';
import { packageVersion } from '../version';
import { decodeMessage, encodeMessage, RECORD_TYPES, type RecordTypeName, type Sample } from './proto';
import { RecordWriter, readRecordFile, scanRecords, writeRecordFileAtomic, type TornTail } from './records';

export const FILE_MAGIC = 'medgr2.records';
export const FILE_FORMAT_VERSION = 1;
export const TENSORBOARD_EVENT = 'tensorboard.Event';

interface FileHeader {
  magic: string;
  messageType: string;
  version: number;
  createdBy: string;
}

function headerPayload(typeName: RecordTypeName): Uint8Array {
  return encodeMessage('medgr2.FileHeader', {
    magic: FILE_MAGIC,
    messageType: typeName,
    version: FILE_FORMAT_VERSION,
    createdBy: `medgr2 ${packageVersion}`,
  });
}

/** What the first record says a file holds: a medgr2 message type, TensorBoard events, or unknown. */
export function detectRecordType(
  firstPayload: Uint8Array | undefined,
): RecordTypeName | typeof TENSORBOARD_EVENT | undefined {
  if (!firstPayload) return undefined;
  try {
    const h = decodeMessage<FileHeader>('medgr2.FileHeader', firstPayload);
    if (h.magic === FILE_MAGIC && (RECORD_TYPES as readonly string[]).includes(h.messageType)) {
      return h.messageType as RecordTypeName;
    }
  } catch {
    // not a FileHeader: try the next kind
  }
  try {
    const e = decodeMessage<{ fileVersion?: string }>(TENSORBOARD_EVENT, firstPayload);
    if (typeof e.fileVersion === 'string' && e.fileVersion.startsWith('brain.Event:')) return TENSORBOARD_EVENT;
  } catch {
    // not an Event either
  }
  return undefined;
}

export interface MessageFile<T> {
  typeName: string;
  messages: T[];
  /** Byte offset of each message's record, for error messages. */
  offsets: number[];
  tornTail?: TornTail;
}

export interface ReadMessagesOptions {
  /** Message type to decode as; required for files without a header (written by other tools). */
  type?: string;
  /** Fail unless the file's header names this type. */
  expect?: RecordTypeName;
  onWarning?: (message: string) => void;
}

/** Reads a medgr2 record file (or a TensorBoard event file) and decodes every record. */
export function readMessageFile<T = Record<string, unknown>>(
  file: string,
  opts: ReadMessagesOptions = {},
): MessageFile<T> {
  const scan = readRecordFile(file, { onWarning: opts.onWarning });
  const detected = detectRecordType(scan.payloads[0]);
  if (opts.expect && detected !== opts.expect) {
    throw new Error(
      `${file}: expected a record file of ${opts.expect}, found ${detected ?? 'records of unknown type'}`,
    );
  }
  if (opts.type && detected && detected !== TENSORBOARD_EVENT && detected !== opts.type) {
    throw new Error(`${file}: its header says it holds ${detected}, not ${opts.type}`);
  }
  const typeName = opts.type ?? detected;
  if (!typeName) {
    throw new Error(
      `${file}: cannot tell what the records hold (no medgr2 header, not a TensorBoard file): pass --type`,
    );
  }
  // The medgr2 header is metadata, not a message; TensorBoard's first Event is a real event.
  const skip = detected !== undefined && detected !== TENSORBOARD_EVENT ? 1 : 0;
  const messages: T[] = [];
  for (let i = skip; i < scan.payloads.length; i++) {
    try {
      messages.push(decodeMessage<T>(typeName, scan.payloads[i]));
    } catch (err) {
      throw new Error(
        `${file}: record ${i} at byte offset ${scan.offsets[i]} is not a valid ${typeName}: ${(err as Error).message}`,
      );
    }
  }
  return { typeName, messages, offsets: scan.offsets.slice(skip), tornTail: scan.tornTail };
}

/** Writes a whole typed record file atomically (header + messages). */
export function writeMessageFileAtomic(file: string, typeName: RecordTypeName, messages: Iterable<object>): number {
  function* payloads(): Generator<Uint8Array> {
    yield headerPayload(typeName);
    for (const m of messages) yield encodeMessage(typeName, m);
  }
  return writeRecordFileAtomic(file, payloads()) - 1;
}

/** Appends typed messages to a record file, creating it with its header when new. `flush()` is a
 *  durable checkpoint. Appending to a file of another type is refused. */
export class MessageWriter<T extends object> {
  private writer: RecordWriter;

  constructor(
    readonly file: string,
    readonly typeName: RecordTypeName,
    opts: { append?: boolean; onWarning?: (message: string) => void } = {},
  ) {
    if (opts.append && fs.existsSync(file) && fs.statSync(file).size > 0) {
      const first = scanRecords(fs.readFileSync(file), file).payloads[0];
      const found = detectRecordType(first);
      if (found !== undefined && found !== typeName) {
        throw new Error(`${file}: cannot append ${typeName} records to a file of ${found}`);
      }
    }
    this.writer = new RecordWriter(file, opts);
    if (this.writer.existingRecords === 0) this.writer.write(headerPayload(typeName));
  }

  write(message: T): void {
    this.writer.write(encodeMessage(this.typeName, message));
  }

  flush(): void {
    this.writer.flush();
  }

  close(): void {
    this.writer.close();
  }
}

export function writeSamples(file: string, samples: Iterable<Sample>): number {
  return writeMessageFileAtomic(file, 'medgr2.Sample', samples);
}

export function readSamples(file: string, onWarning?: (message: string) => void): MessageFile<Sample> {
  return readMessageFile<Sample>(file, { expect: 'medgr2.Sample', onWarning });
}
