/**
 * Reading and publishing `.idx` files. Publication is atomic: the bytes go to a temporary file in the target's own
 * directory, are fsync'ed, then renamed over the target (and the directory fsync'ed), so a reader sees either the
 * old complete index or the new complete one, never a half-written file, even if the writer is killed.
 */
import { promises as fsp, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fromSystemError } from '../common/errors';
import { parseIndex, type ParsedIndex } from './idx-format';

/** Read and verify the index at `file`. Throws NOT_FOUND when absent, INDEX_CORRUPT when damaged. */
export function readIndexFile(file: string): ParsedIndex {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw fromSystemError(e, file, 'index load');
  }
  try {
    const size = fstatSync(fd).size;
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

/** Prefix of temporary files; `<target>.tmp-<pid>-<random>` so a dead writer's leftovers can be recognised. */
export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Atomically publish `bytes` as `target` (temp file + fsync + rename + directory fsync); `operation` names it in
 * errors. `durable: false` skips both fsyncs: the rename alone keeps readers from ever seeing half a file, which is
 * all a file that only has to survive a process crash (not a power cut) needs.
 */
export async function publishIndexFile(target: string, bytes: Uint8Array, operation = 'write index', durable = true): Promise<void> {
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
