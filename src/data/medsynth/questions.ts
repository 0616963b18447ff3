// Four-option questions about an image's ground truth, one per task that applies to it, in
// OmniMedVQA's record format. Answer positions are balanced per task: each task draws its answer
// slot from shuffled blocks of [A, B, C, D], so no option letter is a better guess than another.
import type { Prng } from '../../util/prng';
import type { ImageTruth } from './truth';
import {
  ALL_ANATOMIES,
  COUNTS,
  GRADES,
  MODALITIES,
  MODALITY_SPECS,
  NORMAL,
  QUADRANTS,
  QUESTION_TEXT,
  type Task,
} from './vocab';

/** A record as OmniMedVQA writes them (plus nothing else, so importers need no special case). */
export interface OmniRecord {
  question_id: string;
  dataset: 'MedSynth';
  question_type: Task;
  question: string;
  gt_answer: string;
  image_path: string;
  modality_type: string;
  option_A: string;
  option_B: string;
  option_C: string;
  option_D: string;
}

/** Balanced answer slots per task. */
export class AnswerSlots {
  private blocks = new Map<Task, number[]>();
  constructor(private readonly prng: Prng) {}

  next(task: Task): number {
    let block = this.blocks.get(task);
    if (!block || block.length === 0) {
      block = this.prng.shuffle([0, 1, 2, 3]);
      this.blocks.set(task, block);
    }
    return block.pop()!;
  }
}

interface Draft {
  task: Task;
  kind: keyof typeof QUESTION_TEXT;
  answer: string;
  distractors: string[];
}

function others(all: readonly string[], answer: string): string[] {
  return all.filter((x) => x !== answer);
}

/** The questions that apply to this image (with their answer and three distractors). */
function drafts(t: ImageTruth, prng: Prng): Draft[] {
  const spec = MODALITY_SPECS[t.modality];
  const out: Draft[] = [];
  out.push({
    task: 'Modality Recognition',
    kind: 'modality',
    answer: t.modality,
    distractors: prng.shuffle(others(MODALITIES, t.modality)).slice(0, 3),
  });
  // Same-modality anatomies first (the hard distractors), then others.
  const sameModality = prng.shuffle(others(spec.anatomies, t.anatomy));
  const rest = prng.shuffle(ALL_ANATOMIES.filter((a) => a !== t.anatomy && !sameModality.includes(a)));
  out.push({
    task: 'Anatomy Identification',
    kind: 'anatomy',
    answer: t.anatomy,
    distractors: [...sameModality, ...rest].slice(0, 3),
  });
  const diagnoses = [NORMAL, ...spec.findings.map((f) => f.name)];
  out.push({
    task: 'Disease Diagnosis',
    kind: 'diagnosis',
    answer: t.disease,
    distractors: others(diagnoses, t.disease),
  });
  if (t.lesion) {
    const grade = GRADES[t.lesion.grade - 1];
    out.push({ task: 'Lesion Grading', kind: 'grade', answer: grade, distractors: others(GRADES, grade) });
    out.push({
      task: 'Other Biological Attributes',
      kind: 'location',
      answer: t.lesion.quadrant,
      distractors: others(QUADRANTS, t.lesion.quadrant),
    });
  }
  if (t.wbc_count !== undefined) {
    const n = String(t.wbc_count);
    out.push({ task: 'Other Biological Attributes', kind: 'count', answer: n, distractors: others(COUNTS, n) });
  }
  return out;
}

export function makeQuestions(t: ImageTruth, idPrefix: string, prng: Prng, slots: AnswerSlots): OmniRecord[] {
  return drafts(t, prng).map((d, k) => {
    const options = new Array<string>(4);
    const slot = slots.next(d.task);
    const dis = prng.shuffle([...d.distractors]);
    options[slot] = d.answer;
    for (let i = 0, j = 0; i < 4; i++) if (i !== slot) options[i] = dis[j++];
    return {
      question_id: `${idPrefix}-q${k}`,
      dataset: 'MedSynth',
      question_type: d.task,
      question: prng.pick(QUESTION_TEXT[d.kind]),
      gt_answer: d.answer,
      image_path: t.image_path,
      modality_type: t.modality,
      option_A: options[0],
      option_B: options[1],
      option_C: options[2],
      option_D: options[3],
    };
  });
}
