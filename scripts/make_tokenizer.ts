// Learns the small byte-level BPE tokenizer shipped for the tiny models and writes it in the
// Hugging Face format: configs/tokenizer/tokenizer.json + tokenizer_config.json.
//
//   npx tsc -p tsconfig.json && node dist/scripts/make_tokenizer.js [--out configs/tokenizer]
//
// The tokenizer has Qwen2's structure (NFC, the Qwen2 split regex, byte-level BPE, no unknown
// token), so any text encodes; its merges are learned from MedSynth's question/answer text and the
// prompt shapes the cycle uses, so those come out short. Ids: 256 byte tokens (in byte order), then
// the merges, then the added tokens; the total is exactly TOTAL_VOCAB. Deterministic: ties between
// equally frequent pairs go to the lexicographically smallest pair.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Prng } from '../src/util/prng';
import { AnswerSlots, makeQuestions } from '../src/data/medsynth/questions';
import { sampleTruth } from '../src/data/medsynth/truth';
import {
  ALL_ANATOMIES,
  COUNTS,
  GRADES,
  MODALITIES,
  MODALITY_SPECS,
  NORMAL,
  QUADRANTS,
  TASKS,
} from '../src/data/medsynth/vocab';

export const TOTAL_VOCAB = 768;

/** Added tokens, in id order after the BPE vocabulary. */
export const ADDED_TOKENS: { content: string; special: boolean }[] = [
  { content: '<|endoftext|>', special: true },
  { content: '<|im_start|>', special: true },
  { content: '<|im_end|>', special: true },
  { content: '<|vision_start|>', special: true },
  { content: '<|vision_end|>', special: true },
  { content: '<|image_pad|>', special: true },
  { content: '<|video_pad|>', special: true },
  { content: '<think>', special: false },
  { content: '</think>', special: false },
  { content: '<answer>', special: false },
  { content: '</answer>', special: false },
];

/** Qwen2's pre-tokenizer pattern, as written in its tokenizer.json (Oniguruma syntax). */
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same pattern in JavaScript syntax (no inline case-insensitive group), for training. */
const QWEN2_SPLIT_JS =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte → printable character map used by byte-level BPE. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map = new Array<string>(256);
  bs.forEach((b, i) => (map[b] = String.fromCharCode(cs[i])));
  return map;
}

/** The text the merges are learned from: MedSynth records in all the prompt shapes, weighted by use. */
function corpus(): string[] {
  const texts: string[] = [];
  const prng = new Prng('tokenizer-corpus');
  const slots = new AnswerSlots(new Prng('tokenizer-corpus/slots'));
  const letters = ['A', 'B', 'C', 'D'];
  for (let i = 0; i < 3000; i++) {
    const t = sampleTruth(MODALITIES[i % MODALITIES.length], 112, 'x.png', 'labelled', `tokenizer-corpus/${i}`);
    for (const r of makeQuestions(t, 'q', prng, slots)) {
      const opts = [r.option_A, r.option_B, r.option_C, r.option_D];
      const key = letters[opts.indexOf(r.gt_answer)];
      // Policy prompt (OmniMedVQA / Med-R1 style) and its replies.
      texts.push(`${r.question}\nA) ${opts[0]}\nB) ${opts[1]}\nC) ${opts[2]}\nD) ${opts[3]}`);
      texts.push(
        `${r.question} Please choose one of the following: ${opts.join(' or ')}. You must pick only one answer.`,
      );
      texts.push(
        `<think> The image is a ${r.modality_type} image. The answer is ${r.gt_answer}. </think> <answer> ${key} </answer>`,
      );
      texts.push(`<answer> ${key}) ${r.gt_answer} </answer>`);
      // Generator output (JSON sample) and reward-model judgment.
      texts.push(
        JSON.stringify({
          question: r.question,
          options: opts,
          answer: r.gt_answer,
          rationale: `The ${r.modality_type} image shows ${r.gt_answer}.`,
        }),
      );
      texts.push(
        `Question: ${r.question}\nOptions: ${opts.join(', ')}\nAnswer: ${r.gt_answer}\nIs this sample correct and answerable from the image? Yes or No.`,
      );
    }
  }
  const words = [
    ...MODALITIES,
    ...TASKS,
    ...ALL_ANATOMIES,
    ...GRADES,
    ...QUADRANTS,
    ...COUNTS,
    NORMAL,
    ...Object.values(MODALITY_SPECS).flatMap((s) => s.findings.map((f) => f.name)),
  ];
  for (let k = 0; k < 50; k++) texts.push(words.join(' '), words.join(', '));
  const prompts = [
    'You are a helpful assistant.',
    'You are a medical imaging expert. Look at the image and answer the question.',
    'First think about the question step by step in <think> </think> tags, then give the letter of the correct option in <answer> </answer> tags.',
    'Write one multiple-choice question about this medical image, with four options and the correct answer, as JSON with the keys "question", "options", "answer" and "rationale".',
    'Target modality: CT. Target task: Disease Diagnosis.',
    'Judge the sample below. Answer Yes if the question is correct and answerable from the image and the answer is right, otherwise answer No.',
    'Yes',
    'No',
    'The answer is',
    'the lesion',
    'the image shows',
    'in this image',
    'white blood cells',
    'no abnormality',
    '0 1 2 3 4 5 6 7 8 9 10 100',
    '{"question": "',
    '", "options": ["',
    '"], "answer": "',
    '", "rationale": "',
    '"}',
  ];
  for (let k = 0; k < 200; k++) texts.push(...prompts);
  return texts;
}

