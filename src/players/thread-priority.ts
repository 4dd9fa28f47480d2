/**
 * Priority of a player's presenting thread (the main thread: it wakes for every display tick or audio period).
 *
 * Why real-time: measured with bench:sync on 2 cores (two 1080p decoders, the server and the audio player running),
 * a presenting thread at nice -10 still missed its 2 ms polling window on 7 % of the ticks (tick lateness p99 4 ms):
 * the fair scheduler lets a nice-0 decoding thread finish its slice first. The same thread under SCHED_FIFO met the
 * tick within 0.15 ms at p99. That is what audio servers do too (JACK, PipeWire: SCHED_FIFO for the period thread).
 *
 * The presenting thread is raised with SCHED_RESET_ON_FORK, so threads it creates later (libuv's pool, FFmpeg's
 * decoding threads) start at normal priority; the decode worker then sets its own thread (nice -5, or SCHED_FIFO below this
 * one with --worker-rt-priority: decode-worker.ts). Node has no call for sched_setscheduler, so util-linux's
 * `chrt` (in every Debian) does it for this thread id (the main thread's id is the process id). The thread sleeps
 * between ticks and polls for at most `spinNs` before each: a bounded share of one core, and the kernel's real-time
 * throttling (95 % by default) is a backstop.
 */
import { spawnSync } from 'node:child_process';
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
