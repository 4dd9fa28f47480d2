/**
 * Exact SMPTE timecode arithmetic for the show clock.
 *
 * Three representations of a position are converted here, all exactly:
 * - a frame count: an integer number of frames since label 00:00:00:00 (frame 0 starts at 0 s);
 * - seconds: frames × den / num, a rational, returned either exactly (BigInt) or as the nearest double;
 * - a label `HH:MM:SS:FF` (`HH:MM:SS;FF` for drop-frame).
 *
 * NTSC-family rates run at num/den = 24000/1001, 30000/1001 or 60000/1001 frames per second, so a frame boundary
 * is almost never a round number of seconds. Float formulas such as `Math.floor(seconds * 29.97)` drift and
 * misplace frames near boundaries after hours of show time; everything here is integer arithmetic (Number where
 * every intermediate provably stays below 2^53, BigInt otherwise), so there is no drift over 24 hours or beyond.
 */

import { CuemuxError } from '../common/errors';

/** A SMPTE timecode rate: how fast frames run in real time, and how they are labelled. */
export interface TimecodeRate {
  /** Canonical name, e.g. `'29.97df'`; {@link parseTimecodeRate} accepts it back. */
  readonly name: string;
  /** Numerator of the real rate: the rate is `num / den` frames per second, e.g. 30000 (for 30000/1001). */
  readonly num: number;
  /** Denominator of the real rate, e.g. 1001 for 29.97 fps, 1 for the integer rates. */
  readonly den: number;
  /** Frames per labelled second: the FF field counts 0 … nominal − 1 (24, 25, 30, 48, 50 or 60). */
  readonly nominal: number;
  /**
   * Drop-frame labelling: some labels are skipped (never frames) so that the labels keep up with real time at
   * 30000/1001 and 60000/1001. Frames are never dropped, only label numbers.
   */
  readonly dropFrame: boolean;
}

function rate(name: string, num: number, den: number, nominal: number, dropFrame: boolean): TimecodeRate {
  return Object.freeze({ name, num, den, nominal, dropFrame });
}

/**
 * The eleven supported SMPTE rates, in ascending order of frame rate: `'23.976'` (24000/1001, nominal 24),
 * `'24'`, `'25'`, `'29.97'` (30000/1001, non-drop), `'29.97df'`, `'30'`, `'48'`, `'50'`, `'59.94'` (60000/1001,
 * non-drop), `'59.94df'`, `'60'`. The array and its entries are frozen.
 */
export const TIMECODE_RATES: readonly TimecodeRate[] = Object.freeze([
  rate('23.976', 24000, 1001, 24, false),
  rate('24', 24, 1, 24, false),
  rate('25', 25, 1, 25, false),
  rate('29.97', 30000, 1001, 30, false),
  rate('29.97df', 30000, 1001, 30, true),
  rate('30', 30, 1, 30, false),
  rate('48', 48, 1, 48, false),
  rate('50', 50, 1, 50, false),
  rate('59.94', 60000, 1001, 60, false),
  rate('59.94df', 60000, 1001, 60, true),
  rate('60', 60, 1, 60, false),
]);

/** How {@link secondsToFrames} picks a frame for an instant that is not exactly on a frame boundary. */
export type TimecodeRounding = 'floor' | 'nearest';

// ---------------------------------------------------------------------------------------------------------------
// Per-rate constants

const NS_PER_S = 1_000_000_000;

/** Constants derived once per rate object (the hot paths run per frame in show code and in the tests). */
interface RateSpec {
  readonly nominal: number;
  /** Labels skipped at the start of each minute not divisible by 10: 2 at nominal 30, 4 at nominal 60, else 0. */
  readonly drop: number;
  /** Real frames in ten labelled minutes (drop-frame only). */
  readonly framesPer10Min: number;
  /** Real frames in a labelled minute that drops labels (drop-frame only). */
  readonly framesPerDropMinute: number;
  /** Frames from 00:00:00:00 to the next 00:00:00:00, i.e. the label period. */
  readonly framesPerDay: number;
  /** Width of the FF field: 2 digits for every SMPTE rate. */
  readonly ffWidth: number;
  /** Real frames per nanosecond as a reduced fraction a / b (num / (den × 1e9)), for {@link secondsToFrames}. */
  readonly a: bigint;
  readonly b: bigint;
  /** 2a and 2b, precomputed: secondsToFrames runs per frame and BigInt operations are its whole cost. */
  readonly twoA: bigint;
  readonly twoB: bigint;
}

