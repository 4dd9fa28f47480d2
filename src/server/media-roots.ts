/**
 * Which paths the server may serve: only files under the configured media roots. A request may name a path relative
 * to a root or an absolute one; `..` that leaves every root, absolute paths elsewhere, and symlinks whose target
 * lies outside the roots are refused with PERMISSION_DENIED. A file is opened once, and the opened file itself is
 * checked (see {@link MediaRoots.open}): the server never reopens it by path.
 */
import { constants as fsc, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { CuemuxError, fromSystemError } from '../common/errors';

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  // '..intro.mp3' is inside; only '..' itself or '../...' leaves the root.
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** The media roots, resolved once (realpath) so symlinked roots compare correctly. */
export class MediaRoots {
  readonly #roots: string[];
  readonly #real: string[];

  private constructor(roots: string[], real: string[]) {
    this.#roots = roots;
    this.#real = real;
  }

  /** Resolve `roots` (must exist and be folders). */
  static async create(roots: readonly string[]): Promise<MediaRoots> {
    if (roots.length === 0) throw new CuemuxError('INVALID_ARGUMENT', 'at least one --media-root is needed');
    const abs = roots.map((r) => path.resolve(r));
    const real: string[] = [];
    for (const r of abs) {
      const st = await fsp.stat(r).catch((e: unknown) => { throw fromSystemError(e, r, 'media root'); });
      if (!st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${r}: a media root must be a folder`, { path: r });
      real.push(await fsp.realpath(r));
    }
    return new MediaRoots(abs, real);
  }

  /** The configured roots (absolute). */
  get list(): readonly string[] {
    return this.#roots;
  }

  /**
   * Open the requested file, once, and prove that what was opened lies under a media root: the opened descriptor's
   * own path (`/proc/self/fd/N`, the kernel's answer for that file, whatever happens to the path afterwards) must be
   * inside a root's real path. The caller uses this one handle for everything (fingerprint, index build, reads), so
   * swapping a folder inside a root for a symbolic link between the check and a later use can never make the server
   * read a file outside the roots. Symbolic links that stay inside the roots are followed, as before.
   * Returns the file's path inside its root and the handle (the caller closes it); PERMISSION_DENIED / NOT_FOUND /
   * INVALID_ARGUMENT / NOT_MEDIA otherwise. Relative paths are tried against each root in order.
   */
  async open(requested: string): Promise<OpenedMediaFile> {
    if (requested === '' || requested.includes('\0')) {
      throw new CuemuxError('INVALID_ARGUMENT', `invalid media path ${JSON.stringify(requested)}`, { path: requested });
    }
    const candidates = path.isAbsolute(requested) ? [path.resolve(requested)] : this.#roots.map((r) => path.resolve(r, requested));
    const allowed = candidates.filter((c) => this.#roots.some((r) => inside(r, c)) || this.#real.some((r) => inside(r, c)));
    if (allowed.length === 0) {
      throw new CuemuxError('PERMISSION_DENIED', `${requested}: outside the served media roots (${this.#roots.join(', ')})`,
        { path: requested, operation: 'open media' });
    }
    const outside = (real: string): CuemuxError => new CuemuxError('PERMISSION_DENIED',
      `${requested}: a symbolic link to ${real}, outside the served media roots`, { path: requested, operation: 'open media' });
    let lastError: CuemuxError | undefined;
    for (const c of allowed) {
      // A first look by path, so that a link leading out is refused without opening what it points to (a FIFO or a
      // device outside the roots is never opened when nobody races us).
      let real: string;
      try {
        real = await fsp.realpath(c);
      } catch (e) {
        lastError = fromSystemError(e, c, 'open media');
        continue;
      }
      if (!this.#real.some((r) => inside(r, real))) throw outside(real);
      let file: FileHandle;
      try {
        // Non-blocking: a FIFO put in place meanwhile must not hang the open (it is refused below, not read).
        file = await fsp.open(c, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
      } catch (e) {
        const err = fromSystemError(e, c, 'open media');
        if (err.code !== 'NOT_FOUND') throw err;
        lastError = err;
        continue;
      }
      try {
        const st = await file.stat();
        const opened = await openedPath(file, st.nlink === 0);
        if (opened === null) throw new CuemuxError('NOT_FOUND', `${requested}: removed while it was being opened`, { path: requested, operation: 'open media' });
        // The check that matters: the file actually opened, not what the path named a moment ago.
        if (!this.#real.some((r) => inside(r, opened))) throw outside(opened);
        if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${requested}: is a directory, a media file is needed`, { path: requested });
        if (!st.isFile()) throw new CuemuxError('NOT_MEDIA', `${requested}: not a regular file`, { path: requested, operation: 'open media' });
        return { path: opened, file, folder: await openFolder(requested, opened, st) };
      } catch (e) {
        await file.close().catch(() => undefined);
        throw e;
      }
    }
    throw lastError ?? new CuemuxError('NOT_FOUND', `${requested}: no such file`, { path: requested });
  }
}

/** A media file opened under a root: its path inside the root, and the one handle every use of it goes through. */
export interface OpenedMediaFile {
  /** The opened file's real path (inside a media root). */
  path: string;
  /** The open file (read-only); the receiver closes it. */
  file: FileHandle;
  /**
   * The folder holding it, open (the receiver closes it): the index beside the media (`<name>.idx`, its lock and
   * temporary files) is reached through it, so a folder swapped for a link meanwhile cannot send those writes out.
   */
  folder: FileHandle;
}

/**
 * Open the folder of the media file `opened` (open as `st`) and prove it is the one holding that very file: its own
 * path is `opened`'s folder and the entry in it is the same inode. NOT_FOUND when the folder changed meanwhile.
 */
async function openFolder(requested: string, opened: string, st: Stats): Promise<FileHandle> {
  const changed = (): CuemuxError => new CuemuxError('NOT_FOUND', `${requested}: its folder changed while it was being opened`,
    { path: requested, operation: 'open media' });
  let dir: FileHandle;
  try {
    dir = await fsp.open(path.dirname(opened), fsc.O_RDONLY | fsc.O_DIRECTORY);
  } catch (e) {
    // Gone or no longer a folder: it changed. Anything else (EMFILE: the server is out of descriptors) is said as is.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw changed();
    throw fromSystemError(e, requested, 'open media');
  }
  try {
    const entry = await fsp.lstat(path.join(`/proc/self/fd/${dir.fd}`, path.basename(opened))).catch(() => null);
    if (await fsp.readlink(`/proc/self/fd/${dir.fd}`) !== path.dirname(opened) || entry?.ino !== st.ino || entry.dev !== st.dev) throw changed();
    return dir;
  } catch (e) {
    await dir.close().catch(() => undefined);
    throw e;
  }
}

/**
 * The path of the file `file` has open, as the kernel tells it (`/proc/self/fd/N`); null when the file has been
 * deleted since (`deleted`: it has no links left; the kernel then appends " (deleted)"). Linux only, as the server is.
 */
async function openedPath(file: FileHandle, deleted: boolean): Promise<string | null> {
  const p = await fsp.readlink(`/proc/self/fd/${file.fd}`);
  if (!path.isAbsolute(p) || (deleted && p.endsWith(' (deleted)'))) return null;
  return p;
}

