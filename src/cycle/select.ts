// Selection: which scored candidates become training data. Nothing is dropped: every candidate comes
// back with `selected` and, when not selected, the reason (invalid, contradicted, duplicate, below
// threshold, over quota for its group, outside the top k).
//
// Order of the rules: invalid ones out; samples whose answer their own rationale contradicts out;
// duplicates (same image + normalized question) keep only their best-scored copy; then the threshold
// or top-k; with `balance`, each (modality, task) group keeps at most `maxPerGroup` (default: twice an
// even share of the target), best first, and top-k refills the freed places from the groups that
// still have candidates, so k is met whenever it can be.
import { normalizeAnswerText } from '../data/answer_grammar';
import { Prng } from '../util/prng';
import type { Sample, ScoredCandidate } from '../data/proto';
import { optionsNamedIn } from '../data/answer_grammar';

export interface SelectOptions {
  threshold?: number;
  topK?: number;
  /**
   * Keep this fraction (0..1] of the valid, de-duplicated candidates of each (modality, task) group,
   * best first: the judge decides within every group, and no group crowds out another.
   */
  topFraction?: number;
  /** With topFraction: a kept candidate's reward must also reach this (the paper's threshold tau). */
  floor?: number;
  /**
   * Keep this many in all, each (modality, task) group its share in proportion to its valid,
   * de-duplicated candidates (largest remainders), best first within the group: the ranking decides
   * which samples of a group, never how many (the data-efficiency study's top-k and random arms).
   */
  topKByGroup?: number;
  balance?: boolean;
  maxPerGroup?: number;
  /** 'reward' (default) ranks by the judge; 'random' ranks by a seeded draw (the --no-reward-filter ablation). */
  rankBy?: 'reward' | 'random';
  seed?: number;
  /** Keep candidates whose answer contradicts their rationale in the running (default false: out). */
  keepContradicted?: boolean;
  /**
   * The fact a sample's rationale states for its task, where the recipe can read it ("Macula" from
   * "OCT of the Macula with CNV." for an anatomy question); an answer naming another contradicts it.
   * This catches what the option vocabulary cannot: a finding no candidate offers as an option.
   */
  statedFact?: (sample: Sample) => string | undefined;
}

/**
 * The names of the task's vocabulary that the sample's rationale states when none of them is its
 * answer ("" when it states none of them, or its answer among them): "OCT of the Macula with CNV."
 * under the answer "Brain" names "Macula". Such a sample argues against itself. In the cycle the
 * rationale is the pretrained model's description of the image, and the tiny generator, which learns
 * the anatomies of the seed's modalities from their images, answered a seed anatomy for 100 % of
 * held-out-modality anatomy questions in session 2's default run (0 of 143 right) while the
 * description named the right one for most of them; a policy trained on those samples learned to
 * answer "Brain" after thinking "Macula".
 */
export function rationaleContradiction(
  sample: Pick<Sample, 'rationale' | 'answer'>,
  vocabulary: readonly string[],
): string {
  if (!sample.rationale || vocabulary.length === 0) return '';
  const named = [...optionsNamedIn(sample.rationale, vocabulary)].map((i) => vocabulary[i]);
  const answer = normalizeAnswerText(sample.answer);
  if (named.length === 0 || named.some((n) => normalizeAnswerText(n) === answer)) return '';
  return named.sort().join(', ');
}

/** The fact `statedFact` reads in the sample's rationale when it is not the answer ("" otherwise). */
export function statedFactContradiction(sample: Sample, statedFact: SelectOptions['statedFact']): string {
  const stated = statedFact?.(sample);
  return stated && normalizeAnswerText(stated) !== normalizeAnswerText(sample.answer) ? stated : '';
}

/** How the reason of a candidate left out by rationaleContradiction starts. */
export const CONTRADICTED = 'contradicted: ';

/** Candidates left out because their rationale contradicts their answer: questions without a trusted key. */
export function contradictedCandidates(selected: readonly ScoredCandidate[]): ScoredCandidate[] {
  return selected.filter((s) => !s.selected && s.selectReason.startsWith(CONTRADICTED));
}

