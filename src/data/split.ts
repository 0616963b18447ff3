// The Med-R1 split protocol: samples are grouped by modality (or task); each group is shuffled with a
// seeded generator and its first ⌈F·n⌉ samples are the test set, the rest the train set. Each group's
// generator is seeded from (seed, group name), so a group's split does not depend on which other
// groups are in the file or in what order.
import type { Sample } from './proto';

export type SplitBy = 'modality' | 'task';

export interface GroupSplit {
  group: string;
  train: Sample[];
  test: Sample[];
}

/** mulberry32: small, fast, and the same sequence on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of the text: turns (seed, group) into a 32-bit generator seed. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h >>> 0;
}

export function groupSeed(seed: number, group: string): number {
  return fnv1a(`${seed}\u0000${group}`);
}

/** Fisher–Yates with `rand`, returning a new array. */
export function seededShuffle<T>(items: readonly T[], rand: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** ⌈F·n⌉, without floating-point overshoot (0.1 · 30 = 3.0000000000000004 must give 3, not 4). */
export function testCount(n: number, fraction: number): number {
  return Math.min(n, Math.max(0, Math.ceil(fraction * n - 1e-9)));
}

export function splitByGroup(
  samples: readonly Sample[],
  by: SplitBy,
  testFraction: number,
  seed: number,
): GroupSplit[] {
  if (!(testFraction >= 0 && testFraction <= 1))
    throw new Error(`--test-fraction must be in [0, 1], got ${testFraction}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${seed}`);
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const g = s[by];
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(s);
  }
  return [...groups.keys()].sort().map((group) => {
    const shuffled = seededShuffle(groups.get(group)!, mulberry32(groupSeed(seed, group)));
    const k = testCount(shuffled.length, testFraction);
    return { group, test: shuffled.slice(0, k), train: shuffled.slice(k) };
  });
}

/** A group name as a file-name stem: "Fundus photography" -> "Fundus_photography". */
export function groupFileStem(group: string): string {
  return group.replace(/[^A-Za-z0-9._-]+/g, '_');
}
