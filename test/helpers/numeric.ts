// Numeric test helpers with no native dependency: seeded random numbers and tolerant comparison.

/** Seeded PRNG (mulberry32): tests draw fresh inputs per seed, reproducibly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws from `rand` (Box-Muller). */
export function randn(rand: () => number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise, naming the first bad index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, what = 'value' }: { rtol?: number; atol?: number; what?: string } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const b = expected[i];
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) {
      throw new Error(`${what}[${i}]: ${a} vs expected ${b} (rtol ${rtol}, atol ${atol})`);
    }
  }
}
