// Shared commander option parsers: a bad value names the flag and what was expected.
import { InvalidArgumentError } from 'commander';

export function parseIntOption(flag: string, min = 0): (value: string) => number {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${flag} expects a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`${flag} must be >= ${min}, got ${n}`);
    return n;
  };
}

/** A comma-separated list of distinct whole numbers >= 0 ("1,2,3"), at least `least` of them. */
export function parseSeedListOption(flag: string, least = 2): (value: string) => number[] {
  return (value: string): number[] => {
    const parts = value.split(',').map((x) => x.trim());
    if (parts.some((x) => !/^\d+$/.test(x)))
      throw new InvalidArgumentError(`${flag} expects whole numbers separated by commas, got "${value}"`);
    const seeds = parts.map(Number);
    if (new Set(seeds).size !== seeds.length)
      throw new InvalidArgumentError(`${flag}: a seed is repeated in "${value}"`);
    if (seeds.length < least) throw new InvalidArgumentError(`${flag}: at least ${least} seeds, got "${value}"`);
    return seeds;
  };
}

/** A number flag; `ok` says what else it must satisfy ("> 0"). */
export function parseNumberOption(
  flag: string,
  ok: (n: number) => boolean = () => true,
  want = 'a number',
): (value: string) => number {
  return (value: string): number => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || !ok(n)) throw new InvalidArgumentError(`${flag} expects ${want}, got "${value}"`);
    return n;
  };
}
