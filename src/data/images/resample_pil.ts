// Pillow's BICUBIC resize for 8-bit RGB, reproduced step for step (libImaging/Resample.c): the
// Keys cubic with a = −0.5, its support widened by the scale when shrinking, coefficients
// normalized to 22-bit fixed point, a horizontal pass then a vertical pass, each rounded and
// clipped to 8 bits. The slow processor of Hugging Face (Qwen2VLImageProcessor) resizes with
// exactly this, so this is the reference every faster resize is measured against, and the path
// taken when enlarging (where libvips samples on a shifted grid; see resize.ts).
import type { RgbImage } from './types';

const PRECISION_BITS = 32 - 8 - 2;
const SUPPORT = 2;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  /** Per output position: first input index and tap count. */
  bounds: Int32Array;
  /** Fixed-point weights, ksize per output position. */
  kk: Int32Array;
}

function precompute(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C's (int) cast truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < ksize; x++) {
      const v = x < xmax && ww !== 0 ? w[x] / ww : 0;
      kk[xx * ksize + x] =
        v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= 1 << (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** Pillow-exact bicubic resize of an RGB image. */
export function resizeBicubicPil(img: RgbImage, width: number, height: number): RgbImage {
  let cur = img;
  if (width !== img.width) {
    const { ksize, bounds, kk } = precompute(img.width, width);
    const out = new Uint8Array(width * img.height * 3);
    const src = img.data;
    for (let y = 0; y < img.height; y++) {
      const row = y * img.width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[2 * xx];
        const n = bounds[2 * xx + 1];
        const k = xx * ksize;
        let s0 = 1 << (PRECISION_BITS - 1);
        let s1 = s0;
        let s2 = s0;
        for (let x = 0; x < n; x++) {
          const p = row + 3 * (x + xmin);
          const c = kk[k + x];
          s0 += src[p] * c;
          s1 += src[p + 1] * c;
          s2 += src[p + 2] * c;
        }
        const o = 3 * (y * width + xx);
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    cur = { width, height: img.height, data: out };
  }
  if (height !== cur.height) {
    const { ksize, bounds, kk } = precompute(cur.height, height);
    const out = new Uint8Array(width * height * 3);
    const src = cur.data;
    const stride = width * 3;
    for (let yy = 0; yy < height; yy++) {
      const ymin = bounds[2 * yy];
      const n = bounds[2 * yy + 1];
      const k = yy * ksize;
      for (let i = 0; i < stride; i++) {
        let s = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < n; y++) s += src[(y + ymin) * stride + i] * kk[k + y];
        out[yy * stride + i] = clip8(s);
      }
    }
    cur = { width, height, data: out };
  }
  return cur === img ? { width, height, data: img.data.slice() } : cur;
}
