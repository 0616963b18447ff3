// The MedGR² authors' JSONL: OmniMedVQA's fields with `options` as a list, and the question ending
// "Please choose one of the following: X or Y or Z or W. You must pick only one answer.". Records
// without `options` (e.g. their prediction files) get the options parsed from that sentence.
import { parseChooseSuffix, stripChooseSuffix } from './options';
import { BadRecordError, stringField, optionsArray, type Importer, type RawSample, type SourceObject } from './types';

export const medgr2AuthorsImporter: Importer = {
  format: 'medgr2-authors',
  matches: (rec) =>
    'gt_answer' in rec &&
    'question' in rec &&
    (Array.isArray(rec.options) || (typeof rec.question === 'string' && parseChooseSuffix(rec.question) !== undefined)),
  convert(rec: SourceObject): RawSample {
    const question = stringField(rec, 'question', true);
    let options = optionsArray(rec, 'options');
    if (!options) {
      const parsed = parseChooseSuffix(question);
      if (!parsed) {
        throw new BadRecordError(
          `no 'options' and the question has no "Please choose one of the following: … or …" list`,
        );
      }
      options = parsed.options;
    }
    const imagePath = stringField(rec, 'image_path', true);
    return {
      id: stringField(rec, 'question_id'),
      dataset: stringField(rec, 'dataset'),
      images: [imagePath],
      modality: stringField(rec, 'modality_type') ?? stringField(rec, 'modality'),
      task: stringField(rec, 'question_type'),
      question,
      questionStem: stripChooseSuffix(question),
      options,
      answer: stringField(rec, 'gt_answer', true),
    };
  },
};
