// OmniMedVQA's eight modalities and five tasks: the names every part of medgr2 uses (importers
// normalize to them, MedSynth renders them, evaluation groups by them).

export const MODALITIES = [
  'CT',
  'MRI',
  'X-Ray',
  'Ultrasound',
  'Dermoscopy',
  'Fundus photography',
  'OCT',
  'Microscopy',
] as const;
export const TASKS = [
  'Modality Recognition',
  'Anatomy Identification',
  'Disease Diagnosis',
  'Lesion Grading',
  'Other Biological Attributes',
] as const;
