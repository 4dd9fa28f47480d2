/**
 * Media identity for staleness checks. FFMS2 hashes only size + first/last MiB, so a same-size edit in the middle
 * goes unnoticed; we also hash {@link SAMPLE_COUNT} evenly spaced 64 KiB blocks (the middle one included) and record
 * mtime (ns), device and inode. Freshness is decided by size + sample hash: a touched file (mtime only) or an
 * identical copy is accepted, a same-size edit that reaches any sampled byte is caught.
 */
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { fromSystemError } from '../common/errors';
import type { SourceIdentity } from './idx-format';

/** Bytes hashed at the head and at the tail of the file (1 MiB). */
export const EDGE_BYTES = 1 << 20;
/** Bytes per sampled block (64 KiB). */
export const SAMPLE_BYTES = 64 << 10;
/** Evenly spaced sampled blocks between head and tail; odd so one sits exactly in the middle. */
export const SAMPLE_COUNT = 17;

/** Offsets of the byte ranges hashed for a file of `size` bytes (ranges may overlap for small files). */
export function sampleRanges(size: number): Array<[number, number]> {
  if (size <= 2 * EDGE_BYTES + SAMPLE_COUNT * SAMPLE_BYTES) return [[0, size]];
  const ranges: Array<[number, number]> = [[0, EDGE_BYTES]];
  const span = size - SAMPLE_BYTES;
  for (let i = 0; i < SAMPLE_COUNT; i++) {
    const at = Math.floor((span * (i + 1)) / (SAMPLE_COUNT + 1));
    ranges.push([at, at + SAMPLE_BYTES]);
  }
  ranges.push([size - EDGE_BYTES, size]);
  return ranges;
}

/**
 * The path FFmpeg (or anything else that only takes a file name) opens to reach exactly the file `file` has open:
 * opening `/proc/self/fd/N` reopens that file itself, never what its former path names now (Linux). Valid while
 * `file` is open.
 */
export function fdPath(file: fsp.FileHandle): string {
  return `/proc/self/fd/${file.fd}`;
}

/**
 * Compute the identity of the media file at `file` (reads about 3.1 MiB). Given an open handle, that file is read
 * (and left open), never whatever its path names; `name` then names it in errors.
 */
export async function fingerprint(file: string | fsp.FileHandle, name = typeof file === 'string' ? file : fdPath(file)): Promise<SourceIdentity> {
  let fh: fsp.FileHandle;
  try {
    fh = typeof file === 'string' ? await fsp.open(file, 'r') : file;
  } catch (e) {
    throw fromSystemError(e, name, 'fingerprint');
  }
  try {
    const st = await fh.stat({ bigint: true });
    const size = Number(st.size);
    const hash = createHash('sha256');
    const sizeBytes = Buffer.alloc(8);
    sizeBytes.writeBigUInt64LE(st.size);
    hash.update(sizeBytes);
    const buf = Buffer.allocUnsafe(EDGE_BYTES);
    for (const [from, to] of sampleRanges(size)) {
      let at = from;
      while (at < to) {
        const want = Math.min(buf.length, to - at);
        const { bytesRead } = await fh.read(buf, 0, want, at);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
    }
    return {
      size,
      mtimeNs: st.mtimeNs,
      dev: Number(st.dev),
      ino: Number(st.ino),
      sampleBlockBytes: SAMPLE_BYTES,
      sampleCount: SAMPLE_COUNT,
      sampleHash: hash.digest(),
    };
  } catch (e) {
    throw fromSystemError(e, name, 'fingerprint');
  } finally {
    if (fh !== file) await fh.close();
  }
}

/** Why an index no longer matches its media, or null when it does. */
export function staleReason(stored: SourceIdentity, current: SourceIdentity): string | null {
  if (stored.size !== current.size) return `media size changed (${stored.size} -> ${current.size} bytes)`;
  if (stored.sampleBlockBytes !== current.sampleBlockBytes || stored.sampleCount !== current.sampleCount) {
    return 'index was built with a different sampling scheme';
  }
  if (!stored.sampleHash.equals(current.sampleHash)) return 'media content changed (sampled hash differs)';
  return null;
}