const specs = new WeakMap<TimecodeRate, RateSpec>();

function gcd(x: number, y: number): number {
  let a = Math.abs(x);
  let b = Math.abs(y);
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

function bigGcd(x: bigint, y: bigint): bigint {
  let a = x < 0n ? -x : x;
  let b = y < 0n ? -y : y;
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** floor(a / b) for b > 0 (BigInt division truncates toward zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b < 0n ? q - 1n : q;
}

/**
 * Validate a rate object and derive its constants. Rates are plain objects, so a caller could hand in a home-made
 * one; checking it once (cached per object) keeps nonsense such as a 0 denominator or drop-frame at 25 fps from
 * producing silently wrong labels.
 */
function rateSpec(r: TimecodeRate): RateSpec {
  const cached = specs.get(r);
  if (cached !== undefined) return cached;
  const { num, den, nominal, dropFrame } = r;
  // den × 1e9 must stay an exact double for the Number gcd below: den ≤ 9e6 is far beyond any real rate.
  if (!Number.isSafeInteger(num) || num <= 0 || !Number.isSafeInteger(den) || den <= 0 || den > 9_000_000) {
    throw new RangeError(`timecode rate ${r.name}: num/den must be positive integers, got ${num}/${den}`);
  }
  if (!Number.isInteger(nominal) || nominal <= 0 || nominal > 1000) {
    throw new RangeError(`timecode rate ${r.name}: nominal must be an integer in 1–1000, got ${nominal}`);
  }
  // SMPTE drop-frame exists for nominal 30 (2 labels per minute) and its multiples (4 at 60, ...).
  if (dropFrame && nominal % 30 !== 0) {
    throw new RangeError(`timecode rate ${r.name}: drop-frame needs a nominal rate divisible by 30, got ${nominal}`);
  }
  const drop = dropFrame ? nominal / 15 : 0;
  const framesPer10Min = 600 * nominal - 9 * drop;
  const g = gcd(num, den * NS_PER_S);
  const a = BigInt(num / g);
  const b = BigInt((den * NS_PER_S) / g);
  const spec: RateSpec = {
    nominal,
    drop,
    framesPer10Min,
    framesPerDropMinute: 60 * nominal - drop,
    framesPerDay: 144 * framesPer10Min,
    ffWidth: Math.max(2, String(nominal - 1).length),
    a,
    b,
    twoA: 2n * a,
    twoB: 2n * b,
  };
  specs.set(r, spec);
  return spec;
}

function checkFrames(frames: number): void {
  if (!Number.isSafeInteger(frames)) throw new RangeError(`frame count must be a safe integer, got ${frames}`);
}

/**
 * Number of frames in one 24-hour label period of `rate` (from 00:00:00:00 to the next 00:00:00:00): nominal ×
 * 86 400 for non-drop rates, e.g. 2 160 000 at 25; 2 589 408 at 29.97df and 5 178 816 at 59.94df. Labels repeat
 * with this period (see {@link framesToTimecode}).
 */
export function timecodeFramesPerDay(rate: TimecodeRate): number {
  return rateSpec(rate).framesPerDay;
}

// ---------------------------------------------------------------------------------------------------------------
// Rates

/** The accepted spellings, for error messages. */
const ACCEPTED_RATES =
  `${TIMECODE_RATES.map((r) => r.name).join(', ')} ` +
  `(case-insensitive, optionally with 'fps', a 'df'/'ndf' suffix such as '29.97 DF', or as num/den such as 30000/1001)`;

/** Digit-only spellings used by some tools for the 1001 rates ('2997df'). Integer rates need no entry. */
const COMPACT_RATES: ReadonlyMap<string, number> = new Map([
  ['2398', 24000 / 1001],
  ['23976', 24000 / 1001],
  ['2997', 30000 / 1001],
  ['5994', 60000 / 1001],
]);

/**
 * Tolerance when a rate is given as a decimal number: 0.005 fps accepts the customary roundings 23.976, 23.98,
 * 29.97 and 59.94 of the 1001 rates; the supported rates are at least 0.024 fps apart, so no input matches two.
 */
const DECIMAL_RATE_TOLERANCE = 0.005;

const RATE_SYNTAX =
  /^(\d+(?:\.\d+)?|\d+\s*\/\s*\d+)\s*(?:fps)?\s*(?:[-_]\s*)?(df|ndf|drop|nondrop|non-drop|dropframe|drop-frame|nondropframe|non-drop-frame)?$/;

function rateError(v: string | number, why = ''): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `unknown timecode rate '${String(v)}'${why}: accepted rates are ${ACCEPTED_RATES}`);
}

