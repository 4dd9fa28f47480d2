/**
 * The OSC router's argument helpers: read argument N of a request as the number, string, boolean or time the action
 * needs, accepting each form a console may send it in (a cue id as a string or a number, a boolean as T/F, 0/1 or a
 * word), and name the address, the argument and the value when it cannot be read. Also where a reply to an address
 * goes. Pure functions of the request: no socket, no clock.
 */
import { CuemuxError } from '../common/errors';
import { quote } from '../wire/osc-codec';
import type { OscRequest } from './osc-endpoint';

/** Options of the argument helpers. */
export interface ArgOptions {
  /** A missing argument (or nil, `N`) gives undefined instead of an error. */
  optional?: boolean;
}

/** Argument `index` as the error message shows it: its OSC type in words and its value. */
function describe(req: OscRequest, index: number): string {
  const v = req.args[index];
  switch (req.types[index]) {
    case 's': return `string ${quote(v as string)}`;
    case 'S': return `symbol ${quote(v as string)}`;
    case 'c': return `char ${quote(v as string)}`;
    case 'i': return `int32 ${String(v)}`;
    case 'h': return `int64 ${String(v)}`;
    case 'f': return `float32 ${String(v)}`;
    case 'd': return `double ${String(v)}`;
    case 'T': return 'true (T)';
    case 'F': return 'false (F)';
    case 'N': return 'nil (N)';
    case 'I': return 'infinitum (I)';
    case 't': return `timetag ${String(v)}`;
    case 'r': return `colour 0x${(v as number).toString(16)}`;
    case 'b': return `blob of ${(v as Buffer).length} bytes`;
    case 'm': return `MIDI ${(v as Buffer).toString('hex')}`;
    default: return `${req.types[index] ?? '?'} ${String(v)}`;
  }
}

/** The error for argument `index`: names the address, the argument (position and name) and `why`. */
function argError(req: OscRequest, index: number, name: string, why: string): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `${req.address}: argument ${index + 1} (${name}) ${why}`,
    { details: { address: req.address, index, name } });
}

/** The argument, or undefined when it is missing/nil and optional; throws when missing and required. */
function present(req: OscRequest, index: number, name: string, options: ArgOptions | undefined): boolean {
  if (index < req.args.length && req.types[index] !== 'N') return true;
  if (options?.optional) return false;
  throw argError(req, index, name, index < req.args.length
    ? 'is required, got nil (N)'
    : `is missing (the message has ${req.args.length} argument${req.args.length === 1 ? '' : 's'})`);
}

