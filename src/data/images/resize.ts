// Bicubic resize of an RGB image to the size the model takes, matching the HF processor (Pillow's
// BICUBIC). Two paths, both checked against Pillow:
// - shrinking on both axes goes through sharp (libvips' "cubic" kernel is the same Catmull-Rom
//   cubic, widened by the scale as Pillow does): within 2 grey levels of Pillow up to 4× reduction
//   (mean error ≤ 0.5), up to 5 levels at 10× where libvips box-shrinks first; 4-5× faster than
//   the TypeScript twin — this is the path real scans and photos take;
// - anything that enlarges an axis goes through resample_pil.ts, bit-exact with Pillow: libvips
//   samples enlargements on a grid offset from Pillow's (mean error 2-3 grey levels, measured), and
//   enlarged images are small, so exactness costs little there.
// An image already at the target size is returned as is (Pillow returns a copy in that case).
import sharp from 'sharp';
import { resizeBicubicPil } from './resample_pil';
import { smartResize, type SizeRule } from './smart_resize';
import type { RgbImage } from './types';

export async function resizeRgb(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  if (width > img.width || height > img.height) return resizeBicubicPil(img, width, height);
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** The image as the model sees it (before normalization): smart-resized, bicubic. */
export async function resizeForModel(img: RgbImage, rule: Partial<SizeRule> = {}): Promise<RgbImage> {
  const [h, w] = smartResize(img.height, img.width, rule);
  return resizeRgb(img, w, h);
}