interface Word {
  symbols: string[];
  count: number;
}

/** Learns up to `numMerges` merges; returns them in rank order as [left, right]. */
export function learnMerges(texts: string[], numMerges: number): [string, string][] {
  const byteMap = bytesToUnicode();
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const text of texts) {
    // Added tokens are never merged across: train on the text between them.
    for (const piece of text.normalize('NFC').split(/<\/?think>|<\/?answer>/)) {
      for (const m of piece.matchAll(QWEN2_SPLIT_JS)) {
        const w = Array.from(encoder.encode(m[0]), (b) => byteMap[b]).join('\u0000');
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
  }
  const words: Word[] = [...counts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([w, count]) => ({ symbols: w.split('\u0000'), count }));
  const merges: [string, string][] = [];
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const k = `${w.symbols[i]}\u0000${w.symbols[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + w.count);
      }
    }
    let best = '';
    let bestCount = 1;
    for (const [k, c] of pairs)
      if (c > bestCount || (c === bestCount && best !== '' && k < best)) [best, bestCount] = [k, c];
    if (best === '') break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const s = w.symbols;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(s[i]);
      }
      w.symbols = out;
    }
  }
  return merges;
}

const QWEN2VL_CHAT_TEMPLATE =
  "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

function main(): void {
  const outArg = process.argv.indexOf('--out');
  const out = outArg > 0 ? process.argv[outArg + 1] : path.resolve(__dirname, '..', '..', 'configs', 'tokenizer');
  const byteMap = bytesToUnicode();
  const numMerges = TOTAL_VOCAB - 256 - ADDED_TOKENS.length;
  const merges = learnMerges(corpus(), numMerges);
  if (merges.length !== numMerges) throw new Error(`corpus gave only ${merges.length} merges, ${numMerges} wanted`);
  const vocab: Record<string, number> = {};
  byteMap.forEach((ch, b) => (vocab[ch] = b));
  merges.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const firstAdded = 256 + merges.length;
  const added = ADDED_TOKENS.map((t, i) => ({
    id: firstAdded + i,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const addedDecoder: Record<string, object> = {};
  for (const t of added)
    addedDecoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: t.special,
    };
  const config = {
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: [
      '<|im_start|>',
      '<|im_end|>',
      '<|vision_start|>',
      '<|vision_end|>',
      '<|image_pad|>',
      '<|video_pad|>',
    ],
    bos_token: null,
    chat_template: QWEN2VL_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 4096,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tokenizer, null, 1) + '\n');
  fs.writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  process.stdout.write(
    `wrote ${out}: ${merges.length} merges, vocab ${TOTAL_VOCAB} (added tokens from id ${firstAdded})\n`,
  );
}

if (require.main === module) main();
