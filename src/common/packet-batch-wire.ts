/**
 * PacketBatch on the wire, written and read by hand: the hot path of the server. ts-proto's encode plus grpc-js's
 * framing copy each payload about four times (FIELD-NOTES); here a batch is one allocation with one copy of each
 * payload, and the client reads payloads as views of the received message, with no copy at all.
 * The server goes further: {@link layoutFramedBatch} writes a batch's fields straight from the index into a reusable
 * buffer, leaving a hole for each payload, so the payloads can be read from the file into their final place (no copy
 * in JavaScript at all); such a batch travels as a {@link framedPacketBatch}.
 * Wire format (proto/cuemux/v1/media_server.proto): PacketBatch { repeated Packet packets = 1; }
 * Packet { int32 stream_index = 1; optional int64 pts = 2; optional int64 dts = 3; int64 duration = 4;
 *          optional int64 pos = 5; bool key = 6; bytes data = 7; uint32 flags = 8; }
 */
import type { Packet, PacketBatch } from '../generated/cuemux/v1/media_server';

function uvarSize(v: number): number {
  let n = 1;
  let x = v;
  while (x >= 128) {
    x = Math.floor(x / 128);
    n++;
  }
  return n;
}

/** Bytes of an int64 varint (negative values take 10 bytes: 64-bit two's complement). */
function i64Size(v: bigint): number {
  return v < 0n ? 10 : uvarSize(Number(v));
}

function writeUvar(buf: Buffer, at: number, v: number): number {
  let x = v;
  let p = at;
  while (x >= 128) {
    buf[p++] = (x % 128) | 128;
    x = Math.floor(x / 128);
  }
  buf[p++] = x;
  return p;
}

function writeI64(buf: Buffer, at: number, v: bigint): number {
  if (v >= 0n) return writeUvar(buf, at, Number(v));
  let x = BigInt.asUintN(64, v);
  let p = at;
  while (x >= 128n) {
    buf[p++] = Number(x & 127n) | 128;
    x >>= 7n;
  }
  buf[p++] = Number(x);
  return p;
}

function bodySize(p: Packet): number {
  let n = 0;
  if (p.streamIndex !== 0) n += 1 + (p.streamIndex < 0 ? 10 : uvarSize(p.streamIndex));
  if (p.pts !== undefined) n += 1 + i64Size(p.pts);
  if (p.dts !== undefined) n += 1 + i64Size(p.dts);
  if (p.duration !== 0n) n += 1 + i64Size(p.duration);
  if (p.pos !== undefined) n += 1 + i64Size(p.pos);
  if (p.key) n += 2;
  if (p.data.length > 0) n += 1 + uvarSize(p.data.length) + p.data.length;
  if (p.flags !== 0) n += 1 + uvarSize(p.flags);
  return n;
}

/** Serialize a PacketBatch (grpc-js responseSerialize for ReadPackets). */
export function encodePacketBatch(batch: PacketBatch): Buffer {
  const framed = framedBytes(batch);
  if (framed !== null) return framed.subarray(GRPC_PREFIX);
  const sizes = batch.packets.map(bodySize);
  let total = 0;
  for (const s of sizes) total += 1 + uvarSize(s) + s;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  batch.packets.forEach((p, i) => {
    buf[at++] = 0x0a;
    at = writeUvar(buf, at, sizes[i]);
    if (p.streamIndex !== 0) { buf[at++] = 0x08; at = writeI64(buf, at, BigInt(p.streamIndex)); } // int32: negative = 10 bytes
    if (p.pts !== undefined) { buf[at++] = 0x10; at = writeI64(buf, at, p.pts); }
    if (p.dts !== undefined) { buf[at++] = 0x18; at = writeI64(buf, at, p.dts); }
    if (p.duration !== 0n) { buf[at++] = 0x20; at = writeI64(buf, at, p.duration); }
    if (p.pos !== undefined) { buf[at++] = 0x28; at = writeI64(buf, at, p.pos); }
    if (p.key) { buf[at++] = 0x30; buf[at++] = 1; }
    if (p.data.length > 0) {
      buf[at++] = 0x3a;
      at = writeUvar(buf, at, p.data.length);
      p.data.copy(buf, at);
      at += p.data.length;
    }
    if (p.flags !== 0) { buf[at++] = 0x40; at = writeUvar(buf, at, p.flags); }
  });
  return buf;
}

