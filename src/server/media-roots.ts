/**
 * Which paths the server may serve: only files under the configured media roots. A request may name a path relative
 * to a root or an absolute one; `..` that leaves every root, absolute paths elsewhere, and symlinks whose target
 * lies outside the roots are refused with PERMISSION_DENIED.
 */
import { promises as fsp } from 'node:fs';
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
   * The real path of the requested file, or PERMISSION_DENIED / NOT_FOUND / INVALID_ARGUMENT.
   * Relative paths are tried against each root in order.
   */
  async resolve(requested: string): Promise<string> {
    if (requested === '' || requested.includes('\0')) {
      throw new CuemuxError('INVALID_ARGUMENT', `invalid media path ${JSON.stringify(requested)}`, { path: requested });
    }
    const candidates = path.isAbsolute(requested) ? [path.resolve(requested)] : this.#roots.map((r) => path.resolve(r, requested));
    const allowed = candidates.filter((c) => this.#roots.some((r) => inside(r, c)) || this.#real.some((r) => inside(r, c)));
    if (allowed.length === 0) {
      throw new CuemuxError('PERMISSION_DENIED', `${requested}: outside the served media roots (${this.#roots.join(', ')})`,
        { path: requested, operation: 'open media' });
    }
    let lastError: CuemuxError | undefined;
    for (const c of allowed) {
      let real: string;
      try {
        real = await fsp.realpath(c);
      } catch (e) {
        lastError = fromSystemError(e, c, 'open media');
        continue;
      }
      if (!this.#real.some((r) => inside(r, real))) {
        throw new CuemuxError('PERMISSION_DENIED', `${requested}: a symbolic link to ${real}, outside the served media roots`,
          { path: requested, operation: 'open media' });
      }
      const st = await fsp.stat(real).catch((e: unknown) => { throw fromSystemError(e, requested, 'open media'); });
      if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${requested}: is a directory, a media file is needed`, { path: requested });
      return real;
    }
    throw lastError ?? new CuemuxError('NOT_FOUND', `${requested}: no such file`, { path: requested });
  }
}
