/**
 * The OSC 1.0 codec: datagram bytes ⇄ messages, bundles (nested) and NTP timetags, with no I/O and no clock. Every
 * type tag of OSC 1.0 and its common extensions is read and written here (s S i f d h t r c m b T F N I); arrays are
 * refused. Decoding is strict: whatever is malformed anywhere in a datagram refuses all of it, with a message saying
 * what is wrong, so the endpoint (src/server/osc-endpoint.ts) never acts on half a bundle.
 *
 * Why our own codec and not osc-js 2.4.1 used properly: measured with scripts/bench-osc-codec.ts (`node
 * dist/scripts/bench-osc-codec.js`; Node 20, the shared 2-vCPU box at load 11-14, best of 3 × 50,000 calls, so the
 * absolute µs are inflated and the ratios are what counts), osc-js called as its API intends (Packet#unpack,
 * TypedMessage#pack), without the sentinel tail, Latin-1 re-encoding, int64 patch and type-letter swaps the endpoint
 * needed while osc-js did the work:
 * - Correctness against the OSC 1.0 bytes, 10 cases: own 10/10, osc-js 2/10. osc-js throws on an int64 of 0 (it
 *   tests the value for truthiness); writes "☃" as one byte 0x03 (charCodeAt & 0xff); knows neither `c` nor `m` (nor
 *   `S`, `r`); reads a bundle 0.25 s past a second as the whole second (Timetag#timestamp rounds the fraction away);
 *   reads a nested bundle to the end of the datagram, swallowing the elements after it; reads a blob of a Buffer
 *   slice from the wrong bytes (it ignores byteOffset); and takes an unterminated string as complete. It gets plain
 *   blobs and a truncated int64 right.
 * - Cost, µs per call, own vs osc-js: decode a GO (`/cuemux/cue/go ,s "A17"`) 2.4 vs 74 (31×); a 40-byte blob +
 *   int32 + int64 3.9 vs 86 (22×); a bundle of 2 nested bundles × 4 messages 16 vs 737 (45×); encode a GO 4.2 vs
 *   33 (8×); a 200-byte JSON reply 7.9 vs 36 (5×).
 * - test/osc-codec.test.ts checks this codec against osc-js on 2,000 random messages and 300 nested bundles (same
 *   bytes where osc-js is right, each reading the other's output), plus 2,000 round trips over every type; osc-js
 *   stays as that reference, in the tests only: no module under src/ imports it any more.
 * So: a complete own codec (~400 lines including the strict checks the endpoint needs anyway, which osc-js lacks).
 */
import { CuemuxError } from '../common/errors';

/**
 * One decoded OSC argument. The OSC type letter is kept beside it (see {@link DecodedMessage.types}):
 * `i` int32, `f` float32, `d` double, `r` RGBA colour (uint32) → number; `I` infinitum → `Infinity`;
 * `h` int64 and `t` timetag (the raw 64-bit NTP value) → bigint; `s` string, `S` symbol, `c` char → string;
 * `T`/`F` → boolean; `N` → null; `b` blob and `m` 4-byte MIDI message → Buffer (a copy, never a view of the datagram).
 */
export type OscValue = number | string | boolean | null | Buffer | bigint;

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

/** One argument for {@link encodeMessage}; the type is written exactly as given (never guessed from the value). */
export type OscSendArg =
  | { type: 's' | 'S'; value: string }
  | { type: 'c'; value: string }
  | { type: 'i' | 'f' | 'd' | 'r'; value: number }
  | { type: 'h' | 't'; value: bigint }
  | { type: 'b' | 'm'; value: Uint8Array }
  | { type: 'T' | 'F' | 'N' | 'I'; value?: null };

/** An NTP timestamp as OSC carries it: seconds since 1900 (mod 2^32) and a binary fraction of a second. */
export interface NtpTime {
  /** Seconds since 1900-01-01, modulo 2^32 (the 2036 rollover wraps to 0). */
  seconds: number;
  /** Fraction of a second in units of 2^-32 s. */
  fraction: number;
}

/** Largest UDP payload over IPv4; a bigger message cannot be sent as one datagram. */
export const MAX_DATAGRAM = 65_507;
/** Nested bundles deeper than this are refused (bounds recursion on hostile input; real senders nest 1-2 levels). */
export const MAX_BUNDLE_DEPTH = 16;

