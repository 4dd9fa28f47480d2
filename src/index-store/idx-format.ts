/**
 * The `.idx` file format, version 2: its constants and types, and the decoder (the encoder is idx-encoder.ts). The normative description is docs/idx-format.md; this
 * file and that one change together.
 *
 * Layout (little-endian, sections 8-byte aligned so tables can be viewed in place without copying):
 *   fixed header (96 bytes) | meta (identity, strings, stream table) | block table (u32 x blocks+1) |
 *   per stream: seek table pts (i64 x n), seek table entry numbers (u32 x n), frame pts (i64 x f) |
 *   entry blocks (varint-coded packets) | CRC-32 of everything before (u32)
 */
import { crc32 } from 'node:zlib';
import { CuemuxError, errorMessage } from '../common/errors';
import type { Rational } from '../common/rational';
import { NO_VALUE, PacketFlag, type CodecType, type ContainerInfo, type StreamParams } from '../ffmpeg/types';
import { ByteReader } from './byte-io';

/** The 8 magic bytes every index starts with. */
export const MAGIC = Buffer.from('CUEMUXIX', 'latin1');
/** The format version this code writes and reads. */
export const FORMAT_VERSION = 2;
/** Entries per block: the unit of random access and of predictor reset. Small, so a random lookup decodes little
 * (64 costs ~0.3 byte per packet in resets and block table over 256). */
export const BLOCK_ENTRIES = 64;
/** In a sparse seek table, one anchor every this many packets of the stream. */
export const SPARSE_STRIDE = 16;
/** Bytes of the fixed header. */
export const HEADER_BYTES = 96;
/** Most entries per block a reader accepts (writers use BLOCK_ENTRIES): bounds what decoding one block allocates. */
const MAX_BLOCK_ENTRIES = 4096;
/** Fewest bytes one entry takes (head byte, size, duration): a packet count above entries_length / 3 is a lie. */
const MIN_ENTRY_BYTES = 3;
/** Header flag: the index stops at damage (see PartialInfo). */
export const FLAG_PARTIAL = 0x1;
/** Codec types by their code in the stream table. */
export const CODEC_TYPES: readonly CodecType[] = ['unknown', 'video', 'audio', 'subtitle', 'data', 'attachment'];

/** Identity of the media file an index was built from (staleness check, see fingerprint.ts). */
export interface SourceIdentity {
  /** File size in bytes. */
  size: number;
  /** Modification time in nanoseconds since the Unix epoch. */
  mtimeNs: bigint;
  /** Device id. */
  dev: number;
  /** Inode number. */
  ino: number;
  /** Bytes per sampled block (64 KiB). */
  sampleBlockBytes: number;
  /** Evenly spaced blocks sampled between the head and tail MiB. */
  sampleCount: number;
  /** SHA-256 over size, first MiB, sampled blocks, last MiB (32 bytes). */
  sampleHash: Buffer;
}

/** How a stream's seek table is stored. */
export type SeekKind = 'none' | 'keys' | 'sparse';

/** Per-stream facts stored in an index. */
export interface IndexedStream {
  /** Stream index in the container. */
  index: number;
  /** Media type. */
  codecType: CodecType;
  /** FFmpeg codec name. */
  codecName: string;
  /** Seconds per tick. */
  timeBase: Rational;
  /** Stream start in ticks, null when unknown. */
  startPts: number | null;
  /** Stream duration in ticks as the container declares it, null when unknown. */
  durationPts: number | null;
  /** Average frame rate for video, null otherwise/unknown. */
  frameRate: Rational | null;
  /** Audio sample rate in Hz (0 for non-audio). */
  sampleRate: number;
  /** Audio channels (0 for non-audio). */
  channels: number;
  /** Packets of this stream in the index. */
  packetCount: number;
  /** Packets flagged as keyframes. */
  keyframeCount: number;
  /** Longest run of packets from one keyframe to the next (the largest GOP), in packets. */
  longestGop: number;
  /** `keys`: every keyframe listed; `sparse`: every packet is a keyframe with non-decreasing pts, so only every
   * SPARSE_STRIDE-th is listed; `none`: no timestamped keyframes. */
  seekKind: SeekKind;
  /** Seek table rows. */
  seekCount: number;
  /** Seek table pts (ticks), ascending. */
  seekPts: Int32Array;
  /** Seek table entry numbers, parallel to seekPts. */
  seekEntries: Uint32Array;
  /** Presentation-order frame pts (ticks) for video streams, ascending; empty otherwise. */
  framePts: Int32Array;
  /** Number of frames in framePts. */
  frameCount: number;
}

