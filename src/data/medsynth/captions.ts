// Noisy image captions: MedSynth's stand-in for the image–text pre-training a real VLM had before
// MedGR² ever sees it. The paper starts every role from Qwen2.5-VL, which already associates what a
// fundus photograph or an OCT scan looks like with those words; a tiny model from random weights knows
// nothing, so no amount of self-generated data can teach it the name of a modality its seed never
// showed. A captioned split over all eight modalities gives it that prior, and only as prose: no
// question, no options, and like web alt-text a fraction of the captions is simply wrong. Names keep
// the spelling the option vocabulary uses ("of the Macula with Drusen"): a model that picks an answer
// out of a caption then copies tokens as they are, with no case to change.
import type { Prng } from '../../util/prng';
import type { ImageTruth } from './truth';
import { ALL_ANATOMIES, GRADES, MODALITIES, MODALITY_SPECS, NORMAL } from './vocab';

/** What a caption says about its image (after noise): the fields it names ("" where unknown). */
export interface CaptionFacts {
  modality: string;
  anatomy: string;
  disease: string;
  /** A lesion's grade ("Grade 3"), named only after a finding of an image with a localized lesion. */
  grade?: string;
}

/** "An MRI", "A CT": by how the name is spoken, not spelled. */
const article = (modality: string) => (['MRI', 'X-Ray', 'OCT', 'Ultrasound'].includes(modality) ? 'An' : 'A');

const TEMPLATES: readonly ((modality: string, rest: string) => string)[] = [
  (m, rest) => `${article(m)} ${m} image${rest}.`,
  (m, rest) => `${m}${rest}.`,
  (m, rest) => `This ${m} image shows${rest}.`,
];

function findingClause(disease: string, prng: Prng): string {
  if (!disease) return '';
  if (disease === NORMAL) return prng.pick([', normal', ' with no abnormality']);
  return prng.pick([` showing ${disease}`, ` with ${disease}`]);
}

/**
 * The facts a caption states: each of modality, anatomy and finding is replaced, with probability
 * `noise`, by a wrong one (another modality, any other anatomy, another finding of the modality or
 * "Normal"). An image with a localized lesion also has its grade named (wrong with the same
 * probability), unless the caption calls it normal: the grade is drawn in the pixels (the lesion's
 * size), so the pre-training prior can carry it, and a question of Lesion Grading, a task the seed
 * lacks, can be answered from a description (issue 17).
 */
export function captionFacts(
  t: Pick<ImageTruth, 'modality' | 'anatomy' | 'disease'> & { lesion?: ImageTruth['lesion'] },
  noise: number,
  prng: Prng,
): CaptionFacts {
  const wrong = (all: readonly string[], right: string) => prng.pick(all.filter((x) => x !== right));
  const spec = MODALITY_SPECS[t.modality];
  const facts: CaptionFacts = {
    modality: prng.next() < noise ? wrong(MODALITIES, t.modality) : t.modality,
    anatomy: prng.next() < noise ? wrong(ALL_ANATOMIES, t.anatomy) : t.anatomy,
    disease: prng.next() < noise ? wrong([NORMAL, ...spec.findings.map((x) => x.name)], t.disease) : t.disease,
  };
  if (t.lesion) {
    // drawn after the other facts, so captions of images without a lesion are as they were
    const grade = GRADES[t.lesion.grade - 1];
    const named = prng.next() < noise ? wrong(GRADES, grade) : grade;
    if (facts.disease !== NORMAL) facts.grade = named;
  }
  return facts;
}

/**
 * One caption of an image: its facts in one of a few phrasings. Facts left "" are left out (a caption
 * of what a labelled sample says about its image may know only the modality).
 */
export function captionText(f: CaptionFacts, prng: Prng): string {
  const k = prng.int(TEMPLATES.length);
  const finding = findingClause(f.disease, prng) + (f.grade && f.disease && f.disease !== NORMAL ? `, ${f.grade}` : '');
  const modality = f.modality || 'medical';
  if (!f.anatomy) return TEMPLATES[k === 2 ? 0 : k](modality, finding);
  const anatomy = `${k === 2 ? ' the' : ' of the'} ${f.anatomy}`;
  return TEMPLATES[k](modality, `${anatomy}${finding}`);
}

/**
 * The facts a text in captionText's phrasings states (the inverse of captionText); "" for a fact it
 * does not name, undefined when the text is not in those phrasings. The cycle reads the pretrained
 * model's descriptions with it: a description is the model's own statement about the image, so a
 * question whose answer names another fact of the same kind argues against it (select.ts).
 */
export function captionFactsOf(text: string): CaptionFacts | undefined {
  let body = text.trim();
  if (!body.endsWith('.')) return undefined;
  body = body.slice(0, -1);
  const graded = /, (Grade [1-4])$/.exec(body);
  if (graded) body = body.slice(0, graded.index);
  let disease = '';
  const normal = /(?:, normal| with no abnormality)$/.exec(body);
  const finding = /(?: showing | with )(.+)$/.exec(body);
  if (normal) {
    disease = NORMAL;
    body = body.slice(0, normal.index);
  } else if (finding) {
    disease = finding[1];
    body = body.slice(0, finding.index);
  }
  // a grade is a lesion's, so it follows a finding ("... with Tumor, Grade 3.")
  if (graded && (!disease || disease === NORMAL)) return undefined;
  const forms: readonly [RegExp, number, number][] = [
    [/^This (.+) image shows the (.+)$/, 1, 2],
    [/^An? (.+) image of the (.+)$/, 1, 2],
    [/^An? (.+) image$/, 1, 0],
    [/^(.+) of the (.+)$/, 1, 2],
    [/^(.+)$/, 1, 0],
  ];
  for (const [form, m, a] of forms) {
    const hit = form.exec(body);
    if (!hit) continue;
    const modality = hit[m] === 'medical' ? '' : hit[m];
    // a name of several words must be a modality's ("Fundus photography"), or the phrasing was another
    if (/ /.test(modality) && !(MODALITIES as readonly string[]).includes(modality)) return undefined;
    return { modality, anatomy: a ? hit[a] : '', disease, ...(graded ? { grade: graded[1] } : {}) };
  }
  return undefined;
}
