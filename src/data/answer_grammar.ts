// The reply grammar of every policy, and which option an answer names. The one place that writes and
// reads `<think> … </think> <answer> … </answer>`: SFT targets are written here, GRPO's rewards,
// the evaluation, the scorer and the importers (R1-V's `<answer> C </answer>` keys) read here.
//
// Comparison form (the MedGR² authors' scorer): lower-case, ASCII punctuation removed, whitespace
// collapsed and trimmed. An answer names an option by its text (exactly or in comparison form), by
// its letter ("C", "c", "(C)", "C)", "C.", "C:"), or by both ("C) CT").

export type ReplyStyle = 'think' | 'answer';

export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

const ANSWER_TAG = /<answer>([\s\S]*?)<\/answer>/i;
const ANSWER_TAGS = /<answer>([\s\S]*?)<\/answer>/gi;
const THINK_TAG = /<think>([\s\S]*?)<\/think>/i;
const THINK_TAGS = /<think>[\s\S]*?<\/think>/gi;
const ANY_TAG = /<\/?(?:think|answer)>/i;
const THINK_REPLY = /^\s*<think>([\s\S]*?)<\/think>\s*<answer>([\s\S]*?)<\/answer>\s*$/i;
const ANSWER_REPLY = /^\s*<answer>([\s\S]*?)<\/answer>\s*$/i;

// ---- writing ----

/** A reply in the grammar: `<answer> A </answer>`, after `<think> T </think> ` when a thought is given. */
export function formatReply(answer: string, think?: string): string {
  const a = `<answer> ${answer} </answer>`;
  return think === undefined ? a : `<think> ${think} </think> ${a}`;
}

// ---- reading ----

/** The text inside the first <answer>…</answer> (tags in any case), else the whole reply; trimmed. */
export function answerText(reply: string): string {
  const m = ANSWER_TAG.exec(reply);
  return (m ? m[1] : reply).trim();
}

/** Every <answer> span of a reply, or (none there) the reply without its <think> blocks. */
export function answerSpans(reply: string): string[] {
  const tags = [...reply.matchAll(ANSWER_TAGS)].map((m) => m[1]);
  return tags.length > 0 ? tags : [reply.replace(THINK_TAGS, ' ')];
}

/** The first <think> block: its text and what follows it; undefined when the reply has none. */
export function thinkPart(reply: string): { thought: string; rest: string } | undefined {
  const m = THINK_TAG.exec(reply);
  return m ? { thought: m[1], rest: reply.slice(m.index + m[0].length) } : undefined;
}

/** True when the reply is exactly `<think>…</think> <answer>…</answer>` (think) or `<answer>…</answer>`
 *  (answer): every part non-empty, nothing around them, no nested or repeated tags. */
export function followsGrammar(reply: string, style: ReplyStyle): boolean {
  const m = (style === 'think' ? THINK_REPLY : ANSWER_REPLY).exec(reply);
  return m !== null && m.slice(1).every((p) => p.trim().length > 0 && !ANY_TAG.test(p));
}

// ---- options ----

/** The MedGR² authors' comparison form: lower-case, ASCII punctuation removed (Python's
 *  string.punctuation), whitespace collapsed and trimmed. */