/** Where reading stopped on a truncated or damaged file. */
export interface PartialInfo {
  /** Byte offset reached in the media when FFmpeg reported the error. */
  bytePos: number;
  /** FFmpeg's error message. */
  message: string;
}

/**
 * Everything FFmpeg said about the container at build time, so a server can describe the media (and a player create
 * its decoders) without opening it with FFmpeg again; plus whether reading packets straight from the file at
 * [pos, pos + size) was verified to give FFmpeg's bytes.
 */
export interface SourceParams {
  /** The container as FFmpeg opened it (path as at build time). */
  container: ContainerInfo;
  /**
   * Packet bytes equal the file's bytes at [pos + dataOffsets[stream], + size), verified at build time (see
   * DIRECT_FORMATS and MATROSKA in index-builder.ts).
   */
  directReadable: boolean;
  /**
   * Per stream (by index), bytes from a packet's `pos` to its payload in the file: 0 where FFmpeg's pos is the
   * payload (MP4), e.g. 4 for Matroska, whose pos is the start of the SimpleBlock (track number, timecode, flags).
   * All 0 when not direct-readable.
   */
  dataOffsets: number[];
}

/** An index file, parsed and verified. Entry blocks stay encoded until used (see media-index.ts). */
export interface ParsedIndex {
  /** Format version. */
  version: number;
  /** libavformat version (major<<16 | minor<<8 | micro) that produced the entries. */
  lavfVersion: number;
  /** When the index was built (ms since the Unix epoch). */
  createdMs: number;
  /** Total bytes of the index file. */
  byteLength: number;
  /** The media's identity at build time. */
  identity: SourceIdentity;
  /** Absolute media path at build time (informational: an index may be found beside a moved file). */
  sourcePath: string;
  /** FFmpeg demuxer name. */
  formatName: string;
  /** Set when FFmpeg stopped before the end of the file. */
  partial: PartialInfo | null;
  /** Streams in index order. */
  streams: IndexedStream[];
  /** Total packets (entries). */
  packetCount: number;
  /** Entries per block. */
  blockEntries: number;
  /** Block start offsets into `entryBytes`, blockCount + 1 values (the last is the total). */
  blockOffsets: Uint32Array;
  /** The encoded entry blocks. */
  entryBytes: Buffer;
  /** CRC-32 stored in the trailer. */
  checksum: number;
  /** Codec parameters, when the index carries them (files written before they were added do not). */
  params: SourceParams | null;
}

/** First word of the codec-parameters block in the meta section. */
export const PARAMS_MAGIC = 0x50524d31; // "PRM1"

function readF64(r: ByteReader): number | null {
  const v = r.bytes(8).readDoubleLE(0);
  return Number.isNaN(v) ? null : v;
}

/** Read the codec-parameters block; the stream table gives what it shares (index, type, name, time base...). */
function readParams(r: ByteReader, streamCount: number): SourceParams {
  if (r.u32() !== PARAMS_MAGIC) throw new RangeError('unknown block in the meta section');
  const directReadable = r.u8() === 1;
  const dataOffsets = Array.from({ length: streamCount }, () => r.u8());
  const durationSeconds = readF64(r);
  const startSeconds = readF64(r);
  const bitRate = r.i64();
  const partials: Array<Omit<StreamParams, 'index' | 'codecType' | 'codecName' | 'timeBase' | 'startPts' | 'durationPts' | 'frameRate' | 'sampleRate' | 'channels'>> = [];
  for (let i = 0; i < streamCount; i++) {
    const codecId = r.i32();
    const codecTag = r.u32();
    const width = r.i32();
    const height = r.i32();
    const format = r.str();
    const sBitRate = r.i64();
    const extradata = Buffer.from(r.bytes(r.u32()));
    const kind = r.u8();
    const profile = kind === 0 ? null : kind === 1 ? r.i32() : r.str();
    const level = r.i32();
    const sampleAspectRatio = { num: r.i32(), den: r.i32() };
    const [fieldOrder, range, primaries, transfer, space, channelLayout] = [r.str(), r.str(), r.str(), r.str(), r.str(), r.str()];
    partials.push({
      codecId, codecTag, width, height, format, bitRate: sBitRate, extradata, profile, level, sampleAspectRatio, fieldOrder,
      color: { range, primaries, transfer, space }, channelLayout, frameSize: r.i32(), blockAlign: r.i32(), bitsPerCodedSample: r.i32(),
      initialPadding: r.i32(), declaredFrames: r.i64(),
    });
  }
  return {
    directReadable, dataOffsets,
    container: { path: '', formatName: '', durationSeconds, startSeconds, bitRate, streams: partials as StreamParams[] },
  };
}