/**
 * Parse a timecode rate given by a person or a config file.
 *
 * Accepts a canonical name from {@link TIMECODE_RATES} (`'29.97df'`), case-insensitive variants with an optional
 * `fps` and a drop-frame suffix (`'29.97DF'`, `'29.97-df'`, `'29.97 df'`, `'29.97ndf'`, `'29.97 drop-frame'`),
 * digit-only spellings of the 1001 rates (`'2997df'`, `'23976'`, `'2398'`, `'5994'`), decimal numbers or strings
 * within 0.005 fps of a rate (`23.976`, `23.98`, `29.97`, `25`), and exact fractions `'num/den'` (`'30000/1001'`).
 * Without a `df` suffix the non-drop rate is chosen; drop-frame exists only at 29.97 and 59.94.
 *
 * @throws CuemuxError `INVALID_ARGUMENT` for anything else; the message names the input and lists the accepted
 *   rates.
 */
export function parseTimecodeRate(v: string | number): TimecodeRate {
  let text: string;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw rateError(v);
    text = String(v);
  } else {
    text = v.trim().toLowerCase();
  }
  const named = TIMECODE_RATES.find((r) => r.name === text);
  if (named !== undefined) return named;

  const m = RATE_SYNTAX.exec(text);
  if (m === null) throw rateError(v);
  const value = m[1];
  const suffix = m[2];
  const dropFrame = suffix !== undefined && !suffix.startsWith('n');

  let candidates: TimecodeRate[];
  if (value.includes('/')) {
    const [n, d] = value.split('/').map((s) => BigInt(s.trim()));
    if (d === 0n) throw rateError(v, ' (zero denominator)');
    // Exact: n/d must equal num/den, so 30000/1001 matches but 2997/100 does not.
    candidates = TIMECODE_RATES.filter((r) => n * BigInt(r.den) === d * BigInt(r.num));
  } else {
    const fps = COMPACT_RATES.get(value) ?? Number(value);
    candidates = TIMECODE_RATES.filter((r) => Math.abs(fps - r.num / r.den) < DECIMAL_RATE_TOLERANCE);
  }
  if (candidates.length === 0) throw rateError(v);
  const match = candidates.find((r) => r.dropFrame === dropFrame);
  if (match === undefined) throw rateError(v, ' (drop-frame exists only at 29.97 and 59.94)');
  return match;
}

// ---------------------------------------------------------------------------------------------------------------
// Frames ↔ labels

/** '00' … '99', so that formatting a label per frame allocates only the result string. */
const TWO_DIGITS: readonly string[] = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));

function pad(n: number, width: number): string {
  return width === 2 && n < 100 ? TWO_DIGITS[n] : String(n).padStart(width, '0');
}

/**
 * The label of frame `frames` (an integer count of frames since 00:00:00:00) at `rate`.
 *
 * Drop-frame rates skip labels FF = 00 and 01 (29.97df) or 00–03 (59.94df) at the start of every minute except
 * minutes divisible by 10, and use `;` before the frames (`'00:01:00;02'` is frame 1800 at 29.97df); non-drop
 * rates use `:`. Labels wrap every 24 hours (the count is taken modulo {@link timecodeFramesPerDay}); a negative
 * count is written as `-` followed by the label of its absolute value (`-1` → `'-00:00:00;01'`).
 *
 * @throws RangeError when `frames` is not a safe integer.
 */
