/**
 * Whether an ISO BMFF (MP4/MOV) file can be read before it is complete: FFmpeg's MP4 demuxer needs the `moov` box
 * (the sample tables) before it can return any packet. A muxer writing without `faststart` puts `moov` after the
 * media data, when it finishes (ffmpeg's default for `-f mp4` to a file), so such a file is unreadable until its last
 * bytes are written. A `moov` first (faststart, copied progressively) or fragmented MP4 (`empty_moov`: an empty moov
 * first, then moof/mdat fragments) can be read while it grows.
 */
import type { FileHandle } from 'node:fs/promises';

/** Most top-level boxes walked before giving up (a real file has a handful: ftyp, free, mdat, moov, ...). */
const MAX_BOXES = 1024;

/** Where the `moov` box is (its top-level box's offset and size), or why there is none yet (see notPlayableUntilComplete). */
type MoovPlace = { pos: number; size: number } | { why: string } | null;

/**
 * Walk `file`'s top-level boxes by their sizes (a read of 16 bytes per box) to its `moov`: null when it is not ISO
 * BMFF; `why` when a box runs past the written end (or an `mdat` of size 0: "to the end of the file", what a muxer
 * writes before it knows the size) before a `moov`.
 */
async function findMoov(file: FileHandle): Promise<MoovPlace> {
  const size = (await file.stat()).size;
  const head = Buffer.alloc(16);
  let pos = 0;
  for (let n = 0; n < MAX_BOXES && pos + 8 <= size; n++) {
    const { bytesRead } = await file.read(head, 0, 16, pos);
    if (bytesRead < 8) break;
    const type = head.toString('latin1', 4, 8);
    if (n === 0 && type !== 'ftyp') return null; // not ISO BMFF (or a QuickTime file without ftyp): FFmpeg decides
    let boxSize = head.readUInt32BE(0);
    if (boxSize === 1) {
      if (bytesRead < 16) break;
      boxSize = Number(head.readBigUInt64BE(8));
    }
    if (type === 'moov') return { pos, size: boxSize };
    if (boxSize === 0 || boxSize < 8 || pos + boxSize > size) {
      return {
        why: type === 'mdat'
          ? `MP4 whose moov box (its sample tables) comes after the media data (${type} at byte ${pos} runs to the written end): written without faststart, it is not playable until complete`
          : `MP4 with no moov box in its ${size} bytes so far (box "${type.replace(/[^\x20-\x7e]/g, '?')}" at byte ${pos} runs past the written end): not playable until complete`,
      };
    }
    pos += boxSize;
  }
  return pos >= 8 ? { why: `MP4 with no moov box in its ${size} bytes: not playable until complete` } : null;
}

/**
 * Why `file` cannot be read until it is complete: a sentence naming the reason, or null when it is not ISO BMFF or
 * its `moov` box comes before the end of what is written.
 */
export async function notPlayableUntilComplete(file: FileHandle): Promise<string | null> {
  const moov = await findMoov(file);
  return moov !== null && 'why' in moov ? moov.why : null;
}

/** Most bytes of a `moov` searched for its `mvex` (a fragmented MP4's `empty_moov` is a few KiB). */
const MVEX_SEARCH_BYTES = 256 << 10;

/**
 * Whether `file` is a fragmented MP4: its `moov` (within its first MVEX_SEARCH_BYTES) holds an `mvex` box. Null while
 * its `moov` is not all written yet: not known (ffmpeg writes `mvex` after the tracks, so a partial `moov` would read
 * as not fragmented, and the file would be followed as one without an end mark).
 */
export async function fragmentedMp4(file: FileHandle): Promise<boolean | null> {
  const moov = await findMoov(file);
  if (moov === null || 'why' in moov) return false;
  if (moov.pos + moov.size > (await file.stat()).size) return null;
  const b = Buffer.alloc(Math.min(moov.size, MVEX_SEARCH_BYTES));
  const { bytesRead } = await file.read(b, 0, b.length, moov.pos);
  return b.subarray(0, bytesRead).includes('mvex', 0, 'latin1');
}
