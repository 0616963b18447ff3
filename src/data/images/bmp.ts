// A small BMP decoder: the libvips inside sharp has no BMP loader, and BMP still comes out of
// older PACS exports and microscopy software. Handles the uncompressed forms those write:
// 1/4/8-bit palettized, 16-bit (RGB555 or bitfields), 24-bit and 32-bit (BI_RGB or bitfields),
// bottom-up or top-down, with any of the header versions (12, 40, 52, 56, 108, 124 bytes).
// Compressed BMPs (RLE, embedded JPEG/PNG) are refused with a message naming the file.
import type { RgbImage } from './types';

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 26 && buf[0] === 0x42 && buf[1] === 0x4d;
}

/** One mask channel: shift and width, so a masked value scales to 0..255. */
function maskInfo(mask: number): { shift: number; bits: number } {
  if (mask === 0) return { shift: 0, bits: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (shift + bits < 32 && ((mask >>> (shift + bits)) & 1) === 1) bits++;
  return { shift, bits };
}

function scaleTo8(v: number, bits: number): number {
  if (bits === 0) return 0;
  if (bits === 8) return v;
  return Math.round((v * 255) / ((1 << bits) - 1));
}

export function decodeBmp(buf: Uint8Array, file = '<buffer>'): RgbImage {
  const fail = (why: string): never => {
    throw new Error(`${file}: unsupported or damaged BMP (${why})`);
  };
  if (!isBmp(buf)) fail('no "BM" signature');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const pixelOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  let width: number;
  let height: number;
  let bpp: number;
  let compression = BI_RGB;
  let paletteCount = 0;
  let paletteEntry = 4;
  if (headerSize === 12) {
    width = view.getUint16(18, true);
    height = view.getInt16(20, true);
    bpp = view.getUint16(24, true);
    paletteEntry = 3;
  } else if (headerSize >= 40) {
    if (buf.length < 14 + 40) fail('truncated header');
    width = view.getInt32(18, true);
    height = view.getInt32(22, true);
    bpp = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    paletteCount = view.getUint32(46, true);
  } else {
    return fail(`header size ${headerSize}`);
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width <= 0 || height <= 0) fail(`size ${width}x${height}`);
  if (compression !== BI_RGB && compression !== BI_BITFIELDS && compression !== BI_ALPHABITFIELDS) {
    fail(`compression ${compression}: only uncompressed BMPs are read; convert it to PNG`);
  }

  // Channel masks: explicit for bitfields (after a 40-byte header, or inside V4/V5 headers).
  let masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f, 0] : [0xff0000, 0xff00, 0xff, 0];
  if (compression !== BI_RGB) {
    if (bpp !== 16 && bpp !== 32) fail(`bitfields with ${bpp} bits per pixel`);
    if (buf.length < 14 + 40 + 12) fail('truncated header');
    masks = [view.getUint32(54, true), view.getUint32(58, true), view.getUint32(62, true), 0];
    if (headerSize >= 56 || compression === BI_ALPHABITFIELDS) masks[3] = view.getUint32(66, true);
  }
  const [mr, mg, mb, ma] = masks.map(maskInfo);

  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const n = paletteCount || 1 << bpp;
    const start = 14 + headerSize;
    if (start + n * paletteEntry > buf.length) fail('truncated palette');
    palette = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      const o = start + i * paletteEntry;
      palette[3 * i] = buf[o + 2];
      palette[3 * i + 1] = buf[o + 1];
      palette[3 * i + 2] = buf[o];
    }
  } else if (bpp !== 16 && bpp !== 24 && bpp !== 32) {
    fail(`${bpp} bits per pixel`);
  }

  const rowBytes = Math.floor((bpp * width + 31) / 32) * 4;
  if (pixelOffset + rowBytes * height > buf.length) {
    fail(`truncated pixel data: needs ${pixelOffset + rowBytes * height} bytes, file has ${buf.length}`);
  }
  const out = new Uint8Array(width * height * 3);
  // An alpha mask whose values are all zero means "unused" in practice (many writers leave it 0).
  const alpha = bpp === 32 && ma.bits > 0 ? new Uint8Array(width * height) : undefined;
  let anyAlpha = false;
  for (let row = 0; row < height; row++) {
    const y = topDown ? row : height - 1 - row;
    const src = pixelOffset + row * rowBytes;
    for (let x = 0; x < width; x++) {
      const o = 3 * (y * width + x);
      if (palette) {
        const bitPos = x * bpp;
        const byte = buf[src + (bitPos >> 3)];
        const idx = (byte >> (8 - bpp - (bitPos & 7))) & ((1 << bpp) - 1);
        if (3 * idx + 2 >= palette.length) fail(`palette index ${idx} out of range`);
        out[o] = palette[3 * idx];
        out[o + 1] = palette[3 * idx + 1];
        out[o + 2] = palette[3 * idx + 2];
      } else if (bpp === 24 && compression === BI_RGB) {
        const p = src + 3 * x;
        out[o] = buf[p + 2];
        out[o + 1] = buf[p + 1];
        out[o + 2] = buf[p];
      } else {
        const v = bpp === 16 ? view.getUint16(src + 2 * x, true) : view.getUint32(src + 4 * x, true);
        out[o] = scaleTo8((v & masks[0]) >>> mr.shift, mr.bits);
        out[o + 1] = scaleTo8((v & masks[1]) >>> mg.shift, mg.bits);
        out[o + 2] = scaleTo8((v & masks[2]) >>> mb.shift, mb.bits);
        if (alpha) {
          const a = scaleTo8((v & masks[3]) >>> ma.shift, ma.bits);
          alpha[y * width + x] = a;
          if (a) anyAlpha = true;
        }
      }
    }
  }
  if (alpha && anyAlpha) {
    // Composite on white, as the HF processor's convert_to_rgb does for images with alpha.
    for (let i = 0; i < alpha.length; i++) {
      const a = alpha[i];
      for (let c = 0; c < 3; c++) out[3 * i + c] = Math.round((out[3 * i + c] * a + 255 * (255 - a)) / 255);
    }
  }
  return { width, height, data: out };
}
