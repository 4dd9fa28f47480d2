/**
 * Cold page cache for "not yet open" figures: a file's pages dropped from the page cache (written back first, then
 * posix_fadvise(POSIX_FADV_DONTNEED), through python3's os module: Node has no call for it), so its next open reads
 * the disk as a file not touched since boot would. `fincore` (util-linux) says what is still resident.
 */
import { spawnSync } from 'node:child_process';

const DROP = [
  'import os, sys',
  'for p in sys.argv[1:]:',
  '    fd = os.open(p, os.O_RDONLY)',
  '    try:',
  '        os.fdatasync(fd)',
  '        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)',
  '    finally:',
  '        os.close(fd)',
].join('\n');

/** Drop the pages of `files` from the page cache (throws when python3 fails). */
export function dropPageCache(files: readonly string[]): void {
  if (files.length === 0) return;
  const r = spawnSync('/usr/bin/python3', ['-c', DROP, ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dropping the page cache of ${files.length} files failed: ${r.stderr || r.error?.message}`);
}

/** Bytes of `files` resident in the page cache (fincore), or null when fincore is not there. */
export function residentBytes(files: readonly string[]): number | null {
  if (files.length === 0) return 0;
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', ...files], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return r.stdout.trim().split('\n').reduce((a, l) => a + (Number(l) || 0), 0);
}
