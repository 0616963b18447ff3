// Training data of the reward model: seed samples as positives ("Yes"), negatives constructed from
// them ("No"), and the round's confident judgments. Each becomes a generic SFT example; the same
// labelled pairs, built from held-out samples, measure the judge (eval/auc.ts).
//
// The four constructed negatives, each a way a generated sample goes wrong:
//   wrong-key         the key names another option;
//   shuffled-options  the options are reordered but the key keeps its old position, so it now names
//                     another option (the old letter's meaning is broken);
//   mismatched-image  the sample shown with another image whose answer to the same task differs;
//   off-modality      the image shown with a question written for another modality's image.
import { normalizeAnswerText } from '../data/answer_grammar';
import { Prng } from '../util/prng';
import type { Sample, ScoredCandidate } from '../data/proto';
import { judgePrompt } from './prompts';
import type { SftExample } from '../train/sft';

export const NEGATIVE_KINDS = ['wrong-key', 'shuffled-options', 'mismatched-image', 'off-modality'] as const;
export type NegativeKind = (typeof NEGATIVE_KINDS)[number];

export interface LabelledPair {
  images: string[];
  sample: Sample;
  /** true: correct and answerable. */
  label: boolean;
  kind: 'positive' | NegativeKind | 'confident';
}

const same = (a: string, b: string) => normalizeAnswerText(a) === normalizeAnswerText(b);

/** One negative of `kind` for `s`, or undefined when the seed offers no way to make it. */
export function constructNegative(
  s: Sample,
  kind: NegativeKind,
  all: readonly Sample[],
  prng: Prng,
): LabelledPair | undefined {
  const neg = (sample: Sample, images = s.images): LabelledPair => ({ images, sample, label: false, kind });
  switch (kind) {
    case 'wrong-key': {
      const wrong = s.options.filter((o) => !same(o, s.answer));
      if (wrong.length === 0) return undefined;
      return neg({ ...s, answer: prng.pick(wrong) });
    }
    case 'shuffled-options': {
      const k = s.options.indexOf(s.answer);
      for (let tries = 0; tries < 8; tries++) {
        const options = prng.shuffle([...s.options]);
        if (!same(options[k], s.answer)) return neg({ ...s, options, answer: options[k] });
      }
      return undefined;
    }
    case 'mismatched-image': {
      const others = all.filter(
        (o) =>
          o.task === s.task &&
          o.images.join() !== s.images.join() &&
          !same(o.answer, s.answer) &&
          o.modality === s.modality,
      );
      const fallback = all.filter(
        (o) => o.task === s.task && o.images.join() !== s.images.join() && !same(o.answer, s.answer),
      );
      const pickFrom = others.length ? others : fallback;
      if (pickFrom.length === 0) return undefined;
      return neg(s, prng.pick(pickFrom).images);
    }
    case 'off-modality': {
      const others = all.filter(
        (o) => o.modality !== s.modality && !(o.options.some((x) => same(x, s.answer)) && same(o.answer, s.answer)),
      );
      if (others.length === 0) return undefined;
      return neg(prng.pick(others));
    }
  }
}

/** Every sample as a positive, plus `negativesPerPositive` negatives each, kinds in turn. */
export function constructPairs(
  samples: readonly Sample[],
  opts: { seed: number; negativesPerPositive?: number },
): LabelledPair[] {
  const prng = new Prng(`negatives/${opts.seed}`);
  const per = opts.negativesPerPositive ?? 1;
  const out: LabelledPair[] = [];
  let turn = 0;
  for (const s of samples) {
    out.push({ images: s.images, sample: s, label: true, kind: 'positive' });
    for (let n = 0; n < per; n++) {
      for (let tries = 0; tries < NEGATIVE_KINDS.length; tries++) {
        const made = constructNegative(s, NEGATIVE_KINDS[turn++ % NEGATIVE_KINDS.length], samples, prng);
        if (made) {
          out.push(made);
          break;
        }
      }
    }
  }
  return out;
}

/** The round's judgments the judge was sure of: reward >= hi → Yes, <= lo → No (valid candidates only). */
export function confidentPairs(
  scored: readonly ScoredCandidate[],
  opts: { hi?: number; lo?: number } = {},
): LabelledPair[] {
  const hi = opts.hi ?? 0.9;
  const lo = opts.lo ?? 0.1;
  return scored
    .filter((s) => s.candidate.valid && (s.reward >= hi || s.reward <= lo))
    .map((s) => ({
      images: s.candidate.sample.images,
      sample: s.candidate.sample,
      label: s.reward >= hi,
      kind: 'confident' as const,
    }));
}

/** A labelled pair as the judge's SFT example. */
export function judgeExample(p: LabelledPair): SftExample {
  return judgeExampleWith(judgePrompt)(p);
}

/** The judge's SFT examples with another user turn (the instruct recipe's). */
export function judgeExampleWith(prompt: (s: Sample) => string): (p: LabelledPair) => SftExample {
  return (p) => ({ images: p.images, user: prompt(p.sample), reply: p.label ? 'Yes' : 'No' });
}
