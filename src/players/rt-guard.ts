/**
 * The real-time guard of a player's presenting thread (and of its decode worker's thread when --worker-rt-priority
 * raises it: decode-worker.ts). The presenting thread runs at SCHED_FIFO (thread-priority.ts);
 * a JS thread at that priority can wait on work that only normal-priority threads do, and then nothing at normal
 * priority runs on its core.
 *
 * Measured with perf in bench:multi on 2 vCPUs (session 13): after a full GC, V8's cppgc sweeper on two players'
 * presenting threads reposted its incremental sweep task in a loop (a foreground task through the event loop, again
 * and again), waiting for its concurrent sweeper (Node's platform workers, normal priority), which those two threads
 * left no CPU: one second with no decoding and no server on the machine, until the kernel's real-time throttling (95 %
 * of each second) let the workers in.
 *
 * Such a loop goes through the event loop, which then never waits for I/O: the guard reads the thread's event-loop
 * utilisation (Node's own account of the time its loop did not wait) every 25 ms, from a timer of that loop, and puts
 * the thread back to normal scheduling once it was at least 90 % over its last four checks (100 ms, more when the
 * timer is late); once under 50 % over a check (it waits between ticks again), SCHED_FIFO again. A healthy presenting
 * thread waits for its next tick most of the time (its 2 ms precise wait before a tick counts as busy: 12 % at 60
 * ticks a second), so only such a loop crosses the line. What it cannot catch: a thread held inside one long task (a
 * synchronous loop, one long pause), since its own timer runs only between tasks. It costs a look at two counters per
 * check on a thread that is awake anyway, and a system call when it acts (native/sched). Started once the player
 * presents, so its start-up does not count; once closed (the player stops presenting) it leaves the thread as it is.
 */
import * as path from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { loadAddon } from './audio-device';

const log = getLogger('player');

/** The addon's path: built by scripts/build-addons.js sched. */
export const SCHED_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'sched', 'build', 'Release', 'cuemux_sched.node');

/** How often the guard looks, ms. */
const CHECK_MS = 25;
/** Checks over which "busy" is judged (4: 100 ms). */
const WINDOW_CHECKS = 4;
/** Busy share over the window that puts the thread back to normal scheduling. */
const BUSY = 0.9;
/** Busy share over one check under which it gets SCHED_FIFO again. */
const IDLE = 0.5;

/** What the guard did; a snapshot. */
export interface RtGuardStats {
  /** The guarded thread's SCHED_FIFO priority. */
  priority: number;
  /** Times the guarded thread was put back to normal scheduling. */
  demotions: number;
  /** Time it spent there in all, ms. */
  demotedMs: number;
  /** The longest of those spells, ms. */
  longestDemotedMs: number;
  /** True while it is there now (false once closed). */
  demotedNow: boolean;
  /** Why the last change of its scheduling failed ("" when none did). */
  error: string;
}

type SetScheduling = (realtime: boolean, priority: number) => string;

/** Guards the calling thread; see the module comment. */
export class RtGuard {
  readonly #setScheduling: SetScheduling;
  readonly #priority: number;
  /** The guarded thread, in messages: "presenting thread" or "decode worker". */
  readonly #thread: string;
  readonly #timer: NodeJS.Timeout;
  /** The utilisation counters at each of the last checks (oldest first), WINDOW_CHECKS + 1 of them at most. */
  readonly #marks: EventLoopUtilization[] = [];
  #demotions = 0;
  #demotedMs = 0;
  #longestMs = 0;
  #demotedSince: number | null = null;
  #error = '';
  #closed = false;

  private constructor(setScheduling: SetScheduling, priority: number, thread: string) {
    this.#setScheduling = setScheduling;
    this.#priority = priority;
    this.#thread = thread;
    this.#marks.push(performance.eventLoopUtilization());
    this.#timer = setInterval(() => this.#check(), CHECK_MS).unref();
  }

