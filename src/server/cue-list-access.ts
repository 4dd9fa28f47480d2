/**
 * Which cue list files show control may load (`/cuemux/cuelist/load`): only files beneath the media roots, the folder
 * of the configured `--cue-list`, or the folder of the show state file. Any other path is refused with the same
 * PERMISSION_DENIED whether or not it exists, so OSC cannot probe the machine's files (issue 12: the old server read
 * any path, told whether it existed, and saved it for the next start). The configured `--cue-list` and a restored
 * show's list are the operator's own and are not checked here.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError } from '../common/errors';

function inside(folder: string, p: string): boolean {
  const rel = path.relative(folder, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The real path of `p`, of its folder when `p` does not exist, or `p` itself when neither resolves. */
async function realOrLexical(p: string): Promise<string> {
  try {
    return await fsp.realpath(p);
  } catch {
    try {
      return path.join(await fsp.realpath(path.dirname(p)), path.basename(p));
    } catch {
      return p;
    }
  }
}

/** The folders cue lists may be loaded from over show control. */
export class CueListFolders {
  readonly #folders: readonly string[];
  readonly #real: readonly string[];

  private constructor(folders: readonly string[], real: readonly string[]) {
    this.#folders = folders;
    this.#real = real;
  }

  /** The allowed `folders` (absolute; the first resolves relative paths); folders that do not exist are kept as given. */
  static async create(folders: readonly string[]): Promise<CueListFolders> {
    const abs = [...new Set(folders.map((f) => path.resolve(f)))];
    return new CueListFolders(abs, await Promise.all(abs.map(realOrLexical)));
  }

  /** The folders, as configured. */
  get list(): readonly string[] {
    return this.#folders;
  }

  /**
   * The absolute path to load for `requested` (relative paths are taken from the first folder, the first media root),
   * or PERMISSION_DENIED when it lies outside every allowed folder (symbolic links resolved).
   */
  async check(requested: string): Promise<string> {
    if (requested === '' || requested.includes('\0')) throw new CuemuxError('INVALID_ARGUMENT', `invalid cue list path ${JSON.stringify(requested)}`);
    const abs = path.resolve(this.#folders[0] ?? '/', requested);
    const real = await realOrLexical(abs);
    if (this.#real.some((f) => inside(f, real))) return abs;
    throw new CuemuxError('PERMISSION_DENIED', `${requested}: show control loads cue lists only from beneath the media roots, the folder of --cue-list or `
      + `the folder of the state file (${this.#folders.join(', ')}); put the list there`, { path: requested, operation: 'load cue list' });
  }
}