function corrupt(file: string, what: string): CuemuxError {
  return new CuemuxError('INDEX_CORRUPT', `${file}: index is corrupt (${what})`, { path: file, operation: 'index load' });
}

/**
 * Parse and verify index bytes. `buf` must start at an 8-byte aligned address (use Buffer.allocUnsafeSlow) so the
 * tables can be viewed in place. Throws INDEX_CORRUPT for any checksum, magic, length or structure failure.
 */
export function parseIndex(buf: Buffer, file: string): ParsedIndex {
  const parsed = parseIndexUnverified(buf, file);
  const steps = verifyIndexSteps(parsed, file);
  while (steps.next().done !== true) {
    // all at once
  }
  return parsed;
}

/**
 * {@link parseIndex} without the pass over every entry: the caller runs {@link verifyIndexSteps} (between other
 * work: it costs about 70 ns per packet) before using the index.
 */
export function parseIndexUnverified(buf: Buffer, file: string): ParsedIndex {
  if (buf.length < HEADER_BYTES + 4) throw corrupt(file, `${buf.length} bytes, shorter than a header`);
  if (!buf.subarray(0, 8).equals(MAGIC)) throw corrupt(file, 'bad magic: not a cuemux index');
  const fileLength = Number(buf.readBigUInt64LE(16));
  if (fileLength !== buf.length) throw corrupt(file, `truncated or extended: header says ${fileLength} bytes, file has ${buf.length}`);
  const stored = buf.readUInt32LE(buf.length - 4);
  const actual = crc32(buf.subarray(0, buf.length - 4));
  if (stored !== actual) throw corrupt(file, `checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`);
  const version = buf.readUInt16LE(8);
  if (version !== FORMAT_VERSION) {
    throw new CuemuxError('INDEX_STALE', `${file}: index format version ${version}, this cuemux reads ${FORMAT_VERSION}`,
      { path: file, operation: 'index load' });
  }
  try {
    return parseVerified(buf, file, version);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw corrupt(file, errorMessage(e));
  }
}

