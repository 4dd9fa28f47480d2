/**
 * Builds the index of one media file: one pass of FFmpeg's demuxer (the same av_read_frame ffprobe uses), reading
 * packet metadata only, thousands of packets per native call. Payloads are never copied to JavaScript.
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { promises as fsp } from 'node:fs';
import { openDemuxer, libavformatVersion, packetAt } from '../ffmpeg/beamcoder-adapter';
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

/** Demuxers whose packets are the file's bytes at [pos, pos + size), unmodified (still verified per file). */
const DIRECT_FORMATS: ReadonlySet<string> = new Set(['mov,mp4,m4a,3gp,3g2,mj2', 'wav', 'flac', 'mp3', 'aiff', 'w64']);

/** Packets compared between FFmpeg and a plain read of the file before direct reads are trusted. */
const VERIFY_PACKETS = 64;

/**
 * Whether FFmpeg's packet bytes are the file's bytes at [pos, pos + size) for this file, judged on its first packets
 * (`cols`, read with data; true for MP4/MOV, WAV, FLAC, MP3; false for MKV, MPEG-TS...). A server then reads packets
 * straight from the file, and every client reads only the bytes of its own streams.
 */
async function directReadable(media: string, cols: PacketColumns): Promise<boolean> {
  if (cols.count === 0) return false;
  const fh = await fsp.open(media, 'r');
  try {
    for (let i = 0; i < cols.count; i++) {
      const p = packetAt(cols, i);
      if (p.pos === null) return false;
      const b = Buffer.allocUnsafe(p.size);
      const { bytesRead } = await fh.read(b, 0, p.size, p.pos);
      if (bytesRead !== p.size || !b.equals(p.data)) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
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
  let direct: boolean | null = null;
  const encoder = new IndexEncoder(demuxer.info.streams);
  try {
    let bytePos = 0;
    for (;;) {
      if (options.signal?.aborted) throw new CuemuxError('CLOSED', `${media}: index build aborted`, { path: media, operation: 'index build' });
      // The first packets are read with their bytes, to check direct reads on the same pass (no second open).
      const first = encoder.count === 0 && direct === null;
      const cols = await demuxer.readColumns(first ? { maxPackets: VERIFY_PACKETS, withData: true } : { maxPackets: BATCH });
      if (first) direct = await directReadable(media, cols);
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
  // Direct reads need all three: a container known to store packets unmodified and contiguously, the first packets
  // verified byte for byte, and a position for every packet.
  const params = {
    container: demuxer.info,
    directReadable: DIRECT_FORMATS.has(demuxer.info.formatName) && direct === true && encoder.packetsWithoutPos === 0,
  };
  const bytes = encoder.finish(before, media, demuxer.info.formatName, (v.major << 16) | (v.minor << 8) | v.micro, partial, params);
  if (partial) log.warn('media is truncated or damaged: indexed what FFmpeg could read', { media, stoppedAt: partial.bytePos, reason: partial.message });
  if (encoder.lateStreamPackets > 0) {
    log.warn('packets of streams that appeared after the start of the file are not indexed (as ffprobe)', { media, packets: encoder.lateStreamPackets });
  }
  return { bytes, packets: encoder.count, partial };
}

