/**
 * The `.idx` encoder: packets (in file order) in, the bytes of a version-2 index out. The format, its constants and
 * the decoder are in idx-format.ts (normative description: docs/idx-format.md); the two files change together.
 */
import { crc32 } from 'node:zlib';
import { CuemuxError } from '../common/errors';
import { META_STRIDE, Meta, NO_VALUE, PacketFlag, type CodecType, type PacketColumns, type StreamParams } from '../ffmpeg/types';
import { ByteWriter } from './byte-io';
import { SortedTable } from './growing-tables';
import {
  BLOCK_ENTRIES, CODEC_TYPES, FLAG_PARTIAL, FORMAT_VERSION, HEADER_BYTES, MAGIC, PARAMS_MAGIC, SPARSE_STRIDE,
  type IndexedStream, type ParsedIndex, type PartialInfo, type SeekKind, type SourceIdentity, type SourceParams,
} from './idx-format';

const LIMIT = 2 ** 52;
const TWO32 = 4294967296;

/** `v`, checked to fit the index (|v| < 2^52); packet `n` names it in the error. */
function inRange(v: number, n: number): number {
  if (Math.abs(v) >= LIMIT) {
    throw new CuemuxError('INTERNAL', `packet ${n}: value ${v} out of the index's range (2^52)`, { operation: 'index build' });
  }
  return v;
}

/** Write `v` (0 <= v < 2^53) as an unsigned LEB128 varint at `at` of `b`; returns the position after it. */
function putUvar(b: Uint8Array, at: number, v: number): number {
  let x = v;
  if (x < TWO32) {
    while (x >= 128) {
      b[at++] = (x & 127) | 128;
      x >>>= 7;
    }
  } else {
    while (x >= 128) {
      b[at++] = (x % 128) | 128;
      x = Math.floor(x / 128);
    }
  }
  b[at++] = x;
  return at;
}

/** Write `v` (|v| < 2^52) zigzag-encoded as a varint (the encoding of ByteWriter.svar). */
function putSvar(b: Uint8Array, at: number, v: number): number {
  return putUvar(b, at, v >= 0 ? v * 2 : -v * 2 - 1);
}

/**
 * Append `values` (integers, |v| < 2^53) as little-endian int64s: the bytes of ByteWriter.i64, written as int32
 * pairs in this host's byte order (little-endian: parseIndex views the tables the same way) instead of a BigInt per
 * value: writing the 30,000-frame table of a 20-minute file through BigInt took ~9 ms of its CLI build.
 */
function i64Table(w: ByteWriter, values: ArrayLike<number>): void {
  const words = new Int32Array(values.length * 2);
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    const hi = Math.floor(v / TWO32);
    words[2 * k] = v - hi * TWO32; // 0 .. 2^32 - 1, stored modulo 2^32
    words[2 * k + 1] = hi;
  }
  w.bytes(new Uint8Array(words.buffer));
}

function codecTypeCode(t: CodecType): number {
  return Math.max(0, CODEC_TYPES.indexOf(t));
}

/** A stream's tables kept for {@link IndexEncoder.view}: keyframes (payload: entry number), frames, and the settled bound. */
interface LiveStream {
  keys: SortedTable;
  frames: SortedTable;
  /** The latest dts (pts for a stream without dts whose pts never went back): no later packet's pts is below it. */
  settled: number;
}

/** What an index says of its source, besides its packets: the arguments of {@link IndexEncoder.finish} and {@link IndexEncoder.view}. */
export interface IndexSource {
  /** The media identity. */
  identity: SourceIdentity;
  /** Absolute media path. */
  sourcePath: string;
  /** FFmpeg demuxer name. */
  formatName: string;
  /** libavformat version (major<<16 | minor<<8 | micro). */
  lavfVersion: number;
  /** Codec parameters. */
  params: SourceParams | null;
}

