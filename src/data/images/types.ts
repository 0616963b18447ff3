// The one in-memory image type of the data layer: 8-bit RGB, row-major, interleaved (r, g, b).
export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, row 0 first, pixel (x, y) at 3 * (y * width + x). */
  data: Uint8Array;
}
