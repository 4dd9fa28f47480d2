/**
 * Looks at a file that may still be written: its size and modification time, whether it is growing, and how long
 * it has been still (see growing-index.ts).
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * Default of `--growing-wait-ms`: a file counts as complete once it has not changed for this long, and a reader at
 * its written end waits for it to grow. 5 s outlasts ffmpeg's Matroska writer between two flushes of its 32 KiB
 * output buffer at 64 kbit/s, and a file copy's pauses; the price is that a file modified less than this long ago is
 * watched that long before it is indexed as complete.
 */
export const DEFAULT_GROWING_WAIT_MS = 5000;

/** How often a growing file is looked at (size, inode, indexed bytes), in ms. */
export const LOOK_MS = 100;

/** What a look at the file found. */
export interface Look {
  size: number;
  mtimeMs: number;
}

export async function look(file: FileHandle | string): Promise<Look> {
  const st = typeof file === 'string' ? await fsp.stat(file) : await file.stat();
  return { size: st.size, mtimeMs: st.mtimeMs };
}

function abortable(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Whether `file` is being written: true as soon as its size or modification time changes between two looks LOOK_MS
 * apart, false once it has been still for `waitMs` (counted from its modification time: a file untouched for that
 * long answers at once). No OS offers a portable, reliable "open for writing by someone" test (Linux leases need
 * the file's owner and miss writers on other NFS clients), and writers' partial markers (`NAME.part`) are
 * conventions of single tools, so growth is what is measured.
 */
export async function watchGrowth(file: FileHandle | string, waitMs = DEFAULT_GROWING_WAIT_MS, signal?: AbortSignal, maxWatchMs = Infinity): Promise<boolean> {
  const first = await look(file);
  const until = Date.now() + maxWatchMs;
  for (;;) {
    if (signal?.aborted) return false;
    const now = await look(file);
    if (now.size !== first.size || now.mtimeMs !== first.mtimeMs) return true;
    if (Date.now() - now.mtimeMs >= waitMs || Date.now() >= until) return false;
    await abortable(Math.min(LOOK_MS, waitMs), signal);
  }
}

/** Whether `file` was modified less than `waitMs` ago (it may still be being written). */
export async function recentlyModified(file: FileHandle | string, waitMs = DEFAULT_GROWING_WAIT_MS): Promise<boolean> {
  return Date.now() - (await look(file)).mtimeMs < waitMs;
}
