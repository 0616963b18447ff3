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
