// Small packed batches of the tiny models' tokens (configs/tokenizer sizes), with and without an image.
import { packSequences, TINY_TOKENS as T, type ModelTypes } from '../../src/index';
import { randn, rng } from './numeric';

/** Three packed sequences of odd lengths (11, 7, 3), the first holding one 4x4-patch image. */
export function imageBatch(seed: number): ModelTypes.ModelBatch & { inputIds: Int32Array; cuSeqlens: Int32Array } {
  const r = rng(seed);
  const withImage = Int32Array.from([3, 4, T.visionStart, ...new Array(4).fill(T.imagePad), T.visionEnd, 50, 51, 52]);
  return {
    ...packSequences([withImage, Int32Array.from([60, 61, 62, 63, 64, 65, 66]), Int32Array.from([70, 71, 72])]),
    pixelValues: Float32Array.from(randn(r, 16 * 1176)),
    imageGrids: Int32Array.from([1, 4, 4]),
  };
}