export function framesToTimecode(frames: number, rate: TimecodeRate): string {
  const s = rateSpec(rate);
  checkFrames(frames);
  let f = Math.abs(frames) % s.framesPerDay;
  if (s.drop > 0) {
    // Turn the frame count into a label count by adding back the skipped labels: 9 × drop per full ten minutes,
    // plus drop per minute started after the first (undropped) minute of the current ten.
    const tens = Math.floor(f / s.framesPer10Min);
    const rem = f - tens * s.framesPer10Min;
    f += 9 * s.drop * tens;
    if (rem >= s.drop) f += s.drop * Math.floor((rem - s.drop) / s.framesPerDropMinute);
  }
  const ff = f % s.nominal;
  const totalSeconds = (f - ff) / s.nominal;
  const ss = totalSeconds % 60;
  const totalMinutes = (totalSeconds - ss) / 60;
  const mm = totalMinutes % 60;
  const hh = (totalMinutes - mm) / 60;
  const label = `${TWO_DIGITS[hh]}:${TWO_DIGITS[mm]}:${TWO_DIGITS[ss]}${s.drop > 0 ? ';' : ':'}${pad(ff, s.ffWidth)}`;
  return frames < 0 ? `-${label}` : label;
}

const TIMECODE_SYNTAX = /^(-?)(\d+):(\d+):(\d+)([:;.,])(\d+)$/;

function timecodeError(tc: string, rate: TimecodeRate, problem: string): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `timecode '${tc}' at ${rate.name}: ${problem}`, { details: { timecode: tc, rate: rate.name } });
}

const MINUS = 0x2d;
const COLON = 0x3a;

/** The value of the two decimal digits at `i` and `i + 1` of `text`, or −1 when either is not a digit. */
function twoDigitsAt(text: string, i: number): number {
  const hi = text.charCodeAt(i) - 0x30;
  const lo = text.charCodeAt(i + 1) - 0x30;
  return hi >= 0 && hi <= 9 && lo >= 0 && lo <= 9 ? hi * 10 + lo : -1;
}

/** ':' ';' '.' or ','. */
function isFrameSeparator(c: number): boolean {
  return c === COLON || c === 0x3b || c === 0x2e || c === 0x2c;
}

/**
 * The frame count of label `tc` at `rate`; the inverse of {@link framesToTimecode} for labels of the first 24 h.
 *
 * Syntax: optional leading `-`, then `HH:MM:SS` and one of `:` `;` `.` `,` before `FF` (surrounding whitespace is
 * ignored). Whether the label is drop-frame comes from `rate`, not from the separator, because the separator is
 * often typed or converted wrongly. Fields: hours 0–23, minutes and seconds 0–59 (1–2 digits each), frames
 * 0 … nominal − 1 (1–2 digits).
 *
 * @returns the frame count since 00:00:00:00 (negative for a `-` label).
 * @throws CuemuxError `INVALID_ARGUMENT` naming `tc` and the problem, for a malformed string, a field out of range,
 *   or a label that drop-frame skips (e.g. `'00:01:00;00'` at 29.97df).
 */
export function timecodeToFrames(tc: string, rate: TimecodeRate): number {
  const s = rateSpec(rate);
  // Fast path for the exact layout framesToTimecode writes, [-]HH:MM:SS?FF: reading labels back is per-frame work
  // (show clocks, the 24 h property test), and char codes are about ten times faster than the regex below.
  const o = tc.charCodeAt(0) === MINUS ? 1 : 0;
  if (tc.length === o + 11 && s.ffWidth === 2 && tc.charCodeAt(o + 2) === COLON && tc.charCodeAt(o + 5) === COLON && isFrameSeparator(tc.charCodeAt(o + 8))) {
    const hh = twoDigitsAt(tc, o);
    const mm = twoDigitsAt(tc, o + 3);
    const ss = twoDigitsAt(tc, o + 6);
    const ff = twoDigitsAt(tc, o + 9);
    if (hh >= 0 && mm >= 0 && ss >= 0 && ff >= 0) return fieldsToFrames(tc, rate, s, o === 1, hh, mm, ss, ff);
  }
  const m = TIMECODE_SYNTAX.exec(tc.trim());
  if (m === null) {
    throw timecodeError(tc, rate, `malformed, expected HH:MM:SS${s.drop > 0 ? ';' : ':'}FF`);
  }
  const [, sign, hText, mText, sText, , fText] = m;
  if (hText.length > 2 || mText.length > 2 || sText.length > 2 || fText.length > s.ffWidth) {
    throw timecodeError(tc, rate, `malformed, expected 2-digit fields HH:MM:SS${s.drop > 0 ? ';' : ':'}FF`);
  }
  return fieldsToFrames(tc, rate, s, sign === '-', Number(hText), Number(mText), Number(sText), Number(fText));
}

