/**
 * A loaded, verified index with its lookups. Tables are viewed in place (no copy at open); entry blocks are decoded
 * on demand with a small cache, so opening a 500k-packet index costs a read and a checksum, not a decode.
 */
import { CuemuxError, errorMessage } from '../common/errors';
import type { PacketFields } from '../common/packet-fields';
import { secondsToTicks, ticksToSeconds, type Rational } from '../common/rational';
import { NO_VALUE, PacketFlag } from '../ffmpeg/types';
import { i64At } from './byte-io';
import { ENTRY_STRIDE, EntryField, decodeBlock, type IndexedStream, type ParsedIndex, type PartialInfo, type SourceIdentity, type SourceParams } from './idx-format';

/** One packet as the demuxer reported it, with its place in the index. Times in the stream's time-base ticks. */
export interface IndexEntry extends PacketFields {
  /** Entry number: the packet's position in file order, from 0. */
  index: number;
}

/** A keyframe found by a time lookup. */
export interface KeyframeRef {
  /** Entry number of the keyframe's packet. */
  entry: number;
  /** Its presentation time in ticks (dts where it has no pts). */
  pts: number;
}

/** How an index came to be returned by openIndex ('memory': built, but no folder could take its file). */
export type IndexOrigin = 'loaded' | 'built' | 'waited' | 'memory';

