// The one in-memory image type of the data layer: 8-bit RGB, row-major, interleaved (r, g, b).
export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, row 0 first, pixel (x, y) at 3 * (y * width + x). */
  data: Uint8Array;
}

export function checkRgb(img: RgbImage, what = 'image'): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width <= 0 || img.height <= 0) {
    throw new Error(`${what}: bad size ${img.width}x${img.height}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`${what}: ${img.data.length} bytes for ${img.width}x${img.height} RGB (expected ${img.width * img.height * 3})`);
  }
}