/** Range-check the fields of label `tc` and count its frames; shared by both parsing paths. */
function fieldsToFrames(tc: string, rate: TimecodeRate, s: RateSpec, negative: boolean, hh: number, mm: number, ss: number, ff: number): number {
  if (hh > 23) throw timecodeError(tc, rate, `hours ${hh} out of range 0–23`);
  if (mm > 59) throw timecodeError(tc, rate, `minutes ${mm} out of range 0–59`);
  if (ss > 59) throw timecodeError(tc, rate, `seconds ${ss} out of range 0–59`);
  if (ff >= s.nominal) throw timecodeError(tc, rate, `frames ${ff} out of range 0–${s.nominal - 1}`);
  const totalMinutes = hh * 60 + mm;
  let frames = (totalMinutes * 60 + ss) * s.nominal + ff;
  if (s.drop > 0) {
    if (ss === 0 && ff < s.drop && mm % 10 !== 0) {
      throw timecodeError(tc, rate, `label does not exist: drop-frame skips frames 00–${pad(s.drop - 1, 2)} at the start of every minute not divisible by 10`);
    }
    // Every minute not divisible by 10 that has started (in full) before this label has skipped `drop` labels.
    frames -= s.drop * (totalMinutes - Math.floor(totalMinutes / 10));
  }
  // `frames !== 0` guard: '-00:00:00:00' is 0, not -0 (which assert.strictEqual and Object.is tell apart).
  return negative && frames !== 0 ? -frames : frames;
}

// ---------------------------------------------------------------------------------------------------------------
// Frames ↔ seconds

/**
 * The start time of frame `frames` (a count since 00:00:00:00) in seconds, exactly: `frames × den / num` reduced
 * to lowest terms, `den > 0`. Frame 1800 at 29.97df is 3003/50 s.
 *
 * @throws RangeError when `frames` is not a safe integer.
 */
