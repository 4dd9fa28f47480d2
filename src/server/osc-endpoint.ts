/**
 * OSC over UDP for the show-control interface: one socket, strict decoding of messages and (nested) bundles, bundle
 * times honoured to the millisecond, typed replies, and argument helpers for the router that maps addresses such as
 * `/cuemux/cue/go` to actions. This is the only module that imports osc-js; it works around the library's known
 * faults (see "osc-js 2.4.1" in the field notes and the comments below) so the rest of the code never meets them.
 *
 * Nothing a peer sends can throw out of the socket handler or crash the process: a malformed datagram becomes one
 * 'invalid' event carrying a CuemuxError('INVALID_ARGUMENT') that names the sender and what is wrong, and listener
 * exceptions (thrown or rejected) are logged and swallowed.
 */
import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import OSC from 'osc-js';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { RateLimitedLog } from '../common/rate-limited-log';
import { AllowList, LOOPBACK_ALLOW, SenderBudgets, type SenderBudgetOptions } from './osc-access';

const log = getLogger('osc-endpoint');

/**
 * One decoded OSC argument. The OSC type letter is kept beside it in {@link OscRequest.types}:
 * `i` int32, `f` float32, `d` double, `r` RGBA colour (uint32) → number; `I` infinitum → `Infinity`;
 * `h` int64 and `t` timetag (the raw 64-bit NTP value) → bigint; `s` string, `S` symbol, `c` char → string;
 * `T`/`F` → boolean; `N` → null; `b` blob and `m` 4-byte MIDI message → Buffer (a copy, never a view of the datagram).
 */
export type OscValue = number | string | boolean | null | Buffer | bigint;

/** A UDP peer. */
export interface OscPeer {
  /** IP address (or, for {@link OscEndpoint.send}, a host name). */
  address: string;
  /** UDP port. */
  port: number;
}

/** One OSC message as the router sees it. */
export interface OscRequest {
  /** The OSC address, e.g. `/cuemux/cue/go`. Always starts with '/'. */
  address: string;
  /** The arguments, one per letter of {@link types}. */
  args: OscValue[];
  /** The OSC type tags without the leading comma, e.g. `'if'`; `''` when there are no arguments. */
  types: string;
  /** Who sent it (where a reply goes). */
  from: OscPeer;
  /**
   * The enclosing bundle's time in nanoseconds since the Unix epoch (exact to the nanosecond, from the NTP timetag);
   * null for a bare message or a bundle marked "immediately".
   */
  timetagUnixNs: bigint | null;
  /** The bundle's time had already passed when the datagram arrived (the message is delivered at once). */
  late: boolean;
}

/** One message of a datagram, as returned by {@link decodeDatagram}. */
export interface DecodedMessage {
  /** The OSC address. */
  address: string;
  /** The arguments. */
  args: OscValue[];
  /** Type tags without the comma. */
  types: string;
  /**
   * The time of the innermost bundle holding the message (a nested bundle marked "immediately" takes its enclosing
   * bundle's time), in ns since the Unix epoch; null for a bare message or "immediately".
   */
  timetagUnixNs: bigint | null;
}

/** One argument for {@link OscEndpoint.send}; the type is sent exactly as given (never guessed from the value). */
export type OscSendArg =
  | { type: 's'; value: string }
  | { type: 'i' | 'f' | 'd'; value: number }
  | { type: 'h'; value: bigint }
  | { type: 'b'; value: Uint8Array }
  | { type: 'T' | 'F' | 'N'; value?: null };

/** Options of {@link OscEndpoint.open}. */
export interface OscEndpointOptions {
  /** Address to bind, e.g. `0.0.0.0`, `127.0.0.1`, `::` (a host containing ':' gets an IPv6 socket). */
  host: string;
  /** UDP port; 0 picks a free one (see {@link OscEndpoint.address}). */
  port: number;
  /** Most messages waiting for their bundle time at once; a bundle that would exceed it is refused. Default 1024. */
  maxScheduled?: number;
  /**
   * Most datagram bytes held by messages waiting for their bundle time; a bundle that would exceed it is refused.
   * Default 4 MiB.
   */
  maxScheduledBytes?: number;
  /** Latest bundle time accepted, in ms after arrival. Default 24 h. */
  maxAheadMs?: number;
  /**
   * Sender networks (CIDR, or single addresses) whose datagrams are read; others are dropped unanswered, with a
   * rate-limited warning naming the sender. Default loopback only: 127.0.0.0/8 and ::1.
   */
  allow?: readonly string[];
  /** Per-sender budgets (token buckets, one second of burst). Default 2000 messages/s and 1 MiB/s. */
  budgets?: SenderBudgetOptions;
}

