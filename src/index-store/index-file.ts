/**
 * Reading and publishing `.idx` files. Publication is atomic and durable (common/atomic-file.ts), so a reader sees
 * either the old complete index or the new complete one, never a half-written file, even if the writer is killed.
 */
import { constants as fsc, promises as fsp, openSync, readSync, closeSync, fstatSync, type Stats } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { publishFileAtomically } from '../common/atomic-file';
import { CuemuxError, fromSystemError } from '../common/errors';
import { parseIndex, parseIndexUnverified, verifyIndexSteps, type ParsedIndex } from './idx-format';

/** Bytes of an index beyond its packets: header, meta (strings, stream records, codec parameters), padding, CRC. */
const INDEX_FIXED_BYTES = 1 << 20;
/**
 * Index bytes per media byte, at most. One packet takes at most 64 bytes of index: its entry (head byte, then
 * varints of stream, pos, size, dts, pts, duration: 43 bytes at the widest), a seek row (12), a frame row (8) and a
 * share of the block table; and every packet takes at least one byte of the media file (its payload, or for an
 * empty packet its container record). Codec parameters (extradata, e.g. a Matroska attachment) are bytes of the
 * media too. So no media file of S bytes can need more than 1 MiB + 64 × S bytes of index; real indexes are about
 * 8–11 bytes per packet. Documented in docs/idx-format.md.
 */
const INDEX_BYTES_PER_MEDIA_BYTE = 64;

/** The largest index a media file of `mediaSize` bytes can need (see {@link INDEX_BYTES_PER_MEDIA_BYTE}). */
export function maxIndexBytes(mediaSize: number): number {
  return INDEX_FIXED_BYTES + INDEX_BYTES_PER_MEDIA_BYTE * mediaSize;
}

function kindOf(st: Stats): string {
  return st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
}

/** Refuse what cannot be an index before reading a byte of it: anything but a regular file, or too large. */
function checkIndexStat(file: string, st: Stats, maxBytes: number | undefined): void {
  if (!st.isFile()) {
    throw new CuemuxError('INDEX_CORRUPT', `${file}: index is corrupt (${kindOf(st)}, not a regular file)`, { path: file, operation: 'index load' });
  }
  if (maxBytes !== undefined && st.size > maxBytes) {
    throw new CuemuxError('INDEX_CORRUPT', `${file}: index is corrupt (${st.size} bytes, more than the ${maxBytes} an index of this media can need; not read)`,
      { path: file, operation: 'index load' });
  }
}

/**
 * Opened read-only and non-blocking: a FIFO at the path opens at once (and is then refused) instead of holding
 * the open until a writer comes; the type is checked on the opened fd, so a file swapped in between is seen.
 */
const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NONBLOCK;

/**
 * Read and verify the index at `file`, synchronously (tools and tests; the server uses {@link loadIndexFile}).
 * Throws NOT_FOUND when absent, INDEX_CORRUPT when damaged, not a regular file, or larger than `maxBytes`.
 */
export function readIndexFile(file: string, maxBytes?: number): ParsedIndex {
  let fd: number;
  try {
    fd = openSync(file, OPEN_FLAGS);
  } catch (e) {
    throw fromSystemError(e, file, 'index load');
  }
  try {
    const st = fstatSync(fd);
    checkIndexStat(file, st, maxBytes);
    const size = st.size;
    // allocUnsafeSlow: an unpooled buffer at offset 0 of its own ArrayBuffer, so 8-byte tables can be viewed in place.
    const buf = Buffer.allocUnsafeSlow(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, buf, at, size - at, at);
      if (n === 0) break;
      at += n;
    }
    return parseIndex(at === size ? buf : buf.subarray(0, at), file);
  } catch (e) {
    throw fromSystemError(e, file, 'index load');
  } finally {
    closeSync(fd);
  }
}

/**
 * Read and verify the index at `file` off the event loop (reads in libuv's pool, the check of every entry in steps
 * between other work); only a regular file of at most `maxBytes` (from {@link maxIndexBytes} of the media's size)
 * is read. Throws as {@link readIndexFile}.
 */
export async function loadIndexFile(file: string, maxBytes: number): Promise<ParsedIndex> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, OPEN_FLAGS);
  } catch (e) {
    throw fromSystemError(e, file, 'index load');
  }
  try {
    const st = await fh.stat();
    checkIndexStat(file, st, maxBytes);
    const size = st.size;
    const buf = Buffer.allocUnsafeSlow(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(buf, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    const parsed = parseIndexUnverified(at === size ? buf : buf.subarray(0, at), file);
    // Every entry is checked (about 70 ns each), a millisecond at a time between other work.
    const steps = verifyIndexSteps(parsed, file);
    while (steps.next().done !== true) await nextTurn();
    return parsed;
  } catch (e) {
    throw fromSystemError(e, file, 'index load');
  } finally {
    await fh.close();
  }
}

/** Atomically and durably publish `bytes` as the index file `target` (errors name the operation "write index"). */
export function publishIndexFile(target: string, bytes: Uint8Array): Promise<void> {
  return publishFileAtomically(target, bytes, 'write index');
}
