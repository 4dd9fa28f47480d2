/**
 * Whether a growing file's writer has finished it, from the file's own bytes: the end mark its container's muxer
 * writes last. A growing file is complete as soon as its end is well formed, not only once it has been still for
 * --growing-wait-ms (bench:progressive: the player's decoder held its last 5 pictures, B-frame reorder delay, until the
 * server counted the file complete 2 s after the writer's exit); and a writer's pause is never taken for its end
 * when its container marks the end and the mark is not there.
 *
 * - Fragmented MP4 (`empty_moov`): ffmpeg's mov muxer ends it with an `mfra` box whose last 16 bytes are an `mfro`
 *   box holding the `mfra`'s size (ISO 14496-12 8.8.11; ffmpeg 5.1 writes it for `frag_keyframe+empty_moov` to a
 *   file or a pipe, unless `+skip_trailer`).
 * - Matroska/WebM: ffmpeg's Matroska muxer writes the Segment's size as "unknown" (all ones) while it writes and
 *   rewrites it in its trailer, after the final Cues; the end is well formed once the Segment's size reaches the
 *   file's size exactly.
 * - Anything else (MPEG-TS, MP4 with its moov first, ...): no end mark; stillness is all there is.
 */
import type { FileHandle } from 'node:fs/promises';
import { readUpTo } from './index-builder';

/**
 * What a file's end says: `ended` (its end mark is there, the file is finished), `unfinished` (its container marks
 * the end and the mark is not there yet: the writer is not done, however long it pauses), `unmarked` (no mark to
 * look for).
 */
export type EndMark = 'ended' | 'unfinished' | 'unmarked';

/** Matroska's EBML header and Segment element IDs. */
const EBML_ID = 0x1a45dfa3;
const SEGMENT_ID = 0x18538067;
/** Bytes read at a Matroska file's start for its Segment's size (ffmpeg's EBML header is 35 bytes; a writer's may be longer). */
const HEAD_BYTES = 256;

/** An EBML variable-length integer at `at` of `b`: its value (null when all ones: "unknown") and length in bytes. */
function vint(b: Buffer, at: number): { value: number | null; length: number } | undefined {
  if (at >= b.length) return undefined;
  const first = b[at];
  let length = 1;
  while (length <= 8 && (first & (0x80 >> (length - 1))) === 0) length++;
  if (length > 8 || at + length > b.length) return undefined;
  let value = first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    value = value * 256 + b[at + i];
    allOnes &&= b[at + i] === 0xff;
  }
  return { value: allOnes ? null : value, length };
}

/** An EBML element ID at `at` (its marker bits kept, as IDs are written) and its length in bytes. */
function elementId(b: Buffer, at: number): { id: number; length: number } | undefined {
  const v = vint(b, at);
  if (v === undefined || v.length > 4) return undefined;
  return { id: b.readUIntBE(at, v.length), length: v.length };
}

/** The Matroska end mark of `head` (the file's first bytes) for a file of `size` bytes; undefined when not Matroska. */
function matroskaEnd(head: Buffer, size: number): EndMark | undefined {
  const ebml = elementId(head, 0);
  if (ebml?.id !== EBML_ID) return undefined;
  const headerSize = vint(head, ebml.length);
  if (headerSize?.value == null) return 'unmarked';
  const segAt = ebml.length + headerSize.length + headerSize.value;
  const seg = elementId(head, segAt);
  const segSize = seg === undefined ? undefined : vint(head, segAt + seg.length);
  if (seg?.id !== SEGMENT_ID || segSize === undefined) return 'unmarked';
  if (segSize.value === null) return 'unfinished';
  const end = segAt + seg.length + segSize.length + segSize.value;
  // Larger than the file: the trailer is being written; smaller: bytes after the Segment (not ffmpeg's): no mark.
  return end === size ? 'ended' : end > size ? 'unfinished' : 'unmarked';
}

/** The fragmented MP4 end mark of `tail` (the file's last bytes) for a file of `size` bytes. */
async function mp4End(file: FileHandle, tail: Buffer, size: number): Promise<EndMark> {
  if (tail.length < 16 || tail.readUInt32BE(tail.length - 16) !== 16 || tail.toString('latin1', tail.length - 12, tail.length - 8) !== 'mfro') return 'unfinished';
  const mfraSize = tail.readUInt32BE(tail.length - 4);
  if (mfraSize < 24 || mfraSize > size) return 'unfinished';
  const box = await readUpTo(file, size - mfraSize, 8);
  return box.length === 8 && box.readUInt32BE(0) === mfraSize && box.toString('latin1', 4, 8) === 'mfra' ? 'ended' : 'unfinished';
}

/**
 * The end mark of `file`, `size` bytes long (its size at a look). `fragmented`: it is a fragmented MP4 (see
 * fragmentedMp4), whose end mark is the `mfra` box. Reads HEAD_BYTES at its start and 16 at its end (one more read of 8
 * for a fragmented MP4 that ends in an `mfro`).
 */
export async function endMark(file: FileHandle, size: number, fragmented: boolean): Promise<EndMark> {
  if (fragmented) return mp4End(file, await readUpTo(file, Math.max(0, size - 16), Math.min(16, size)), size);
  return matroskaEnd(await readUpTo(file, 0, Math.min(HEAD_BYTES, size)), size) ?? 'unmarked';
}
