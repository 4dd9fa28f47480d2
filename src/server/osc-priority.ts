/**
 * Real-time priority for the OSC thread (osc-worker.ts), so that a console's `/cuemux/thump` and every show command
 * are read as soon as they arrive even when the server's other threads and other processes keep both cores busy.
 *
 * Why: the fault suite's soak on 2 vCPUs (issue #12) measured a console's thump p99 at 2.3-8.1 ms under attack against
 * 1.1-1.7 ms idle (3-5×) with the OSC thread at the process's normal priority: the fair scheduler lets attack
 * processes and the server's own busy threads finish their slices first. The thread is raised with SCHED_FIFO (as
 * src/players/thread-priority.ts does for a player's presenting thread) and SCHED_RESET_ON_FORK, so nothing it starts
 * inherits the priority. A real-time thread that reads hostile datagrams must not be able to take a core: the
 * endpoint drops refused senders before decoding and bounds its busy share (osc-duty.ts), and the kernel's real-time
 * throttling (95 % by default) is a backstop.
 *
 * Node has no call for sched_setscheduler: util-linux's `chrt` (in every Debian) sets it for this thread's id, which
 * the thread reads from /proc/thread-self (a worker thread's id is not the process id).
 */
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { errorMessage } from '../common/errors';

/**
 * Default SCHED_FIFO priority of the OSC thread (`--osc-priority`): low, below a player's presenting thread (10), so
 * a show console never delays a frame of a player on the same machine; any real-time priority runs ahead of every
 * normal thread.
 */
export const DEFAULT_OSC_PRIORITY = 5;

/** What {@link raiseCallingThread} achieved. */
export interface ThreadPriority {
  /** SCHED_FIFO priority in effect (0: normal scheduling). */
  realtime: number;
  /** The thread's id (null when /proc/thread-self cannot be read). */
  tid: number | null;
  /** Why the requested priority is not in effect (null when it is, or none was asked). */
  problem: string | null;
}

/** The kernel's id of the calling thread (from /proc/thread-self, "PID/task/TID"), or null. */
export function callingThreadId(): number | null {
  try {
    const m = /\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/**
 * Give the calling thread SCHED_FIFO priority `realtime` (1..99; 0 keeps normal scheduling). Never throws: what
 * cannot be set (no CAP_SYS_NICE and RLIMIT_RTPRIO 0, no `chrt`, no /proc) is in `problem`, for the caller to say.
 * Blocks the calling thread while `chrt` runs (a few ms): call it from the OSC thread, not the main thread.
 */
export function raiseCallingThread(realtime: number): ThreadPriority {
  const tid = callingThreadId();
  if (realtime <= 0) return { realtime: 0, tid, problem: null };
  if (tid === null) return { realtime: 0, tid, problem: 'cannot read this thread\'s id from /proc/thread-self' };
  try {
    const r = spawnSync('chrt', ['--reset-on-fork', '--fifo', '--pid', String(realtime), String(tid)], { encoding: 'utf8', timeout: 5000 });
    if (r.error !== undefined) return { realtime: 0, tid, problem: `cannot run chrt (${r.error.message})` };
    if (r.status !== 0) return { realtime: 0, tid, problem: (r.stderr || `chrt exited with ${String(r.status)}`).trim() };
  } catch (e) {
    return { realtime: 0, tid, problem: `cannot run chrt (${errorMessage(e)})` };
  }
  return { realtime, tid, problem: null };
}
