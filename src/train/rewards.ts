// GRPO rewards: what a completion is worth for its prompt. Verifiable rewards (answer accuracy
// against the sample's key, output format), an optional reward-model term (the cycle's judge), and
// user functions loaded from a JS module. The total is the weighted sum of the terms.
//
// NaN vs 0 — NaN means "this completion cannot be scored" and gives it advantage 0 (it neither
// pushes nor pulls); 0 means "scored, and wrong". So:
//   - accuracy is NaN only when the *prompt* cannot be scored (its key is not one of its options);
//     a completion that names no option, or names two different ones, scores 0 (the policy failed);
//   - format is never NaN;
//   - a reward-model term is NaN when the judge returns a non-finite value or throws;
//   - the weighted total is NaN as soon as one weighted term (weight != 0) is NaN.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  extractOption,
  followsGrammar,
  normalizeAnswerText,
  optionsNamedIn,
  predictedOption,
  thinkPart,
} from '../data/answer_grammar';
import type { Sample } from '../data/proto';
import { type PromptStyle } from '../eval/policy_prompt';

/** One GRPO prompt: the policy's user turn (question, options, format instruction) with its images,
 *  and the sample it came from (the key the accuracy reward checks against). */
export interface GrpoPrompt {
  id: string;
  images: string[];
  user: string;
  system?: string;
  sample: Sample;
}

/** A completion's reward for its prompt; NaN = unscorable (advantage 0). */
export type RewardFn = (completion: string, prompt: GrpoPrompt) => number | Promise<number>;

/** Every completion of one prompt's group at once (a reward model scores the group in one batch). */
export type GroupRewardFn = (completions: readonly string[], prompt: GrpoPrompt) => Promise<number[]>;

/** A named, weighted reward term (names label the logged mean/std). `group`, when given, scores a
 *  prompt's completions together and must agree with `fn` on each (fn stays the one-completion form). */
export interface Reward {
  name: string;
  weight: number;
  fn: RewardFn;
  group?: GroupRewardFn;
}

/** The reward model's score of (prompt, completion) in [0, 1] (the cycle's judge). */
export type JudgeFn = (prompt: GrpoPrompt, completion: string) => Promise<number>;

/**
 * How accuracy reads a completion's answer:
 *  - 'named': the one option the completion names anywhere in its answer (extractOption), so
 *    "<answer> Retina with Drusen </answer>" is option "Retina" when "Drusen" is not an option;
 *  - 'benchmark': the rule the evaluation scores with (scorer.ts): the <answer> text must be one
 *    option as a whole (its text or letter); the reply above is then no answer at all. A policy
 *    trained on this rule is trained on exactly what the benchmark counts.
 */
export type AnswerRule = 'named' | 'benchmark';

/** 1 when the completion's answer is the key option, 0 otherwise; NaN when the sample has no usable key. */
export function accuracyScore(
  completion: string,
  sample: Pick<Sample, 'options' | 'answer'>,
  rule: AnswerRule = 'named',
): number {
  const key = keyIndex(sample);
  if (key < 0) return NaN;
  const got =
    rule === 'benchmark'
      ? predictedOption(completion, sample.options)
      : extractOption(completion, sample.options).option;
  return got === key ? 1 : 0;
}

/** 1 when the completion follows the reply grammar of its style (answer_grammar.ts followsGrammar), else 0. */
export function formatScore(completion: string, style: PromptStyle): number {
  return followsGrammar(completion, style) ? 1 : 0;
}

/**
 * Self-consistency of a think-style completion: 1 when its answer is exactly one option (the
 * benchmark's rule) and its <think> names that option, else 0. The verifier for a prompt whose key is
 * not trusted: in the cycle, a generated question whose answer its own rationale contradicts. A policy
 * that describes held-out-modality images rightly but answers with the words of the seed (or copies
 * half its description into the answer) is pulled towards answering what it has just said.
 */
export function selfConsistencyScore(completion: string, options: readonly string[]): number {
  const think = thinkPart(completion);
  if (!think) return 0;
  const k = predictedOption(think.rest, options);
  return k !== undefined && optionsNamedIn(think.thought, options).has(k) ? 1 : 0;
}

/** A prompt with a key: accuracy by the benchmark's rule. A prompt without one (answer ""): self-consistency. */
export function answerScore(completion: string, sample: Pick<Sample, 'options' | 'answer'>): number {
  return sample.answer
    ? accuracyScore(completion, sample, 'benchmark')
    : selfConsistencyScore(completion, sample.options);
}

export function answerReward(weight = 1): Reward {
  return { name: 'answer', weight, fn: (completion, prompt) => answerScore(completion, prompt.sample) };
}

export function accuracyReward(weight = 1, rule: AnswerRule = 'named'): Reward {
  return { name: 'accuracy', weight, fn: (completion, prompt) => accuracyScore(completion, prompt.sample, rule) };
}

export function formatReward(style: PromptStyle, weight = 1): Reward {
  return { name: 'format', weight, fn: (completion) => formatScore(completion, style) };
}