export function framesToSeconds(frames: number, rate: TimecodeRate): { num: bigint; den: bigint } {
  rateSpec(rate);
  checkFrames(frames);
  const n = frames * rate.den;
  if (Number.isSafeInteger(n)) {
    // Fast path: the whole reduction fits in exact Number arithmetic; only the result becomes BigInt.
    const g = gcd(n, rate.num);
    return { num: BigInt(n / g), den: BigInt(rate.num / g) };
  }
  const bn = BigInt(frames) * BigInt(rate.den);
  const bd = BigInt(rate.num);
  const g = bigGcd(bn, bd);
  return { num: bn / g, den: bd / g };
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/**
 * The double nearest to n / d (d > 0), ties to even. The quotient is computed with at least 55 significant bits and
 * a sticky bit for any non-zero remainder, so the single rounding done by Number() is the correct one.
 */
function ratioToNumber(n: bigint, d: bigint): number {
  if (n === 0n) return 0;
  const negative = n < 0n;
  const a = negative ? -n : n;
  const shift = 55 - (bitLength(a) - bitLength(d));
  const scaledA = shift > 0 ? a << BigInt(shift) : a;
  const scaledD = shift < 0 ? d << BigInt(-shift) : d;
  let q = scaledA / scaledD;
  if (scaledA % scaledD !== 0n) q |= 1n;
  // Multiplying by a power of two is exact for every result in range here (no overflow or subnormals).
  const v = Number(q) * 2 ** -shift;
  return negative ? -v : v;
}

/**
 * The start time of frame `frames` in seconds as the double nearest to the exact value
 * (see {@link framesToSeconds}). {@link secondsToFrames} maps the result back to `frames` exactly.
 *
 * @throws RangeError when `frames` is not a safe integer.
 */
export function framesToSecondsNumber(frames: number, rate: TimecodeRate): number {
  rateSpec(rate);
  checkFrames(frames);
  const n = frames * rate.den;
  // frames × den exact and num exact: IEEE division rounds the exact quotient once, to the nearest double.
  if (Number.isSafeInteger(n)) return n / rate.num;
  return ratioToNumber(BigInt(frames) * BigInt(rate.den), BigInt(rate.num));
}

/** Scratch space to read a double's bits. */
const bits = new DataView(new ArrayBuffer(8));

const NS_PER_S_BIG = BigInt(NS_PER_S);

/**
 * SHIFTS[k] = BigInt(k) and HALVES[k] = 2^(k−1) for k ≥ 1, extended on demand (in order, so that the arrays stay
 * packed; a sparse array is a slow dictionary): building them per call was most of secondsToFrames' time.
 */
const SHIFTS: bigint[] = [0n];
const HALVES: bigint[] = [0n];

/**
 * `seconds × 1e9` rounded to the nearest integer, ties toward +∞, computed exactly from the double's bits
 * (seconds = ±m × 2^e with integer m): no float multiplication, so no rounding other than the one intended.
 */
function nearestNanosecond(seconds: number): bigint {
  bits.setFloat64(0, seconds);
  const hi = bits.getUint32(0);
  const lo = bits.getUint32(4);
  const biasedExponent = (hi >>> 20) & 0x7ff;
  let m = (hi & 0xfffff) * 2 ** 32 + lo;
  let e = -1074; // subnormal
  if (biasedExponent !== 0) {
    m += 2 ** 52;
    e = biasedExponent - 1075;
  }
  if (m === 0) return 0n;
  const scaled = BigInt(hi >>> 31 === 1 ? -m : m) * NS_PER_S_BIG;
  if (e >= 0) return scaled << BigInt(e);
  // floor(scaled / 2^k + 1/2); BigInt >> is an arithmetic shift, i.e. a floor, also for negative values.
  const k = -e;
  for (let i = SHIFTS.length; i <= k; i++) {
    SHIFTS.push(BigInt(i));
    HALVES.push(1n << BigInt(i - 1));
  }
  return (scaled + HALVES[k]) >> SHIFTS[k];
}

/**
 * The frame at `seconds` at `rate`: with `rounding` `'floor'` (the default) the frame whose span
 * [n × den/num, (n + 1) × den/num) contains the instant, with `'nearest'` the frame whose start is nearest
 * (a tie goes to the later frame). Negative times give negative frames (floor: −0.5 s at 25 fps is frame −13).
 *
 * Exact, in BigInt, with one deliberate tolerance, the half-nanosecond rule: `seconds` is first rounded to the
 * nearest integer nanosecond ns, and for `'floor'` that nanosecond is taken as the interval ±0.5 ns around it,
 * i.e. the result is floor((2·ns + 1) × num / (2 × den × 1e9)). Why: a frame start n × 1001/30000 s is not a
 * double, and `framesToSecondsNumber(n)` may be a hair (≈1e-11 s at 24 h) below it; a plain floor would return
 * n − 1. At every supported rate a frame start is a multiple of 1/3 ns, so its nearest-nanosecond value is within
 * 1/3 ns of it and the +0.5 ns moves it onto the frame: every n round-trips n → seconds → n exactly while the
 * double's rounding error stays below 1/6 ns, i.e. for |seconds| < 2^21 s (about 24.3 days; beyond that, at the
 * 1001 rates, some frames come back as n − 1 with `'floor'`, while `'nearest'` still round-trips). The price: an
 * instant less than about one nanosecond before a frame start counts as that frame, far below any clock's
 * resolution.
 *
 * @param seconds time since 00:00:00:00 in seconds; must be finite.
 * @param rounding `'floor'` (default) or `'nearest'`.
 * @throws RangeError when `seconds` is not finite or the frame count is not a safe integer.
 */
export function secondsToFrames(seconds: number, rate: TimecodeRate, rounding: TimecodeRounding = 'floor'): number {
  const s = rateSpec(rate);
  if (!Number.isFinite(seconds)) throw new RangeError(`seconds must be finite, got ${seconds}`);
  const ns = nearestNanosecond(seconds);
  // floor: (ns + 1/2) × a / b = ((2ns + 1) × a) / 2b; nearest: floor(ns × a / b + 1/2) = (2ns × a + b) / 2b.
  const x = rounding === 'floor' ? ns * s.twoA + s.a : ns * s.twoA + s.b;
  const q = x >= 0n ? x / s.twoB : floorDiv(x, s.twoB);
  const frames = Number(q);
  // The message is built in a separate function: a template using the BigInt `q` here made V8 optimize this hot
  // function about twice as badly.
  if (!Number.isSafeInteger(frames)) throw tooManyFrames(seconds, rate);
  return frames;
}

function tooManyFrames(seconds: number, rate: TimecodeRate): RangeError {
  return new RangeError(`${seconds} s at ${rate.name} is beyond the safe integer range of frame counts`);
}

/**
 * The label of the frame at `seconds`: {@link framesToTimecode} of {@link secondsToFrames}. Labels wrap every
 * 24 hours of labels (which at 29.97df is 86 399.91 s of real time).
 *
 * @param seconds time since 00:00:00:00 in seconds; must be finite.
 * @param rounding `'floor'` (default: the frame showing at that instant) or `'nearest'`.
 * @throws RangeError when `seconds` is not finite.
 */
export function secondsToTimecode(seconds: number, rate: TimecodeRate, rounding: TimecodeRounding = 'floor'): string {
  return framesToTimecode(secondsToFrames(seconds, rate, rounding), rate);
}

/**
 * The start time in seconds (nearest double) of the frame labelled `tc` at `rate`; see {@link timecodeToFrames}
 * for the accepted syntax.
 *
 * @throws CuemuxError `INVALID_ARGUMENT` for a malformed, out-of-range or dropped label.
 */
export function timecodeToSeconds(tc: string, rate: TimecodeRate): number {
  return framesToSecondsNumber(timecodeToFrames(tc, rate), rate);
}

// ---------------------------------------------------------------------------------------------------------------
// Show-control input

/** A decimal number as people and OSC/CLI tools write it: '12.5', '-3', '.5', '1e2'. Not '0x10', 'Infinity'. */
const SECONDS_SYNTAX = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i;

/** Four fields separated by ':' with ':' or ';' before the frames; the shape is checked before the rate. */
const POSITION_TIMECODE_SYNTAX = /^-?\d+:\d+:\d+[:;]\d+$/;

function positionError(v: string | number, problem: string): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `time position '${String(v)}': ${problem}`, { details: { position: String(v) } });
}

