// Answer grounding: a generated question is answered with the fact the image's own description states.
//
// In the default recipe the generator writes a question and its answer after the pretrained model's
// description of the image ("OCT of the Macula with CNV."). The tiny generator copies the described
// modality reliably but not the anatomy: for images of modalities the seed lacks it answered a seed
// anatomy (Brain, Spine, Skin...) in every one of 100-144 anatomy candidates a round (docs/tuning.md,
// issue 17), and selection left them all out as contradicted by their description. The round's data
// then taught nothing about a third of the held-out-modality questions, and that third decided how a
// policy scored by the luck of its training draw (held-out anatomy 2-17 of 48 on identical data).
//
// A VLM generator answers its own question consistently with what it just said it sees; grounding
// gives the tiny one that consistency: where the description states the fact the question asks for and
// the generator answered another, the described fact becomes the answer, in the slot of the generator's
// answer (which stays a distractor only when the described fact was already an option). Nothing reads
// MedSynth's truth: the description is the model's own, as often wrong as the pretrained model is. The
// generator's raw reply is kept, so how often a round needed grounding is measured (groundedCount), and
// co-develop trains the next generator on the grounded samples it kept, so it can learn the copy itself.
//
// An option (--ground-answers), off by default: it lifts both policies on held-out modalities, and
// GRPO then no longer beats SFT there (docs/tuning.md, issue 17, session 12).
import { normalizeAnswerText } from '../data/answer_grammar';
import type { Candidate, Sample } from '../data/proto';
import { proposedAnswer, seedCopyKey, type ParseContext } from './generator';
import { statedFactContradiction } from './select';

/** The fact a sample's rationale states for its task (the recipe's statedFact), or undefined. */
export type StatedFact = (sample: Pick<Sample, 'task' | 'rationale'>) => string | undefined;

/**
 * The candidate answered with the fact its rationale states for its task, when that differs from the
 * generator's answer; otherwise the candidate unchanged. The stated fact takes the answer's slot (or,
 * when it already is another option, the two swap places), so the options stay four and distinct.
 * `isSeedCopy`: a grounded sample equal to a seed sample is marked invalid like any other copy.
 */
export function groundInDescription(
  c: Candidate,
  statedFact: StatedFact,
  isSeedCopy?: (s: Sample) => boolean,
): Candidate {
  if (!c.valid) return c;
  const stated = statedFactContradiction(c.sample, statedFact).trim();
  if (!stated) return c;
  const norm = (s: string) => normalizeAnswerText(s);
  const options = [...c.sample.options];
  const k = options.findIndex((o) => norm(o) === norm(c.sample.answer));
  if (k < 0) return c; // not a parsed multiple-choice sample: nothing to ground
  const j = options.findIndex((o) => norm(o) === norm(stated));
  if (j >= 0) [options[k], options[j]] = [options[j], options[k]];
  else options[k] = stated;
  const sample: Sample = { ...c.sample, options, answer: options[k] };
  if (isSeedCopy?.(sample)) return { ...c, sample, valid: false, invalidReason: 'copied verbatim from the seed set' };
  return { ...c, sample };
}

/**
 * A reply parser whose answers are grounded. The fact the description states for the task also joins
 * the task's option vocabulary for this reply: a generator that has learnt to copy a held-out anatomy
 * ("Macula") proposes a word no seed option names and fewer than two replies of its round may share,
 * and its answer is then as well supported as any (the model's own statement about the image). Then
 * groundInDescription; a grounded sample equal to a seed sample is a copy.
 */
export function groundedParser(
  parse: (raw: string, ctx: ParseContext) => Candidate,
  statedFact: StatedFact,
): (raw: string, ctx: ParseContext) => Candidate {
  return (raw, ctx) => {
    const fact = statedFact({ task: ctx.task, rationale: ctx.description ?? '' })?.trim();
    const words = ctx.vocabulary?.[ctx.task];
    const known = !fact || !words || words.some((w) => normalizeAnswerText(w) === normalizeAnswerText(fact));
    const vocabulary = known ? ctx.vocabulary : { ...ctx.vocabulary, [ctx.task]: [...(words ?? []), fact as string] };
    const isSeedCopy = (s: Sample) => !!ctx.seedKeys?.has(seedCopyKey(s));
    return groundInDescription(parse(raw, { ...ctx, vocabulary }), statedFact, isSeedCopy);
  };
}

/** Valid candidates whose answer is not the one their generator proposed: those grounding changed. */
export function groundedCount(cands: readonly Candidate[]): number {
  return cands.filter((c) => {
    if (!c.valid) return false;
    const proposed = proposedAnswer(c.raw);
    return proposed !== undefined && normalizeAnswerText(proposed) !== normalizeAnswerText(c.sample.answer);
  }).length;
}