/** The reward model's score as a term; a judge that throws or returns a non-finite value gives NaN. */
export function judgeReward(judge: JudgeFn, weight = 1, name = 'judge'): Reward {
  return {
    name,
    weight,
    fn: async (completion, prompt) => {
      try {
        const v = await judge(prompt, completion);
        return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : NaN;
      } catch {
        return NaN;
      }
    },
  };
}

/** Parses "accuracy=1,format=0.5" into a name -> weight map; errors name the bad entry. */
export function parseRewardWeights(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z_][\w.-]*)\s*=\s*(-?[\d.]+(?:e-?\d+)?)$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) throw new Error(`--reward-weights: expected NAME=NUMBER, got "${part}"`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Accuracy (weight 1) and format (weight 0.5) unless `weights` says otherwise; a weight of 0 drops the term. */
export function defaultRewards(style: PromptStyle, weights: Record<string, number> = {}): Reward[] {
  const out: Reward[] = [];
  const acc = weights.accuracy ?? 1;
  const fmt = weights.format ?? 0.5;
  if (acc !== 0) out.push(accuracyReward(acc));
  if (fmt !== 0) out.push(formatReward(style, fmt));
  return out;
}

/**
 * User reward functions from a JS module (CommonJS or ESM): `default` (a function, or an object of
 * functions) and every named export that is a function, each `(completion, prompt) => number |
 * Promise<number>`. A term is named after its export ('default' for a default function) and
 * weighted by `weights[name]` (default 1).
 */
export async function loadRewardModule(file: string, weights: Record<string, number> = {}): Promise<Reward[]> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`--reward-module ${file}: no such file`);
  let mod: Record<string, unknown>;
  try {
    // A real dynamic import (tsc would turn `import()` into require() under CommonJS, which cannot load ESM).
    const dynamicImport = new Function('u', 'return import(u)') as (u: string) => Promise<Record<string, unknown>>;
    mod = await dynamicImport(pathToFileURL(abs).href);
  } catch (e) {
    throw new Error(`--reward-module ${file}: cannot load (${(e as Error).message})`);
  }
  const fns: [string, unknown][] = [];
  const def = mod.default;
  if (typeof def === 'function') fns.push(['default', def]);
  else if (def && typeof def === 'object') {
    for (const [k, v] of Object.entries(def)) if (typeof v === 'function') fns.push([k, v]);
  }
  for (const [k, v] of Object.entries(mod)) {
    if (k !== 'default' && typeof v === 'function' && !fns.some(([n]) => n === k)) fns.push([k, v]);
  }
  if (fns.length === 0)
    throw new Error(
      `--reward-module ${file}: exports no functions (export default or named functions (completion, prompt) => number)`,
    );
  return fns.map(([name, fn]) => ({
    name,
    weight: weights[name] ?? 1,
    fn: async (completion: string, prompt: GrpoPrompt) => {
      let v: unknown;
      try {
        v = await (fn as RewardFn)(completion, prompt);
      } catch (e) {
        throw new Error(
          `--reward-module ${file}: reward '${name}' threw on prompt ${prompt.id}: ${(e as Error).message}`,
        );
      }
      if (typeof v !== 'number')
        throw new Error(
          `--reward-module ${file}: reward '${name}' returned ${typeof v}, expected a number (NaN = unscorable)`,
        );
      return v;
    },
  }));
}

/** Every term of one completion, and the weighted total (NaN when a weighted term is NaN). */
export async function scoreCompletion(
  rewards: readonly Reward[],
  completion: string,
  prompt: GrpoPrompt,
): Promise<{ terms: number[]; total: number }> {
  return (await scoreGroup(rewards, [completion], prompt))[0];
}

/**
 * Every term of each completion of one prompt's group, and the weighted totals: terms with a `group`
 * function score the whole group in one call, the rest completion by completion (their `fn`).
 */
export async function scoreGroup(
  rewards: readonly Reward[],
  completions: readonly string[],
  prompt: GrpoPrompt,
): Promise<{ terms: number[]; total: number }[]> {
  const perTerm: number[][] = [];
  for (const r of rewards) {
    let values: number[];
    if (r.group) values = await r.group(completions, prompt);
    else {
      values = []; // one at a time, in order: a user's reward function need not be reentrant
      for (const c of completions) values.push(Number(await r.fn(c, prompt)));
    }
    if (values.length !== completions.length)
      throw new Error(`reward '${r.name}': scored ${values.length} of a group of ${completions.length} completions`);
    perTerm.push(values.map(Number));
  }
  return completions.map((_, k) => {
    const terms = perTerm.map((v) => v[k]);
    let total = 0;
    rewards.forEach((r, i) => {
      if (r.weight !== 0) total += r.weight * terms[i];
    });
    return { terms, total };
  });
}

/** The key option's index in `options` (compared normalized), -1 when the key is not an option. */
export function keyIndex(sample: Pick<Sample, 'options' | 'answer'>): number {
  return sample.options.findIndex((o) => normalizeAnswerText(o) === normalizeAnswerText(sample.answer));
}
