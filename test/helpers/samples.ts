// Hand-written samples and scored candidates for the cycle's unit tests: one CT Modality Recognition
// question (key "CT") that each test bends with overrides.
import type { Sample, ScoredCandidate } from '../../src/data/proto';

export function sampleOf(over: Partial<Sample> = {}): Sample {
  return {
    id: 's',
    dataset: 'd',
    images: ['/x/a.png'],
    modality: 'CT',
    modalityOriginal: 'CT',
    task: 'Modality Recognition',
    taskOriginal: '',
    question: 'What imaging modality is used in this image?',
    options: ['CT', 'MRI', 'OCT', 'X-Ray'],
    answer: 'CT',
    rationale: '',
    provenance: { kind: 'SEED', round: 0, sourceFile: '', sourceLine: 0, sourceFormat: '' },
    questionStem: '',
    ...over,
  };
}

/** A round-1 candidate of `sampleOf({ id, ...over })` with its judge reward (not yet selected). */
export function scoredOf(id: string, reward: number, over: Partial<Sample> = {}, valid = true): ScoredCandidate {
  return {
    candidate: {
      sample: sampleOf({ id, ...over }),
      generatorRound: 1,
      valid,
      invalidReason: valid ? '' : 'bad',
      raw: '',
    },
    reward,
    judgeRound: 1,
    selected: false,
    selectReason: '',
  };
}
