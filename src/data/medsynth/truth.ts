// The ground truth of one MedSynth image: everything its questions are about. Sampled first, then
// rendered (render.ts) and asked about (questions.ts), so every answer is true of its pixels.
import { Prng } from '../../util/prng';
import { GRADE_RADIUS, MODALITY_SPECS, NORMAL, QUADRANTS, type Modality, type Quadrant } from './vocab';

export interface Lesion {
  quadrant: Quadrant;
  /** 1..4, by size. */
  grade: number;
  /** Centre and radius in pixels. */
  cx: number;
  cy: number;
  radius: number;
}

export interface ImageTruth {
  /** Relative to the world folder, e.g. "images/000012.png". */
  image_path: string;
  split: 'labelled' | 'pool' | 'captioned';
  /** The label every stream of this image's randomness is derived from. */
  seed_label: string;
  size: number;
  modality: Modality;
  anatomy: string;
  /** A finding's name, or "Normal". */
  disease: string;
  /** The localized lesion, when there is one. */
  lesion: Lesion | null;
  /** Microscopy: white blood cells drawn (1..4). */
  wbc_count?: number;
}

/**
 * Where a quadrant's lesion is centred, as fractions of the side: each modality keeps its lesions
 * on its anatomy (the ultrasound fan, the OCT retina band).
 */
function quadrantCentre(modality: Modality, q: number): [number, number] {
  const left = q % 2 === 0;
  const upper = q < 2;
  switch (modality) {
    case 'Ultrasound':
      return [left ? 0.34 : 0.66, upper ? 0.42 : 0.72];
    case 'OCT':
      return [left ? 0.27 : 0.73, upper ? 0.4 : 0.6];
    default:
      return [left ? 0.29 : 0.71, upper ? 0.29 : 0.71];
  }
}

export function sampleTruth(
  modality: Modality,
  size: number,
  imagePath: string,
  split: ImageTruth['split'],
  seedLabel: string,
): ImageTruth {
  const prng = new Prng(`${seedLabel}/truth`);
  const spec = MODALITY_SPECS[modality];
  const anatomy = prng.pick(spec.anatomies);
  const diseases = [NORMAL, ...spec.findings.map((f) => f.name)];
  const disease = prng.pick(diseases);
  let lesion: Lesion | null = null;
  if (spec.localized && disease !== NORMAL) {
    const q = prng.int(4);
    const grade = 1 + prng.int(4);
    const [fx, fy] = quadrantCentre(modality, q);
    // A little jitter so position is not a constant, never enough to cross the midlines.
    const jitter = 0.03 * size;
    lesion = {
      quadrant: QUADRANTS[q],
      grade,
      cx: Math.round(fx * size + prng.range(-jitter, jitter)),
      cy: Math.round(fy * size + prng.range(-jitter, jitter)),
      radius: Math.round(GRADE_RADIUS[grade - 1] * size * 10) / 10,
    };
  }
  const truth: ImageTruth = {
    image_path: imagePath,
    split,
    seed_label: seedLabel,
    size,
    modality,
    anatomy,
    disease,
    lesion,
  };
  if (modality === 'Microscopy') truth.wbc_count = 1 + prng.int(4);
  return truth;
}