const NTP_UNIX_OFFSET_S = 2_208_988_800n;
const NS_PER_S = 1_000_000_000n;
const BUNDLE_HEAD = Buffer.from('#bundle\0', 'latin1');
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
/** Every type tag this codec reads and writes. */
const KNOWN_TYPES = new Set(['i', 'f', 'd', 'h', 't', 's', 'S', 'c', 'r', 'm', 'b', 'T', 'F', 'N', 'I']);

// ---------------------------------------------------------------------------------------------------------------
// Timetags

/**
 * NTP timetag → ns since the Unix epoch, rounded to the nearest ns (no floating point: a double cannot hold 2^-32 s
 * steps of a date). NTP seconds wrap in February 2036; as RFC 4330 §3 suggests, a value with the top bit clear is
 * read as era 1 (2036-2104). Small bogus values therefore land far in the future (the endpoint refuses them as too
 * far ahead) rather than in 1900.
 */
export function ntpToUnixNs(seconds: number, fraction: number): bigint {
  const era = seconds >= 0x8000_0000 ? 0n : 1n;
  const ntpSeconds = BigInt(seconds) + (era << 32n);
  return (ntpSeconds - NTP_UNIX_OFFSET_S) * NS_PER_S + ((BigInt(fraction) * NS_PER_S + (1n << 31n)) >> 32n);
}

/**
 * ns since the Unix epoch → NTP timetag, the fraction truncated: {@link ntpToUnixNs} reads it back to the same ns
 * (a fraction step is 0.23 ns). Valid from 1968-01-20 (era 0 with the top bit set) to 2104 (era 1).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') for a time outside that range.
 */
