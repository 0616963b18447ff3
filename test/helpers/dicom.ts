// A small DICOM writer for tests: 128-byte preamble + "DICM" + file meta group (always explicit VR
// little endian, as the standard requires) + the dataset in the chosen encoding. Enough to make
// every variant the decoder must read: explicit/implicit VR, little/big endian, 8/16-bit,
// signed/unsigned, rescale, window, MONOCHROME1, and damaged files.

export const SYNTAX = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
} as const;

export type DicomValue =
  | { vr: 'US'; value: number }
  | { vr: 'UL'; value: number }
  | { vr: 'CS' | 'DS' | 'IS' | 'UI' | 'LO'; value: string }
  | { vr: 'OW'; words: ArrayLike<number> }
  | { vr: 'OB'; bytes: ArrayLike<number> };

export interface DicomElement {
  tag: [number, number];
  v: DicomValue;
}

const LONG_VRS = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN']);

class Writer {
  private chunks: number[] = [];
  constructor(private readonly little: boolean) {}
  u16(v: number): void {
    if (this.little) this.chunks.push(v & 0xff, (v >> 8) & 0xff);
    else this.chunks.push((v >> 8) & 0xff, v & 0xff);
  }
  u32(v: number): void {
    const b = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
    this.chunks.push(...(this.little ? b : b.reverse()));
  }
  bytes(b: ArrayLike<number>): void {
    for (let i = 0; i < b.length; i++) this.chunks.push(b[i] & 0xff);
  }
  ascii(s: string): void {
    for (let i = 0; i < s.length; i++) this.chunks.push(s.charCodeAt(i));
  }
  get length(): number {
    return this.chunks.length;
  }
  toBytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

function valueBytes(v: DicomValue, little: boolean): Uint8Array {
  const w = new Writer(little);
  switch (v.vr) {
    case 'US':
      w.u16(v.value);
      break;
    case 'UL':
      w.u32(v.value);
      break;
    case 'OW':
      for (let i = 0; i < v.words.length; i++) w.u16(v.words[i] & 0xffff);
      break;
    case 'OB':
      w.bytes(v.bytes);
      if (v.bytes.length % 2) w.bytes([0]);
      break;
    default: {
      const s = v.value;
      w.ascii(s);
      if (s.length % 2) w.bytes([v.vr === 'UI' ? 0 : 0x20]);
    }
  }
  return w.toBytes();
}

function writeElement(w: Writer, e: DicomElement, explicit: boolean, little: boolean): void {
  const value = valueBytes(e.v, little);
  w.u16(e.tag[0]);
  w.u16(e.tag[1]);
  if (explicit) {
    w.ascii(e.v.vr);
    if (LONG_VRS.has(e.v.vr)) {
      w.u16(0);
      w.u32(value.length);
    } else {
      w.u16(value.length);
    }
  } else {
    w.u32(value.length);
  }
  w.bytes(value);
}

export interface DicomFileOptions {
  syntax: string;
  elements: DicomElement[];
  /** false: a bare dataset with no preamble or meta group (implicit VR little endian). */
  part10?: boolean;
}

export function writeDicom({ syntax, elements, part10 = true }: DicomFileOptions): Uint8Array {
  const explicit = syntax !== SYNTAX.implicitLE;
  const little = syntax !== SYNTAX.explicitBE;
  const sorted = [...elements].sort((a, b) => a.tag[0] - b.tag[0] || a.tag[1] - b.tag[1]);
  const body = new Writer(little);
  for (const e of sorted) writeElement(body, e, part10 ? explicit : false, part10 ? little : true);
  if (!part10) return body.toBytes();

  const meta = new Writer(true);
  const metaElements: DicomElement[] = [
    { tag: [0x0002, 0x0001], v: { vr: 'OB', bytes: [0, 1] } },
    { tag: [0x0002, 0x0002], v: { vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' } },
    { tag: [0x0002, 0x0003], v: { vr: 'UI', value: '1.2.3.4.5.6' } },
    { tag: [0x0002, 0x0010], v: { vr: 'UI', value: syntax } },
    { tag: [0x0002, 0x0012], v: { vr: 'UI', value: '1.2.3.4' } },
  ];
  for (const e of metaElements) writeElement(meta, e, true, true);
  const head = new Writer(true);
  head.bytes(new Uint8Array(128));
  head.ascii('DICM');
  writeElement(head, { tag: [0x0002, 0x0000], v: { vr: 'UL', value: meta.length } }, true, true);
  const out = new Uint8Array(head.length + meta.length + body.length);
  out.set(head.toBytes(), 0);
  out.set(meta.toBytes(), head.length);
  out.set(body.toBytes(), head.length + meta.length);
  return out;
}

/** The image elements of a greyscale dataset. */
export function greyImage(opts: {
  rows: number;
  cols: number;
  bits: 8 | 16;
  pixels: number[];
  signed?: boolean;
  bitsStored?: number;
  photometric?: string;
  slope?: string;
  intercept?: string;
  center?: string;
  width?: string;
}): DicomElement[] {
  const els: DicomElement[] = [
    { tag: [0x0028, 0x0002], v: { vr: 'US', value: 1 } },
    { tag: [0x0028, 0x0004], v: { vr: 'CS', value: opts.photometric ?? 'MONOCHROME2' } },
    { tag: [0x0028, 0x0010], v: { vr: 'US', value: opts.rows } },
    { tag: [0x0028, 0x0011], v: { vr: 'US', value: opts.cols } },
    { tag: [0x0028, 0x0100], v: { vr: 'US', value: opts.bits } },
    { tag: [0x0028, 0x0101], v: { vr: 'US', value: opts.bitsStored ?? opts.bits } },
    { tag: [0x0028, 0x0102], v: { vr: 'US', value: (opts.bitsStored ?? opts.bits) - 1 } },
    { tag: [0x0028, 0x0103], v: { vr: 'US', value: opts.signed ? 1 : 0 } },
    opts.bits === 16
      ? { tag: [0x7fe0, 0x0010], v: { vr: 'OW', words: opts.pixels } }
      : { tag: [0x7fe0, 0x0010], v: { vr: 'OB', bytes: opts.pixels } },
  ];
  if (opts.slope !== undefined) els.push({ tag: [0x0028, 0x1053], v: { vr: 'DS', value: opts.slope } });
  if (opts.intercept !== undefined) els.push({ tag: [0x0028, 0x1052], v: { vr: 'DS', value: opts.intercept } });
  if (opts.center !== undefined) els.push({ tag: [0x0028, 0x1050], v: { vr: 'DS', value: opts.center } });
  if (opts.width !== undefined) els.push({ tag: [0x0028, 0x1051], v: { vr: 'DS', value: opts.width } });
  return els;
}
