// The prompts of the instruct recipe (a pretrained VLM given with --model), in the plain language an
// instruct model follows, and the reading of its replies:
//   generator  one multiple-choice question about the image with four options, the answer and a
//              short rationale, as one JSON object, asked in one of three styles (the paper compares
//              them; metacognitive introspection worked best): direct instruction, step-by-step
//              reasoning first, or a reflection on what it is sure of first;
//   judge      is the question answerable from the image and the proposed answer correct: Yes or No
//              (the reward is P(Yes) / (P(Yes) + P(No)) of its first reply token, judge.ts);
//   policy     Med-R1's format: the reasoning in <think> </think>, the answer in <answer> </answer>,
//              named by the option's letter or its text as the user's benchmark keys it.
// The default (MedSynth, tiny model) recipe keeps its own compact prompts (prompts.ts, generator.ts).
import { formatReply, matchOption } from '../data/answer_grammar';
import { DEFAULT_SYSTEM } from '../data/chat_template';
import type { Candidate, Sample } from '../data/proto';
import { OPTION_LETTERS } from '../eval/policy_prompt';
import type { SftExample } from '../train/sft';
import type { AnswerFormat, GeneratorPromptStyle } from './config';
import { parseGeneratorReply, type ParseContext } from './generator';

/** What the generator is told about an image besides the image itself. */
export interface GeneratorHint {
  /** The modality the pool names ("" when none). */
  modality: string;
  /** The kind of question to ask (a task name of the seed; "" for any). */
  task: string;
  /** A description of the image by the initial weights (describe-pool, when asked). */
  description?: string;
}

const TASK_ENDING: Record<GeneratorPromptStyle, string> = {
  direct: 'Output only the JSON object.',
  step: [
    'First reason step by step about what the image shows: the imaging modality, the body region or organ,',
    'and any visible findings. Then write the question, the four options and the answer from that reasoning.',
    'Write your reasoning first and the JSON object last.',
  ].join(' '),
  metacognitive: [
    'Before you write the question, reflect on your own understanding of the image:',
    '1. What are you confident the image shows (modality, anatomy, findings), and what are you unsure of?',
    '2. Which question could validly be asked about this image using only what you are confident of?',
    '3. Check that the question can be answered from the image alone, that exactly one option is correct,',
    'and that the other three are plausible but wrong. If not, choose another question.',
    'Write this reflection briefly, then the JSON object last.',
  ].join('\n'),
};

const JSON_SPEC =
  'Give the result as one JSON object with the keys "question" (the question), "options" (a list of exactly ' +
  'four answer options), "answer" (the correct option: its letter A-D or its exact text) and "rationale" ' +
  '(one or two sentences on why the answer is correct, from what the image shows).';

/** The generator's user turn in one of the three styles. */
export function instructGeneratorPrompt(style: GeneratorPromptStyle, hint: GeneratorHint): string {
  const lines = [
    'You are given a medical image. Write one multiple-choice question about it that can be answered by ' +
      'looking at the image, with four options of which exactly one is correct.',
  ];
  if (hint.modality) lines.push(`The image is a ${hint.modality} image.`);
  if (hint.task) lines.push(`The question should be of this type: ${hint.task}.`);
  if (hint.description) lines.push(`A description of the image: ${hint.description}`);
  lines.push(JSON_SPEC, TASK_ENDING[style]);
  return lines.join('\n');
}

/** The JSON reply a labelled sample makes (the generator's warm-up target, when one is asked for). */
export function instructGeneratorReply(
  sample: Pick<Sample, 'question' | 'questionStem' | 'options' | 'answer' | 'rationale'>,
): string {
  const o: Record<string, unknown> = {
    question: sample.questionStem || sample.question,
    options: sample.options,
    answer: sample.answer,
  };
  if (sample.rationale) o.rationale = sample.rationale;
  return JSON.stringify(o);
}

