// medgr2's own canonical JSONL (src/data/sample_json.ts), as `data import --out x.jsonl` writes it,
// so such a file can be imported, split or scored like any other.
import {
  imagesField,
  optionsArray,
  stringField,
  BadRecordError,
  type Importer,
  type RawSample,
  type SourceObject,
} from './types';

export const medgr2JsonlImporter: Importer = {
  format: 'medgr2-jsonl',
  matches: (rec) => 'provenance' in rec && 'answer' in rec && Array.isArray(rec.options) && 'modalityOriginal' in rec,
  convert(rec: SourceObject): RawSample {
    const options = optionsArray(rec, 'options');
    if (!options) throw new BadRecordError(`field 'options' is missing`);
    return {
      id: stringField(rec, 'id'),
      dataset: stringField(rec, 'dataset'),
      images: imagesField(rec, ['images', 'image']),
      modality: stringField(rec, 'modalityOriginal'),
      task: stringField(rec, 'taskOriginal'),
      modalityName: stringField(rec, 'modality'),
      taskName: stringField(rec, 'task'),
      question: stringField(rec, 'question', true),
      questionStem: stringField(rec, 'questionStem'),
      options,
      answer: stringField(rec, 'answer', true),
      rationale: stringField(rec, 'rationale'),
    };
  },
};