export function normalizeAnswerText(s: string): string {
  return s
    .toLowerCase()
    .replace(/[!-/:-@[-`{-~]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The option index a letter answer names: "C", "c", "C)", "(C)", "C.", "C:" -> 2; undefined otherwise
 *  or when the letter is past the last option. */
export function letterIndex(answer: string, optionCount: number): number | undefined {
  const m = /^\(?\s*([A-Za-z])\s*[).:]?$/.exec(answer.trim());
  if (!m) return undefined;
  const i = LETTERS.indexOf(m[1].toUpperCase());
  return i < optionCount ? i : undefined;
}

/** Which option an answer names as a whole: its text (exactly, then compared normalized), a letter, or
 *  a letter followed by that option's text ("C) CT"). Undefined when it names none. */
export function matchOption(answer: string, options: readonly string[]): number | undefined {
  const a = answer.trim();
  const exact = options.indexOf(a);
  if (exact >= 0) return exact;
  const norm = normalizeAnswerText(a);
  if (norm.length > 0) {
    const byText = options.findIndex((o) => normalizeAnswerText(o) === norm);
    if (byText >= 0) return byText;
  }
  const byLetter = letterIndex(a, options.length);
  if (byLetter !== undefined) return byLetter;
  const prefixed = /^\(?([A-Za-z])[).:]\s+([\s\S]+)$/.exec(a);
  if (prefixed) {
    const i = LETTERS.indexOf(prefixed[1].toUpperCase());
    if (i >= 0 && i < options.length && normalizeAnswerText(options[i]) === normalizeAnswerText(prefixed[2])) return i;
  }
  return undefined;
}

/** The benchmark's rule: the option the reply's answer text names as a whole, else undefined. */
export function predictedOption(reply: string, options: readonly string[]): number | undefined {
  return matchOption(answerText(reply), options);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Every option a piece of free text names: marked letters ("(C)", "C)", "answer is C", "C." at the
 * start) and option texts found as whole words (in comparison form). A bare capital letter inside
 * prose is not read as an answer ("A CT image" is not option A); a lone letter, any case, is (that is
 * matchOption's job). An option text found only inside a longer found option text ("normal" inside
 * "abnormal mass") does not count separately.
 */
export function optionsNamedIn(text: string, options: readonly string[]): Set<number> {
  const found = new Set<number>();
  const n = options.length;
  const letterAt = (ch: string): number | undefined => {
    const i = LETTERS.indexOf(ch.toUpperCase());
    return i >= 0 && i < n ? i : undefined;
  };
  const markers = [
    /\(\s*([A-Za-z])\s*\)/g, // (C)
    /(?:^|[\s,;:])([A-Z])\)/g, // C)  (capital only: "a)" in prose is rare, but keep prose safe)
    // "answer is C", "Option: C" (capital letters only: "the answer is a CT" names no letter)
    /\b(?:[Aa]nswer|[Oo]ption|[Cc]hoice)\s*(?:is|:)?\s*:?\s*\(?([A-Z])(?![A-Za-z'-])/g,
    /^\s*([A-Z])[.:](?:\s|$)/g, // "C. ..." / "C: ..." at the start
  ];
  for (const re of markers) {
    for (const m of text.matchAll(re)) {
      const i = letterAt(m[1]);
      if (i !== undefined) found.add(i);
    }
  }
  const norm = ` ${normalizeAnswerText(text)} `;
  const hits: { i: number; start: number; end: number }[] = [];
  options.forEach((o, i) => {
    const no = normalizeAnswerText(o);
    if (!no) return;
    for (const m of norm.matchAll(new RegExp(`(?<=\\s)${escapeRegExp(no)}(?=\\s)`, 'g'))) {
      hits.push({ i, start: m.index!, end: m.index! + no.length });
    }
  });
  for (const h of hits) {
    const inside = hits.some(
      (o) => o.i !== h.i && o.end - o.start > h.end - h.start && o.start <= h.start && h.end <= o.end,
    );
    if (!inside) found.add(h.i);
  }
  return found;
}

/**
 * The lenient rule: the one option a reply names anywhere in its answer. Each answer span (the
 * <answer> texts, else the reply without its <think>) that matchOption reads as one option is that
 * option; otherwise the span is searched for marked letters and option texts. Exactly one distinct
 * option must come out: two are 'ambiguous', none is 'none'.
 */
export function extractOption(
  reply: string,
  options: readonly string[],
): { option: number } | { option: undefined; why: 'none' | 'ambiguous' } {
  const named = new Set<number>();
  for (const span of answerSpans(reply)) {
    const whole = matchOption(span.trim(), options);
    if (whole !== undefined) {
      named.add(whole);
      continue;
    }
    for (const i of optionsNamedIn(span, options)) named.add(i);
  }
  if (named.size === 1) return { option: [...named][0] };
  return { option: undefined, why: named.size === 0 ? 'none' : 'ambiguous' };
}
