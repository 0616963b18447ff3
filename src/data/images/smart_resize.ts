// The Qwen2-VL processor's size rule (transformers' `smart_resize`), reproduced exactly, including
// Python's round-half-to-even: a 42-pixel side is 1.5 factors and rounds to 56, a 70-pixel side
// (2.5 factors) also rounds to 56.
export interface SizeRule {
  /** Both output sides are multiples of this: patch size × merge size (14 × 2 for Qwen2-VL). */
  factor: number;
  minPixels: number;
  maxPixels: number;
}

export const QWEN2VL_SIZE_RULE: SizeRule = { factor: 28, minPixels: 56 * 56, maxPixels: 28 * 28 * 1280 };

/** Python 3's round() for the halves that matter here (x / factor with integer x). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Target [height, width] for an image of the given size. */
export function smartResize(height: number, width: number, rule: Partial<SizeRule> = {}): [number, number] {
  const { factor, minPixels, maxPixels } = { ...QWEN2VL_SIZE_RULE, ...rule };
  if (!(height > 0 && width > 0)) throw new Error(`smartResize: bad image size ${width}x${height}`);
  if (!(minPixels > 0 && maxPixels >= minPixels)) {
    throw new Error(`smartResize: need 0 < minPixels <= maxPixels, got minPixels ${minPixels}, maxPixels ${maxPixels}`);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > 200)
    throw new Error(
      `image aspect ratio ${ratio.toFixed(1)} is above 200 (${width}x${height}); the Qwen2-VL processor refuses it`,
    );
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}