export function unixNsToNtp(unixNs: bigint): NtpTime {
  const ntpNs = unixNs + NTP_UNIX_OFFSET_S * NS_PER_S;
  const seconds = ntpNs / NS_PER_S;
  if (ntpNs < 0n || seconds < 0x8000_0000n || seconds >= 0x1_8000_0000n) {
    throw new CuemuxError('INVALID_ARGUMENT', `an OSC timetag cannot carry the Unix time ${unixNs} ns (1968 to 2104 only)`);
  }
  return { seconds: Number(seconds & 0xffff_ffffn), fraction: Number(((ntpNs % NS_PER_S) << 32n) / NS_PER_S) };
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/** A malformed datagram; `address` is the OSC address concerned when it could be read. */
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

/** `s` JSON-quoted and cut to ~40 characters, to name a hostile string in an error without flooding the log. */
export const quote = (s: string): string => {
  const json = JSON.stringify(s);
  return json.length > 42 ? `${json.slice(0, 40)}…"` : json;
};

/**
 * The arguments of the message occupying `buf[start, end)`, the first at `at`. A read past `end` is reported as
 * truncated (not as a crash or as bytes of the next element), and the arguments must end exactly at `end`.
 */
function readArgs(buf: Buffer, start: number, end: number, at: number, types: string, address: string): OscValue[] {
  const args: OscValue[] = [];
  const truncated = (): never => {
    throw new DecodeError(`truncated: the arguments for ',${types}' run past the end of the ${end - start}-byte message`, address);
  };
  let p = at;
  for (let k = 0; k < types.length; k++) {
    const letter = types[k];
    switch (letter) {
      case 's': case 'S': {
        const nul = buf.indexOf(0, p);
        if (nul < 0 || nul >= end) truncated();
        args.push(buf.toString('utf8', p, nul));
        p = (nul + 4) & ~3;
        break;
      }
      case 'i': case 'f': case 'c': case 'r': case 'm': {
        if (p + 4 > end) truncated();
        if (letter === 'i') args.push(buf.readInt32BE(p));
        else if (letter === 'f') args.push(buf.readFloatBE(p));
        else if (letter === 'r') args.push(buf.readUInt32BE(p));
        else if (letter === 'm') args.push(Buffer.from(buf.subarray(p, p + 4)));
        else {
          const code = buf.readInt32BE(p);
          if (code < 0 || code > 0x10ffff) throw new DecodeError(`argument ${k + 1} is not a valid char (${code})`, address);
          args.push(String.fromCodePoint(code));
        }
        p += 4;
        break;
      }
      case 'd': case 'h': case 't':
        if (p + 8 > end) truncated();
        args.push(letter === 'd' ? buf.readDoubleBE(p) : letter === 'h' ? buf.readBigInt64BE(p) : buf.readBigUInt64BE(p));
        p += 8;
        break;
      case 'b': {
        if (p + 4 > end) truncated();
        const size = buf.readInt32BE(p);
        if (size < 0) throw new DecodeError(`malformed arguments for ',${types}' (blob ${k + 1} has a negative size, ${size})`, address);
        if (p + 4 + ((size + 3) & ~3) > end) truncated();
        args.push(Buffer.from(buf.subarray(p + 4, p + 4 + size))); // a copy: the datagram's memory is reused
        p += 4 + ((size + 3) & ~3);
        break;
      }
      case 'T': args.push(true); break;
      case 'F': args.push(false); break;
      case 'N': args.push(null); break;
      default: args.push(Infinity); // 'I' (types were checked before)
    }
  }
  if (p < end) throw new DecodeError(`${end - p} unexpected bytes after the arguments for ',${types}'`, address);
  return args;
}

function decodeMessage(buf: Buffer, start: number, end: number, timetagUnixNs: bigint | null): DecodedMessage {
  const head = readOscString(buf, start, end);
  if (head === null) throw new DecodeError('the address string is not NUL-terminated', null);
  if (!head.text.startsWith('/')) throw new DecodeError(`the address ${quote(head.text)} does not start with '/'`, null);
  const address = head.text;
  const typeTag = head.next < end ? readOscString(buf, head.next, end) : null;
  if (typeTag === null) throw new DecodeError('missing or unterminated type tag string', address);
  if (!typeTag.text.startsWith(',')) throw new DecodeError(`type tag string ${quote(typeTag.text)} does not start with ','`, address);
  const types = typeTag.text.slice(1);
  for (const letter of types) {
    if (KNOWN_TYPES.has(letter)) continue;
    const what = letter === '[' || letter === ']' ? 'arrays ([...]) are not supported' : 'unknown type';
    throw new DecodeError(`type tag ${quote(letter)} in ',${types}': ${what}`, address);
  }
  return { address, args: readArgs(buf, start, end, typeTag.next, types, address), types, timetagUnixNs };
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
    const message = e.address === null ? `malformed OSC datagram: ${e.message}` : `malformed OSC message ${e.address}: ${e.message}`;
    throw new CuemuxError('INVALID_ARGUMENT', message, { details: { address: e.address } });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Bytes an OSC string of `utf8Length` bytes takes: the bytes, a NUL, padded to a multiple of 4. */
const stringBytes = (utf8Length: number): number => (utf8Length + 4) & ~3;

/**
 * Encode one OSC message, every argument with exactly the type given. Strings are UTF-8 (what peers and
 * {@link decodeDatagram} read).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') for an address that is not '/'-prefixed printable ASCII without '#' or ','
 * (or ends with '/'), a number out of its type's range, a string with a NUL, a char that is not one code point, a
 * MIDI message that is not 4 bytes, an unknown type, a value of the wrong kind, or a message over 65,507 bytes.
 */
export function encodeMessage(address: string, args: readonly OscSendArg[]): Uint8Array {
  const bad = (why: string): never => {
    throw new CuemuxError('INVALID_ARGUMENT', `cannot send OSC ${JSON.stringify(address)}: ${why}`);
  };
  if (typeof address !== 'string' || !/^\/[\x21-\x7e]*$/.test(address) || address.includes('#') || address.includes(',')) {
    bad("an OSC address is printable ASCII starting with '/', without spaces, '#' or ','");
  }
  // A trailing '/' names no method (and other implementations drop it): refused rather than sent ambiguous.
  if (address.length > 1 && address.endsWith('/')) bad("the address must not end with '/'");
  // First pass: check each value and size it (strings measured once, as UTF-8).
  const utf8: Array<Buffer | null> = [];
  let types = ',';
  let size = stringBytes(address.length);
  args.forEach((arg, k) => {
    const where = `argument ${k + 1} (${String((arg as { type?: unknown }).type)})`;
    let text: Buffer | null = null;
    switch (arg.type) {
      case 's': case 'S':
        if (typeof arg.value !== 'string') bad(`${where} must be a string`);
        if (arg.value.includes('\0')) bad(`${where} contains a NUL character`);
        text = Buffer.from(arg.value, 'utf8');
        size += stringBytes(text.length);
        break;
      case 'c':
        if (typeof arg.value !== 'string' || arg.value.length === 0 || String.fromCodePoint(arg.value.codePointAt(0) ?? 0) !== arg.value) {
          bad(`${where} must be a string of exactly one character`);
        }
        size += 4;
        break;
      case 'i':
        if (!Number.isInteger(arg.value) || arg.value < INT32_MIN || arg.value > INT32_MAX) {
          bad(`${where} must be an integer in the int32 range, got ${String(arg.value)}`);
        }
        size += 4;
        break;
      case 'r':
        if (!Number.isInteger(arg.value) || arg.value < 0 || arg.value > 0xffff_ffff) bad(`${where} must be an integer 0..0xffffffff`);
        size += 4;
        break;
      case 'f': case 'd':
        if (typeof arg.value !== 'number') bad(`${where} must be a number`);
        size += arg.type === 'f' ? 4 : 8;
        break;
      case 'h':
        if (typeof arg.value !== 'bigint' || arg.value < INT64_MIN || arg.value > INT64_MAX) bad(`${where} must be a bigint in the int64 range`);
        size += 8;
        break;
      case 't':
        if (typeof arg.value !== 'bigint' || arg.value < 0n || arg.value > UINT64_MAX) bad(`${where} must be a bigint in the uint64 range`);
        size += 8;
        break;
      case 'b':
        if (!(arg.value instanceof Uint8Array)) bad(`${where} must be a Uint8Array or Buffer`);
        size += 4 + ((arg.value.byteLength + 3) & ~3);
        break;
      case 'm':
        if (!(arg.value instanceof Uint8Array) || arg.value.byteLength !== 4) bad(`${where} must be 4 bytes (port, status, data1, data2)`);
        size += 4;
        break;
      case 'T': case 'F': case 'N': case 'I':
        break;
      default:
        bad(`${where}: unsupported type (s, S, c, i, r, f, d, h, t, b, m, T, F, N, I)`);
    }
    types += arg.type;
    utf8.push(text);
  });
  size += stringBytes(types.length);
  if (size > MAX_DATAGRAM) bad(`${size} bytes is more than one UDP datagram can carry (${MAX_DATAGRAM})`);
  // Second pass: write into zeroed memory, so string and blob padding is already NUL.
  const out = Buffer.alloc(size);
  let p = out.write(address, 0, 'latin1');
  p = (p + 4) & ~3;
  p = (p + out.write(types, p, 'latin1') + 4) & ~3;
  args.forEach((arg, k) => {
    switch (arg.type) {
      case 's': case 'S': p = (p + (utf8[k] as Buffer).copy(out, p) + 4) & ~3; break;
      case 'c': p = out.writeInt32BE(arg.value.codePointAt(0) ?? 0, p); break;
      case 'i': p = out.writeInt32BE(arg.value, p); break;
      case 'r': p = out.writeUInt32BE(arg.value, p); break;
      case 'f': p = out.writeFloatBE(arg.value, p); break;
      case 'd': p = out.writeDoubleBE(arg.value, p); break;
      case 'h': p = out.writeBigInt64BE(arg.value, p); break;
      case 't': p = out.writeBigUInt64BE(arg.value, p); break;
      case 'b':
        p = out.writeInt32BE(arg.value.byteLength, p);
        out.set(arg.value, p);
        p += (arg.value.byteLength + 3) & ~3;
        break;
      case 'm': out.set(arg.value, p); p += 4; break;
      default: break; // T F N I: no bytes
    }
  });
  return out;
}

/**
 * Encode a bundle of already encoded elements (messages or bundles) for Unix time `unixNs`, or "immediately" (null).
 *
 * @throws CuemuxError('INVALID_ARGUMENT') for an element whose length is not a positive multiple of 4, a time outside
 * what NTP can carry, or a bundle over 65,507 bytes.
 */
export function encodeBundle(unixNs: bigint | null, elements: readonly Uint8Array[]): Uint8Array {
  const time = unixNs === null ? { seconds: 0, fraction: 1 } : unixNsToNtp(unixNs);
  let size = 16;
  for (const [k, e] of elements.entries()) {
    if (e.byteLength === 0 || e.byteLength % 4 !== 0) {
      throw new CuemuxError('INVALID_ARGUMENT', `cannot send an OSC bundle: element ${k + 1} is ${e.byteLength} bytes, not a positive multiple of 4`);
    }
    size += 4 + e.byteLength;
  }
  if (size > MAX_DATAGRAM) {
    throw new CuemuxError('INVALID_ARGUMENT', `cannot send an OSC bundle: ${size} bytes is more than one UDP datagram can carry (${MAX_DATAGRAM})`);
  }
  const out = Buffer.alloc(size);
  BUNDLE_HEAD.copy(out, 0);
  out.writeUInt32BE(time.seconds, 8);
  out.writeUInt32BE(time.fraction, 12);
  let p = 16;
  for (const e of elements) {
    p = out.writeInt32BE(e.byteLength, p);
    out.set(e, p);
    p += e.byteLength;
  }
  return out;
}
