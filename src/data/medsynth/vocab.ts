// MedSynth's closed world: the eight OmniMedVQA modalities, the anatomy each can show, the three
// findings (plus "Normal") each can show, and the words of the five tasks. Kept small on purpose:
// a tiny VLM must be able to learn every answer from the pixels.

import { MODALITIES, TASKS } from '../taxonomy';

export { MODALITIES, TASKS };
export type Modality = (typeof MODALITIES)[number];
export type Task = (typeof TASKS)[number];

export const NORMAL = 'Normal';

/** How a finding is drawn; see lesion.ts. */
export type LesionStyle = 'solid' | 'ring' | 'hazy' | 'spotted' | 'irregular';

export interface FindingSpec {
  name: string;
  style: LesionStyle;
  color: readonly [number, number, number];
  /** Second colour: the ring's centre, the irregular lesion's mottling. */
  inner?: readonly [number, number, number];
}

export interface ModalitySpec {
  anatomies: readonly string[];
  /** Three findings; with "Normal" they are the four diagnosis options. Microscopy's are diffuse. */
  findings: readonly FindingSpec[];
  /** Whether findings are one localized lesion (grading and location questions apply). */
  localized: boolean;
}

const g = (v: number): readonly [number, number, number] => [v, v, v];

export const MODALITY_SPECS: Record<Modality, ModalitySpec> = {
  CT: {
    anatomies: ['Brain', 'Chest', 'Abdomen'],
    findings: [
      { name: 'Hemorrhage', style: 'solid', color: g(0.92) },
      { name: 'Infarct', style: 'solid', color: g(0.12) },
      { name: 'Tumor', style: 'ring', color: g(0.9), inner: g(0.25) },
    ],
    localized: true,
  },
  MRI: {
    anatomies: ['Brain', 'Knee', 'Spine'],
    findings: [
      { name: 'Tumor', style: 'ring', color: g(0.95), inner: g(0.15) },
      { name: 'Edema', style: 'hazy', color: g(0.98) },
      { name: 'Cyst', style: 'solid', color: g(0.05) },
    ],
    localized: true,
  },
  'X-Ray': {
    anatomies: ['Chest', 'Hand', 'Knee'],
    findings: [
      { name: 'Nodule', style: 'solid', color: g(0.95) },
      { name: 'Pneumonia', style: 'hazy', color: g(0.9) },
      { name: 'Cavity', style: 'ring', color: g(0.95), inner: g(0.05) },
    ],
    localized: true,
  },
  Ultrasound: {
    anatomies: ['Kidney', 'Liver', 'Bladder'],
    findings: [
      { name: 'Cyst', style: 'solid', color: g(0.02) },
      { name: 'Stone', style: 'solid', color: g(1.0) },
      { name: 'Mass', style: 'spotted', color: g(0.85) },
    ],
    localized: true,
  },
  Dermoscopy: {
    anatomies: ['Skin'],
    findings: [
      { name: 'Melanoma', style: 'irregular', color: [0.18, 0.1, 0.08], inner: [0.35, 0.4, 0.55] },
      { name: 'Nevus', style: 'solid', color: [0.5, 0.3, 0.18] },
      { name: 'Keratosis', style: 'ring', color: [0.62, 0.48, 0.3], inner: [0.82, 0.72, 0.55] },
    ],
    localized: true,
  },
  'Fundus photography': {
    anatomies: ['Retina'],
    findings: [
      { name: 'Hemorrhage', style: 'solid', color: [0.35, 0.02, 0.02] },
      { name: 'Exudate', style: 'spotted', color: [1.0, 0.95, 0.45] },
      { name: 'Drusen', style: 'hazy', color: [0.95, 0.85, 0.55] },
    ],
    localized: true,
  },
  OCT: {
    anatomies: ['Macula'],
    findings: [
      { name: 'CNV', style: 'solid', color: g(0.97) },
      { name: 'DME', style: 'solid', color: g(0.0) },
      { name: 'Drusen', style: 'spotted', color: g(1.0) },
    ],
    localized: true,
  },
  Microscopy: {
    anatomies: ['Blood'],
    findings: [
      { name: 'Malaria', style: 'spotted', color: [0.4, 0.1, 0.45] },
      { name: 'Sickle cell', style: 'solid', color: [0.8, 0.35, 0.4] },
      { name: 'Leukemia', style: 'solid', color: [0.25, 0.08, 0.4] },
    ],
    localized: false,
  },
};

/** Every anatomy name, for distractors. */
export const ALL_ANATOMIES: readonly string[] = [...new Set(Object.values(MODALITY_SPECS).flatMap((s) => s.anatomies))];

export const GRADES = ['Grade 1', 'Grade 2', 'Grade 3', 'Grade 4'] as const;
/** Lesion radius per grade, as a fraction of the image side. */
export const GRADE_RADIUS = [0.045, 0.07, 0.095, 0.125] as const;

/** Image quadrants (image sides, not patient sides: the image is what the model sees). */
export const QUADRANTS = ['Upper left', 'Upper right', 'Lower left', 'Lower right'] as const;
export type Quadrant = (typeof QUADRANTS)[number];

export const COUNTS = ['1', '2', '3', '4'] as const;

/** Two phrasings per question kind: enough variety to not be one string, few enough to learn. */
export const QUESTION_TEXT = {
  modality: ['What imaging modality is used in this image?', 'Which imaging technique was used to acquire this image?'],
  anatomy: ['Which part of the body is shown in this image?', 'What anatomical structure is shown in this image?'],
  diagnosis: ['What is the most likely diagnosis?', 'Which abnormality is shown in this image?'],
  grade: ['What is the grade of the lesion in this image?', 'How large is the lesion, by grade?'],
  location: ['Where is the lesion located in the image?', 'In which part of the image is the lesion?'],
  count: ['How many white blood cells are in this image?', 'How many white blood cells can be seen?'],
} as const;
