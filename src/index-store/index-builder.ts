/**
 * Builds the index of one media file: one pass of FFmpeg's demuxer (the same av_read_frame ffprobe uses), reading
 * packet metadata only, thousands of packets per native call. Payloads are copied to JavaScript only while they are
 * compared with the file, to decide whether a server may read packets straight from it (see DIRECT_FORMATS, MATROSKA).
 */
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { promises as fsp, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { openDemuxer } from '../ffmpeg/demuxer';
import { libavformatVersion } from '../ffmpeg/native';
import { META_STRIDE, Meta, type PacketColumns } from '../ffmpeg/types';
import { fdPath, fingerprint, staleReason } from './fingerprint';
import { IndexEncoder } from './idx-encoder';
import type { PartialInfo, SourceIdentity } from './idx-format';

const log = getLogger('index-builder');

/** Progress of one build. */
export interface BuildProgress {
  /** Media file. */
  media: string;
  /** Packets indexed so far. */
  packets: number;
  /** Byte position reached in the media (end of the last packet). */
  bytePos: number;
  /** Media size in bytes. */
  totalBytes: number;
}

/** Options for {@link buildIndexBytes}. */
export interface BuildOptions {
  /** Called every few thousand packets. */
  onProgress?: (p: BuildProgress) => void;
  /** Stop the build (rejects with CLOSED). */
  signal?: AbortSignal;
  /** The media's fingerprint if the caller has just taken it (saves reading it again). */
  identity?: SourceIdentity;
  /**
   * The media, already open (the server opens each file once, beneath its media root): every byte of the build is
   * read through it (FFmpeg included, by `/proc/self/fd/N`), never by path. Left open.
   */
  file?: FileHandle;
}

/** The result of a build: the bytes to publish and what was found. */
export interface BuiltIndex {
  /** The complete index file. */
  bytes: Buffer;
  /** Packets indexed. */
  packets: number;
  /** Set when FFmpeg stopped before the end of the file. */
  partial: PartialInfo | null;
}

/**
 * Demuxers whose packets are the file's bytes at [pos, pos + size), unmodified, by the container's design (MP4 sample
 * tables, PCM and frame-based audio): their first packets are verified. Matroska: see MATROSKA. Any other container
 * is direct-readable only when every packet is verified during the build (AVI and raw streams pass; MPEG-TS and Ogg
 * fail at their first packet and are served through a demuxer).
 */
const DIRECT_FORMATS: ReadonlySet<string> = new Set(['mov,mp4,m4a,3gp,3g2,mj2', 'wav', 'flac', 'mp3', 'aiff', 'w64']);

/**
 * Matroska/WebM: FFmpeg's pos is a block's start and the payload follows the block header (track number, timecode,
 * flags). A block's payload is FFmpeg's packet unless the block is laced (several frames, or a lace header), its
 * track has a content encoding (compression, header stripping), FFmpeg rewrites that codec's packets (WavPack,
 * ProRes, RealAudio, text subtitles...), or FFmpeg runs a parser that re-frames them (MP3, MP2, TrueHD...). For
 * files whose every stream has a codec in MATROSKA_CODECS (none of the last two), content encoding holds for a whole
 * track: the bytes of the first packets, and of at least one packet of every stream, are compared. Lacing is per
 * block: every block's header is read and must be unlaced, with the same track number as the stream's first, and in
 * file order no payload may run past the next packet's pos. Other Matroska files have every packet compared.
 * Comparing every payload of a 1080p file cost 2-3x the build.
 */
const MATROSKA = 'matroska,webm';

/** Codecs whose packets FFmpeg's Matroska demuxer returns as the block payload, untouched and unparsed (FFmpeg 5-7). */
const MATROSKA_CODECS: ReadonlySet<string> = new Set([
  'h264', 'hevc', 'vp8', 'vp9', 'av1', 'ffv1', 'aac', 'opus', 'vorbis', 'flac', 'alac',
  'pcm_s16le', 'pcm_s16be', 'pcm_s24le', 'pcm_s24be', 'pcm_s32le', 'pcm_s32be', 'pcm_f32le', 'pcm_f64le', 'pcm_u8',
]);

/** Packets compared between FFmpeg and a plain read of the file before direct reads of a DIRECT_FORMATS file are trusted. */
const VERIFY_PACKETS = 64;

/** Payload bytes per native read while every packet is verified (bounds the build's memory, about twice this). */
const VERIFY_BYTES = 4 << 20;

/** Largest distance from a packet's pos to its payload looked for (a Matroska block header is at most 11 bytes). */
const MAX_DATA_OFFSET = 16;

/**
 * Whether FFmpeg's packet bytes in `cols` (read with data) are the file's bytes at [pos + offset, + size), where
 * `offsets` holds each stream's distance from pos to payload. A stream's first non-empty packet fixes its offset
 * (0 only, unless `mayShift`); every later packet of the stream must then match at the same offset. Packets that lie
 * within one span are checked with one read of it (the demuxer has just read it: it is in the page cache).
 */
async function bytesMatchFile(file: FileHandle, cols: PacketColumns, offsets: Map<number, number>, mayShift: boolean, scratch: Scratch): Promise<boolean> {
  const data = cols.data;
  if (data === null) return false;
  let lo = Infinity;
  let hi = 0;
  for (let i = 0; i < cols.count; i++) {
    const o = i * META_STRIDE;
    const pos = cols.meta[o + Meta.POS];
    if (pos < 0) return false;
    lo = Math.min(lo, pos);
    hi = Math.max(hi, pos + cols.meta[o + Meta.SIZE] + MAX_DATA_OFFSET);
  }
  if (cols.count === 0) return true;
  // Packets far apart (streams interleaved in distant chunks) are read one by one instead of the whole span.
  const span = hi - lo <= 2 * Math.max(data.length, VERIFY_BYTES) ? await readUpTo(file, lo, hi - lo, scratch) : null;
  const fileBytes = async (at: number, length: number): Promise<Buffer> =>
    span !== null && at - lo + length <= span.length ? span.subarray(at - lo, at - lo + length) : readUpTo(file, at, length);
  for (let i = 0; i < cols.count; i++) {
    const o = i * META_STRIDE;
    const stream = cols.meta[o + Meta.STREAM];
    const pos = cols.meta[o + Meta.POS];
    const size = cols.meta[o + Meta.SIZE];
    if (size === 0) continue;
    const payload = data.subarray(cols.meta[o + Meta.DATA], cols.meta[o + Meta.DATA] + size);
    let offset = offsets.get(stream);
    if (offset === undefined) {
      const around = await fileBytes(pos, size + (mayShift ? MAX_DATA_OFFSET : 0));
      for (let d = 0; d + size <= around.length && (d === 0 || mayShift); d++) {
        if (around.subarray(d, d + size).equals(payload)) {
          offset = d;
          break;
        }
      }
      if (offset === undefined) return false;
      offsets.set(stream, offset);
      continue;
    }
    if (!(await fileBytes(pos + offset, size)).equals(payload)) return false;
  }
  return true;
}

/**
 * Most bytes read at once for block headers, and the bytes of file read per header at most to save a read: a window
 * read from one header's pos reaches as many following headers as it can within both. One pread per header made
 * 86,251 syscalls on a 20-minute 320p MKV (measured: 105 ms of read() in the CPU profile of its 600 ms CLI build, the
 * largest cost after loading FFmpeg); windows of up to 1 MiB make it about 80 reads (the payloads between are copied
 * too: 75 MB). On a 1080p file, whose packets are tens of KiB apart, the budget keeps it at about one small read per
 * header instead of copying the whole file.
 */
const HEADER_WINDOW_BYTES = 1 << 20;
const HEADER_WINDOW_BUDGET = 8 << 10;

/**
 * Matroska block headers, checked packet by packet (see MATROSKA): a packet's `offset` bytes at pos must be its track
 * number (an EBML number of offset - 3 bytes, the same for every packet of the stream), a timecode, then flags
 * without lacing. A packet of a stream whose payload offset is not known yet (none of its packets compared so far)
 * waits until it is. Reads the headers on this thread, a window of the file at a time (the demuxer has just read
 * those bytes: they are in the page cache), yielding to the event loop now and then.
 */
class BlockHeaders {
  /** Per stream, its blocks' track number (the EBML bytes as a number, or as hex beyond 6 bytes), from its first packet checked. */
  readonly #tracks = new Map<number, number | string>();
  /** Positions of packets of streams whose offset is not known yet. */
  readonly #waiting = new Map<number, number[]>();
  #checked = 0;
  /** Where the payload of the last packet (in file order) ends, the smallest pos the next packet may have. */
  #end = 0;
  /** The bytes of the file at [#winPos, #winPos + #winLen). */
  #win: Buffer | null = null;
  #winPos = 0;
  #winLen = 0;
  /** This batch's headers to check: pos and stream, in file order (reused between batches). */
  #pos: number[] = [];
  #stream: number[] = [];

  /**
   * Check every packet of `cols`; false at the first that is not an unlaced block of its stream's track, or whose
   * payload overlaps the next packet (FFmpeg re-framed the blocks: two frames of one block share a pos).
   */
  async check(file: FileHandle, cols: PacketColumns, offsets: ReadonlyMap<number, number>): Promise<boolean> {
    const meta = cols.meta;
    const todoPos = this.#pos;
    const todoStream = this.#stream;
    todoPos.length = 0;
    todoStream.length = 0;
    for (let i = 0; i < cols.count; i++) {
      const o = i * META_STRIDE;
      const size = meta[o + Meta.SIZE];
      const stream = meta[o + Meta.STREAM];
      const pos = meta[o + Meta.POS];
      if (pos < this.#end) return false;
      // While a stream's offset is unknown its smallest value (4) is assumed here: its packets' headers are checked
      // once it is known, their overlap only with that bound (at most 7 bytes looser for track numbers above 127).
      const offset = offsets.get(stream);
      this.#end = pos + (offset ?? 4) + size;
      if (size === 0) continue;
      if (offset === undefined) {
        const list = this.#waiting.get(stream);
        if (list === undefined) this.#waiting.set(stream, [pos]);
        else list.push(pos);
        continue;
      }
      todoPos.push(pos);
      todoStream.push(stream);
    }
    const n = todoPos.length;
    for (let i = 0; i < n; i++) {
      if (++this.#checked % 1024 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const pos = todoPos[i];
      const offset = offsets.get(todoStream[i]) ?? 0;
      if (pos < this.#winPos || pos + offset > this.#winPos + this.#winLen) {
        // A window from this header that reaches the following ones while it costs at most the budget per header.
        let j = i;
        while (j + 1 < n && todoPos[j + 1] + MAX_DATA_OFFSET - pos <= Math.min(HEADER_WINDOW_BYTES, (j + 2 - i) * HEADER_WINDOW_BUDGET)) j++;
        this.#fill(file, pos, Math.max(todoPos[j] + MAX_DATA_OFFSET - pos, MAX_DATA_OFFSET));
      }
      if (!this.#one(todoStream[i], pos, offset)) return false;
    }
    for (const [stream, positions] of this.#waiting) {
      const offset = offsets.get(stream);
      if (offset === undefined) continue;
      this.#waiting.delete(stream);
      for (const pos of positions) {
        if (pos < this.#winPos || pos + offset > this.#winPos + this.#winLen) this.#fill(file, pos, MAX_DATA_OFFSET);
        if (!this.#one(stream, pos, offset)) return false;
      }
    }
    return true;
  }

  /**
   * Packets wait for their stream's offset: the next packets are read with their bytes until it is known (and a build
   * that ends so has a stream no packet of which was compared).
   */
  get needData(): boolean {
    return this.#waiting.size > 0;
  }

  /** Read the window [pos, pos + length) (fewer bytes where the file ends). */
  #fill(file: FileHandle, pos: number, length: number): void {
    this.#win ??= Buffer.allocUnsafeSlow(HEADER_WINDOW_BYTES);
    let got = 0;
    if (pos >= 0) {
      while (got < length) {
        const r = readSync(file.fd, this.#win, got, length - got, pos + got);
        if (r === 0) break;
        got += r;
      }
    }
    this.#winPos = pos;
    this.#winLen = got;
  }

  /** The header at `pos` (inside the window) of a packet of `stream`, whose payload starts `offset` bytes after it. */
  #one(stream: number, pos: number, offset: number): boolean {
    const win = this.#win;
    const at = pos - this.#winPos;
    if (win === null || pos < 0 || offset < 4 || at < 0 || at + offset > this.#winLen) return false;
    const vintLength = Math.clz32(win[at]) - 23;
    if (vintLength !== offset - 3 || (win[at + offset - 1] & 0x06) !== 0) return false;
    let track: number | string;
    if (vintLength <= 6) {
      // Exact as a double up to 6 bytes (48 bits); longer track numbers (never seen in practice) compare as hex.
      track = 0;
      for (let k = 0; k < vintLength; k++) track = track * 256 + win[at + k];
    } else {
      track = win.toString('hex', at, at + vintLength);
    }
    const known = this.#tracks.get(stream);
    if (known === undefined) this.#tracks.set(stream, track);
    return known === undefined || known === track;
  }
}

/** A buffer reused by one build's span reads (fresh ones, 8-16 MiB each, would pile up until a full collection). */
export interface Scratch {
  buf: Buffer | null;
}

/** Up to `length` bytes of `file` at `pos` (fewer where the file ends), in `scratch` when given (valid until its next use). */
export async function readUpTo(file: FileHandle, pos: number, length: number, scratch?: Scratch): Promise<Buffer> {
  let b: Buffer;
  if (scratch === undefined) b = Buffer.allocUnsafe(length);
  else {
    if (scratch.buf === null || scratch.buf.length < length) scratch.buf = Buffer.allocUnsafeSlow(length);
    b = scratch.buf.subarray(0, length);
  }
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(b, got, length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return b.subarray(0, got);
}

/** Packets per native read: large enough to amortise the thread-pool hop, small enough for smooth progress. */
const BATCH = 8192;

/** Packets encoded per turn of the event loop (see the build loop). */
const ENCODE_SLICE = 1024;

/** Index `media` (absolute path) and return the bytes of its `.idx`. */
export async function buildIndexBytes(media: string, options: BuildOptions = {}): Promise<BuiltIndex> {
  try {
    return await build(media, options);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw new CuemuxError('INTERNAL', `${media}: indexing failed: ${errorMessage(e)}`,
      { path: media, operation: 'index build', cause: e });
  }
}

async function build(media: string, options: BuildOptions): Promise<BuiltIndex> {
  const given = options.file;
  const before = options.identity ?? await fingerprint(given ?? media, media);
  const demuxer = await openDemuxer(media, given === undefined ? undefined : { source: fdPath(given) });
  let partial: PartialInfo | null = null;
  const format = demuxer.info.formatName;
  const sampled = DIRECT_FORMATS.has(format);
  const matroska = format === MATROSKA;
  // Direct reads stay possible while every packet checked so far matched the file (null: nothing checked yet).
  let direct: boolean | null = null;
  let file: FileHandle | null = null;
  /** Per stream, the distance from pos to payload found by the verification. */
  const offsets = new Map<number, number>();
  const blocks = matroska && demuxer.info.streams.every((s) => MATROSKA_CODECS.has(s.codecName)) ? new BlockHeaders() : null;
  const scratch: Scratch = { buf: null };
  const encoder = new IndexEncoder(demuxer.info.streams);
  // The next batch, asked for before this one is processed, so the demuxer (on a pool thread) reads it while this
  // thread checks and encodes the last (see below).
  let next: Promise<PacketColumns> | null = null;
  try {
    let bytePos = 0;
    for (;;) {
      if (options.signal?.aborted) throw new CuemuxError('CLOSED', `${media}: index build aborted`, { path: media, operation: 'index build' });
      // Packets are read with their bytes while their bytes are compared, on the same pass (no second open): the
      // first VERIFY_PACKETS; then every packet of a container outside DIRECT_FORMATS and MATROSKA, and for Matroska
      // the packets after a stream was met whose bytes were never compared, until one of its packets has been.
      const withData = direct === null || (direct && !sampled && (blocks === null || blocks.needData));
      const cols = await (next ?? demuxer.readColumns(!withData ? { maxPackets: BATCH }
        : direct === null ? { maxPackets: VERIFY_PACKETS, withData: true } : { maxPackets: BATCH, withData: true, maxBytes: VERIFY_BYTES }));
      next = null;
      // The next batch is read ahead only where it is read without data whatever this one holds: once direct reads
      // are ruled out, or proven for a format whose packets are not compared further (DIRECT_FORMATS), or, for
      // Matroska, once every stream's payload offset is known (only a stream never met could make the next batch
      // one to read with data, and FFmpeg's Matroska demuxer creates every stream at open). Measured in-process on a
      // 20-minute MKV (86k packets, 11 batches) on a loaded 2-vCPU machine: best of 14 builds 235 ms, 262 ms without.
      if (!withData && !cols.eof && cols.stopped === null && cols.count > 0
        && (direct === false || sampled || (blocks !== null && demuxer.info.streams.every((st) => offsets.has(st.index))))) {
        next = demuxer.readColumns({ maxPackets: BATCH });
      }
      if (direct !== false && cols.count > 0 && (withData || blocks !== null)) {
        file ??= given ?? await fsp.open(media, 'r');
        if (withData) direct = await bytesMatchFile(file, cols, offsets, !sampled, scratch);
        if (direct !== false && blocks !== null) direct = await blocks.check(file, cols, offsets);
      }
      // A slice of the batch per turn of the event loop: a server builds indexes while it answers show control, and
      // 8,192 packets in one task held its loop 13-31 ms (a console's thump waits that long); 1,024 hold it ~2 ms.
      for (let from = 0; from < cols.count; from += ENCODE_SLICE) {
        if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        encoder.add(cols, from, Math.min(cols.count, from + ENCODE_SLICE));
      }
      if (cols.count > 0) {
        const o = (cols.count - 1) * META_STRIDE;
        const pos = cols.meta[o + Meta.POS];
        if (pos >= 0) bytePos = pos + cols.meta[o + Meta.SIZE];
      }
      options.onProgress?.({ media, packets: encoder.count, bytePos, totalBytes: before.size });
      if (cols.stopped) {
        // Report the end of the last packet read: what a technician can check against the file size.
        partial = { bytePos, message: cols.stopped.message };
        break;
      }
      if (cols.eof || cols.count === 0) break;
    }
  } finally {
    // A read ahead that is abandoned (an abort, a failure) settles before the demuxer closes; its error is not ours.
    next?.catch(() => undefined);
    if (file !== given) await file?.close();
    await demuxer.close();
  }
  if (encoder.count === 0) {
    throw new CuemuxError('MEDIA_DAMAGED',
      `${media}: FFmpeg opened the file but read no packet${partial ? ` (stopped at byte ${partial.bytePos}: ${partial.message})` : ''}`,
      { path: media, operation: 'index build', details: { partial } });
  }
  const after = await fingerprint(given ?? media, media);
  const changed = staleReason(before, after) ?? (before.mtimeNs !== after.mtimeNs ? 'modification time changed' : null);
  if (changed) {
    throw new CuemuxError('INDEX_STALE', `${media}: the file changed while it was being indexed (${changed}); run the build again, or, if it is still being written, \`cuemux index build --follow\``,
      { path: media, operation: 'index build' });
  }
  const v = libavformatVersion();
  // Direct reads need both: the packets verified byte for byte (the first ones of a container that stores packets
  // unmodified and contiguously by design, or else all of them), and a position for every packet.
  // A Matroska stream none of whose packets was compared (its first one came in the file's last batch) stays unproven.
  const directReadable = direct === true && encoder.packetsWithoutPos === 0 && (blocks === null || !blocks.needData);
  const params = {
    container: demuxer.info, directReadable,
    dataOffsets: demuxer.info.streams.map((s) => (directReadable ? offsets.get(s.index) ?? 0 : 0)),
  };
  const bytes = encoder.finish(before, media, demuxer.info.formatName, (v.major << 16) | (v.minor << 8) | v.micro, partial, params);
  if (partial) log.warn('media is truncated or damaged: indexed what FFmpeg could read', { media, stoppedAt: partial.bytePos, reason: partial.message });
  if (encoder.lateStreamPackets > 0) {
    log.warn('packets of streams that appeared after the start of the file are not indexed (as ffprobe)', { media, packets: encoder.lateStreamPackets });
  }
  return { bytes, packets: encoder.count, partial };
}

