/**
 * A tiny seeded pseudo-random number generator (mulberry32) for the synthetic district
 * generator. Not cryptographic; only for reproducible test data.
 */

/** A seeded random source. All methods advance the same 32-bit state. */
export interface Prng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** True with probability `p` (0..1). */
  chance(p: number): boolean;
  /** One element of a non-empty array. Throws `RangeError` on an empty array. */
  pick<T>(items: readonly T[]): T;
  /** The current internal state (to persist and resume a stream). */
  state(): number;
}

/**
 * Create a mulberry32 generator. The same `seed` (any finite number, truncated to 32 bits)
 * always yields the same sequence.
 */
export function mulberry32(seed: number): Prng {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: p => next() < p,
    pick<T>(items: readonly T[]): T {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new RangeError('pick() from an empty array');
      return item;
    },
    state: () => s,
  };
}
