/**
 * How to type this CLI in the shell it was started from, for the commands it prints (`Connect: ... status`). In a
 * checkout `cuemux` is not on the PATH (`npm start` runs `node bin/cuemux.js`), so a bare `cuemux` would not paste.
 */
import { realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';

function real(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/** `p` quoted for a POSIX shell when it needs it. */
function shellWord(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that runs this CLI: `cuemux` when that name on the PATH is this very launcher (npm link, a global
 * install), else `node bin/cuemux.js` (relative to `cwd` when the launcher is below it, absolute otherwise). Outside the
 * launcher (in-process use) it is `cuemux`.
 * @param launcher - the script node ran (default process.argv[1])
 * @param env - for PATH (default process.env)
 * @param cwd - the working folder the printed command will be typed in (default $INIT_CWD, the folder `npm start`
 *   was typed in, else process.cwd())
 */
export function cliCommand(launcher: string | undefined = process.argv[1], env: NodeJS.ProcessEnv = process.env, cwd: string = env.INIT_CWD ?? process.cwd()): string {
  if (launcher === undefined || !/^cuemux(\.js)?$/.test(path.basename(launcher))) return 'cuemux';
  const self = real(launcher);
  if (self === null) return 'cuemux';
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'cuemux');
    if (real(candidate) === self && (statSync(candidate, { throwIfNoEntry: false })?.mode ?? 0) & 0o111) return 'cuemux';
  }
  const rel = path.relative(cwd, self);
  return `node ${shellWord(rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : self)}`;
}
