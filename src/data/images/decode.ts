// Any image file to 8-bit RGB: DICOM and BMP by the decoders in this folder, everything else
// (PNG, JPEG, TIFF, WebP, GIF) by sharp. The EXIF orientation is applied and transparency is
// composited on white, as Hugging Face's load_image + convert_to_rgb do, so a model sees the same
// pixels here as it would through the HF processor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeBmp, isBmp } from './bmp';
import { decodeDicom, hasDicmSignature } from './dicom';
import type { RgbImage } from './types';

const DICOM_EXTENSIONS = new Set(['.dcm', '.dicom', '.dic']);

export type ImageFormat = 'dicom' | 'bmp' | 'sharp';

/** Which decoder a file goes to: by signature first, by extension for preamble-less DICOM. */
export function detectFormat(bytes: Uint8Array, name: string): ImageFormat {
  if (hasDicmSignature(bytes)) return 'dicom';
  if (isBmp(bytes)) return 'bmp';
  if (DICOM_EXTENSIONS.has(path.extname(name).toLowerCase())) return 'dicom';
  return 'sharp';
}

/** Decodes bytes; `name` (usually the path) appears in every error message. */
export async function decodeImage(bytes: Uint8Array, name = '<buffer>'): Promise<RgbImage> {
  const format = detectFormat(bytes, name);
  if (format === 'dicom') return decodeDicom(bytes, name);
  if (format === 'bmp') return decodeBmp(bytes, name);
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error' })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new Error(`${name}: cannot decode image (${why})`);
  }
}

export async function decodeImageFile(file: string): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read image (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return decodeImage(bytes, file);
}
