// LLaVA / ShareGPT conversations: {"image", "conversations": [{"from": "human", "value": "<image>\n…"},
// {"from": "gpt", "value": "…"}]} (also "messages" with role/content). The first human turn is the
// question and must list its options ("A. …" / "A) …" / "(A) …"); the reply after it is the answer.
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

interface Turn {
  speaker: 'human' | 'gpt' | 'other';
  text: string;
}

function turnsOf(rec: SourceObject): Turn[] {
  const list = rec.conversations ?? rec.messages;
  if (!Array.isArray(list)) throw new BadRecordError(`'conversations' must be a list of turns`);
  return list.map((t, i) => {
    if (typeof t !== 'object' || t === null) throw new BadRecordError(`conversations[${i}] is not an object`);
    const o = t as SourceObject;
    const who = String(o.from ?? o.role ?? '').toLowerCase();
    const text = o.value ?? o.content;
    if (typeof text !== 'string') throw new BadRecordError(`conversations[${i}] has no text ('value')`);
    const speaker =
      who === 'human' || who === 'user' ? 'human' : who === 'gpt' || who === 'assistant' ? 'gpt' : 'other';
    return { speaker, text };
  });
}

export const llavaImporter: Importer = {
  format: 'llava',
  matches: (rec) => Array.isArray(rec.conversations) || Array.isArray(rec.messages),
  convert(rec: SourceObject): RawSample {
    const turns = turnsOf(rec);
    const q = turns.findIndex((t) => t.speaker === 'human');
    if (q < 0) throw new BadRecordError('no human turn');
    const a = turns.findIndex((t, i) => i > q && t.speaker === 'gpt');
    if (a < 0) throw new BadRecordError('no gpt reply after the human turn');
    const question = turns[q].text.replace(/<image>/g, '').trim();
    const parsed = parseLetteredOptions(question);
    if (!parsed)
      throw new BadRecordError('the human turn lists no lettered options (medgr2 samples are multiple choice)');
    return {
      id: firstStringField(rec, ['id', 'question_id']),
      dataset: stringField(rec, 'dataset'),
      images: imagesField(rec, ['image', 'images']),
      modality: firstStringField(rec, ['modality', 'modality_type']),
      task: firstStringField(rec, ['task', 'question_type']),
      question,
      questionStem: parsed.stem,
      options: parsed.options,
      answer: answerText(turns[a].text),
    };
  },
};
