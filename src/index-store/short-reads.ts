/**
 * Packets FFmpeg read short at a growing file's written end: which packets of a read batch are known whole (see
 * growing-index.ts, which reads them again once the file has grown).
 */
import { META_STRIDE, Meta, PacketFlag, type PacketColumns } from '../ffmpeg/types';

/** FFmpeg's MP4/QuickTime demuxer's name (see lastWhole). */
const MP4_FORMAT = /(^|,)mp4(,|$)/;

/**
 * Whether the last packet of `read` (a batch in which the demuxer stopped) is known whole: in MP4 (a packet is its
 * `size` bytes at `pos`, and a short read happens only at the end of the file) a packet that ends before `floor`, a
 * size the file had before the read began, was not cut by it. Kept, it is indexed now instead of once the file has
 * been still for waitMs (the last packet of a file just written waited the whole --growing-wait-ms: bench:progressive's
 * player was 2.17 s behind the writer with 2000). MPEG-TS is not: a PES flushed at the stop spans more bytes than its
 * size.
 */
export function lastWhole(read: PacketColumns, floor: number, formatName: string): boolean {
  if (read.count === 0 || !MP4_FORMAT.test(formatName)) return false;
  const o = (read.count - 1) * META_STRIDE;
  const pos = read.meta[o + Meta.POS];
  return pos >= 0 && pos + read.meta[o + Meta.SIZE] < floor;
}

/**
 * Where `read` holds a packet FFmpeg read short at the written end: the first packet flagged corrupt that ends at
 * or past `sizeAtOpen` (the file's size before its demuxer opened: a short read happens at a written end, which is
 * never before it), else `read.count`. FFmpeg's MP4 demuxer returns what it could read of a sample, flagged
 * corrupt, when the file stops mid-sample for the demuxer's read timeout (a writer's pause longer than
 * --growing-wait-ms), and in a batch that has not stopped (the stop comes at the next read): indexed, it was found
 * different when the file was read again after the pause (MEDIA_DAMAGED for a file only paused). Such a packet
 * ends the demuxer's reading; the next demuxer reads it again, whole. A packet flagged corrupt that ends before
 * the size at its demuxer's open is the file's own and is kept.
 */
export function truncatedAt(read: PacketColumns, sizeAtOpen: number): number {
  for (let i = 0; i < read.count; i++) {
    const o = i * META_STRIDE;
    const pos = read.meta[o + Meta.POS];
    if ((read.meta[o + Meta.FLAGS] & PacketFlag.CORRUPT) !== 0 && pos >= 0 && pos + read.meta[o + Meta.SIZE] >= sizeAtOpen) return i;
  }
  return read.count;
}
