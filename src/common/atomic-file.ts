/**
 * Atomic file publication: the bytes go to a temporary file in the target's own directory, are fsync'ed, then renamed
 * over the target (and the directory fsync'ed), so a reader sees either the old complete file or the new complete
 * one, never a half-written file, even if the writer is killed. Used for index files and the saved show state.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fromSystemError } from './errors';

/** Prefix of temporary files; `<target>.tmp-<pid>-<random>` so a dead writer's leftovers can be recognised. */
export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Atomically publish `bytes` as `target` (temp file + fsync + rename + directory fsync); `operation` names it in
 * errors. `durable: false` skips both fsyncs: the rename alone keeps readers from ever seeing half a file, which is
 * all a file that only has to survive a process crash (not a power cut) needs.
 */
export async function publishFileAtomically(target: string, bytes: Uint8Array, operation: string, durable = true): Promise<void> {
  const tmp = tempPathFor(target);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', 0o644);
    await fh.writeFile(bytes);
    if (durable) await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, target);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw fromSystemError(e, target, operation);
  }
  if (!durable) return;
  const dir = await fsp.open(path.dirname(target), 'r').catch(() => undefined);
  if (dir) {
    await dir.sync().catch(() => undefined); // some filesystems refuse directory fsync; the rename is still atomic
    await dir.close();
  }
}

/** Remove temporary files left beside `target` by writers that are no longer running. */
export async function removeDeadTemps(target: string, alive: (pid: number) => boolean): Promise<number> {
  const dir = path.dirname(target);
  const prefix = `${path.basename(target)}.tmp-`;
  let removed = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
      await fsp.rm(path.join(dir, name), { force: true });
      removed++;
    }
  }
  return removed;
}
