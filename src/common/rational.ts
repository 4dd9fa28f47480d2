/**
 * Exact rational arithmetic for time bases. Stream timestamps are integers in "ticks" of a time base num/den
 * seconds; converting seconds (a JavaScript double) to ticks is done exactly: every finite double is a dyadic
 * rational m/2^k, so floor(seconds * den / num) is computed in BigInt with no rounding at all.
 */

/** A rational number num/den with den > 0, e.g. a time base of 1/90000 seconds per tick. */
export interface Rational {
  /** Numerator. */
  readonly num: number;
  /** Denominator, > 0. */
  readonly den: number;
}

/** The exact value of a finite double as n/d with d a power of two. */
export function doubleToFraction(x: number): { n: bigint; d: bigint } {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  let v = x;
  let k = 0n;
  // Doubling a non-integer double below 2^53 is exact; at most 1074 steps for subnormals.
  while (!Number.isInteger(v)) {
    v *= 2;
    k += 1n;
  }
  return { n: BigInt(v), d: 1n << k };
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** How {@link secondsToTicks} rounds when `seconds` falls between two ticks. */
export type Rounding = 'floor' | 'ceil' | 'nearest';

/**
 * Convert seconds to ticks of `timeBase`, exactly. Default rounding `floor`: the tick at or before the instant,
 * which is what "the frame at or before t" needs.
 */
export function secondsToTicks(seconds: number, timeBase: Rational, rounding: Rounding = 'floor'): number {
  const { n, d } = doubleToFraction(seconds);
  const num = n * BigInt(timeBase.den);
  const den = d * BigInt(timeBase.num);
  let q: bigint;
  if (rounding === 'floor') q = floorDiv(num, den);
  else if (rounding === 'ceil') q = -floorDiv(-num, den);
  else q = floorDiv(2n * num + den, 2n * den);
  return Number(q);
}

/**
 * Convert ticks of `timeBase` to seconds: the double nearest to the exact value when |ticks * num| <= 2^53
 * (one rounding), which holds for every real media timestamp.
 */
export function ticksToSeconds(ticks: number, timeBase: Rational): number {
  return (ticks * timeBase.num) / timeBase.den;
}

/** Rescale `ticks` from one time base to another, rounding down, exactly (BigInt). */
export function rescaleTicks(ticks: number, from: Rational, to: Rational): number {
  return Number(floorDiv(BigInt(ticks) * BigInt(from.num) * BigInt(to.den), BigInt(from.den) * BigInt(to.num)));
}

