/**
 * A cross-process build lock: exactly one process builds a given index; the others wait and then load it.
 *
 * The lock is a file created with O_EXCL holding its owner (pid, host, process start time). A waiter that finds
 * the owner dead (same host, pid gone or reused) takes the lock over; the takeover itself is guarded by a second
 * O_EXCL file so two waiters never both delete and recreate it. Waiting is bounded: LOCK_TIMEOUT names the owner.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CuemuxError, fromSystemError } from '../common/errors';
import { getLogger } from '../common/logger';

const log = getLogger('build-lock');

/** Who holds a lock. */
export interface LockOwner {
  /** Process id. */
  pid: number;
  /** Host name (a pid is only meaningful on its host). */
  host: string;
  /** Process start time in clock ticks since boot (/proc/PID/stat field 22), to detect pid reuse; 0 if unknown. */
  startTicks: number;
  /** When the lock was taken (ISO 8601). */
  since: string;
}

/** Options for {@link acquireBuildLock}. */
export interface AcquireOptions {
  /** Give up after this many milliseconds (default 300000 = 5 min). */
  timeoutMs?: number;
  /** Called once when the lock is found held by a live owner (so the caller can say it is waiting). */
  onWait?: (owner: LockOwner | null) => void;
  /** Abort waiting. */
  signal?: AbortSignal;
  /** Name used in messages (the media file). */
  subject?: string;
}

/** A held lock. */
export interface BuildLock {
  /** The lock file. */
  readonly path: string;
  /** Whether we had to wait for another owner before getting it. */
  readonly waited: boolean;
  /** Release the lock (idempotent). */
  release(): Promise<void>;
}

function processStartTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]) || 0;
  } catch {
    return 0;
  }
}

/** The current process as a lock owner. */
export function selfOwner(): LockOwner {
  return { pid: process.pid, host: os.hostname(), startTicks: processStartTicks(process.pid), since: new Date().toISOString() };
}

/** True when `owner` may still be running (always true for another host: we cannot tell). */
export function ownerAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (owner.startTicks !== 0) {
    const now = processStartTicks(owner.pid);
    if (now !== 0 && now !== owner.startTicks) return false; // pid reused by another process
  }
  return true;
}

async function readOwner(file: string): Promise<{ owner: LockOwner | null; text: string; ageMs: number } | null> {
  try {
    const [text, st] = await Promise.all([fsp.readFile(file, 'utf8'), fsp.stat(file)]);
    let owner: LockOwner | null = null;
    try {
      owner = JSON.parse(text) as LockOwner;
    } catch {
      owner = null; // written by a process that died between create and write
    }
    return { owner, text, ageMs: Date.now() - st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** A lock file with no parsable owner older than this is considered abandoned. */
const UNREADABLE_GRACE_MS = 5000;

async function tryTakeOver(lockPath: string, seenText: string): Promise<void> {
  const guard = `${lockPath}.takeover`;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(guard, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const st = await fsp.stat(guard).catch(() => null);
    if (st && Date.now() - st.mtimeMs > UNREADABLE_GRACE_MS) await fsp.rm(guard, { force: true });
    return;
  }
  try {
    const again = await readOwner(lockPath);
    if (again && again.text === seenText) {
      await fsp.rm(lockPath, { force: true });
      log.warn('took over a build lock whose owner died', { lock: lockPath, owner: again.owner });
    }
  } finally {
    await fh.close();
    await fsp.rm(guard, { force: true });
  }
}

/**
 * Acquire the lock at `lockPath`, waiting (polling with backoff) while a live process holds it.
 * Errors: LOCK_TIMEOUT after `timeoutMs`, CLOSED when aborted, PERMISSION_DENIED if the directory is not writable.
 */
export async function acquireBuildLock(lockPath: string, options: AcquireOptions = {}): Promise<BuildLock> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const deadline = Date.now() + timeoutMs;
  const me = selfOwner();
  let waited = false;
  let delay = 10;
  for (;;) {
    if (options.signal?.aborted) {
      throw new CuemuxError('CLOSED', `${options.subject ?? lockPath}: gave up waiting for the index build lock (aborted)`, { path: lockPath });
    }
    try {
      const fh = await fsp.open(lockPath, 'wx');
      try {
        await fh.writeFile(JSON.stringify(me));
      } finally {
        await fh.close();
      }
      let released = false;
      return {
        path: lockPath,
        waited,
        release: async () => {
          if (released) return;
          released = true;
          await fsp.rm(lockPath, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(e, lockPath, 'create index lock');
    }
    const seen = await readOwner(lockPath);
    if (seen === null) continue; // released between our attempts
    const dead = seen.owner === null ? seen.ageMs > UNREADABLE_GRACE_MS : !ownerAlive(seen.owner);
    if (dead) {
      await tryTakeOver(lockPath, seen.text);
      continue;
    }
    if (!waited) {
      waited = true;
      options.onWait?.(seen.owner);
    }
    if (Date.now() >= deadline) {
      const o = seen.owner;
      const who = o ? `process ${o.pid} on ${o.host}, since ${o.since}` : 'an unknown process';
      throw new CuemuxError('LOCK_TIMEOUT',
        `${options.subject ?? lockPath}: another index build (${who}) still holds ${path.basename(lockPath)} after ${Math.round(timeoutMs / 1000)} s; ` +
        'wait for it, or if no build is running remove the lock file', { path: lockPath, operation: 'index lock', details: { owner: o } });
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 200);
  }
}
