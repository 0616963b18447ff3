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