  /**
   * Guard the calling thread, which runs at SCHED_FIFO `priority`: the presenting thread (call it on the main thread
   * once it presents) or the decode worker's (`thread` names it in messages; default "presenting thread"). Null, with
   * a warning saying why, when the addon is not built.
   */
  static start(priority: number, thread = 'presenting thread'): RtGuard | null {
    try {
      const { setScheduling } = loadAddon<{ setScheduling: SetScheduling }>(SCHED_ADDON, 'the scheduling addon', 'no package: Node\'s headers');
      return new RtGuard(setScheduling, priority, thread);
    } catch (e) {
      log.warn(`the ${thread} runs at SCHED_FIFO without its guard (${errorMessage(e)}): should it ever loop, nothing else at normal priority runs on its core until the kernel's real-time throttling`);
      return null;
    }
  }

  /**
   * Raise the calling thread to SCHED_FIFO `priority` and guard it (`thread` names it in messages). Null, with why,
   * when the addon is not built or the raise is refused (the thread's scheduling is then unchanged).
   */
  static raise(priority: number, thread: string): { guard: RtGuard | null; error: string } {
    try {
      const { setScheduling } = loadAddon<{ setScheduling: SetScheduling }>(SCHED_ADDON, 'the scheduling addon', 'no package: Node\'s headers');
      const error = setScheduling(true, priority);
      return error === '' ? { guard: new RtGuard(setScheduling, priority, thread), error } : { guard: null, error };
    } catch (e) {
      return { guard: null, error: errorMessage(e) };
    }
  }

  /** A snapshot. */
  get stats(): RtGuardStats {
    const now = this.#demotedSince === null ? 0 : performance.now() - this.#demotedSince;
    return {
      priority: this.#priority, demotions: this.#demotions, demotedMs: Math.round((this.#demotedMs + now) * 10) / 10,
      longestDemotedMs: Math.round(Math.max(this.#longestMs, now) * 10) / 10, demotedNow: this.#demotedSince !== null, error: this.#error,
    };
  }

  #check(): void {
    const now = performance.eventLoopUtilization();
    this.#marks.push(now);
    if (this.#marks.length > WINDOW_CHECKS + 1) this.#marks.shift();
    if (this.#demotedSince === null) {
      if (this.#marks.length === WINDOW_CHECKS + 1 && performance.eventLoopUtilization(now, this.#marks[0]).utilization >= BUSY) this.#demote();
    } else if (performance.eventLoopUtilization(now, this.#marks[this.#marks.length - 2]).utilization < IDLE) {
      this.#raise();
    }
  }

  #demote(): void {
    const why = this.#setScheduling(false, 0);
    if (why !== '') {
      this.#fail(why);
      return;
    }
    this.#error = '';
    this.#demotedSince = performance.now();
    this.#demotions++;
    // Said at the first and every 100th, with the totals: a demotion never passes without a trace.
    if (this.#demotions === 1 || this.#demotions % 100 === 0) {
      log.warn(`the ${this.#thread}'s event loop ran without waiting for 100 ms at SCHED_FIFO (a loop waiting on normal-priority threads, e.g. V8\'s garbage collector, or a long pause): it runs at normal priority until it waits again`, {
        demotions: this.#demotions, demotedMs: this.stats.demotedMs,
      });
    }
  }

  #raise(): void {
    const why = this.#setScheduling(true, this.#priority);
    this.#endSpell();
    if (why !== '') {
      // Not allowed any more (RLIMIT_RTPRIO or the cgroup's real-time budget changed): the guard stops, and the
      // thread stays at normal scheduling (a retry every 25 ms would change nothing).
      this.#fail(why);
      log.warn(`the ${this.#thread} stays at normal scheduling${this.#thread === 'presenting thread' ? ': ticks may be late when decoding loads the machine' : ''}`);
      this.close();
      return;
    }
    this.#error = '';
    this.#marks.splice(0, this.#marks.length - 1); // a fresh window: the time put back does not count against it
  }

  /** The end of a spell at normal scheduling: counted. */
  #endSpell(): void {
    if (this.#demotedSince === null) return;
    const spell = performance.now() - this.#demotedSince;
    this.#demotedMs += spell;
    this.#longestMs = Math.max(this.#longestMs, spell);
    this.#demotedSince = null;
  }

  /** Said once per distinct failure. */
  #fail(why: string): void {
    if (this.#error !== why) log.warn(`the real-time guard could not change the ${this.#thread}'s scheduling: ${why}`);
    this.#error = why;
  }

  /**
   * Stop guarding; the thread keeps the scheduling it has (the player no longer presents: what it does next, at normal
   * scheduling if it was put back, needs no real-time priority). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#endSpell();
  }
}
