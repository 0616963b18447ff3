// One MedSynth image from its ground truth. Three independent random streams per image
// (anatomy, lesion, acquisition noise) so the same image can be re-rendered without its lesion
// and differ only inside the lesion's disc: that is how the tests check findings from pixels.
import { drawAnatomy, postprocess } from './anatomy';
import { drawLesion } from './lesion';
import { drawSmear } from './microscopy';
import { Prng } from '../../util/prng';
import type { ImageTruth } from './truth';
import { MODALITY_SPECS } from './vocab';

export interface RenderOptions {
  /** false: the same image with its lesion left out (tests). */
  withLesion?: boolean;
}

/** RGB bytes, truth.size × truth.size. */
export function renderImage(truth: ImageTruth, opts: RenderOptions = {}): Uint8Array {
  const S = truth.size;
  const label = truth.seed_label;
  const canvas =
    truth.modality === 'Microscopy'
      ? drawSmear(S, truth.disease, truth.wbc_count ?? 1, new Prng(`${label}/anatomy`))
      : drawAnatomy(truth.modality, truth.anatomy, S, new Prng(`${label}/anatomy`));
  if (truth.lesion && opts.withLesion !== false) {
    const spec = MODALITY_SPECS[truth.modality].findings.find((f) => f.name === truth.disease);
    if (!spec) throw new Error(`MedSynth: ${truth.modality} has no finding ${truth.disease}`);
    drawLesion(canvas, spec, truth.lesion, new Prng(`${label}/lesion`));
  }
  postprocess(truth.modality, canvas, new Prng(`${label}/noise`));
  return canvas.toRgb8();
}
