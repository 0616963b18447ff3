// The JSON form of a Sample: what `medgr2 inspect` prints and what `data import --out x.jsonl` writes
// (one object per line). `image` is the first image, for tools that expect one; `images` has them all.
import type { Provenance, Sample } from './proto';

export interface SampleJson {
  id: string;
  dataset: string;
  image: string;
  images: string[];
  question: string;
  options: string[];
  answer: string;
  modality: string;
  task: string;
  modalityOriginal: string;
  taskOriginal: string;
  questionStem: string;
  rationale: string;
  provenance: Provenance;
}

const NO_PROVENANCE: Provenance = {
  kind: 'KIND_UNSPECIFIED',
  round: 0,
  sourceFile: '',
  sourceLine: 0,
  sourceFormat: '',
};

export function sampleToJson(s: Sample): SampleJson {
  return {
    id: s.id,
    dataset: s.dataset,
    image: s.images[0] ?? '',
    images: s.images,
    question: s.question,
    options: s.options,
    answer: s.answer,
    modality: s.modality,
    task: s.task,
    modalityOriginal: s.modalityOriginal,
    taskOriginal: s.taskOriginal,
    questionStem: s.questionStem,
    rationale: s.rationale,
    provenance: s.provenance ?? NO_PROVENANCE,
  };
}