/** The shortest decimal that reads back as the same float32: what the sender typed, not float32's binary residue. */
function float32Decimal(v: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/** A numeric argument as a JS number, or undefined when not a number. Strings are not considered here. */
function numeric(req: OscRequest, index: number): number | undefined {
  const v = req.args[index];
  switch (req.types[index]) {
    case 'i': case 'd': return v as number;
    case 'f': return Number.isFinite(v) ? float32Decimal(v as number) : (v as number);
    case 'h': {
      const big = v as bigint;
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : Number.NaN;
    }
    default: return undefined;
  }
}

/**
 * Argument `index` as a finite number: int32, float32 (as the shortest decimal that is the same float32, so 1.1f gives
 * 1.1), double, int64 within ±2^53, or a decimal numeric string (trimmed; '', 'NaN', 'Infinity', hex refused).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') naming the address, the argument and the value.
 */
export function argNumber(req: OscRequest, index: number, name: string, options: ArgOptions & { optional: true }): number | undefined;
export function argNumber(req: OscRequest, index: number, name: string, options?: ArgOptions): number;
export function argNumber(req: OscRequest, index: number, name: string, options?: ArgOptions): number | undefined {
  if (!present(req, index, name, options)) return undefined;
  const type = req.types[index];
  let n = numeric(req, index);
  if (n === undefined && (type === 's' || type === 'S')) {
    const text = (req.args[index] as string).trim();
    n = DECIMAL.test(text) ? Number(text) : Number.NaN;
  }
  if (n === undefined || !Number.isFinite(n)) throw argError(req, index, name, `must be a finite number, got ${describe(req, index)}`);
  return n;
}

/**
 * Argument `index` as a string: `s`, `S`, `c` as sent (untrimmed); numbers converted (1 → "1", 1.5f → "1.5", useful
 * for cue ids sent either way).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') naming the address, the argument and the value.
 */
export function argString(req: OscRequest, index: number, name: string, options: ArgOptions & { optional: true }): string | undefined;
export function argString(req: OscRequest, index: number, name: string, options?: ArgOptions): string;
export function argString(req: OscRequest, index: number, name: string, options?: ArgOptions): string | undefined {
  if (!present(req, index, name, options)) return undefined;
  const type = req.types[index];
  if (type === 's' || type === 'S' || type === 'c') return req.args[index] as string;
  if (type === 'h') return String(req.args[index]);
  const n = numeric(req, index);
  if (n === undefined || !Number.isFinite(n)) throw argError(req, index, name, `must be a string or a number, got ${describe(req, index)}`);
  return String(n);
}

/**
 * Argument `index` as a boolean: `T`/`F`; numbers 0 and 1; strings 'true'/'false', '1'/'0', 'on'/'off' (trimmed,
 * any case).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') naming the address, the argument and the value.
 */
export function argBoolean(req: OscRequest, index: number, name: string, options: ArgOptions & { optional: true }): boolean | undefined;
export function argBoolean(req: OscRequest, index: number, name: string, options?: ArgOptions): boolean;
export function argBoolean(req: OscRequest, index: number, name: string, options?: ArgOptions): boolean | undefined {
  if (!present(req, index, name, options)) return undefined;
  const type = req.types[index];
  const v = req.args[index];
  if (type === 'T' || type === 'F') return v as boolean;
  const n = numeric(req, index);
  if (n === 0 || n === 1) return n === 1;
  if (type === 's' || type === 'S') {
    const word = (v as string).trim().toLowerCase();
    if (word === 'true' || word === '1' || word === 'on') return true;
    if (word === 'false' || word === '0' || word === 'off') return false;
  }
  throw argError(req, index, name, `must be a boolean (T/F, 0/1, true/false, on/off), got ${describe(req, index)}`);
}

/**
 * Argument `index` for a time given either as seconds or as a timecode string: a finite number as a number (as in
 * {@link argNumber}, numeric strings excepted), a string (`s`/`S`) untouched; parsing the timecode is the caller's.
 *
 * @throws CuemuxError('INVALID_ARGUMENT') naming the address, the argument and the value.
 */
export function argTimeOrString(req: OscRequest, index: number, name: string, options: ArgOptions & { optional: true }): number | string | undefined;
export function argTimeOrString(req: OscRequest, index: number, name: string, options?: ArgOptions): number | string;
export function argTimeOrString(req: OscRequest, index: number, name: string, options?: ArgOptions): number | string | undefined {
  if (!present(req, index, name, options)) return undefined;
  const type = req.types[index];
  if (type === 's' || type === 'S') return req.args[index] as string;
  const n = numeric(req, index);
  if (n === undefined || !Number.isFinite(n)) throw argError(req, index, name, `must be seconds or a timecode string, got ${describe(req, index)}`);
  return n;
}

/**
 * Where the reply to `address` goes: `/cuemux/cue/go` → `/cuemux/reply/cue/go`; an address outside `/cuemux/` is
 * appended to `/cuemux/reply` (`/x` → `/cuemux/reply/x`).
 */
export function replyAddress(address: string): string {
  if (address.startsWith('/cuemux/')) return `/cuemux/reply/${address.slice('/cuemux/'.length)}`;
  return `/cuemux/reply${address.startsWith('/') ? '' : '/'}${address}`;
}
