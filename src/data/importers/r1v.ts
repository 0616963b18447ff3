// R1-V / Med-R1 records: {"image", "problem": "What …? A)CT, B)MRI, C)X-Ray, D)Ultrasound",
// "solution": "<answer> C </answer>"}. Med-R1's files carry no modality or task (the file itself is
// the group); fields with those names are used when present.
import { parseLetteredOptions } from './options';
import { answerText } from '../answer_grammar';
import {
  BadRecordError,
  firstStringField,
  imagesField,
  stringField,
  type Importer,
  type RawSample,
  type SourceObject,
} from './types';

export const r1vImporter: Importer = {
  format: 'r1v',
  matches: (rec) => 'problem' in rec && 'solution' in rec,
  convert(rec: SourceObject): RawSample {
    const problem = stringField(rec, 'problem', true);
    const parsed = parseLetteredOptions(problem);
    if (!parsed) throw new BadRecordError(`no lettered options ("A)…, B)…") in 'problem'`);
    return {
      id: firstStringField(rec, ['id', 'question_id']),
      dataset: stringField(rec, 'dataset'),
      images: imagesField(rec, ['image', 'images', 'image_path']),
      modality: firstStringField(rec, ['modality', 'modality_type']),
      task: firstStringField(rec, ['task', 'question_type']),
      question: problem,
      questionStem: parsed.stem,
      options: parsed.options,
      answer: answerText(stringField(rec, 'solution', true)),
      rationale: stringField(rec, 'thinking') ?? stringField(rec, 'rationale'),
    };
  },
};
