// OmniMedVQA's eight modalities and five tasks, and the spellings the public files use for them
// ("CT(Computed Tomography)", "MR (Mag-netic Resonance Imaging)", "OCT (Optical Coherence Tomography",
// "Microscopy Images", ...). Anything else is "Other"; the original string is always kept beside it.

import { MODALITIES, TASKS } from '../taxonomy';

export { MODALITIES, TASKS };
export const OTHER = 'Other';

export type Modality = (typeof MODALITIES)[number] | typeof OTHER;
export type Task = (typeof TASKS)[number] | typeof OTHER;

/** Lower-case letters and digits only, single spaces: "MR (Mag-netic ...)" -> "mr magnetic ...".
 *  Hyphens are dropped rather than spaced so that "Mag-netic" and "X-Ray" read as one word. */
function squash(s: string): string {
  return s
    .toLowerCase()
    .replace(/-/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim();
}

// Checked in order; OCT comes before CT because "optical coherence tomography" ends like CT's spelled-out form.
const MODALITY_RULES: Array<[RegExp, Modality]> = [
  [/\boct\b|optical coherence/, 'OCT'],
  [/\bct\b|computed tomography|\bcat scan\b/, 'CT'],
  [/\bmri?\b|magnetic resonance/, 'MRI'],
  [/\bxray\b|\bx ray\b|radiograph|\bcxr\b/, 'X-Ray'],
  [/ultrasound|ultrasonograph|sonograph|\bus\b|\busg\b/, 'Ultrasound'],
  [/dermoscop|dermatoscop|\bder\b/, 'Dermoscopy'],
  [/fundus|\bfp\b|\bcfp\b/, 'Fundus photography'],
  [/microscop|\bmicro\b/, 'Microscopy'],
];

export function normalizeModality(original: string): Modality {
  const s = squash(original);
  if (!s) return OTHER;
  for (const [re, name] of MODALITY_RULES) if (re.test(s)) return name;
  return OTHER;
}

const TASK_RULES: Array<[RegExp, Task]> = [
  [/modality/, 'Modality Recognition'],
  [/anatomy|anatomical|organ/, 'Anatomy Identification'],
  [/disease|diagnos/, 'Disease Diagnosis'],
  [/lesion|grading|\bgrade\b/, 'Lesion Grading'],
  [/biological|attribute/, 'Other Biological Attributes'],
];

export function normalizeTask(original: string): Task {
  const s = squash(original);
  if (!s) return OTHER;
  for (const [re, name] of TASK_RULES) if (re.test(s)) return name;
  return OTHER;
}
