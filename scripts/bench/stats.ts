/**
 * Small statistics the benchmarks share.
 */

/** The p-th percentile (nearest rank) of `xs`; NaN when empty. */
export function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Seconds as milliseconds with 3 decimals (µs resolution), for the reports. */
export const ms = (s: number): string => (s * 1e3).toFixed(3);

/** A target's verdict. */
export const passIf = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
