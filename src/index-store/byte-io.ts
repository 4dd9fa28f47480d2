/**
 * Little-endian byte writing/reading and the varints used by the `.idx` entry blocks.
 * Integers are JavaScript numbers: every value stored is an exact integer with |v| <= 2^53 (checked by the writer).
 */

const TWO32 = 4294967296;

/** A growable little-endian byte buffer. */
export class ByteWriter {
  #buf: Buffer;
  #len = 0;

  constructor(initial = 1 << 16) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** Append one byte. */
  u8(v: number): void {
    this.#room(1);
    this.#buf[this.#len++] = v;
  }

  /** Append an unsigned 16-bit integer. */
  u16(v: number): void {
    this.#room(2);
    this.#len = this.#buf.writeUInt16LE(v, this.#len);
  }

  /** Append an unsigned 32-bit integer. */
  u32(v: number): void {
    this.#room(4);
    this.#len = this.#buf.writeUInt32LE(v >>> 0, this.#len);
  }

  /** Append a signed 32-bit integer. */
  i32(v: number): void {
    this.#room(4);
    this.#len = this.#buf.writeInt32LE(v, this.#len);
  }

  /** Append a signed 64-bit integer (FFmpeg's AV_NOPTS_VALUE, -2^63, round-trips exactly). */
  i64(v: number): void {
    this.#room(8);
    this.#len = this.#buf.writeBigInt64LE(BigInt(v), this.#len);
  }

  /** Append a signed 64-bit integer given as a bigint. */
  i64n(v: bigint): void {
    this.#room(8);
    this.#len = this.#buf.writeBigInt64LE(v, this.#len);
  }

  /** Append raw bytes. */
  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** Append a string as u32 byte length + UTF-8. */
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.length);
    this.bytes(b);
  }

  /** Append zero bytes until the length is a multiple of `n`. */
  align(n: number): void {
    while (this.#len % n !== 0) this.u8(0);
  }

  /** Append an unsigned LEB128 varint (0 <= v < 2^53). */
  uvar(v: number): void {
    this.#room(8);
    let x = v;
    while (x >= 128) {
      this.#buf[this.#len++] = (x % 128) | 128;
      x = Math.floor(x / 128);
    }
    this.#buf[this.#len++] = x;
  }

  /** Append a zigzag-encoded signed varint (|v| < 2^52). */
  svar(v: number): void {
    this.uvar(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  /** Overwrite a u32 at `at` (for offsets known only later). */
  patchU32(at: number, v: number): void {
    this.#buf.writeUInt32LE(v >>> 0, at);
  }

  /** Overwrite a u64 at `at`. */
  patchU64(at: number, v: number): void {
    this.#buf.writeBigUInt64LE(BigInt(v), at);
  }

  /** A view of the bytes written (valid until the next write). */
  view(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

/** Sequential little-endian reader over a Buffer; throws RangeError past the end. */
export class ByteReader {
  pos: number;
  readonly #buf: Buffer;
  readonly #end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.#buf = buf;
    this.pos = start;
    this.#end = end;
  }

  #need(n: number): void {
    if (this.pos + n > this.#end) throw new RangeError(`read past end at ${this.pos} (+${n}, end ${this.#end})`);
  }

  /** Read one byte. */
  u8(): number {
    this.#need(1);
    return this.#buf[this.pos++];
  }

  /** Read an unsigned 32-bit integer. */
  u32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Read a signed 32-bit integer. */
  i32(): number {
    this.#need(4);
    const v = this.#buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Read a signed 64-bit integer as a number (exact for |v| <= 2^53 and for -2^63). */
  i64(): number {
    this.#need(8);
    const v = Number(this.#buf.readBigInt64LE(this.pos));
    this.pos += 8;
    return v;
  }

  /** Read a signed 64-bit integer as a bigint. */
  i64n(): bigint {
    this.#need(8);
    const v = this.#buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Read `n` raw bytes (a view). */
  bytes(n: number): Buffer {
    this.#need(n);
    const b = this.#buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Read a u32-length-prefixed UTF-8 string. */
  str(): string {
    return this.bytes(this.u32()).toString('utf8');
  }
}

/** Read int64 element `i` of an array stored as little-endian int32 pairs (exact for |v| <= 2^53). */
export function i64At(words: Int32Array, i: number): number {
  return words[2 * i + 1] * TWO32 + (words[2 * i] >>> 0);
}
