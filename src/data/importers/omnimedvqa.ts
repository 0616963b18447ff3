// OmniMedVQA's own QA files: a JSON array of records with question_id, dataset, question_type,
// question, gt_answer, image_path, option_A … option_D and modality_type (one file says `modality`).
import { BadRecordError, stringField, type Importer, type RawSample, type SourceObject } from './types';

const OPTION_KEYS = 'ABCDEFGH'.split('').map((l) => `option_${l}`);

export const omnimedvqaImporter: Importer = {
  format: 'omnimedvqa',
  matches: (rec) => 'option_A' in rec && 'gt_answer' in rec,
  convert(rec: SourceObject): RawSample {
    const options: string[] = [];
    for (const key of OPTION_KEYS) {
      const o = stringField(rec, key);
      if (o !== undefined) options.push(o); // fewer than four options is normal (two-way questions)
    }
    if (options.length === 0) throw new BadRecordError('no option_A … option_D fields');
    return {
      id: stringField(rec, 'question_id'),
      dataset: stringField(rec, 'dataset'),
      images: [stringField(rec, 'image_path', true)],
      modality: stringField(rec, 'modality_type') ?? stringField(rec, 'modality'),
      task: stringField(rec, 'question_type'),
      question: stringField(rec, 'question', true),
      options,
      answer: stringField(rec, 'gt_answer', true),
    };
  },
};