/** Accumulates packets (in file order) and produces the bytes of an index, or (live) views of it as it grows. */
export class IndexEncoder {
  readonly #streams: StreamParams[];
  /**
   * Entry bytes, written in place: an entry takes at most 49 bytes (head byte and six varints of at most 8 bytes).
   * Writing them through ByteWriter (a call and a bounds check per field, a closure per packet) cost ~0.4 us per
   * packet: 35 ms of a 20-minute MKV's 86k packets in its CLI build, where the code runs before the JIT warms up.
   */
  #buf = new Uint8Array(1 << 20);
  #len = 0;
  /** Per stream: whether frame numbers are kept (video). */
  readonly #video: boolean[];
  /** Where each block's entries start in #buf (#blockCount of them; grown by doubling, append-only). */
  #blockOffsets = new Uint32Array(64);
  #blockCount = 0;
  /** Per stream, the sorted tables of {@link view}; null unless built with `live`. */
  readonly #live: LiveStream[] | null;
  #count = 0;
  #late = 0;
  #noPos = 0;
  // Predictors, reset at every block start so any block decodes on its own.
  #prevEnd = 0;
  readonly #lastDts: number[];
  readonly #lastDur: number[];
  readonly #st: Array<{
    packets: number; keys: number; allKeys: boolean; monotonic: boolean; lastPts: number; sinceKey: number; longestGop: number;
    keyPts: number[]; keyEntry: number[]; frames: number[];
  }>;

  /**
   * `live`: also keep each stream's sorted keyframe and frame tables append-only, for {@link view} (a growing index);
   * costs two table inserts per packet.
   */
  constructor(streams: StreamParams[], options: { live?: boolean } = {}) {
    this.#streams = streams;
    this.#live = options.live === true ? streams.map(() => ({ keys: new SortedTable(), frames: new SortedTable(), settled: -Infinity })) : null;
    this.#video = streams.map((p) => p.codecType === 'video');
    this.#lastDts = streams.map(() => 0);
    this.#lastDur = streams.map(() => 0);
    this.#st = streams.map(() => ({
      packets: 0, keys: 0, allKeys: true, monotonic: true, lastPts: -Infinity, sinceKey: 0, longestGop: 0,
      keyPts: [], keyEntry: [], frames: [],
    }));
  }

  /** Packets added so far. */
  get count(): number {
    return this.#count;
  }

  /** Packets without a byte position (they cannot be read straight from the file). */
  get packetsWithoutPos(): number {
    return this.#noPos;
  }

  /** Packets skipped because their stream appeared after the file was opened. */
  get lateStreamPackets(): number {
    return this.#late;
  }

  /**
   * Append the packets [from, to) of `cols` (default: all; metadata only is needed). Packets of streams FFmpeg discovers only while reading
   * (MPEG-PS, FLV...) are left out, as `ffprobe -show_packets` leaves them out: they are not in the stream table.
   */
  add(cols: PacketColumns, from = 0, to = cols.count): void {
    const m = cols.meta;
    for (let i = from; i < to; i++) {
      const o = i * META_STRIDE;
      if (m[o + Meta.STREAM] >= this.#streams.length) {
        this.#late++;
        continue;
      }
      this.#addOne(m[o + Meta.STREAM], m[o + Meta.PTS], m[o + Meta.DTS], m[o + Meta.DURATION], m[o + Meta.POS],
        m[o + Meta.SIZE], m[o + Meta.FLAGS]);
    }
  }

  #addOne(stream: number, pts: number, dts: number, dur: number, pos: number, size: number, flags: number): void {
    const n = this.#count;
    if (this.#len + 64 > this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    const b = this.#buf;
    let at = this.#len;
    if (n % BLOCK_ENTRIES === 0) {
      if (this.#blockCount + 1 >= this.#blockOffsets.length) {
        const bigger = new Uint32Array(this.#blockOffsets.length * 2);
        bigger.set(this.#blockOffsets.subarray(0, this.#blockCount));
        this.#blockOffsets = bigger;
      }
      this.#blockOffsets[this.#blockCount++] = at;
      this.#prevEnd = 0;
      this.#lastDts.fill(0);
      this.#lastDur.fill(0);
    }
    const hasPts = pts !== NO_VALUE;
    const hasDts = dts !== NO_VALUE;
    const hasPos = pos >= 0;
    const f = flags & (PacketFlag.KEY | PacketFlag.CORRUPT | PacketFlag.DISCARD);
    const sCode = stream < 3 ? stream : 3;
    b[at++] = f | (hasPts ? 0 : 0x08) | (hasDts ? 0 : 0x10) | (hasPos ? 0 : 0x20) | (sCode << 6);
    if (sCode === 3) at = putUvar(b, at, stream);
    if (!hasPos) this.#noPos++;
    if (hasPos) {
      at = putSvar(b, at, inRange(pos - this.#prevEnd, n));
      this.#prevEnd = pos + size;
    }
    at = putUvar(b, at, size);
    const predicted = this.#lastDts[stream] + this.#lastDur[stream];
    if (hasDts) {
      at = putSvar(b, at, inRange(dts - predicted, n));
      this.#lastDts[stream] = dts;
    }
    if (hasPts) at = putSvar(b, at, inRange(pts - (hasDts ? dts : predicted), n));
    at = putSvar(b, at, inRange(dur - this.#lastDur[stream], n));
    this.#lastDur[stream] = dur;
    this.#len = at;

    const s = this.#st[stream];
    const key = (f & PacketFlag.KEY) !== 0;
    const t = hasPts ? pts : hasDts ? dts : null;
    s.packets++;
    if (key) {
      s.keys++;
      s.longestGop = Math.max(s.longestGop, s.sinceKey);
      s.sinceKey = 1;
      if (t !== null) {
        s.keyPts.push(t);
        s.keyEntry.push(n);
      }
    } else {
      s.allKeys = false;
      s.sinceKey++;
    }
    if (t !== null) {
      if (t < s.lastPts) s.monotonic = false;
      s.lastPts = t;
    }
    // Frame numbers follow presentation order, known only from pts: a packet without pts (AVI B-frames, raw
    // streams) has no place in it.
    if (this.#video[stream] && hasPts && (f & PacketFlag.DISCARD) === 0) s.frames.push(pts);
    const live = this.#live?.[stream];
    if (live !== undefined) {
      if (key && t !== null) live.keys.insert(t, n);
      if (this.#video[stream] && hasPts && (f & PacketFlag.DISCARD) === 0) live.frames.insert(pts);
      if (hasDts) live.settled = Math.max(live.settled, dts);
      else if (hasPts && s.monotonic) live.settled = Math.max(live.settled, pts);
    }
    this.#count++;
  }

  /**
   * The index of the packets so far, as a ParsedIndex viewing this encoder's buffers (no copy, no encoding: O(streams)).
   * Needs `live`. The view stays valid and unchanged as packets are added (every buffer is append-only; a grown one
   * is a new buffer, the view keeps the old). Each stream's seek and frame tables hold their settled rows only (see
   * growing-tables.ts): a frame or keyframe whose place later packets could still change appears in a later view.
   */
  view(source: IndexSource): ParsedIndex {
    if (this.#live === null) throw new CuemuxError('INTERNAL', 'IndexEncoder.view needs an encoder built with live', { operation: 'index build' });
    const live = this.#live;
    const streams: IndexedStream[] = this.#streams.map((p, i) => {
      const s = this.#st[i];
      const keys = live[i].keys.publish(live[i].settled);
      const frames = live[i].frames.publish(live[i].settled);
      return {
        index: p.index, codecType: p.codecType, codecName: p.codecName, timeBase: p.timeBase, startPts: p.startPts, durationPts: p.durationPts,
        frameRate: p.frameRate, sampleRate: p.sampleRate, channels: p.channels, packetCount: s.packets, keyframeCount: s.keys,
        longestGop: Math.max(s.longestGop, s.sinceKey), seekKind: keys.count === 0 ? 'none' : 'keys', seekCount: keys.count, seekPts: keys.values,
        seekEntries: keys.payload, framePts: frames.values, frameCount: frames.count,
      };
    });
    // The last block's end is where the entry bytes end (decodeBlock): its slot in the block table is not written yet.
    const entryBytes = Buffer.from(this.#buf.buffer, this.#buf.byteOffset, this.#len);
    return {
      version: FORMAT_VERSION, lavfVersion: source.lavfVersion, createdMs: Date.now(), byteLength: this.#len, identity: source.identity,
      sourcePath: source.sourcePath, formatName: source.formatName, partial: null, streams, packetCount: this.#count, blockEntries: BLOCK_ENTRIES,
      blockOffsets: this.#blockOffsets.subarray(0, this.#blockCount + 1), entryBytes, checksum: 0, params: source.params,
    };
  }

  /** Produce the complete index file (header, tables, entries, checksum). */
  finish(identity: SourceIdentity, sourcePath: string, formatName: string, lavfVersion: number,
    partial: PartialInfo | null, params: SourceParams | null = null): Buffer {
    const streams = this.#streams;
    const w = new ByteWriter(HEADER_BYTES + 4096 + streams.length * 256);
    w.bytes(MAGIC);
    w.u16(FORMAT_VERSION);
    w.u16(partial ? FLAG_PARTIAL : 0);
    w.u32(lavfVersion);
    for (let i = 0; i < HEADER_BYTES - 16; i++) w.u8(0);
    const H = { fileLength: 16, streamCount: 24, blockEntries: 28, packetCount: 32, blockCount: 40, metaLength: 44,
      blocksOffset: 48, entriesOffset: 56, entriesLength: 64, created: 72 };
    w.patchU32(H.streamCount, streams.length);
    w.patchU32(H.blockEntries, BLOCK_ENTRIES);
    w.patchU64(H.packetCount, this.#count);
    w.patchU32(H.blockCount, this.#blockCount);
    w.patchU64(H.created, Date.now());

    // Meta section.
    const metaStart = w.length;
    w.i64(identity.size);
    w.i64n(identity.mtimeNs);
    w.i64(identity.dev);
    w.i64(identity.ino);
    w.u32(identity.sampleBlockBytes);
    w.u32(identity.sampleCount);
    w.bytes(identity.sampleHash);
    w.str(sourcePath);
    w.str(formatName);
    w.i64(partial ? partial.bytePos : -1);
    w.str(partial ? partial.message : '');
    const tableFixups: Array<{ seekAt: number; frameAt: number }> = [];
    const plans = streams.map((p, i) => {
      const s = this.#st[i];
      const longestGop = Math.max(s.longestGop, s.sinceKey);
      let kind: SeekKind = s.keyPts.length === 0 ? 'none' : 'keys';
      let pts = s.keyPts;
      let entries = s.keyEntry;
      if (kind === 'keys' && s.allKeys && s.monotonic && s.keyPts.length > SPARSE_STRIDE) {
        kind = 'sparse';
        // Every SPARSE_STRIDE-th row (a loop: filter's callback per row cost more than the rest on 56k audio rows).
        pts = [];
        entries = [];
        for (let k = 0; k < s.keyPts.length; k += SPARSE_STRIDE) {
          pts.push(s.keyPts[k]);
          entries.push(s.keyEntry[k]);
        }
      } else if (kind === 'keys') {
        // Sort by pts (stable on entry number): open-GOP or odd muxing can list keyframes out of pts order.
        const order = pts.map((_, k) => k).sort((a, b) => pts[a] - pts[b] || entries[a] - entries[b]);
        pts = order.map((k) => s.keyPts[k]);
        entries = order.map((k) => s.keyEntry[k]);
      }
      const frames = new Float64Array(s.frames).sort();
      return { p, s, kind, pts, entries, frames, longestGop };
    });
    for (const { p, s, kind, pts, frames, longestGop } of plans) {
      w.u32(p.index);
      w.u8(codecTypeCode(p.codecType));
      w.str(p.codecName);
      w.i32(p.timeBase.num);
      w.i32(p.timeBase.den);
      w.i64(p.startPts ?? NO_VALUE);
      w.i64(p.durationPts ?? NO_VALUE);
      w.i32(p.frameRate?.num ?? 0);
      w.i32(p.frameRate?.den ?? 0);
      w.u32(p.sampleRate);
      w.u32(p.channels);
      w.i64(s.packets);
      w.i64(s.keys);
      w.u32(longestGop);
      w.u8(kind === 'none' ? 0 : kind === 'keys' ? 1 : 2);
      w.u32(kind === 'sparse' ? SPARSE_STRIDE : 1);
      w.i64(pts.length);
      const seekAt = w.length;
      w.i64(0);
      w.i64(frames.length);
      const frameAt = w.length;
      w.i64(0);
      tableFixups.push({ seekAt, frameAt });
    }
    if (params !== null) writeParams(w, params);
    w.patchU32(H.metaLength, w.length - metaStart);
    w.align(8);

    // Block table.
    const blocksOffset = w.length;
    if (this.#len > 0xffffffff) {
      throw new CuemuxError('INTERNAL', `entry section of ${this.#len} bytes exceeds the 4 GiB of the format`, { operation: 'index build' });
    }
    for (const off of this.#blockOffsets.subarray(0, this.#blockCount)) w.u32(off);
    w.u32(this.#len);
    w.align(8);

    // Seek and frame tables.
    plans.forEach(({ pts, entries, frames }, i) => {
      w.patchU64(tableFixups[i].seekAt, w.length);
      i64Table(w, pts);
      for (const e of entries) w.u32(e);
      w.align(8);
      w.patchU64(tableFixups[i].frameAt, w.length);
      i64Table(w, frames);
    });
    w.align(8);

    const entriesOffset = w.length;
    w.bytes(this.#buf.subarray(0, this.#len));
    w.patchU64(H.blocksOffset, blocksOffset);
    w.patchU64(H.entriesOffset, entriesOffset);
    w.patchU64(H.entriesLength, this.#len);
    w.patchU64(H.fileLength, w.length + 4);
    const body = w.view();
    w.u32(crc32(body));
    return Buffer.from(w.view());
  }
}

function f64(w: ByteWriter, v: number | null): void {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v ?? Number.NaN);
  w.bytes(b);
}

/** Write the codec-parameters block (see docs/idx-format.md). */
function writeParams(w: ByteWriter, p: SourceParams): void {
  const c = p.container;
  w.u32(PARAMS_MAGIC);
  w.u8(p.directReadable ? 1 : 0);
  for (let i = 0; i < c.streams.length; i++) w.u8(p.directReadable ? p.dataOffsets[i] ?? 0 : 0);
  f64(w, c.durationSeconds);
  f64(w, c.startSeconds);
  w.i64(c.bitRate);
  for (const s of c.streams) {
    w.i32(s.codecId);
    w.u32(s.codecTag);
    w.i32(s.width);
    w.i32(s.height);
    w.str(s.format);
    w.i64(s.bitRate);
    w.u32(s.extradata.length);
    w.bytes(s.extradata);
    w.u8(s.profile === null ? 0 : typeof s.profile === 'number' ? 1 : 2);
    if (typeof s.profile === 'number') w.i32(s.profile);
    else if (typeof s.profile === 'string') w.str(s.profile);
    w.i32(s.level);
    w.i32(s.sampleAspectRatio.num);
    w.i32(s.sampleAspectRatio.den);
    for (const t of [s.fieldOrder, s.color.range, s.color.primaries, s.color.transfer, s.color.space, s.channelLayout]) w.str(t);
    w.i32(s.frameSize);
    w.i32(s.blockAlign);
    w.i32(s.bitsPerCodedSample);
    w.i32(s.initialPadding);
    w.i64(s.declaredFrames);
  }
}