/** Index of the last of `n` ascending int64 values (int32 pairs) that is <= `ticks`, or -1: O(log n). */
function lastAtOrBefore(words: Int32Array, n: number, ticks: number): number {
  let lo = 0;
  let hi = n - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (i64At(words, mid) <= ticks) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** Cached decoded blocks (each ~14 KiB); enough for several concurrent readers. */
const BLOCK_CACHE = 32;

/** Options of {@link MediaIndex.packetsInRange}. */
export interface RangeOptions {
  /**
   * Start audio streams this many seconds earlier than t0 (default 0). Audio decoders started on an arbitrary
   * packet get their first frame wrong (AAC's overlapped transform needs the previous frame; Opus asks for 80 ms of
   * pre-roll): a player that must present the in-point exactly needs a few packets to decode and drop first.
   */
  audioPrerollSeconds?: number | ((stream: IndexedStream) => number);
  /**
   * Leave out entries before this entry number (default 0): a reader of a growing file plans again on the grown index
   * from the entry after the last one it planned.
   */
  fromEntry?: number;
}

/** The index of one media file. */
export class MediaIndex {
  /** Absolute path of the media file. */
  readonly mediaPath: string;
  /** Path of the `.idx` file this was loaded from. */
  readonly indexPath: string;
  /** How this index was obtained. */
  readonly origin: IndexOrigin;
  readonly #idx: ParsedIndex;
  readonly #cache = new Map<number, Float64Array>();

  constructor(idx: ParsedIndex, mediaPath: string, indexPath: string, origin: IndexOrigin) {
    this.#idx = idx;
    this.mediaPath = mediaPath;
    this.indexPath = indexPath;
    this.origin = origin;
  }

  /** Streams in index order. */
  get streams(): readonly IndexedStream[] {
    return this.#idx.streams;
  }

  /** Total packets. */
  get packetCount(): number {
    return this.#idx.packetCount;
  }

  /** Bytes of the index file. */
  get byteLength(): number {
    return this.#idx.byteLength;
  }

  /** The media identity the index was built from. */
  get identity(): SourceIdentity {
    return this.#idx.identity;
  }

  /** FFmpeg demuxer name. */
  get formatName(): string {
    return this.#idx.formatName;
  }

  /** Set when FFmpeg stopped before the end (truncated/damaged media): where and why. */
  get partial(): PartialInfo | null {
    return this.#idx.partial;
  }

  /** libavformat version that produced the entries (major<<16 | minor<<8 | micro). */
  get lavfVersion(): number {
    return this.#idx.lavfVersion;
  }

  /** When the index was built (ms since the Unix epoch). */
  get createdMs(): number {
    return this.#idx.createdMs;
  }

  /** Codec parameters and the direct-read verdict recorded at build time (null in indexes written without them). */
  get params(): SourceParams | null {
    return this.#idx.params;
  }

  /** The stored CRC-32 (identifies the exact index content). */
  get checksum(): number {
    return this.#idx.checksum;
  }

  /** Stream `s`, or NO_SUCH_STREAM. */
  stream(s: number): IndexedStream {
    const st = this.#idx.streams[s];
    if (st === undefined) {
      throw new CuemuxError('NO_SUCH_STREAM', `${this.mediaPath}: no stream ${s} (it has ${this.#idx.streams.length})`,
        { path: this.mediaPath, operation: 'index lookup' });
    }
    return st;
  }

  #block(b: number): Float64Array {
    let rows = this.#cache.get(b);
    if (rows !== undefined) {
      // Refresh LRU position.
      this.#cache.delete(b);
      this.#cache.set(b, rows);
      return rows;
    }
    // Rows are never recycled: a generator (entries(), packetsInRange()) may still hold an evicted block.
    if (this.#cache.size >= BLOCK_CACHE) this.#cache.delete(this.#cache.keys().next().value as number);
    try {
      rows = decodeBlock(this.#idx, b);
    } catch (e) {
      // The checksum passed, so this is a writer bug rather than disk damage; report it as corrupt all the same.
      throw new CuemuxError('INDEX_CORRUPT', `${this.indexPath}: entry block ${b} is malformed: ${errorMessage(e)}`,
        { path: this.indexPath, operation: 'index lookup' });
    }
    this.#cache.set(b, rows);
    return rows;
  }

  #row(rows: Float64Array, i: number, index: number): IndexEntry {
    const o = i * ENTRY_STRIDE;
    const flags = rows[o + EntryField.FLAGS];
    const pts = rows[o + EntryField.PTS];
    const dts = rows[o + EntryField.DTS];
    const dur = rows[o + EntryField.DURATION];
    const pos = rows[o + EntryField.POS];
    return {
      index,
      stream: rows[o + EntryField.STREAM],
      pts: pts === NO_VALUE ? null : pts,
      dts: dts === NO_VALUE ? null : dts,
      duration: dur === 0 ? null : dur,
      pos: pos < 0 ? null : pos,
      size: rows[o + EntryField.SIZE],
      key: (flags & PacketFlag.KEY) !== 0,
      corrupt: (flags & PacketFlag.CORRUPT) !== 0,
      discard: (flags & PacketFlag.DISCARD) !== 0,
    };
  }

  /** Entry number `n` (0 <= n < packetCount). */
  entry(n: number): IndexEntry {
    if (!Number.isInteger(n) || n < 0 || n >= this.#idx.packetCount) {
      throw new CuemuxError('INVALID_ARGUMENT', `${this.mediaPath}: no entry ${n} (index has ${this.#idx.packetCount})`,
        { path: this.mediaPath, operation: 'index lookup' });
    }
    const B = this.#idx.blockEntries;
    return this.#row(this.#block(Math.floor(n / B)), n % B, n);
  }

  /** Entries `from` (inclusive) to `to` (exclusive) in file order, optionally of one stream only. */
  *entries(from = 0, to = this.#idx.packetCount, stream?: number): Generator<IndexEntry> {
    const B = this.#idx.blockEntries;
    const end = Math.min(to, this.#idx.packetCount);
    for (let n = Math.max(0, from); n < end;) {
      const b = Math.floor(n / B);
      const rows = this.#block(b);
      const stop = Math.min(end, (b + 1) * B);
      for (; n < stop; n++) {
        const i = n - b * B;
        if (stream !== undefined && rows[i * ENTRY_STRIDE] !== stream) continue;
        yield this.#row(rows, i, n);
      }
    }
  }

  /** Seconds → ticks of stream `s`, exactly, rounding down. */
  toTicks(s: number, seconds: number): number {
    return secondsToTicks(seconds, this.stream(s).timeBase, 'floor');
  }

  /** Ticks of stream `s` → seconds. */
  toSeconds(s: number, ticks: number): number {
    return ticksToSeconds(ticks, this.stream(s).timeBase);
  }

  /** Time base of stream `s`. */
  timeBase(s: number): Rational {
    return this.stream(s).timeBase;
  }

  /**
   * The keyframe of stream `s` with the largest pts at or before `ticks`, or null when the stream's first keyframe
   * is later. O(log n) over the seek table; for sparse tables (all-keyframe streams such as audio) one block is
   * decoded to refine among at most SPARSE_STRIDE packets.
   */
  keyframeAtOrBefore(s: number, ticks: number): KeyframeRef | null {
    const st = this.stream(s);
    const n = st.seekCount;
    const pts = st.seekPts;
    let found = lastAtOrBefore(pts, n, ticks);
    if (found < 0) return null;
    // Several keyframes with the same time: the first in the file is where reading must start.
    while (found > 0 && i64At(pts, found - 1) === i64At(pts, found)) found--;
    const anchor = { entry: st.seekEntries[found], pts: i64At(pts, found) };
    if (st.seekKind !== 'sparse') return anchor;
    // Refine: walk this stream's packets after the anchor (at most SPARSE_STRIDE - 1) over decoded rows.
    const limit = found + 1 < n ? st.seekEntries[found + 1] : this.#idx.packetCount;
    const B = this.#idx.blockEntries;
    let best = anchor;
    for (let e = anchor.entry + 1; e < limit;) {
      const b = Math.floor(e / B);
      const rows = this.#block(b);
      const stop = Math.min(limit, (b + 1) * B);
      for (; e < stop; e++) {
        const o = (e - b * B) * ENTRY_STRIDE;
        if (rows[o + EntryField.STREAM] !== s) continue;
        const pt = rows[o + EntryField.PTS];
        const t = pt !== NO_VALUE ? pt : rows[o + EntryField.DTS];
        if (t === NO_VALUE) continue;
        if (t > ticks) return best;
        if (t > best.pts) best = { entry: e, pts: t };
      }
    }
    return best;
  }

  /** {@link keyframeAtOrBefore} with the time in seconds (converted exactly to the stream's ticks). */
  keyframeAtOrBeforeSeconds(s: number, seconds: number): KeyframeRef | null {
    return this.keyframeAtOrBefore(s, this.toTicks(s, seconds));
  }

  /**
   * Packets of `streams` (all when empty) needed to present [t0, t1) seconds, in file order: each stream starts at
   * its keyframe at or before t0 (its first packet when t0 precedes every keyframe) and ends before its first packet
   * whose dts (pts when no dts) is at or after t1. Omit t1 for "to the end"; t0 null = every stream from its first
   * packet.
   */
  *packetsInRange(streams: readonly number[], t0: number | null, t1?: number, options: RangeOptions = {}): Generator<IndexEntry> {
    for (const e of this.packetsInRangeSteps(streams, t0, t1, 8192, options)) if (e !== null) yield e;
  }

  /**
   * {@link packetsInRange}, but after every `stepEntries` index entries scanned without finding a wanted packet it
   * yields `null` (then goes on). A sparse stream (a few packets in a long file, or a stream that ends early) can
   * leave most of a 500k-entry index between two of its packets: a caller on the event loop uses the nulls to let
   * other work run, or to send what it has found so far.
   */
  *packetsInRangeSteps(streams: readonly number[], t0: number | null, t1?: number, stepEntries = 8192, options: RangeOptions = {}): Generator<IndexEntry | null> {
    const wanted = streams.length > 0 ? streams : this.#idx.streams.map((s) => s.index);
    // Per stream (by index): first entry to send (-1 = not wanted or done) and the end tick (Infinity = to the end).
    const n = this.#idx.streams.length;
    const startAt = new Array<number>(n).fill(-1);
    const endTick = new Array<number>(n).fill(Infinity);
    let open = 0;
    let first = Infinity;
    for (const s of wanted) {
      const st = this.stream(s);
      if (st.packetCount === 0 || startAt[s] >= 0) continue;
      if (t0 === null) {
        startAt[s] = 0; // from the first packet: every packet of the stream, those before its first keyframe too
      } else {
        const pre = typeof options.audioPrerollSeconds === 'function' ? options.audioPrerollSeconds(st) : options.audioPrerollSeconds;
        const from = st.codecType === 'audio' && pre !== undefined ? t0 - pre : t0;
        const k = this.keyframeAtOrBefore(s, this.toTicks(s, from));
        startAt[s] = k?.entry ?? 0;
      }
      if (t1 !== undefined) endTick[s] = secondsToTicks(t1, st.timeBase, 'ceil');
      open++;
      first = Math.min(first, startAt[s]);
    }
    if (open === 0) return;
    const B = this.#idx.blockEntries;
    const count = this.#idx.packetCount;
    let scanned = 0;
    for (let e = Math.max(first, options.fromEntry ?? 0); e < count;) {
      const b = Math.floor(e / B);
      const rows = this.#block(b);
      const stop = Math.min(count, (b + 1) * B);
      for (; e < stop; e++) {
        if (++scanned >= stepEntries) {
          scanned = 0;
          yield null;
        }
        const i = e - b * B;
        const o = i * ENTRY_STRIDE;
        const s = rows[o + EntryField.STREAM];
        const start = s < n ? startAt[s] : -1;
        if (start < 0 || e < start) continue;
        const dts = rows[o + EntryField.DTS];
        const t = dts !== NO_VALUE ? dts : rows[o + EntryField.PTS];
        if (t !== NO_VALUE && t >= endTick[s]) {
          startAt[s] = -1;
          if (--open === 0) return;
          continue;
        }
        scanned = 0;
        yield this.#row(rows, i, e);
      }
    }
  }

  /** The dts (pts when none) of the last packet of stream `s` in the index, or null when it has none with a time. */
  lastTime(s: number): number | null {
    this.stream(s);
    const B = this.#idx.blockEntries;
    for (let b = Math.ceil(this.#idx.packetCount / B) - 1; b >= 0; b--) {
      const rows = this.#block(b);
      for (let i = Math.min(B, this.#idx.packetCount - b * B) - 1; i >= 0; i--) {
        const o = i * ENTRY_STRIDE;
        if (rows[o + EntryField.STREAM] !== s) continue;
        const dts = rows[o + EntryField.DTS];
        const t = dts !== NO_VALUE ? dts : rows[o + EntryField.PTS];
        if (t !== NO_VALUE) return t;
      }
    }
    return null;
  }

  /** Presentation-order frame count of video stream `s` (0 for other streams). */
  frameCount(s: number): number {
    return this.stream(s).frameCount;
  }

  /** The pts (ticks) of frame number `n` (0-based, presentation order) of video stream `s`. */
  frameToPts(s: number, n: number): number {
    const st = this.stream(s);
    if (!Number.isInteger(n) || n < 0 || n >= st.frameCount) {
      throw new CuemuxError('INVALID_ARGUMENT', `${this.mediaPath}: stream ${s} has no frame ${n} (it has ${st.frameCount})`,
        { path: this.mediaPath, operation: 'index lookup' });
    }
    return i64At(st.framePts, n);
  }

  /**
   * The frame number of video stream `s` shown at `ticks`: the last frame whose pts is at or before it, or -1
   * when `ticks` precedes the first frame.
   */
  ptsToFrame(s: number, ticks: number): number {
    const st = this.stream(s);
    return lastAtOrBefore(st.framePts, st.frameCount, ticks);
  }

  /** Drop decoded blocks (the index itself stays usable). */
  clearCache(): void {
    this.#cache.clear();
  }
}