class Cursor {
  constructor(readonly buf: Buffer, public at: number, readonly end: number) {}

  uvar(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.at >= this.end) throw new RangeError('truncated varint in PacketBatch');
      const c = this.buf[this.at++];
      v += (c & 127) * mul;
      if (c < 128) return v;
      mul *= 128;
    }
  }

  i64(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (this.at >= this.end) throw new RangeError('truncated varint in PacketBatch');
      const c = this.buf[this.at++];
      v |= BigInt(c & 127) << shift;
      if (c < 128) return BigInt.asIntN(64, v);
      shift += 7n;
    }
  }

  skip(wire: number): void {
    if (wire === 0) this.uvar();
    else if (wire === 1) this.at += 8;
    else if (wire === 2) this.at += this.uvar();
    else if (wire === 5) this.at += 4;
    else throw new RangeError(`unsupported wire type ${wire} in PacketBatch`);
    if (this.at > this.end) throw new RangeError('field runs past the end of its message');
  }
}

/** Parse a PacketBatch (grpc-js responseDeserialize for ReadPackets); payloads are views of `buf`. */
export function decodePacketBatch(buf: Buffer): PacketBatch {
  const packets: Packet[] = [];
  const r = new Cursor(buf, 0, buf.length);
  while (r.at < r.end) {
    const tag = r.uvar();
    if (tag !== 0x0a) {
      r.skip(tag & 7);
      continue;
    }
    const len = r.uvar();
    const end = r.at + len;
    if (end > r.end) throw new RangeError('packet runs past the end of the batch');
    const m = new Cursor(buf, r.at, end);
    const p: Packet = { streamIndex: 0, pts: undefined, dts: undefined, duration: 0n, pos: undefined, key: false, data: Buffer.alloc(0), flags: 0, entry: 0n };
    while (m.at < end) {
      const t = m.uvar();
      switch (t) {
        case 0x08: p.streamIndex = Number(BigInt.asIntN(32, m.i64())); break;
        case 0x10: p.pts = m.i64(); break;
        case 0x18: p.dts = m.i64(); break;
        case 0x20: p.duration = m.i64(); break;
        case 0x28: p.pos = m.i64(); break;
        case 0x30: p.key = m.uvar() !== 0; break;
        case 0x3a: {
          const n = m.uvar();
          if (m.at + n > end) throw new RangeError('packet data runs past its message');
          p.data = buf.subarray(m.at, m.at + n);
          m.at += n;
          break;
        }
        case 0x40: p.flags = m.uvar() >>> 0; break;
        case 0x48: p.entry = BigInt.asUintN(64, m.i64()); break;
        default: m.skip(t & 7);
      }
    }
    packets.push(p);
    r.at = end;
  }
  return { packets };
}

/** gRPC's length prefix in front of every message: a compression flag byte and a 4-byte big-endian length. */
export const GRPC_PREFIX = 5;

/** The fields of one packet that {@link layoutFramedBatch} encodes (an index entry has them all). */
export interface WirePacketFields {
  /** Stream index. */
  stream: number;
  /** Presentation timestamp in ticks, null where FFmpeg has none (absent on the wire). */
  pts: number | null;
  /** Decoding timestamp in ticks, null where FFmpeg has none (absent on the wire). */
  dts: number | null;
  /** Duration in ticks, null where FFmpeg has none (FFmpeg's 0). */
  duration: number | null;
  /** Byte offset of the packet in the file, null where FFmpeg has none (absent on the wire). */
  pos: number | null;
  /** Payload size in bytes. */
  size: number;
  /** Keyframe. */
  key: boolean;
  /** Flagged corrupt by the demuxer (flags bit 1). */
  corrupt: boolean;
  /** Flagged for discard after decoding, e.g. priming samples (flags bit 2). */
  discard: boolean;
}

/** Bytes of a (JavaScript number) int64 varint. */
function n64Size(v: number): number {
  return v < 0 ? 10 : uvarSize(v);
}

function writeN64(buf: Buffer, at: number, v: number): number {
  return v < 0 ? writeI64(buf, at, BigInt(v)) : writeUvar(buf, at, v);
}