/** Every balanced top-level {...} of the text, in order (strings and escapes respected). */
export function jsonObjectTexts(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (depth > 0 && inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (depth > 0 && c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && depth > 0 && --depth === 0) out.push(text.slice(start, i + 1));
  }
  return out;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The sample object of a reply: in a ```json fence when there is one, else anywhere in the text; the
 * last object that parses and has a question wins (a reflection before it may hold braces of its own).
 * Undefined text when the reply has no {...} at all.
 */
export function replyObject(raw: string): { text?: string; object?: Record<string, unknown> } {
  const fenced = [...raw.matchAll(/```(?:json)?\s*([\s\S]*?)```/gi)].flatMap((m) => jsonObjectTexts(m[1]));
  const all = [...fenced, ...jsonObjectTexts(raw)];
  for (const text of [...fenced.reverse(), ...jsonObjectTexts(raw).reverse()]) {
    const o = parseObject(text);
    if (o && (typeof o.question === 'string' || typeof o.q === 'string')) return { text, object: o };
  }
  return { text: all[all.length - 1] };
}

const LETTER_PREFIX = /^\(?([A-Da-d])[).:]\s+/;

/** Options as a list of strings: a list, or an object keyed A-D ({"A": "CT", ...}); letter prefixes
 *  ("A) CT", "B. MRI") dropped when every option has its own. */
function optionList(v: unknown): unknown {
  let list: unknown = v;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.every(([k]) => /^[A-Da-d]$/.test(k.trim())))
      list = entries.sort((a, b) => a[0].localeCompare(b[0])).map(([, x]) => x);
  }
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) return list;
  const strings = list as string[];
  const prefixed = strings.map((x) => LETTER_PREFIX.exec(x.trim()));
  if (prefixed.every((m, i) => m && m[1].toUpperCase() === OPTION_LETTERS[i]))
    return strings.map((x) => x.trim().replace(LETTER_PREFIX, ''));
  return strings;
}

/**
 * One instruct generator reply → a Candidate, valid under parseGeneratorReply's rules: a non-empty
 * "question", exactly four distinct "options", an "answer" naming one of them (its text, or a letter
 * A-D, also as "B)", "(B)" or "B) its text"), and not a copy of a seed sample. The JSON may sit in a
 * ```json fence or among other text; the candidate keeps the whole reply as `raw`.
 */
export function parseInstructReply(raw: string, ctx: ParseContext): Candidate {
  const { text, object } = replyObject(raw);
  const plain: ParseContext = { ...ctx, vocabulary: undefined };
  if (!object) return { ...parseGeneratorReply(text ?? raw, plain), raw };
  const o: Record<string, unknown> = { ...object };
  if (o.question === undefined) o.question = o.q;
  if (o.answer === undefined) o.answer = o.a;
  delete o.q;
  delete o.a;
  o.options = optionList(o.options);
  if (Array.isArray(o.options) && o.options.every((x) => typeof x === 'string') && typeof o.answer === 'string') {
    const k = matchOption(
      o.answer,
      (o.options as string[]).map((x) => x.trim()),
    );
    if (k !== undefined) o.answer = (o.options as string[])[k];
  }
  return { ...parseGeneratorReply(JSON.stringify(o), plain), raw };
}

/** What the judge sees of a sample. */
export type JudgedSample = Pick<Sample, 'question' | 'options' | 'answer'> & { questionStem?: string };

/** The letter of the sample's answer among its options ("?" when it is none of them). */
function answerLetter(sample: Pick<Sample, 'options' | 'answer'>): string {
  const k = sample.options.indexOf(sample.answer);
  return k >= 0 ? OPTION_LETTERS[k] : '?';
}

function lettered(options: readonly string[]): string {
  return options.map((o, i) => `${OPTION_LETTERS[i]}) ${o}`).join('\n');
}

/** The judge's user turn: the question, its options and the proposed answer, then the Yes/No question. */
export function instructJudgePrompt(sample: JudgedSample): string {
  return [
    'Here is a multiple-choice question written about this medical image, with a proposed answer.',
    `Question: ${sample.questionStem || sample.question}`,
    'Options:',
    lettered(sample.options),
    `Proposed answer: ${answerLetter(sample)}) ${sample.answer}`,
    'Can the question be answered from the image, and is the proposed answer correct? Reply with Yes or No only.',
  ].join('\n');
}

/** The policy's system turn: the chat template's own default, written out (Med-R1 sets none). */
export const INSTRUCT_POLICY_SYSTEM = DEFAULT_SYSTEM;

/** The policy's user turn in Med-R1's format, asking for the answer as the benchmark keys it. */
export function instructPolicyPrompt(
  sample: Pick<Sample, 'question' | 'questionStem' | 'options'>,
  format: AnswerFormat,
): string {
  const what =
    format === 'letter'
      ? 'the letter of the correct option'
      : 'the text of the correct option, exactly as written above';
  return [
    sample.questionStem || sample.question,
    lettered(sample.options),
    `First think through the question inside <think> </think> tags, then give the final answer, ${what}, inside <answer> </answer> tags.`,
  ].join('\n');
}

/** The thought of a sample without a rationale (a seed record): what the question asks, and the key. */
export function templateThought(sample: Pick<Sample, 'modality' | 'task' | 'answer'>): string {
  const about = sample.task ? `the ${sample.task.toLowerCase()}` : 'a finding';
  const image = sample.modality && sample.modality !== 'Other' ? `this ${sample.modality} image` : 'this image';
  return `The question asks about ${about} in ${image}. Of the options, ${sample.answer} is the one that matches what the image shows.`;
}

/** The reply SFT teaches: `<think> rationale </think> <answer> B </answer>` (or the option's text). */
export function instructPolicyReply(
  sample: Pick<Sample, 'options' | 'answer' | 'rationale' | 'modality' | 'task'>,
  format: AnswerFormat,
): string {
  const k = sample.options.indexOf(sample.answer);
  if (k < 0) throw new Error(`policy reply: answer "${sample.answer}" is not among the options`);
  return formatReply(
    format === 'letter' ? OPTION_LETTERS[k] : sample.answer,
    sample.rationale || templateThought(sample),
  );
}

/** The policy's SFT example for a labelled sample. */
export function instructPolicyExample(sample: Sample, format: AnswerFormat): SftExample {
  return {
    images: sample.images,
    user: instructPolicyPrompt(sample, format),
    reply: instructPolicyReply(sample, format),
    system: INSTRUCT_POLICY_SYSTEM,
  };
}

/** Source formats whose keys are letters (R1-V / Med-R1's "<answer> C </answer>"); every other
 *  importer's key is the option's text (OmniMedVQA's gt_answer, the MedGR² authors', medgr2's own). */
const LETTER_KEYED_FORMATS = new Set(['r1v']);

/** How the seed's records name their answers: letters when most came from a letter-keyed format. */
export function answerFormatOf(seed: readonly Pick<Sample, 'provenance'>[]): AnswerFormat {
  const letters = seed.filter((s) => LETTER_KEYED_FORMATS.has(s.provenance?.sourceFormat ?? '')).length;
  return letters * 2 > seed.length ? 'letter' : 'text';
}