/** What the endpoint dropped or refused so far (for status replies and tests). */
export interface OscEndpointCounters {
  /** Datagrams from senders outside the allow-list (dropped unanswered). */
  notAllowed: number;
  /** Datagrams over their sender's message or byte budget (dropped unanswered). */
  overBudget: number;
  /** Messages in those datagrams, where they could be counted (over the message budget). */
  overBudgetMessages: number;
  /** Bundles refused because the queue of timed messages was full (count or bytes). */
  scheduleRefused: number;
}

/** The datagram a request came in: its message count, and the replies sent to it so far (see {@link datagramOf}). */
export interface DatagramInfo {
  /** Messages the datagram held. */
  readonly messages: number;
  /** Replies sent for it so far (the router counts them to cap replies per datagram). */
  replies: number;
  /** The cap was reported for it (once per datagram). */
  capReported: boolean;
}

const datagrams = new WeakMap<OscRequest, DatagramInfo>();

/** The datagram `req` came in (shared by every message of a bundle), or undefined for a request made elsewhere. */
export function datagramOf(req: OscRequest): DatagramInfo | undefined {
  return datagrams.get(req);
}

/** Events of {@link OscEndpoint}: name → listener arguments. */
export interface OscEndpointEvents {
  /** A message is due: at once for a bare message, at the bundle's time for a bundled one. */
  request: [req: OscRequest];
  /**
   * A datagram was refused as a whole (none of its messages is delivered): malformed (INVALID_ARGUMENT), too far
   * ahead (INVALID_ARGUMENT) or over the scheduling limit (RESOURCE_EXHAUSTED). `address` is the OSC address
   * concerned when it could be read (for an error reply), else null.
   */
  invalid: [error: CuemuxError, from: OscPeer, address: string | null];
}

/** A listener; a returned promise that rejects is logged like a thrown exception. */
export type OscListener<A extends unknown[]> = (...args: A) => void | Promise<void>;

const DEFAULT_MAX_SCHEDULED = 1024;
const DEFAULT_MAX_SCHEDULED_BYTES = 4 << 20;
/** Default per-sender budgets: far above what a console sends (a busy one: tens of messages a second). */
export const DEFAULT_OSC_BUDGETS: SenderBudgetOptions = { messagesPerSecond: 2000, bytesPerSecond: 1 << 20 };
const DEFAULT_MAX_AHEAD_MS = 24 * 3600 * 1000;
/** Largest UDP payload over IPv4; a bigger reply cannot be sent as one datagram. */
const MAX_DATAGRAM = 65_507;
/** Nested bundles deeper than this are refused (bounds recursion on hostile input; real senders nest 1-2 levels). */
const MAX_BUNDLE_DEPTH = 16;
const NTP_UNIX_OFFSET_S = 2_208_988_800n;
const NS_PER_S = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;
const BUNDLE_HEAD = Buffer.from('#bundle\0', 'latin1');
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type OscJsArgValue = Parameters<InstanceType<typeof OSC.TypedMessage>['add']>[1];

// ---------------------------------------------------------------------------------------------------------------
// Clock

let anchorWallNs = BigInt(Date.now()) * NS_PER_MS;
let anchorHr = process.hrtime.bigint();

/**
 * Now, in ns since the Unix epoch: the wall clock (bundle times are wall-clock times on the sender's side) with
 * sub-millisecond resolution from the monotonic clock. The estimate is re-anchored whenever it leaves the
 * millisecond Date.now() reports (start-up, a clock step), so it never runs ahead of the wall clock; it may trail
 * it by up to 1 ms, which can only make a bundle fire late, never early.
 */
function unixNowNs(): bigint {
  const wallNs = BigInt(Date.now()) * NS_PER_MS;
  const hr = process.hrtime.bigint();
  const estimate = anchorWallNs + (hr - anchorHr);
  if (estimate >= wallNs && estimate < wallNs + NS_PER_MS) return estimate;
  anchorWallNs = wallNs;
  anchorHr = hr;
  return wallNs;
}

/**
 * NTP timetag → ns since the Unix epoch, rounded to the nearest ns (no floating point: osc-js rounds the fraction to
 * whole seconds). NTP seconds wrap in February 2036; as RFC 4330 §3 suggests, a value with the top bit clear is read
 * as era 1 (2036-2104). Small bogus values therefore land far in the future and are refused as too far ahead.
 */
