// DICOM to 8-bit RGB, the way a radiologist's viewer shows the stored image: modality values
// (stored value × slope + intercept), then the file's own window (centre/width) when it has one,
// else the full min–max range; MONOCHROME1 (where larger means darker) is inverted so that bone is
// white in every output. Only the first frame is read. Compressed transfer syntaxes (JPEG, JPEG-LS,
// JPEG 2000, RLE) are refused with a message that says how to convert the file.
import * as dicomParser from 'dicom-parser';
import type { RgbImage } from './types';

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const NATIVE_SYNTAXES = new Set([IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE]);

const COMPRESSED_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** True when the bytes carry the Part 10 preamble signature ("DICM" at offset 128). */
export function hasDicmSignature(buf: Uint8Array): boolean {
  return buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d;
}

function parserMessage(e: unknown): string {
  // dicom-parser throws strings, or objects { exception, dataSet }.
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  if (e && typeof e === 'object' && 'exception' in e) return String((e as { exception: unknown }).exception);
  return String(e);
}

/** Maps a modality value to 0..255 with the DICOM linear VOI function (PS3.3 C.11.2.1.2.1). */
export function windowLinear(x: number, center: number, width: number): number {
  const lo = center - 0.5 - (width - 1) / 2;
  const hi = center - 0.5 + (width - 1) / 2;
  if (x <= lo) return 0;
  if (x > hi) return 255;
  return Math.round(((x - (center - 0.5)) / (width - 1) + 0.5) * 255);
}

/** The stored pixel values of the first frame: only the stored bits (overlay bits above them are dropped),
 *  sign-extended. */
function storedValues(
  bytes: Uint8Array,
  offset: number,
  n: number,
  bitsAllocated: number,
  bitsStored: number,
  signed: boolean,
  littleEndian: boolean,
): Float64Array | Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, n * (bitsAllocated / 8));
  if (bitsAllocated === 32) {
    const out = new Float64Array(n);
    const modulus = 2 ** bitsStored;
    for (let i = 0; i < n; i++) {
      let raw = view.getUint32(4 * i, littleEndian) % modulus;
      if (signed && raw >= modulus / 2) raw -= modulus;
      out[i] = raw;
    }
    return out;
  }
  const out = new Int32Array(n);
  const mask = (1 << bitsStored) - 1;
  const signBit = 1 << (bitsStored - 1);
  const aligned = bitsAllocated === 16 && littleEndian && (bytes.byteOffset + offset) % 2 === 0;
  const words = aligned ? new Uint16Array(bytes.buffer, bytes.byteOffset + offset, n) : undefined;
  for (let i = 0; i < n; i++) {
    let raw = bitsAllocated === 8 ? bytes[offset + i] : words ? words[i] : view.getUint16(2 * i, littleEndian);
    raw &= mask;
    if (signed && raw & signBit) raw -= 2 * signBit;
    out[i] = raw;
  }
  return out;
}

