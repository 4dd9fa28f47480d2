/**
 * Builds the index of one media file: one pass of FFmpeg's demuxer (the same av_read_frame ffprobe uses), reading
 * packet metadata only, thousands of packets per native call. Payloads are copied to JavaScript only while they are
 * compared with the file, to decide whether a server may read packets straight from it (see DIRECT_FORMATS).
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { openDemuxer, libavformatVersion } from '../ffmpeg/beamcoder-adapter';
import { META_STRIDE, Meta, type PacketColumns } from '../ffmpeg/types';
import { fingerprint, staleReason } from './fingerprint';
import { IndexEncoder, type PartialInfo, type SourceIdentity } from './idx-format';

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
 * tables, PCM and frame-based audio): their first packets are verified. Any other container is direct-readable only
 * when every packet is verified during the build (Matroska/WebM without lacing or content encoding passes; MPEG-TS,
 * Ogg and laced or header-stripped Matroska blocks fail at their first packet and fall back to demuxing).
 */
const DIRECT_FORMATS: ReadonlySet<string> = new Set(['mov,mp4,m4a,3gp,3g2,mj2', 'wav', 'flac', 'mp3', 'aiff', 'w64']);

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

/** A buffer reused by one build's span reads (fresh ones, 8-16 MiB each, would pile up until a full collection). */
interface Scratch {
  buf: Buffer | null;
}

/** Up to `length` bytes of `file` at `pos` (fewer where the file ends), in `scratch` when given (valid until its next use). */
async function readUpTo(file: FileHandle, pos: number, length: number, scratch?: Scratch): Promise<Buffer> {
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

/** Index `media` (absolute path) and return the bytes of its `.idx`. */
export async function buildIndexBytes(media: string, options: BuildOptions = {}): Promise<BuiltIndex> {
  try {
    return await build(media, options);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw new CuemuxError('INTERNAL', `${media}: indexing failed: ${e instanceof Error ? e.message : String(e)}`,
      { path: media, operation: 'index build', cause: e });
  }
}

async function build(media: string, options: BuildOptions): Promise<BuiltIndex> {
  const before = options.identity ?? await fingerprint(media);
  const demuxer = await openDemuxer(media);
  let partial: PartialInfo | null = null;
  const sampled = DIRECT_FORMATS.has(demuxer.info.formatName);
  // Direct reads stay possible while every packet checked so far matched the file (null: nothing checked yet).
  let direct: boolean | null = null;
  let file: FileHandle | null = null;
  /** Per stream, the distance from pos to payload found by the verification. */
  const offsets = new Map<number, number>();
  const scratch: Scratch = { buf: null };
  const encoder = new IndexEncoder(demuxer.info.streams);
  try {
    let bytePos = 0;
    for (;;) {
      if (options.signal?.aborted) throw new CuemuxError('CLOSED', `${media}: index build aborted`, { path: media, operation: 'index build' });
      // Packets are read with their bytes while they are being verified, on the same pass (no second open): the
      // first VERIFY_PACKETS of a DIRECT_FORMATS file, every packet of any other until one does not match.
      const verifying = direct === null || (direct && !sampled);
      const cols = await demuxer.readColumns(!verifying ? { maxPackets: BATCH }
        : direct === null ? { maxPackets: VERIFY_PACKETS, withData: true } : { maxPackets: BATCH, withData: true, maxBytes: VERIFY_BYTES });
      if (verifying && cols.count > 0) {
        file ??= await fsp.open(media, 'r');
        direct = await bytesMatchFile(file, cols, offsets, !sampled, scratch);
      }
      encoder.add(cols);
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
    await file?.close();
    await demuxer.close();
  }
  if (encoder.count === 0) {
    throw new CuemuxError('MEDIA_DAMAGED',
      `${media}: FFmpeg opened the file but read no packet${partial ? ` (stopped at byte ${partial.bytePos}: ${partial.message})` : ''}`,
      { path: media, operation: 'index build', details: { partial } });
  }
  const after = await fingerprint(media);
  const changed = staleReason(before, after) ?? (before.mtimeNs !== after.mtimeNs ? 'modification time changed' : null);
  if (changed) {
    throw new CuemuxError('INDEX_STALE', `${media}: the file changed while it was being indexed (${changed}); run the build again`,
      { path: media, operation: 'index build' });
  }
  const v = libavformatVersion();
  // Direct reads need both: the packets verified byte for byte (the first ones of a container that stores packets
  // unmodified and contiguously by design, or else all of them), and a position for every packet.
  const directReadable = direct === true && encoder.packetsWithoutPos === 0;
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