/**
 * Parse a show-control time position into seconds.
 *
 * - a finite number, or a decimal string (`'12.5'`, `'-3'`, `'1e2'`), is seconds;
 * - `'HH:MM:SS:FF'` or `'HH:MM:SS;FF'` (optionally with a leading `-`) is a timecode at `rate`, returned as the
 *   start time of that frame (see {@link timecodeToSeconds}).
 *
 * `'HH:MM:SS.sss'` is deliberately not accepted: with a timecode rate set it would be ambiguous with the
 * `HH:MM:SS.FF` frame separator that {@link timecodeToFrames} allows.
 *
 * @param rate the show's timecode rate, or `null` when none is set (then only seconds are accepted).
 * @throws CuemuxError `INVALID_ARGUMENT` naming the value: empty, garbage, NaN, ±Infinity, a bad or dropped
 *   timecode, or a timecode while `rate` is `null`.
 */
export function parseTimePosition(v: string | number, rate: TimecodeRate | null): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw positionError(v, 'not a finite number of seconds');
    return v;
  }
  const text = v.trim();
  if (text === '') throw positionError(v, 'empty, expected seconds or HH:MM:SS:FF');
  if (SECONDS_SYNTAX.test(text)) {
    const seconds = Number(text);
    if (!Number.isFinite(seconds)) throw positionError(v, 'not a finite number of seconds');
    return seconds;
  }
  if (POSITION_TIMECODE_SYNTAX.test(text)) {
    if (rate === null) throw positionError(v, 'a timecode needs a frame rate: a frame rate must be set first');
    return timecodeToSeconds(text, rate);
  }
  throw positionError(v, 'expected seconds (e.g. 12.5) or a timecode HH:MM:SS:FF');
}