function parseVerified(buf: Buffer, file: string, version: number): ParsedIndex {
  if (buf.byteOffset % 8 !== 0) throw new CuemuxError('INTERNAL', 'index buffer is not 8-byte aligned', { path: file });
  const flags = buf.readUInt16LE(10);
  const lavfVersion = buf.readUInt32LE(12);
  const streamCount = buf.readUInt32LE(24);
  const blockEntries = buf.readUInt32LE(28);
  const packetCount = Number(buf.readBigUInt64LE(32));
  const blockCount = buf.readUInt32LE(40);
  const metaLength = buf.readUInt32LE(44);
  const blocksOffset = Number(buf.readBigUInt64LE(48));
  const entriesOffset = Number(buf.readBigUInt64LE(56));
  const entriesLength = Number(buf.readBigUInt64LE(64));
  const createdMs = Number(buf.readBigUInt64LE(72));
  if (blockEntries === 0 || blockEntries > MAX_BLOCK_ENTRIES) throw corrupt(file, `${blockEntries} entries per block (at most ${MAX_BLOCK_ENTRIES})`);
  if (blockCount !== Math.ceil(packetCount / blockEntries)) throw corrupt(file, 'block count');
  if (entriesOffset + entriesLength !== buf.length - 4) throw corrupt(file, 'entries extent');
  // Counts are checked against the bytes that hold them, before anything is sized by them.
  if (!Number.isSafeInteger(packetCount) || packetCount * MIN_ENTRY_BYTES > entriesLength) {
    throw corrupt(file, `${packetCount} packets cannot fit in ${entriesLength} bytes of entries`);
  }
  const r = new ByteReader(buf, HEADER_BYTES, HEADER_BYTES + metaLength);
  const identity: SourceIdentity = {
    size: r.i64(), mtimeNs: r.i64n(), dev: r.i64(), ino: r.i64(), sampleBlockBytes: r.u32(), sampleCount: r.u32(),
    sampleHash: Buffer.from(r.bytes(32)),
  };
  const sourcePath = r.str();
  const formatName = r.str();
  const stopPos = r.i64();
  const stopMessage = r.str();
  const partial = (flags & FLAG_PARTIAL) !== 0 ? { bytePos: stopPos, message: stopMessage } : null;
  const view64 = (offset: number, n: number): Int32Array => {
    if (offset % 8 !== 0 || offset + n * 8 > entriesOffset) throw new RangeError('table extent');
    return new Int32Array(buf.buffer, buf.byteOffset + offset, n * 2);
  };
  const streams: IndexedStream[] = [];
  for (let i = 0; i < streamCount; i++) {
    const index = r.u32();
    const codecType = CODEC_TYPES[r.u8()] ?? 'unknown';
    const codecName = r.str();
    const timeBase = { num: r.i32(), den: r.i32() };
    const startPts = r.i64();
    const durationPts = r.i64();
    const fr = { num: r.i32(), den: r.i32() };
    const sampleRate = r.u32();
    const channels = r.u32();
    const packets = r.i64();
    const keys = r.i64();
    const longestGop = r.u32();
    const kindCode = r.u8();
    r.u32(); // stride: SPARSE_STRIDE in v1
    const seekCount = r.i64();
    const seekOffset = r.i64();
    const frameCount = r.i64();
    const frameOffset = r.i64();
    if (timeBase.num <= 0 || timeBase.den <= 0) throw new RangeError(`stream ${i} time base`);
    if (!(packets >= 0 && packets <= packetCount && keys >= 0 && keys <= packets && seekCount >= 0 && seekCount <= packets && frameCount >= 0 && frameCount <= packets)) {
      throw new RangeError(`stream ${i}: counts beyond the index's ${packetCount} packets (${packets} packets, ${keys} keyframes, ${seekCount} seek rows, ${frameCount} frames)`);
    }
    const seekEntriesOffset = seekOffset + seekCount * 8;
    if (seekEntriesOffset + seekCount * 4 > entriesOffset) throw new RangeError('seek table extent');
    streams.push({
      index, codecType, codecName, timeBase,
      startPts: startPts === NO_VALUE ? null : startPts,
      durationPts: durationPts === NO_VALUE ? null : durationPts,
      frameRate: fr.num > 0 && fr.den > 0 ? fr : null,
      sampleRate, channels, packetCount: packets, keyframeCount: keys, longestGop,
      seekKind: kindCode === 0 ? 'none' : kindCode === 1 ? 'keys' : 'sparse',
      seekCount,
      seekPts: view64(seekOffset, seekCount),
      seekEntries: new Uint32Array(buf.buffer, buf.byteOffset + seekEntriesOffset, seekCount),
      framePts: view64(frameOffset, frameCount),
      frameCount,
    });
  }
  // Optional trailing block of the meta section: codec parameters (absent in files written before it existed).
  const params = r.pos < HEADER_BYTES + metaLength ? readParams(r, streams.length) : null;
  if (params !== null) {
    params.container.path = sourcePath;
    params.container.formatName = formatName;
    params.container.streams = params.container.streams.map((p, i) => {
      const st = streams[i];
      return {
        ...p, index: st.index, codecType: st.codecType, codecName: st.codecName, timeBase: st.timeBase, startPts: st.startPts,
        durationPts: st.durationPts, frameRate: st.frameRate, sampleRate: st.sampleRate, channels: st.channels,
      };
    });
  }
  if (blocksOffset % 4 !== 0 || blocksOffset + (blockCount + 1) * 4 > entriesOffset) throw new RangeError('block table extent');
  const blockOffsets = new Uint32Array(buf.buffer, buf.byteOffset + blocksOffset, blockCount + 1);
  if (blockOffsets[0] !== 0 || blockOffsets[blockCount] !== entriesLength) throw new RangeError('block table ends');
  for (let b = 0; b < blockCount; b++) {
    const n = Math.min(blockEntries, packetCount - b * blockEntries);
    if (blockOffsets[b + 1] < blockOffsets[b] + n * MIN_ENTRY_BYTES) throw new RangeError(`block ${b}: ${n} entries cannot fit in its ${blockOffsets[b + 1] - blockOffsets[b]} bytes`);
  }
  for (const st of streams) {
    for (let k = 0; k < st.seekCount; k++) {
      if (st.seekEntries[k] >= packetCount) throw new RangeError(`stream ${st.index}: seek row ${k} names entry ${st.seekEntries[k]} of ${packetCount}`);
    }
  }
  const parsed: ParsedIndex = {
    version, lavfVersion, createdMs, byteLength: buf.length, identity, sourcePath, formatName, partial, streams,
    packetCount, blockEntries, blockOffsets,
    entryBytes: buf.subarray(entriesOffset, entriesOffset + entriesLength),
    checksum: buf.readUInt32LE(buf.length - 4),
    params,
  };
  return parsed;
}

