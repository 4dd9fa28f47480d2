/**
 * Priority of a player's presenting thread (the main thread: it wakes for every display tick or audio period).
 *
 * Why real-time: measured with bench:sync on 2 cores (two 1080p decoders, the server and the audio player running),
 * a presenting thread at nice -10 still missed its 2 ms polling window on 7 % of the ticks (tick lateness p99 4 ms):
 * the fair scheduler lets a nice-0 decoding thread finish its slice first. The same thread under SCHED_FIFO met the
 * tick within 0.15 ms at p99. That is what audio servers do too (JACK, PipeWire: SCHED_FIFO for the period thread).
 *
 * Only the presenting thread is raised, and with SCHED_RESET_ON_FORK, so threads it creates later (libuv's pool,
 * FFmpeg's decoding threads) start at normal priority. Node has no call for sched_setscheduler, so util-linux's
 * `chrt` (in every Debian) does it for this thread id (the main thread's id is the process id). The thread sleeps
 * between ticks and polls for at most `spinNs` before each: a bounded share of one core, and the kernel's real-time
 * throttling (95 % by default) is a backstop.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import * as os from 'node:os';
import { errorMessage } from '../common/errors';

/** What {@link raisePresentingThread} achieved. */
export interface PriorityOutcome {
  /** SCHED_FIFO priority in effect, or 0 (normal scheduling). */
  realtime: number;
  /** Nice value in effect for this thread. */
  nice: number;
  /** Why a requested priority could not be set (empty when everything asked is in effect). */
  problems: string[];
}

/**
 * Give the calling thread (call it from the main thread only) SCHED_FIFO priority `realtime` (1..99; 0 = keep normal
 * scheduling) and nice value `nice` (-20..19; it applies when real-time scheduling is off or refused). Never throws:
 * what cannot be set (no CAP_SYS_NICE, RLIMIT_RTPRIO 0, no `chrt`) is in `problems`, for the caller to say.
 */
export function raisePresentingThread(realtime: number, nice: number): PriorityOutcome {
  const problems: string[] = [];
  try {
    os.setPriority(nice);
  } catch (e) {
    problems.push(`nice ${nice}: ${errorMessage(e)}`);
  }
  let rt = 0;
  if (realtime > 0) {
    const r = spawnSync('chrt', ['--reset-on-fork', '--fifo', '--pid', String(realtime), String(process.pid)], { encoding: 'utf8', timeout: 5000 });
    if (r.error !== undefined) problems.push(`SCHED_FIFO ${realtime}: cannot run chrt (${r.error.message})`);
    else if (r.status !== 0) problems.push(`SCHED_FIFO ${realtime}: ${(r.stderr || `chrt exited with ${r.status}`).trim()}`);
    else rt = realtime;
  }
  let effective = nice;
  try {
    effective = os.getPriority();
  } catch {
    // keep the requested value
  }
  return { realtime: rt, nice: effective, problems };
}

/**
 * Nice value of a player's decoding (FFmpeg's decoding threads, libuv's pool threads that create them, V8's helper
 * threads) when allowed: above the machine's other work at nice 0, below the decode worker's own thread (-5), which
 * hands a GO on. Why: in bench:go on 2 cores the frames decoded late (held ticks) cluster 0.1-0.8 s after a GO, while
 * these threads, at nice 0, share the cores as equals with a peer decoding a GOP (asked 0.5 s after each GO), the
 * server and the other player; and a machine that runs a show runs its player first.
 */
export const DECODE_NICE = -3;

/**
 * Give every thread of this process but the main thread and the calling one nice value `nice` (on Linux a thread's
 * nice value is its own; threads created later inherit their creator's, so FFmpeg's decoding threads, created by
 * libuv's pool threads, get it too). Returns how many threads took it: 0 without the privilege to raise (root,
 * CAP_SYS_NICE) or off Linux. Never throws.
 */
export function setOtherThreadsNice(nice: number): number {
  let self: number;
  let tids: number[];
  try {
    self = Number(readlinkSync('/proc/thread-self').split('/').pop());
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    return 0;
  }
  let set = 0;
  for (const tid of tids) {
    if (tid === process.pid || tid === self) continue;
    try {
      os.setPriority(tid, nice);
      set++;
    } catch {
      // not allowed, or the thread is gone
    }
  }
  return set;
}
