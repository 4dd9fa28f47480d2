/**
 * Per-test scratch folders under the OS temp dir, removed after the test file.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

/** A new empty folder (mode 0777 so a test may use it as another user). */
export async function scratchDir(label: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `cuemux-${label}-`));
  await fsp.chmod(dir, 0o777);
  made.push(dir);
  return dir;
}

/** Copy `file` into `dir` (optionally under another name) and return the copy's path. */
export async function copyInto(file: string, dir: string, name = path.basename(file)): Promise<string> {
  const to = path.join(dir, name);
  await fsp.copyFile(file, to);
  return to;
}

/** Remove every folder made by {@link scratchDir} (call from a root-level after hook). */
export async function removeScratch(): Promise<void> {
  while (made.length > 0) {
    const dir = made.pop() as string;
    await fsp.chmod(dir, 0o755).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

after(removeScratch);

/**
 * Date `file`'s last modification a minute back: a file at rest, as damaged media usually is. One modified within
 * `--growing-wait-ms` (5 s) that fails to index is followed as a file still being written first (growing.test.ts).
 */
export async function atRest(file: string): Promise<string> {
  const t = new Date(Date.now() - 60_000);
  await fsp.utimes(file, t, t);
  return file;
}
