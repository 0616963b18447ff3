// Task cards: how the cycle writes questions of a task its seed lacks (issue 17's cross-task claim).
//
// The paper's generator is an instruct VLM that already knows what a grading question is; the tiny
// generator knows only the seed's three tasks, and asked for "Task: Lesion Grading" it writes one of
// those. A card is the miniature's stand-in for that knowledge: the task's name, how its question is
// asked, and its answers. The answer of a card's question is never invented: it is the fact the
// image's description (the pretrained model's, describe.ts) states for the task, so a card yields a
// candidate only for an image whose description names that fact (a grade, for an image with a
// lesion). The card writes in every round: the tiny generator, fine-tuned on round 1's 27 kept grading
// samples (validation seed 101), wrote only 33 valid grading questions of 81 in round 2, and most of
// those answered "Grade 4" whatever the description said (docs/tuning.md, session 13). Selection, the
// judge and the policies treat the candidates like any other; the generator's co-develop leaves them
// out (they are not its replies: trained on them, its round-2 validity fell, 732 -> 729 valid of 768
// on seed 1, against 732 -> 758 without cards), and the report counts them apart from its validity.
import type { Candidate } from '../data/proto';
import { normalizeAnswerText } from '../data/answer_grammar';
import { FACT_TASKS, factOfTask } from './describe';
import type { ParseContext, PoolImage } from './generator';

export interface TaskCard {
  /** The task's name, as samples and test sets name it ("Lesion Grading"). */
  task: string;
  /** How its question is asked. */
  question: string;
  /** Its answers: at least four, distinct. */
  options: string[];
}

/** A card read from a config, checked field by field; errors name `where` (the file) and the key. */
export function checkTaskCard(card: unknown, where: string, key: string): TaskCard {
  const fail = (field: string, what: string): never => {
    throw new Error(`${where}: key "${key}${field}" ${what}`);
  };
  const c = card as Partial<TaskCard> | null;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) fail('', 'expects {"task", "question", "options"}');
  const { task, question, options } = c as Partial<TaskCard>;
  if (typeof task !== 'string' || !task.trim()) return fail('.task', 'expects a task name');
  if (!factOfTask(task))
    fail('.task', `names '${task}', which states no fact a description can name (known: ${FACT_TASKS.join(', ')})`);
  if (typeof question !== 'string' || !question.trim()) return fail('.question', "expects the question's text");
  if (!Array.isArray(options) || options.some((o) => typeof o !== 'string' || !o.trim()))
    return fail('.options', 'expects a list of answer strings');
  // distinct as the generator's parser compares options (parseGeneratorReply)
  if (options.length < 4 || new Set(options.map(normalizeAnswerText)).size !== options.length)
    fail('.options', `expects at least four distinct answers, got ${JSON.stringify(options)}`);
  return { task, question, options: [...options] };
}

/** Two cards for one task are refused (naming the task). */
export function checkCardTasks(cards: readonly TaskCard[]): void {
  const seen = new Set<string>();
  for (const c of cards) {
    if (seen.has(c.task)) throw new Error(`config: generate.taskCards: two cards for '${c.task}'`);
    seen.add(c.task);
  }
}

/** The cards a seed needs: a task the seed already asks has its own labelled samples, so its card is not used. */
export function cardsForSeed(cards: readonly TaskCard[], seed: readonly { task: string }[]): TaskCard[] {
  const seedTasks = new Set(seed.map((s) => s.task));
  return cards.filter((c) => !seedTasks.has(c.task));
}

/** The cards' answers per task: they join the option vocabulary compact replies draw distractors from. */
export function cardVocabulary(cards: readonly TaskCard[]): Record<string, string[]> {
  return Object.fromEntries(cards.map((c) => [c.task, [...c.options].sort()]));
}

/**
 * The reply a card writes for an image: its question, answered with the fact the description states
 * (`statedFact`), in the generator's compact JSON; undefined when the description names no such fact
 * or one the card does not offer.
 */
export function cardReply(
  card: TaskCard,
  description: string | undefined,
  statedFact: (s: { task: string; rationale: string }) => string | undefined,
): string | undefined {
  if (!description) return undefined;
  const fact = statedFact({ task: card.task, rationale: description });
  if (!fact || !card.options.includes(fact)) return undefined;
  return JSON.stringify({ q: card.question, a: fact });
}

/** The provenance (sourceFormat) of a candidate a card wrote. */
export const CARD_SOURCE = 'task-card';

/** Whether a candidate is a card's (cardCandidates), not the generator's. */
export function writtenByCard(c: Pick<Candidate, 'sample'>): boolean {
  return c.sample.provenance?.sourceFormat === CARD_SOURCE;
}

/**
 * A round's card candidates: for each pool image (in order) and card, the card's reply where the
 * image's description states the card's fact, parsed like a generator reply (id g{round}-{image}-card{k}).
 */
export function cardCandidates(
  pool: readonly PoolImage[],
  cards: readonly TaskCard[],
  ctx: Pick<ParseContext, 'round' | 'seedKeys' | 'vocabulary'>,
  parse: (raw: string, ctx: ParseContext) => Candidate,
  statedFact: (s: { task: string; rationale: string }) => string | undefined,
): Candidate[] {
  const out: Candidate[] = [];
  pool.forEach((x, i) =>
    cards.forEach((card, k) => {
      const reply = cardReply(card, x.description, statedFact);
      if (reply === undefined) return;
      const c = parse(reply, {
        ...ctx,
        id: `g${ctx.round}-${i}-card${k}`,
        image: x.image,
        modality: x.modality,
        task: card.task,
        description: x.description,
      });
      out.push({ ...c, sample: { ...c.sample, provenance: { ...c.sample.provenance!, sourceFormat: CARD_SOURCE } } });
    }),
  );
  return out;
}

/** A round's candidates written by the cards: all, valid, and kept by selection. */
export interface CardCounts {
  candidates: number;
  valid: number;
  kept: number;
}

/** CardCounts of a round's selection (undefined when the run has no cards). */
export function cardCounts(
  round: readonly { candidate: Pick<Candidate, 'sample' | 'valid'>; selected: boolean }[],
  cards: readonly unknown[],
): CardCounts | undefined {
  if (cards.length === 0) return undefined;
  const mine = round.filter((s) => writtenByCard(s.candidate));
  return {
    candidates: mine.length,
    valid: mine.filter((s) => s.candidate.valid).length,
    kept: mine.filter((s) => s.selected).length,
  };
}
