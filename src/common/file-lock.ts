/**
 * A cross-process file lock: exactly one process holds it; the others wait (bounded) for it. It guards index builds
 * (index-store/build-lock.ts: one process builds a given index, the others wait and then load it) and the server's
 * socket (two servers starting at once on one socket cannot both replace it).
 *
 * The lock is a file holding its owner (pid, host, boot id, process start time). It is published complete with
 * link(2) from a private temp file, which fails if the lock exists, so no process ever sees an empty lock. A waiter
 * that finds the owner dead (same host: rebooted since, pid gone, or pid reused) takes the lock over; the takeover
 * itself is guarded by a second O_EXCL file so two waiters never both delete and recreate it. Waiting is bounded:
 * LOCK_TIMEOUT names the owner.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeDeadTemps, tempPathFor } from './atomic-file';
import { CuemuxError, fromSystemError } from './errors';
import { getLogger } from './logger';

const log = getLogger('file-lock');

/** Who holds a lock. */
export interface LockOwner {
  /** Process id. */
  pid: number;
  /** Host name (a pid is only meaningful on its host). */
  host: string;
  /** Process start time in clock ticks since boot (/proc/PID/stat field 22), to detect pid reuse; 0 if unknown. */
  startTicks: number;
  /** Linux boot id (/proc/sys/kernel/random/boot_id): a lock from before a reboot is dead. Empty if unknown. */
  boot?: string;
  /** When the lock was taken (ISO 8601). */
  since: string;
}

/** Options for {@link acquireFileLock}. */
export interface FileLockOptions {
  /** Give up after this many milliseconds (default 300000 = 5 min). */
  timeoutMs?: number;
  /** Called once when the lock is found held by a live owner (so the caller can say it is waiting). */
  onWait?: (owner: LockOwner | null) => void;
  /** Abort waiting. */
  signal?: AbortSignal;
  /** Name used in messages (e.g. the media file). */
  subject?: string;
  /** What a holder of the lock is doing, in messages (e.g. "index build"); default "lock holder". */
  activity?: string;
}

/** A held lock. */
export interface FileLock {
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

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** The current process as a lock owner. */
export function selfOwner(): LockOwner {
  return { pid: process.pid, host: os.hostname(), boot: bootId(), startTicks: processStartTicks(process.pid), since: new Date().toISOString() };
}

/** True when `owner` may still be running (always true for another host: we cannot tell). */
export function ownerAlive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true;
  if (owner.boot && bootId() && owner.boot !== bootId()) return false; // the machine rebooted since
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

/** A lock file with no parsable owner (written by other software, or damaged) older than this is abandoned. */
const UNREADABLE_GRACE_MS = 10_000;
/** A takeover guard older than this was left by a process that died mid-takeover. */
const GUARD_STALE_MS = 10_000;

async function tryTakeOver(lockPath: string, seenText: string, activity: string): Promise<void> {
  const guard = `${lockPath}.takeover`;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(guard, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(e, guard, `${activity} lock takeover`);
    const st = await fsp.stat(guard).catch(() => null);
    if (st && Date.now() - st.mtimeMs > GUARD_STALE_MS) await fsp.rm(guard, { force: true }).catch(() => undefined);
    return;
  }
  try {
    const again = await readOwner(lockPath);
    if (again && again.text === seenText) {
      await fsp.rm(lockPath, { force: true });
      log.warn('took over a lock whose owner died', { lock: lockPath, holder: activity, owner: again.owner });
    }
  } finally {
    await fh.close();
    await fsp.rm(guard, { force: true }).catch(() => undefined);
  }
}

/** Create `lockPath` holding `text`, atomically and only if it does not exist (false if it does). */
async function createLock(lockPath: string, text: string, activity: string): Promise<boolean> {
  // Named like atomic-file's temporaries, so one killed between the link and the rm is removed by the next taker.
  const tmp = tempPathFor(lockPath);
  await fsp.writeFile(tmp, text, { flag: 'wx' }).catch((e: unknown) => { throw fromSystemError(e, lockPath, `create ${activity} lock`); });
  try {
    await fsp.link(tmp, lockPath);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fromSystemError(e, lockPath, `create ${activity} lock`);
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * Acquire the lock at `lockPath`, waiting (polling with backoff) while a live process holds it.
 * Errors: LOCK_TIMEOUT after `timeoutMs`, CLOSED when aborted, PERMISSION_DENIED if the directory is not writable.
 */
export async function acquireFileLock(lockPath: string, options: FileLockOptions = {}): Promise<FileLock> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const activity = options.activity ?? 'lock holder';
  const deadline = Date.now() + timeoutMs;
  const me = selfOwner();
  // A taker killed between creating its temporary and removing it left that file behind: remove those of dead pids.
  await removeDeadTemps(lockPath, (pid) => ownerAlive({ pid, host: os.hostname(), startTicks: 0, since: '' }));
  let waited = false;
  let delay = 10;
  for (;;) {
    if (options.signal?.aborted) {
      throw new CuemuxError('CLOSED', `${options.subject ?? lockPath}: gave up waiting for the ${activity} lock (aborted)`, { path: lockPath });
    }
    const text = JSON.stringify(me);
    if (await createLock(lockPath, text, activity)) {
      let released = false;
      return {
        path: lockPath,
        waited,
        release: async () => {
          if (released) return;
          released = true;
          // Remove it only if it is still ours (a takeover after a long stall would have replaced it).
          const now = await readOwner(lockPath).catch(() => null);
          if (now?.text === text) await fsp.rm(lockPath, { force: true });
        },
      };
    }
    const seen = await readOwner(lockPath).catch((e: unknown) => { throw fromSystemError(e, lockPath, `read ${activity} lock`); });
    if (seen === null) continue; // released between our attempts
    const dead = seen.owner === null ? seen.ageMs > UNREADABLE_GRACE_MS : !ownerAlive(seen.owner);
    if (dead) {
      await tryTakeOver(lockPath, seen.text, activity);
      // If another waiter holds the takeover guard, give it time instead of spinning.
      if (await fsp.access(lockPath).then(() => true, () => false)) await sleep(20);
      if (Date.now() < deadline) continue;
    }
    if (!waited) {
      waited = true;
      options.onWait?.(seen.owner);
    }
    if (Date.now() >= deadline) {
      const o = seen.owner;
      const who = o ? `process ${o.pid} on ${o.host}, since ${o.since}` : 'an unknown process';
      throw new CuemuxError('LOCK_TIMEOUT',
        `${options.subject ?? lockPath}: another ${activity} (${who}) still holds ${path.basename(lockPath)} after ${Math.round(timeoutMs / 1000)} s; ` +
        `wait for it, or if no ${activity} is running remove the lock file`, { path: lockPath, operation: `${activity} lock`, details: { owner: o } });
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 200);
  }
}