function flagsOf(e: WirePacketFields): number {
  return (e.key ? 1 : 0) | (e.corrupt ? 2 : 0) | (e.discard ? 4 : 0);
}

/** Bytes of a Packet's body except the payload (the data field's tag and length included). */
function fieldsSize(e: WirePacketFields): number {
  let n = 0;
  if (e.stream !== 0) n += 1 + n64Size(e.stream);
  if (e.pts !== null) n += 1 + n64Size(e.pts);
  if (e.dts !== null) n += 1 + n64Size(e.dts);
  if (e.duration !== null && e.duration !== 0) n += 1 + n64Size(e.duration);
  if (e.pos !== null) n += 1 + n64Size(e.pos);
  if (e.key) n += 2;
  if (e.size > 0) n += 1 + uvarSize(e.size);
  const flags = flagsOf(e);
  if (flags !== 0) n += 1 + uvarSize(flags);
  return n;
}

/** Bytes of the framed message (gRPC prefix included) that {@link layoutFramedBatch} writes for `entries`. */
export function framedBatchSize(entries: readonly WirePacketFields[]): number {
  let total = GRPC_PREFIX;
  for (const e of entries) {
    const body = fieldsSize(e) + e.size;
    total += 1 + uvarSize(body) + body;
  }
  return total;
}

/**
 * Write the gRPC prefix and every field of the PacketBatch for `entries` into `buf` (at least
 * {@link framedBatchSize} bytes), leaving each payload's bytes unwritten: the caller fills `buf[at[i], at[i] +
 * entries[i].size)`. Returns those offsets. The bytes are exactly what {@link encodePacketBatch} writes, prefixed.
 */
export function layoutFramedBatch(buf: Buffer, entries: readonly WirePacketFields[]): number[] {
  const at: number[] = new Array<number>(entries.length);
  let p = GRPC_PREFIX;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const fields = fieldsSize(e);
    buf[p++] = 0x0a;
    p = writeUvar(buf, p, fields + e.size);
    if (e.stream !== 0) { buf[p++] = 0x08; p = writeN64(buf, p, e.stream); }
    if (e.pts !== null) { buf[p++] = 0x10; p = writeN64(buf, p, e.pts); }
    if (e.dts !== null) { buf[p++] = 0x18; p = writeN64(buf, p, e.dts); }
    if (e.duration !== null && e.duration !== 0) { buf[p++] = 0x20; p = writeN64(buf, p, e.duration); }
    if (e.pos !== null) { buf[p++] = 0x28; p = writeN64(buf, p, e.pos); }
    if (e.key) { buf[p++] = 0x30; buf[p++] = 1; }
    if (e.size > 0) {
      buf[p++] = 0x3a;
      p = writeUvar(buf, p, e.size);
    }
    at[i] = p;
    p += e.size;
    const flags = flagsOf(e);
    if (flags !== 0) { buf[p++] = 0x40; p = writeUvar(buf, p, flags); }
  }
  buf[0] = 0;
  buf.writeUInt32BE(p - GRPC_PREFIX, 1);
  return at;
}

const FRAMED = Symbol('cuemux.framedPacketBatch');

/**
 * A PacketBatch already encoded by {@link layoutFramedBatch}: `frame` holds the gRPC prefix and the message. It is
 * sent as is (media-server installs a grpc-js hook that skips grpc-js's own copy), or, without that hook, through
 * {@link encodePacketBatch}. `packets` decodes the bytes on demand (views of `frame`), for anything that looks.
 */
export function framedPacketBatch(frame: Buffer): PacketBatch {
  let packets: PacketBatch['packets'] | null = null;
  return {
    [FRAMED]: frame,
    get packets() {
      packets ??= decodePacketBatch(frame.subarray(GRPC_PREFIX)).packets;
      return packets;
    },
  } as PacketBatch;
}

/** The framed bytes (prefix included) of a batch made by {@link framedPacketBatch}, or null for any other. */
export function framedBytes(batch: unknown): Buffer | null {
  return typeof batch === 'object' && batch !== null && FRAMED in batch ? (batch as { [FRAMED]: Buffer })[FRAMED] : null;
}