/** Every option text used per task across the candidates: what a rationale is read against. */
export function taskVocabulary(scored: readonly ScoredCandidate[]): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const s of scored)
    for (const o of s.candidate.sample.options) {
      let v = out.get(s.candidate.sample.task);
      if (!v) out.set(s.candidate.sample.task, (v = new Set()));
      v.add(o);
    }
  return new Map([...out].map(([t, v]) => [t, [...v].sort()]));
}

export function dedupeKey(s: ScoredCandidate): string {
  const sample = s.candidate.sample;
  return `${sample.images.join('\u0001')}\u0002${normalizeAnswerText(sample.question)}`;
}

function groupKey(s: ScoredCandidate): string {
  return `${s.candidate.sample.modality} / ${s.candidate.sample.task}`;
}

/**
 * `total` split over groups of `sizes` in proportion to them, each at most its size: the floors of the
 * exact shares, then one more to the largest remainders (ties: the earlier group). Sums to
 * min(total, sum of sizes).
 */
export function proportionalShares(sizes: readonly number[], total: number): number[] {
  const all = sizes.reduce((a, b) => a + b, 0);
  if (all === 0) return sizes.map(() => 0);
  const want = Math.min(total, all);
  const exact = sizes.map((n) => (want * n) / all);
  const shares = exact.map(Math.floor);
  const order = exact.map((x, i) => ({ i, rest: x - Math.floor(x) })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (let left = want - shares.reduce((a, b) => a + b, 0), j = 0; left > 0; j++) {
    const { i } = order[j % order.length];
    if (shares[i] < sizes[i]) {
      shares[i]++;
      left--;
    }
  }
  return shares;
}

/** A copy of every candidate with `selected` / `selectReason` set (input order kept). */
export function selectCandidates(scored: readonly ScoredCandidate[], opts: SelectOptions): ScoredCandidate[] {
  const given = [opts.threshold, opts.topK, opts.topFraction].filter((x) => x !== undefined).length;
  if (given > 1) throw new Error('select: give one of a threshold, a top-k or a top fraction');
  if (opts.topKByGroup !== undefined && given > 0)
    throw new Error('select: a top-k by group goes alone, without a threshold, a top-k or a top fraction');
  if (opts.floor !== undefined && opts.topFraction === undefined)
    throw new Error('select: a floor goes with a top fraction (alone, give a threshold)');
  if (opts.topFraction !== undefined && !(opts.topFraction > 0 && opts.topFraction <= 1))
    throw new Error(`select: --top-fraction must be in (0, 1], got ${opts.topFraction}`);
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 0))
    throw new Error(`select: --top-k must be a whole number >= 0, got ${opts.topK}`);
  if (opts.topKByGroup !== undefined && !(Number.isInteger(opts.topKByGroup) && opts.topKByGroup >= 0))
    throw new Error(`select: a top-k by group must be a whole number >= 0, got ${opts.topKByGroup}`);
  const threshold =
    opts.topK === undefined && opts.topFraction === undefined && opts.topKByGroup === undefined
      ? (opts.threshold ?? 0.5)
      : undefined;
  const out = scored.map((s) => ({ ...s, selected: false, selectReason: '' }));
  const rank = new Map<ScoredCandidate, number>();
  const prng = new Prng(`select/${opts.seed ?? 0}`);
  for (const s of out) rank.set(s, opts.rankBy === 'random' ? prng.next() : s.reward);
  const better = (a: ScoredCandidate, b: ScoredCandidate) =>
    rank.get(b)! - rank.get(a)! || a.candidate.sample.id.localeCompare(b.candidate.sample.id);

  // 1. invalid; 2. contradicted by their own rationale; 3. duplicates (the best copy stays in the running)
  const vocabulary = taskVocabulary(out.filter((s) => s.candidate.valid));
  const best = new Map<string, ScoredCandidate>();
  for (const s of out) {
    if (!s.candidate.valid) {
      s.selectReason = `invalid: ${s.candidate.invalidReason}`;
      continue;
    }
    const against = opts.keepContradicted
      ? ''
      : rationaleContradiction(s.candidate.sample, vocabulary.get(s.candidate.sample.task) ?? []) ||
        statedFactContradiction(s.candidate.sample, opts.statedFact);
    if (against) {
      s.selectReason = `${CONTRADICTED}the answer "${s.candidate.sample.answer}" contradicts its rationale, which names ${against}`;
      continue;
    }
    const k = dedupeKey(s);
    const prior = best.get(k);
    if (!prior) best.set(k, s);
    else if (better(s, prior) < 0) {
      prior.selectReason = `duplicate of ${s.candidate.sample.id}`;
      best.set(k, s);
    } else s.selectReason = `duplicate of ${prior.candidate.sample.id}`;
  }
  let pool = [...best.values()].sort(better);

  // 4a. a count per group, best first within it (random ranking keeps the same counts: the ablation
  // and the random arm differ only in which)
  if (opts.topFraction !== undefined || opts.topKByGroup !== undefined) {
    const byGroup = new Map<string, ScoredCandidate[]>();
    for (const s of pool) byGroup.set(groupKey(s), [...(byGroup.get(groupKey(s)) ?? []), s]);
    const groups = [...byGroup.values()];
    const fraction = opts.topFraction;
    const counts =
      fraction !== undefined
        ? groups.map((members) => Math.max(1, Math.round(fraction * members.length)))
        : proportionalShares(
            groups.map((members) => members.length),
            opts.topKByGroup!,
          );
    const what = fraction !== undefined ? `top ${Math.round(100 * fraction)}%` : `top share of ${opts.topKByGroup}`;
    const floor = opts.floor;
    groups.forEach((members, g) => {
      const top = counts[g];
      // with a floor, what the reward filter keeps: its top ones that reach the floor (the random
      // ablation keeps as many of the group, drawn at random)
      const n = floor === undefined ? top : Math.min(top, members.filter((s) => s.reward >= floor).length);
      members.forEach((s, i) => {
        s.selected = i < n;
        s.selectReason =
          i < n
            ? opts.rankBy === 'random'
              ? 'random draw'
              : `${what} of its group`
            : i < top && opts.rankBy !== 'random'
              ? `below the floor ${floor}`
              : `outside the ${what} of ${groupKey(s)}`;
      });
    });
    return out;
  }

  // 4. threshold (on the reward, also when ranking randomly: the ablation keeps as many as the filter would)
  if (threshold !== undefined && opts.rankBy !== 'random') {
    for (const s of pool) if (s.reward < threshold) s.selectReason = `below threshold ${threshold}`;
    pool = pool.filter((s) => s.reward >= threshold);
  }
  const target =
    opts.topK ??
    (opts.rankBy === 'random' && threshold !== undefined
      ? pool.filter((s) => s.reward >= threshold).length
      : pool.length);

  // 5. balance, then the final cut
  const keep: ScoredCandidate[] = [];
  if (opts.balance) {
    const groups = new Set(pool.map(groupKey));
    const cap = opts.maxPerGroup ?? Math.max(1, Math.ceil((2 * target) / Math.max(1, groups.size)));
    const used = new Map<string, number>();
    const over: ScoredCandidate[] = [];
    for (const s of pool) {
      const g = groupKey(s);
      if ((used.get(g) ?? 0) < cap && keep.length < target) {
        keep.push(s);
        used.set(g, (used.get(g) ?? 0) + 1);
      } else over.push(s);
    }
    // top-k refills from the groups over quota, so k is met whenever there are k candidates
    const refill = opts.topK !== undefined ? over.splice(0, Math.max(0, target - keep.length)) : [];
    keep.push(...refill);
    for (const s of over) {
      const full = (used.get(groupKey(s)) ?? 0) >= cap;
      s.selectReason = full ? `over quota for ${groupKey(s)} (${cap})` : 'outside the top k';
    }
  } else {
    keep.push(...pool.slice(0, target));
    for (const s of pool.slice(target))
      s.selectReason = opts.topK !== undefined ? 'outside the top k' : 'outside the random draw';
  }
  for (const s of keep) {
    s.selected = true;
    s.selectReason =
      opts.rankBy === 'random' ? 'random draw' : opts.topK !== undefined ? 'top k' : `reward >= ${threshold}`;
  }
  return out;
}

/** Counts for logs and the report. */
export function selectionSummary(scored: readonly ScoredCandidate[]): {
  candidates: number;
  valid: number;
  kept: number;
} {
  return {
    candidates: scored.length,
    valid: scored.filter((s) => s.candidate.valid).length,
    kept: scored.filter((s) => s.selected).length,
  };
}