export function decodeDicom(bytes: Uint8Array, file = '<buffer>'): RgbImage {
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why}`);
  };
  let ds: dicomParser.DataSet;
  try {
    ds = hasDicmSignature(bytes)
      ? dicomParser.parseDicom(bytes)
      : // No preamble: a bare dataset, which the standard says is implicit VR little endian.
        dicomParser.parseDicom(bytes, { TransferSyntaxUID: IMPLICIT_LE });
  } catch (e) {
    return fail(`not a readable DICOM file (${parserMessage(e)}); truncated or damaged?`);
  }
  const syntax = ds.string('x00020010') ?? IMPLICIT_LE;
  if (!NATIVE_SYNTAXES.has(syntax)) {
    const name = COMPRESSED_NAMES[syntax] ?? 'compressed or unknown';
    fail(`unsupported DICOM transfer syntax ${syntax} (${name}); decompress it first, e.g. gdcmconv --raw`);
  }
  const pixel = ds.elements.x7fe00010;
  if (!pixel) fail('DICOM file has no pixel data (7FE0,0010)');
  if (pixel.encapsulatedPixelData)
    fail('DICOM pixel data is encapsulated (compressed); decompress it first, e.g. gdcmconv --raw');

  const rows = ds.uint16('x00280010') ?? fail('DICOM file has no Rows (0028,0010)');
  const cols = ds.uint16('x00280011') ?? fail('DICOM file has no Columns (0028,0011)');
  const bitsAllocated = ds.uint16('x00280100') ?? fail('DICOM file has no BitsAllocated (0028,0100)');
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const samples = ds.uint16('x00280002') ?? 1;
  const photometric = (ds.string('x00280004') ?? 'MONOCHROME2').trim().toUpperCase();
  if (rows <= 0 || cols <= 0) fail(`DICOM image size ${cols}x${rows}`);
  if (![8, 16, 32].includes(bitsAllocated)) fail(`DICOM BitsAllocated ${bitsAllocated} (supported: 8, 16, 32)`);
  if (bitsStored < 1 || bitsStored > bitsAllocated)
    fail(`DICOM BitsStored ${bitsStored} with BitsAllocated ${bitsAllocated}`);

  const frameBytes = rows * cols * samples * (bitsAllocated / 8);
  const available = Math.min(pixel.length, bytes.length - pixel.dataOffset);
  if (available < frameBytes) {
    fail(
      `truncated DICOM pixel data: a ${cols}x${rows} frame needs ${frameBytes} bytes, the file holds ${Math.max(0, available)}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + pixel.dataOffset, frameBytes);
  const out = new Uint8Array(rows * cols * 3);

  if (photometric === 'RGB') {
    if (samples !== 3 || bitsAllocated !== 8)
      fail(`DICOM RGB with ${samples} samples of ${bitsAllocated} bits (supported: 3 x 8)`);
    const planar = (ds.uint16('x00280006') ?? 0) === 1;
    const n = rows * cols;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) out[3 * i + c] = view.getUint8(planar ? c * n + i : 3 * i + c);
    }
    return { width: cols, height: rows, data: out };
  }
  if (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2') {
    fail(`unsupported DICOM PhotometricInterpretation ${photometric} (supported: MONOCHROME1, MONOCHROME2, RGB)`);
  }
  if (samples !== 1) fail(`DICOM ${photometric} with ${samples} samples per pixel`);

  const littleEndian = syntax !== EXPLICIT_BE;
  const n = rows * cols;
  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  const stored = storedValues(bytes, pixel.dataOffset, n, bitsAllocated, bitsStored, signed, littleEndian);
  let rawMin = Infinity;
  let rawMax = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = stored[i];
    if (v < rawMin) rawMin = v;
    if (v > rawMax) rawMax = v;
  }
  // Modality values are slope·raw + intercept: monotonic, so their range comes from the raw range.
  const a = rawMin * slope + intercept;
  const b = rawMax * slope + intercept;
  const [min, max] = a <= b ? [a, b] : [b, a];
  const center = ds.floatString('x00281050', 0);
  const width = ds.floatString('x00281051', 0);
  const invert = photometric === 'MONOCHROME1';
  const useWindow =
    center !== undefined && width !== undefined && Number.isFinite(center) && Number.isFinite(width) && width >= 1;
  const range = max - min;
  const grey = (raw: number): number => {
    const v = raw * slope + intercept;
    const g = useWindow ? windowLinear(v, center!, width!) : range > 0 ? Math.round(((v - min) / range) * 255) : 0;
    return invert ? 255 - g : g;
  };
  // Stored values span at most 2^16 levels for 8/16-bit data: one table lookup per pixel.
  const span = rawMax - rawMin + 1;
  if (span <= 65536) {
    const lut = new Uint8Array(span);
    for (let k = 0; k < span; k++) lut[k] = grey(rawMin + k);
    for (let i = 0; i < n; i++) {
      const g = lut[stored[i] - rawMin];
      out[3 * i] = g;
      out[3 * i + 1] = g;
      out[3 * i + 2] = g;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const g = grey(stored[i]);
      out[3 * i] = g;
      out[3 * i + 1] = g;
      out[3 * i + 2] = g;
    }
  }
  return { width: cols, height: rows, data: out };
}