/** Blocks verified per step of {@link verifyIndexSteps}: about a millisecond. */
const VERIFY_STEP_BLOCKS = 256;

/**
 * Decode every entry once and check it against the rest of the index: every block decodes to exactly its entries,
 * each stream has the packets and keyframes its record says, and, when packets are read straight from the media
 * file, every packet with a position lies inside the file: pos + data offset + size <= the file's size (an index is
 * only used when that size equals the media's). A CRC only proves the bytes are the ones written; this proves a
 * crafted or buggy index cannot make the server read outside the media file. Yields after every
 * VERIFY_STEP_BLOCKS blocks (an async caller lets other work run there); throws INDEX_CORRUPT naming `file`.
 */
export function* verifyIndexSteps(idx: ParsedIndex, file: string): Generator<void> {
  try {
    yield* verifyEntries(idx);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw corrupt(file, errorMessage(e));
  }
}

function* verifyEntries(idx: ParsedIndex): Generator<void> {
  const n = idx.streams.length;
  const packets = new Float64Array(n);
  const keys = new Float64Array(n);
  const direct = idx.params?.directReadable === true;
  const offsets = idx.params?.dataOffsets ?? [];
  const limit = idx.identity.size;
  const rows = new Float64Array(idx.blockEntries * ENTRY_STRIDE);
  const blocks = idx.blockOffsets.length - 1;
  for (let b = 0; b < blocks; b++) {
    if (b > 0 && b % VERIFY_STEP_BLOCKS === 0) yield;
    decodeBlock(idx, b, rows);
    const count = Math.min(idx.blockEntries, idx.packetCount - b * idx.blockEntries);
    for (let i = 0; i < count; i++) {
      const o = i * ENTRY_STRIDE;
      const s = rows[o + EntryField.STREAM];
      const pos = rows[o + EntryField.POS];
      const size = rows[o + EntryField.SIZE];
      packets[s]++;
      if ((rows[o + EntryField.FLAGS] & PacketFlag.KEY) !== 0) keys[s]++;
      if (pos < -1 || (pos >= 0 && direct && pos + (offsets[s] ?? 0) + size > limit)) {
        throw new RangeError(`entry ${b * idx.blockEntries + i}: bytes [${pos}, +${size}) are not inside the ${limit}-byte media file`);
      }
    }
  }
  idx.streams.forEach((st, s) => {
    if (packets[s] !== st.packetCount || keys[s] !== st.keyframeCount) {
      throw new RangeError(`stream ${st.index}: the entries hold ${packets[s]} packets (${keys[s]} keyframes), its record says ${st.packetCount} (${st.keyframeCount})`);
    }
  });
}

/** Decoded columns of one block: stride {@link ENTRY_STRIDE} doubles per entry, field offsets {@link EntryField}. */
export const ENTRY_STRIDE = 7;
/** Field offsets in a decoded block row. pts/dts use NO_VALUE, pos -1 where FFmpeg had none. */
export const EntryField = { STREAM: 0, PTS: 1, DTS: 2, DURATION: 3, POS: 4, SIZE: 5, FLAGS: 6 } as const;

