// The graded reward model's training data (MedGR²'s reward model, issue 17): every labelled sample
// at four levels of quality, each with its target score in [-6, 10]:
//   original    10  the sample as it is;
//   perturbed    6  a near miss: the key names another option (wrong-key, shuffled-options);
//   incoherent   0  a question that does not fit its options (another task's question over them);
//   irrelevant  -6  the sample about another image (mismatched-image, off-modality).
// The perturbed and irrelevant kinds are negatives.ts's constructed negatives; only the grade is new.
import type { Sample } from '../data/proto';
import { Prng } from '../util/prng';
import { constructNegative, type NegativeKind } from './negatives';

export const GRADES = { original: 10, perturbed: 6, incoherent: 0, irrelevant: -6 } as const;
export type Grade = keyof typeof GRADES;
/** The range of the scores (the reward is the score mapped from it onto [0, 1]). */
export const SCORE_MIN = GRADES.irrelevant;
export const SCORE_MAX = GRADES.original;

export interface GradedPair {
  images: string[];
  sample: Sample;
  grade: Grade;
  target: number;
}

/** A score of the graded reward model as a reward in [0, 1] (clamped; NaN stays NaN). */
export function normalizedScore(score: number): number {
  if (Number.isNaN(score)) return NaN;
  return Math.min(1, Math.max(0, (score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)));
}

/** The sample with the question of a sample of another task: its options no longer answer it. */
export function incoherentSample(s: Sample, all: readonly Sample[], prng: Prng): Sample | undefined {
  const others = all.filter((o) => o.task !== s.task && o.question !== s.question);
  if (others.length === 0) return undefined;
  const o = prng.pick(others);
  return { ...s, question: o.question, questionStem: o.questionStem };
}

const PERTURBED: readonly NegativeKind[] = ['wrong-key', 'shuffled-options'];
const IRRELEVANT: readonly NegativeKind[] = ['mismatched-image', 'off-modality'];

/** Every sample as original, and (where the samples allow it) one perturbed, one incoherent and one
 *  irrelevant copy, kinds alternating; deterministic for a seed. */
export function gradedPairs(samples: readonly Sample[], opts: { seed: number }): GradedPair[] {
  const prng = new Prng(`graded/${opts.seed}`);
  const out: GradedPair[] = [];
  const add = (images: string[], sample: Sample, grade: Grade) =>
    out.push({ images, sample, grade, target: GRADES[grade] });
  for (const [i, s] of samples.entries()) {
    add(s.images, s, 'original');
    const firstOf = (kinds: readonly NegativeKind[]) => {
      for (let k = 0; k < kinds.length; k++) {
        const made = constructNegative(s, kinds[(i + k) % kinds.length], samples, prng);
        if (made) return made;
      }
      return undefined;
    };
    const perturbed = firstOf(PERTURBED);
    if (perturbed) add(perturbed.images, perturbed.sample, 'perturbed');
    const incoherent = incoherentSample(s, samples, prng);
    if (incoherent) add(s.images, incoherent, 'incoherent');
    const irrelevant = firstOf(IRRELEVANT);
    if (irrelevant) add(irrelevant.images, irrelevant.sample, 'irrelevant');
  }
  return out;
}