function ntpToUnixNs(seconds: number, fraction: number): bigint {
  const era = seconds >= 0x8000_0000 ? 0n : 1n;
  const ntpSeconds = BigInt(seconds) + (era << 32n);
  return (ntpSeconds - NTP_UNIX_OFFSET_S) * NS_PER_S + ((BigInt(fraction) * NS_PER_S + (1n << 31n)) >> 32n);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

class DecodeError extends Error {
  constructor(message: string, readonly address: string | null) {
    super(message);
  }
}

/** The string starting at `offset` (NUL-terminated, padded to 4) and the offset after it, or null if unterminated. */
function readOscString(buf: Buffer, offset: number, end: number): { text: string; next: number } | null {
  const nul = buf.indexOf(0, offset);
  if (nul < 0 || nul >= end) return null;
  return { text: buf.toString('utf8', offset, nul), next: (nul + 4) & ~3 };
}

const quote = (s: string): string => {
  const json = JSON.stringify(s);
  return json.length > 42 ? `${json.slice(0, 40)}…"` : json;
};

/** Types osc-js decodes itself, and ours that it does not know but that share the layout of one it does. */
const NATIVE_TYPES = new Set(['i', 'f', 'd', 'h', 't', 's', 'b', 'T', 'F', 'N', 'I']);
const SAME_LAYOUT: Record<string, string> = { S: 's', c: 'i', r: 'i', m: 'i' };

/** Type tags {@link readPlainArgs} reads itself. */
const PLAIN_TYPES = new Set(['s', 'S', 'i', 'f', 'd', 'h', 'T', 'F', 'N', 'I']);

/**
 * The arguments of a well-formed message whose types are all plain (strings, numbers, int64, constants), read
 * directly: the same values osc-js returns, without its byte-by-byte string decoding and per-argument objects (an
 * OSC GO took 20 µs hot, 100-200 µs between GOs, to decode through osc-js). Null for anything else (other types,
 * an unterminated string, arguments that do not end exactly at the message's end): osc-js then decodes it and the
 * caller reports what is wrong. `at` is the offset of the first argument from `start`.
 */
function readPlainArgs(buf: Buffer, start: number, end: number, at: number, types: string): OscValue[] | null {
  const size = end - start;
  const args: OscValue[] = [];
  let rel = at;
  for (const letter of types) {
    if (!PLAIN_TYPES.has(letter)) return null;
    switch (letter) {
      case 's': case 'S': {
        const nul = buf.indexOf(0, start + rel);
        if (nul < 0 || nul >= end) return null;
        args.push(buf.toString('utf8', start + rel, nul));
        rel = (nul - start + 4) & ~3;
        break;
      }
      case 'i': case 'f':
        if (rel + 4 > size) return null;
        args.push(letter === 'i' ? buf.readInt32BE(start + rel) : buf.readFloatBE(start + rel));
        rel += 4;
        break;
      case 'd': case 'h':
        if (rel + 8 > size) return null;
        args.push(letter === 'd' ? buf.readDoubleBE(start + rel) : buf.readBigInt64BE(start + rel));
        rel += 8;
        break;
      case 'T': args.push(true); break;
      case 'F': args.push(false); break;
      case 'N': args.push(null); break;
      default: args.push(Infinity); // 'I'
    }
  }
  return rel === size ? args : null;
}

/** Decode the message occupying `buf[start, end)` with osc-js, after checking what osc-js leaves unchecked. */
function decodeMessage(buf: Buffer, start: number, end: number, timetagUnixNs: bigint | null): DecodedMessage {
  const size = end - start;
  const head = readOscString(buf, start, end);
  if (head === null) throw new DecodeError('the address string is not NUL-terminated', null);
  if (!head.text.startsWith('/')) throw new DecodeError(`the address ${quote(head.text)} does not start with '/'`, null);
  const address = head.text;
  const typeTag = head.next < end ? readOscString(buf, head.next, end) : null;
  // osc-js does not check the comma (it skips the first letter, whatever it is) nor the terminating NUL.
  if (typeTag === null) throw new DecodeError('missing or unterminated type tag string', address);
  if (!typeTag.text.startsWith(',')) throw new DecodeError(`type tag string ${quote(typeTag.text)} does not start with ','`, address);
  const types = typeTag.text.slice(1);
  for (const letter of types) {
    if (NATIVE_TYPES.has(letter) || letter in SAME_LAYOUT) continue;
    const what = letter === '[' || letter === ']' ? 'arrays ([...]) are not supported' : 'unknown type';
    throw new DecodeError(`type tag ${quote(letter)} in ',${types}': ${what}`, address);
  }
  const fast = readPlainArgs(buf, start, end, typeTag.next - start, types);
  if (fast !== null) return { address, args: fast, types, timetagUnixNs };
  // osc-js only ever sees a fresh ArrayBuffer holding exactly this message (its dataView() ignores byteOffset), plus
  // 4 bytes of 0xFF: osc-js accepts an unterminated string at the end of its buffer and would otherwise read arguments
  // of a truncated message as if complete; with the sentinel any overrun shows as an end offset past `size`.
  const bytes = new Uint8Array(new ArrayBuffer(size + 4));
  bytes.set(buf.subarray(start, end));
  bytes.fill(0xff, size);
  for (let k = 0; k < types.length; k++) {
    const same = SAME_LAYOUT[types[k]];
    if (same !== undefined) bytes[head.next - start + 1 + k] = same.charCodeAt(0);
  }
  const message = new OSC.TypedMessage('/', []);
  let used: number;
  try {
    used = message.unpack(new DataView(bytes.buffer));
  } catch (e) {
    throw new DecodeError(`malformed arguments for ',${types}' (${e instanceof Error ? e.message : String(e)})`, address);
  }
  if (used > size) throw new DecodeError(`truncated: the arguments for ',${types}' run past the end of the ${size}-byte message`, address);
  if (used < size) throw new DecodeError(`${size - used} unexpected bytes after the arguments for ',${types}'`, address);
  const raw = message.args as unknown[];
  const args = types.split('').map((letter, k): OscValue => {
    const v = raw[k];
    switch (letter) {
      case 'b': return Buffer.from(v as Uint8Array); // a copy: osc-js returns a view of its buffer
      case 'c': {
        const code = v as number;
        if (code < 0 || code > 0x10ffff) throw new DecodeError(`argument ${k + 1} is not a valid char (${code})`, address);
        return String.fromCodePoint(code);
      }
      case 'r': return (v as number) >>> 0;
      case 'm': {
        const midi = Buffer.alloc(4);
        midi.writeInt32BE(v as number);
        return midi;
      }
      default: return v as OscValue;
    }
  });
  return { address, args, types, timetagUnixNs };
}

function decodeBundle(buf: Buffer, start: number, end: number, outer: bigint | null, depth: number, out: DecodedMessage[]): void {
  if (depth > MAX_BUNDLE_DEPTH) throw new DecodeError(`bundles nested more than ${MAX_BUNDLE_DEPTH} deep`, null);
  if (end - start < 16) throw new DecodeError(`bundle of ${end - start} bytes is shorter than its 16-byte header`, null);
  const seconds = buf.readUInt32BE(start + 8);
  const fraction = buf.readUInt32BE(start + 12);
  // 1 is "immediately" (OSC 1.0); all zeros is taken the same way (some senders write it) rather than as 1900.
  const own = seconds === 0 && fraction <= 1 ? null : ntpToUnixNs(seconds, fraction);
  if (own !== null && outer !== null && own < outer) {
    throw new DecodeError('a nested bundle is timed earlier than the bundle enclosing it', null);
  }
  const time = own ?? outer;
  let offset = start + 16;
  while (offset < end) {
    if (end - offset < 4) throw new DecodeError(`bundle element size truncated at byte ${offset}`, null);
    const size = buf.readInt32BE(offset);
    offset += 4;
    if (size <= 0 || size % 4 !== 0) throw new DecodeError(`bundle element size ${size} at byte ${offset - 4} is not a positive multiple of 4`, null);
    if (size > end - offset) {
      throw new DecodeError(`bundle element size ${size} at byte ${offset - 4} goes beyond the end of the bundle (${end - offset} bytes left)`, null);
    }
    decodePacket(buf, offset, offset + size, time, depth + 1, out);
    offset += size;
  }
}

function decodePacket(buf: Buffer, start: number, end: number, outer: bigint | null, depth: number, out: DecodedMessage[]): void {
  if (end - start >= 8 && buf.compare(BUNDLE_HEAD, 0, 8, start, start + 8) === 0) {
    decodeBundle(buf, start, end, outer, depth, out);
  } else if (buf[start] === 0x2f /* '/' */) {
    out.push(decodeMessage(buf, start, end, outer));
  } else {
    const head = readOscString(buf, start, end);
    const printable = head !== null && /^[\x20-\x7e]{1,64}$/.test(head.text);
    throw new DecodeError(printable
      ? `the address ${quote(head.text)} does not start with '/'`
      : `not an OSC message or bundle (starts with 0x${buf.subarray(start, Math.min(end, start + 8)).toString('hex')})`, null);
  }
}

/**
 * Decode one UDP datagram: a message, or a bundle (nested bundles included) flattened into its messages in order.
 * Any Uint8Array works, whatever its byteOffset. Bundle times are not compared with the clock here.
 *
 * @throws CuemuxError('INVALID_ARGUMENT') saying what is wrong; `details.address` is the OSC address concerned when
 * it could be read, else null. Nothing is returned for a datagram that is malformed anywhere.
 */
export function decodeDatagram(datagram: Uint8Array): DecodedMessage[] {
  const buf = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  try {
    if (buf.length === 0) throw new DecodeError('empty datagram', null);
    if (buf.length % 4 !== 0) throw new DecodeError(`datagram length ${buf.length} is not a multiple of 4`, null);
    const out: DecodedMessage[] = [];
    decodePacket(buf, 0, buf.length, null, 0, out);
    return out;
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    return e.address === null
      ? raise(`malformed OSC datagram: ${e.message}`, e.address)
      : raise(`malformed OSC message ${e.address}: ${e.message}`, e.address);
  }
}

function raise(message: string, address: string | null): never {
  throw new CuemuxError('INVALID_ARGUMENT', message, { details: { address } });
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Bytes an argument takes after the type tag string (for the int64-zero patch in {@link encodeMessage}). */
function argBytes(arg: OscSendArg, wire: string | Uint8Array | undefined): number {
  switch (arg.type) {
    case 'i': case 'f': return 4;
    case 'd': case 'h': return 8;
    case 's': return ((wire as string).length + 4) & ~3;
    case 'b': return 4 + (((arg.value.byteLength) + 3) & ~3);
    default: return 0;
  }
}

/**
 * Encode one OSC message with osc-js, every argument with exactly the type given.
 *
 * @throws CuemuxError('INVALID_ARGUMENT') for an address that is not '/'-prefixed printable ASCII (or ends with
 * '/', which osc-js would silently drop), an int32 out of range, a string with a NUL, an unknown type, a value of
 * the wrong kind, or a message over 65,507 bytes.
 */
export function encodeMessage(address: string, args: readonly OscSendArg[]): Uint8Array {
  const bad = (why: string): never => {
    throw new CuemuxError('INVALID_ARGUMENT', `cannot send OSC ${JSON.stringify(address)}: ${why}`);
  };
  if (typeof address !== 'string' || !/^\/[\x21-\x7e]*$/.test(address) || address.includes('#') || address.includes(',')) {
    bad("an OSC address is printable ASCII starting with '/', without spaces, '#' or ','");
  }
  if (address.length > 1 && address.endsWith('/')) bad("the address must not end with '/'");
  const message = new OSC.TypedMessage(address, []);
  // osc-js 2.4.1 cannot encode an int64 of 0 ("empty value": it tests the value for truthiness), so 1n goes in its
  // place and the 8 bytes are zeroed after packing. Offsets count the padded address and type tag strings.
  const zeroAt: number[] = [];
  let offset = ((address.length + 4) & ~3) + ((args.length + 2 + 3) & ~3);
  args.forEach((arg, k) => {
    const where = `argument ${k + 1} (${String((arg as { type?: unknown }).type)})`;
    let wire: string | Uint8Array | undefined;
    switch (arg.type) {
      case 's':
        if (typeof arg.value !== 'string') bad(`${where} must be a string`);
        if (arg.value.includes('\0')) bad(`${where} contains a NUL character`);
        // osc-js writes charCodeAt() & 0xff per character, mangling anything beyond Latin-1: hand it the UTF-8 bytes as
        // a Latin-1 string so each character is one byte (it decodes strings as UTF-8, so peers and we agree).
        wire = Buffer.from(arg.value, 'utf8').toString('latin1');
        message.add('s', wire);
        break;
      case 'i':
        if (!Number.isInteger(arg.value) || arg.value < INT32_MIN || arg.value > INT32_MAX) {
          bad(`${where} must be an integer in the int32 range, got ${String(arg.value)}`); // osc-js would wrap it
        }
        message.add('i', arg.value);
        break;
      case 'f':
      case 'd':
        if (typeof arg.value !== 'number') bad(`${where} must be a number`);
        message.add(arg.type, arg.value);
        break;
      case 'h':
        if (typeof arg.value !== 'bigint' || arg.value < INT64_MIN || arg.value > INT64_MAX) bad(`${where} must be a bigint in the int64 range`);
        if (arg.value === 0n) zeroAt.push(offset);
        message.add('h', (arg.value === 0n ? 1n : arg.value) as unknown as OscJsArgValue);
        break;
      case 'b':
        if (!(arg.value instanceof Uint8Array)) bad(`${where} must be a Uint8Array or Buffer`);
        message.add('b', arg.value as unknown as OscJsArgValue);
        break;
      case 'T':
      case 'F':
      case 'N':
        message.add(arg.type, null);
        break;
      default:
        bad(`${where}: unsupported type (s, i, f, d, h, b, T, F, N)`);
    }
    offset += argBytes(arg, wire);
  });
  const bytes = message.pack();
  for (const at of zeroAt) bytes.fill(0, at, at + 8);
  if (bytes.byteLength > MAX_DATAGRAM) bad(`${bytes.byteLength} bytes is more than one UDP datagram can carry (${MAX_DATAGRAM})`);
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Endpoint

/** What node:events stores; our emit, not EventEmitter's, calls it and handles a returned promise. */
type RawListener = (...args: unknown[]) => void;

/**
 * A typed emitter over node:events whose emit never throws: each listener runs in its own try/catch (and a returned
 * promise gets a rejection handler), so one bad handler neither crashes the process nor starves the next listener.
 */
class SafeEmitter<Events extends { [E in keyof Events]: unknown[] }> {
  readonly #ee = new EventEmitter();

  on<E extends keyof Events & string>(event: E, listener: OscListener<Events[E]>): void {
    this.#ee.on(event, listener as RawListener);
  }

  once<E extends keyof Events & string>(event: E, listener: OscListener<Events[E]>): void {
    this.#ee.once(event, listener as RawListener);
  }

  off<E extends keyof Events & string>(event: E, listener: OscListener<Events[E]>): void {
    this.#ee.off(event, listener as RawListener);
  }

  count(event: keyof Events & string): number {
    return this.#ee.listenerCount(event);
  }

  /** Call every listener; returns whether there was any. */
  emit<E extends keyof Events & string>(event: E, ...args: Events[E]): boolean {
    // rawListeners() so once() wrappers are consumed; the copy makes on/off inside a listener safe.
    const listeners = this.#ee.rawListeners(event) as OscListener<Events[E]>[];
    for (const listener of listeners) {
      try {
        const result = listener(...args);
        if (result instanceof Promise) result.catch((e: unknown) => listenerFailed(event, e));
      } catch (e) {
        listenerFailed(event, e);
      }
    }
    return listeners.length > 0;
  }
}

function listenerFailed(event: string, e: unknown): void {
  log.error(`an OSC '${event}' listener failed: ${e instanceof Error ? e.message : String(e)}`,
    { stack: e instanceof Error ? e.stack : undefined });
}

interface Scheduled {
  dueNs: bigint;
  seq: number;
  req: OscRequest;
  /** Its share of its datagram's bytes (counted against maxScheduledBytes). */
  bytes: number;
}

/**
 * A bound UDP socket speaking OSC. Bare messages are delivered as 'request' on arrival; bundled ones at their bundle's
 * time (at once, marked late, if it has passed). A datagram is accepted or refused as a whole ('invalid').
 */
export class OscEndpoint {
  /** The address actually bound (the real port when 0 was asked). */
  readonly address: { host: string; port: number };
  readonly #socket: dgram.Socket;
  readonly #events = new SafeEmitter<OscEndpointEvents>();
  readonly #maxScheduled: number;
  readonly #maxScheduledBytes: number;
  readonly #maxAheadNs: bigint;
  readonly #allow: AllowList;
  readonly #budgets: SenderBudgets;
  readonly #warnings = new RateLimitedLog();
  #scheduledBytes = 0;
  /** What was dropped or refused so far. */
  readonly counters: OscEndpointCounters = { notAllowed: 0, overBudget: 0, overBudgetMessages: 0, scheduleRefused: 0 };
  /** Waiting messages sorted by (dueNs, seq): seq keeps arrival order among equal times. */
  #queue: Scheduled[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(socket: dgram.Socket, host: string, options: OscEndpointOptions) {
    this.#socket = socket;
    this.address = { host, port: socket.address().port };
    this.#maxScheduled = options.maxScheduled ?? DEFAULT_MAX_SCHEDULED;
    this.#maxScheduledBytes = options.maxScheduledBytes ?? DEFAULT_MAX_SCHEDULED_BYTES;
    this.#allow = new AllowList(options.allow ?? LOOPBACK_ALLOW);
    this.#budgets = new SenderBudgets(options.budgets ?? DEFAULT_OSC_BUDGETS);
    this.#maxAheadNs = BigInt(Math.round(options.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS)) * NS_PER_MS;
    socket.on('message', (datagram, rinfo) => {
      try {
        this.#receive(datagram, { address: rinfo.address, port: rinfo.port });
      } catch (e) {
        // Only a bug of ours can land here; the socket keeps serving.
        log.error(`internal error handling a datagram from ${rinfo.address}:${rinfo.port}: ${e instanceof Error ? e.stack : String(e)}`);
      }
    });
    // UDP errors (e.g. ICMP unreachable reported on some platforms) concern one datagram: log, keep serving.
    socket.on('error', (e) => log.warn(`OSC socket error on ${this.address.host}:${this.address.port}: ${e.message}`));
  }

  /**
   * Bind a UDP socket (udp6 when `host` contains ':') and start receiving.
   *
   * @throws CuemuxError INVALID_ARGUMENT (bad port or host), RESOURCE_EXHAUSTED (port in use), PERMISSION_DENIED.
   */
  static async open(options: OscEndpointOptions): Promise<OscEndpoint> {
    const { host, port } = options;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new CuemuxError('INVALID_ARGUMENT', `OSC port must be an integer from 0 to 65535, got ${String(port)}`);
    }
    for (const [name, value] of [['maxScheduled', options.maxScheduled], ['maxScheduledBytes', options.maxScheduledBytes], ['maxAheadMs', options.maxAheadMs]] as const) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
        throw new CuemuxError('INVALID_ARGUMENT', `OSC ${name} must be a number >= 0, got ${String(value)}`);
      }
    }
    // Checked before binding: a bad allow-list or budget is a start-up error, not a crash on the first datagram.
    new AllowList(options.allow ?? LOOPBACK_ALLOW);
    new SenderBudgets(options.budgets ?? DEFAULT_OSC_BUDGETS);
    const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const failed = (e: NodeJS.ErrnoException): void => {
        socket.off('listening', listening);
        socket.close();
        const where = `cannot listen for OSC on ${host}:${port}: ${e.message}`;
        reject(e.code === 'EADDRINUSE' ? new CuemuxError('RESOURCE_EXHAUSTED', `${where} (another program uses this port)`, { cause: e })
          : e.code === 'EACCES' || e.code === 'EPERM' ? new CuemuxError('PERMISSION_DENIED', where, { cause: e })
            : new CuemuxError('INVALID_ARGUMENT', where, { cause: e }));
      };
      const listening = (): void => {
        socket.off('error', failed);
        resolve();
      };
      socket.once('error', failed);
      socket.once('listening', listening);
      socket.bind(port, host);
    });
    const endpoint = new OscEndpoint(socket, host, options);
    log.info('OSC listening', { host, port: endpoint.address.port });
    return endpoint;
  }

  /** Subscribe to an event. Listener exceptions and rejections are logged, never propagated. */
  on<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.on(event, listener);
    return this;
  }

  /** Subscribe for the next occurrence only. */
  once<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.once(event, listener);
    return this;
  }

  /** Unsubscribe a listener given to {@link on} or {@link once}. */
  off<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Messages waiting for their bundle time. */
  get scheduled(): number {
    return this.#queue.length;
  }

  /** Datagram bytes held by messages waiting for their bundle time. */
  get scheduledBytes(): number {
    return this.#scheduledBytes;
  }

  /** The allow-list in effect. */
  get allowList(): readonly string[] {
    return this.#allow.entries;
  }

  /**
   * Send one message to `to` (a reply, typically to `req.from` at {@link replyAddress}). Resolves once the datagram
   * is handed to the OS (UDP: delivery is not confirmed).
   *
   * @throws CuemuxError CLOSED after {@link close}; INVALID_ARGUMENT for a bad peer, address or argument.
   */
  async send(to: OscPeer, address: string, args: readonly OscSendArg[] = []): Promise<void> {
    if (this.#closed) throw new CuemuxError('CLOSED', `cannot send OSC ${address}: the endpoint is closed`);
    if (typeof to?.address !== 'string' || to.address === '' || !Number.isInteger(to.port) || to.port < 1 || to.port > 65_535) {
      throw new CuemuxError('INVALID_ARGUMENT', `cannot send OSC ${address}: bad destination ${JSON.stringify(to)}`);
    }
    const bytes = encodeMessage(address, args);
    await new Promise<void>((resolve, reject) => {
      this.#socket.send(bytes, to.port, to.address, (e) => {
        if (!e) return resolve();
        reject(this.#closed
          ? new CuemuxError('CLOSED', `cannot send OSC ${address}: the endpoint closed`, { cause: e })
          : new CuemuxError('INTERNAL', `cannot send OSC ${address} to ${to.address}:${to.port}: ${e.message}`, { cause: e }));
      });
    });
  }

  /**
   * Stop receiving, drop messages waiting for their bundle time and release the port. Idempotent: every call
   * returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#closed = true;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      if (this.#queue.length > 0) log.info(`OSC endpoint closing: ${this.#queue.length} scheduled messages dropped`);
      this.#queue = [];
      this.#scheduledBytes = 0;
      this.#socket.close(() => {
        log.info('OSC stopped', { port: this.address.port });
        resolve();
      });
    });
    return this.#closing;
  }

  /** The sender allowed and within its byte budget (checked before decoding: a flood costs no decoding). */
  #admit(datagram: Buffer, from: OscPeer): boolean {
    if (!this.#allow.allows(from.address)) {
      this.counters.notAllowed++;
      this.#warnings.log(`deny ${from.address}`, (suppressed) => log.warn(`OSC datagram from ${from.address}:${from.port} dropped: the sender is not in the OSC allow-list `
        + `(${this.#allow.entries.join(',')}); allow it with --osc-allow${suppressed > 0 ? ` (${suppressed} more from it dropped since the last warning)` : ''}`,
      { from: `${from.address}:${from.port}`, suppressed }));
      return false;
    }
    if (!this.#budgets.takeBytes(from.address, datagram.length)) {
      this.#overBudget(from, 'bytes', datagram.length, 0);
      return false;
    }
    return true;
  }

  #overBudget(from: OscPeer, what: 'bytes' | 'messages', bytes: number, messages: number): void {
    this.counters.overBudget++;
    this.counters.overBudgetMessages += messages;
    this.#warnings.log(`budget ${from.address}`, (suppressed) => log.warn(`OSC datagram from ${from.address}:${from.port} dropped: over the sender's `
      + `${what === 'bytes' ? 'bytes per second (--osc-rate-bytes)' : 'messages per second (--osc-rate-messages)'} budget`
      + `${suppressed > 0 ? ` (${suppressed} more over budget since the last warning)` : ''}`, { from: `${from.address}:${from.port}`, bytes, messages, suppressed }));
  }

  #receive(datagram: Buffer, from: OscPeer): void {
    if (this.#closed) return;
    if (!this.#admit(datagram, from)) return;
    const arrivedNs = unixNowNs();
    let messages: DecodedMessage[];
    try {
      messages = decodeDatagram(datagram);
    } catch (e) {
      const error = e as CuemuxError;
      const address = (error.details.address as string | null | undefined) ?? null;
      return this.#invalid(new CuemuxError('INVALID_ARGUMENT', `${error.message} (from ${from.address}:${from.port})`,
        { cause: error, details: { address } }), from, address);
    }
    if (!this.#budgets.takeMessages(from.address, messages.length)) {
      this.#overBudget(from, 'messages', datagram.length, messages.length);
      return;
    }
    const info: DatagramInfo = { messages: messages.length, replies: 0, capReported: false };
    // Deliver what fell due before this datagram first, so delivery order follows bundle time.
    this.#runDue();
    let future = 0;
    for (const m of messages) {
      if (m.timetagUnixNs === null || m.timetagUnixNs <= arrivedNs) continue;
      if (m.timetagUnixNs - arrivedNs > this.#maxAheadNs) {
        const aheadMs = Number((m.timetagUnixNs - arrivedNs) / NS_PER_MS);
        return this.#invalid(new CuemuxError('INVALID_ARGUMENT', `OSC bundle for ${m.address} is timed ${aheadMs} ms ahead, more than the `
          + `${Number(this.#maxAheadNs / NS_PER_MS)} ms accepted (from ${from.address}:${from.port}); check the sender's clock`,
        { details: { address: m.address, aheadMs } }), from, m.address);
      }
      future++;
    }
    const share = Math.ceil(datagram.length / messages.length);
    if (future > 0 && (this.#queue.length + future > this.#maxScheduled || this.#scheduledBytes + future * share > this.#maxScheduledBytes)) {
      const address = messages[0].address;
      this.counters.scheduleRefused++;
      const budget = this.#queue.length + future > this.#maxScheduled
        ? `${future} more messages would exceed the ${this.#maxScheduled} waiting for their time (budget --osc-max-scheduled)`
        : `${future * share} more bytes would exceed the ${this.#maxScheduledBytes} bytes of timed messages waiting (budget: timed bundle bytes)`;
      return this.#invalid(new CuemuxError('RESOURCE_EXHAUSTED', `OSC bundle refused: ${budget} (from ${from.address}:${from.port})`,
        { details: { address } }), from, address);
    }
    for (const m of messages) {
      const req: OscRequest = { address: m.address, args: m.args, types: m.types, from, timetagUnixNs: m.timetagUnixNs, late: false };
      datagrams.set(req, info);
      if (m.timetagUnixNs === null || m.timetagUnixNs <= arrivedNs) {
        req.late = m.timetagUnixNs !== null && m.timetagUnixNs < arrivedNs;
        this.#events.emit('request', req);
        if (this.#closed) return; // a listener closed us
      } else {
        this.#scheduledBytes += share;
        this.#schedule({ dueNs: m.timetagUnixNs, seq: this.#seq++, req, bytes: share });
      }
    }
    this.#arm();
  }

  #invalid(error: CuemuxError, from: OscPeer, address: string | null): void {
    if (!this.#events.emit('invalid', error, from, address)) log.warn(error.message);
    else log.debug(error.message);
  }

  #schedule(item: Scheduled): void {
    // Binary search for the first entry due later: equal times keep arrival order.
    let lo = 0;
    let hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#queue[mid].dueNs <= item.dueNs) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, item);
  }

  /** Deliver every message whose time has come. */
  #runDue(): void {
    if (this.#queue.length === 0) return;
    const now = unixNowNs();
    let n = 0;
    while (n < this.#queue.length && this.#queue[n].dueNs <= now) n++;
    if (n === 0) return;
    const due = this.#queue.splice(0, n);
    for (const item of due) this.#scheduledBytes -= item.bytes;
    for (const item of due) {
      if (this.#closed) return;
      this.#events.emit('request', item.req);
    }
  }

  /** (Re)arm the one timer for the earliest waiting message. */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closed || this.#queue.length === 0) return;
    const remainingNs = this.#queue[0].dueNs - unixNowNs();
    // setTimeout has ms granularity and may wake early: on waking, anything not yet due waits for the remainder.
    // Waking at least once a second follows a step of the wall clock (NTP correction) within a second, as timers
    // themselves run on the monotonic clock.
    const delayMs = remainingNs <= 0n ? 0 : Math.min(1000, Math.ceil(Number(remainingNs) / 1e6));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#runDue();
      this.#arm();
    }, delayMs);
    // The bound socket keeps the process alive while the endpoint is open; the timer alone must not.
    this.#timer.unref();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Argument helpers for the router

/** Options of the argument helpers. */
export interface ArgOptions {
  /** A missing argument (or nil, `N`) gives undefined instead of an error. */
  optional?: boolean;
}

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