/** A cursor over entry bytes with LEB128 readers; a class with fixed fields keeps the decode loop monomorphic. */
class VarintCursor {
  constructor(public bytes: Uint8Array, public p: number, public readonly end: number) {}

  /** Unsigned varint. Up to 4 bytes (28 bits) with 32-bit integer ops, longer values with float arithmetic. */
  u(): number {
    const bytes = this.bytes;
    let p = this.p;
    if (p + 4 < this.end) {
      let c = bytes[p++];
      let v = c & 127;
      if (c >= 128) {
        c = bytes[p++]; v |= (c & 127) << 7;
        if (c >= 128) {
          c = bytes[p++]; v |= (c & 127) << 14;
          if (c >= 128) {
            c = bytes[p++]; v |= (c & 127) << 21;
            if (c >= 128) {
              this.p = p;
              return v + this.#slow(2 ** 28);
            }
          }
        }
      }
      this.p = p;
      return v;
    }
    return this.#slow(1);
  }

  #slow(scale: number): number {
    let v = 0;
    let mul = scale;
    let c = 0;
    do {
      if (this.p >= this.end) throw new RangeError('varint overruns its block');
      c = this.bytes[this.p++];
      v += (c & 127) * mul;
      mul *= 128;
    } while (c >= 128);
    return v;
  }

  /** Zigzag signed varint. */
  s(): number {
    const z = this.u();
    return z < 0x80000000 ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
}

// Predictor scratch shared by all decodes (decoding is synchronous): allocating typed arrays costs ~0.5 us each.
let scratchDts = new Float64Array(8);
let scratchDur = new Float64Array(8);

/**
 * Decode block `b` of `idx` into rows (see {@link EntryField}), into `into` when given (it must hold
 * blockEntries * ENTRY_STRIDE values; callers recycle evicted blocks). Throws RangeError on malformed bytes.
 */
export function decodeBlock(idx: ParsedIndex, b: number, into?: Float64Array): Float64Array {
  const first = b * idx.blockEntries;
  const n = Math.min(idx.blockEntries, idx.packetCount - first);
  const out = into !== undefined && into.length >= n * ENTRY_STRIDE ? into : new Float64Array(idx.blockEntries * ENTRY_STRIDE);
  // The last block ends where the entry bytes end: a loaded index's table says the same (parseIndex checks it), and
  // a growing index's live view (IndexEncoder.view) has not written that slot yet.
  const end = first + n >= idx.packetCount ? idx.entryBytes.length : idx.blockOffsets[b + 1];
  const streams = idx.streams.length;
  if (scratchDts.length < streams) {
    scratchDts = new Float64Array(streams);
    scratchDur = new Float64Array(streams);
  }
  const lastDts = scratchDts;
  const lastDur = scratchDur;
  lastDts.fill(0, 0, streams);
  lastDur.fill(0, 0, streams);
  const r = new VarintCursor(idx.entryBytes, idx.blockOffsets[b], end);
  let prevEnd = 0;
  for (let i = 0; i < n; i++) {
    if (r.p >= end) throw new RangeError(`block ${b} overruns`);
    const h = r.bytes[r.p++];
    let stream = h >> 6;
    if (stream === 3) stream = r.u();
    if (stream >= streams) throw new RangeError(`entry ${first + i}: stream ${stream}`);
    let pos = -1;
    if ((h & 0x20) === 0) pos = prevEnd + r.s();
    const size = r.u();
    if (pos >= 0) prevEnd = pos + size;
    const predicted = lastDts[stream] + lastDur[stream];
    let dts = NO_VALUE;
    if ((h & 0x10) === 0) {
      dts = predicted + r.s();
      lastDts[stream] = dts;
    }
    let pts = NO_VALUE;
    if ((h & 0x08) === 0) pts = (dts !== NO_VALUE ? dts : predicted) + r.s();
    const dur = lastDur[stream] + r.s();
    lastDur[stream] = dur;
    const o = i * ENTRY_STRIDE;
    out[o] = stream;
    out[o + 1] = pts;
    out[o + 2] = dts;
    out[o + 3] = dur;
    out[o + 4] = pos;
    out[o + 5] = size;
    out[o + 6] = h & 0x07;
  }
  if (r.p !== end) throw new RangeError(`block ${b} has ${end - r.p} trailing bytes`);
  return out;
}
