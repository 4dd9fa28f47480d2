/**
 * The index build lock: exactly one process builds a given index; the others wait and then load it. A file lock
 * (common/file-lock.ts) beside the index (`<index>.lock`), whose messages say it is an index build that holds it.
 */
import { acquireFileLock, type FileLock, type FileLockOptions } from '../common/file-lock';

/** A held index build lock. */
export type BuildLock = FileLock;

/**
 * Acquire the index build lock at `lockPath`, waiting while a live process holds it.
 * Errors: LOCK_TIMEOUT after `timeoutMs`, CLOSED when aborted, PERMISSION_DENIED if the directory is not writable.
 */
export function acquireBuildLock(lockPath: string, options: Omit<FileLockOptions, 'activity'> = {}): Promise<BuildLock> {
  return acquireFileLock(lockPath, { ...options, activity: 'index build' });
}
