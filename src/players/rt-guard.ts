/**
 * The real-time guard of a player's presenting thread (native/sched, built at `npm ci` from Node's headers and libc
 * alone). The presenting thread runs at SCHED_FIFO (thread-priority.ts); a JS thread at that priority can wait on work
 * that only normal-priority threads do, and then nothing at normal priority runs on its core.
 *
 * Measured with perf in bench:multi on 2 vCPUs: after a full GC, V8's cppgc sweeper on two players' presenting threads
 * reposted its incremental sweep task in a loop, waiting for its concurrent sweeper (Node's platform workers, normal
 * priority), which those two threads left no CPU: one second with no decoding and no server on the machine, until the
 * kernel's real-time throttling (95 % of each second) let the workers in.
 *
 * The guard (a thread one priority above, checking every 25 ms) puts the presenting thread back to normal scheduling
 * once it has run 90 % of the last 100 ms, and raises it again once it wants a CPU less than half of 25 ms (it sleeps
 * between ticks again): the loop becomes a hold-up of 100-125 ms instead of a second's. A healthy presenting thread
 * sleeps until each tick and uses a few per cent of a core, so only such a loop, or a long pause of its own (a start-up,
 * a full garbage collection), crosses that line. Started once the player presents, so its start-up does not count.
 */
import * as path from 'node:path';
import { errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { loadAddon } from './audio-device';

const log = getLogger('player');

/** The addon's path: built by scripts/build-addons.js sched. */
export const SCHED_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'sched', 'build', 'Release', 'cuemux_sched.node');

/** What the guard did; a snapshot. */
export interface RtGuardStats {
  /** The guarded thread's SCHED_FIFO priority. */
  priority: number;
  /** The guard thread's own SCHED_FIFO priority, 0 when it was refused one (it may then not run when it must). */
  guardPriority: number;
  /** Times the presenting thread was put back to normal scheduling. */
  demotions: number;
  /** Time it spent there in all, ms. */
  demotedMs: number;
  /** The longest of those spells, ms. */
  longestDemotedMs: number;
  /** True while it is there now. */
  demotedNow: boolean;
  /** Why the last change of its scheduling failed ("" when none did). */
  error: string;
}

/** The addon's guard (native/sched/cuemux_sched.cc). */
interface NativeRtGuard {
  stats(): RtGuardStats & { tid: number };
  close(): void;
}

/** Options of the addon's guard. */
interface NativeRtGuardOptions {
  /** The calling thread's SCHED_FIFO priority. */
  priority: number;
  /** The horizon of "busy", ms (default 100; 50..1000). */
  windowMs?: number;
  /** Share of the horizon the thread must have run to be put back, per cent (default 90). */
  busyPercent?: number;
}

/** Guards the calling thread; see the module comment. */
export class RtGuard {
  readonly #native: NativeRtGuard;
  readonly #timer: NodeJS.Timeout;
  #told = 0;
  #closed = false;

  private constructor(native: NativeRtGuard) {
    this.#native = native;
    // Said at the first demotion and at every 100th, with the totals: a demotion never passes without a trace.
    this.#timer = setInterval(() => this.#tell(), 1000).unref();
  }

  /**
   * Guard the calling thread (the presenting thread: call it on the main thread once it presents), which runs at
   * SCHED_FIFO `priority`. Null, with a warning saying why, when the addon is not built or refuses.
   */
  static start(priority: number): RtGuard | null {
    try {
      const { RtGuard: Native } = loadAddon<{ RtGuard: new (o: NativeRtGuardOptions) => NativeRtGuard }>(SCHED_ADDON, 'the real-time guard addon', 'no package: Node\'s headers');
      const guard = new RtGuard(new Native({ priority }));
      if (guard.stats.guardPriority === 0) {
        log.warn('the real-time guard of the presenting thread runs without SCHED_FIFO: it cannot step in while that thread holds a core');
      }
      return guard;
    } catch (e) {
      log.warn(`the presenting thread runs at SCHED_FIFO without its guard (${errorMessage(e)}): should it ever loop, nothing else at normal priority runs on its core until the kernel's real-time throttling`);
      return null;
    }
  }

  /** A snapshot (the last one taken once closed). */
  get stats(): RtGuardStats {
    const s = this.#native.stats();
    return { priority: s.priority, guardPriority: s.guardPriority, demotions: s.demotions, demotedMs: s.demotedMs, longestDemotedMs: s.longestDemotedMs, demotedNow: s.demotedNow, error: s.error };
  }

  #tell(): void {
    const s = this.stats;
    if (s.error !== '') log.warn(`the real-time guard could not change the presenting thread's scheduling: ${s.error}`);
    for (let k = this.#told + 1; k <= s.demotions; k++) {
      if (k === 1 || k % 100 === 0) {
        log.warn('the presenting thread ran without a break at SCHED_FIFO (a loop waiting on normal-priority threads, e.g. V8\'s garbage collector): it ran at normal priority until it slept again', {
          demotions: s.demotions, demotedMs: Math.round(s.demotedMs * 10) / 10, longestDemotedMs: Math.round(s.longestDemotedMs * 10) / 10,
        });
        break;
      }
    }
    this.#told = s.demotions;
  }

  /** Stop guarding (the thread keeps, or gets back, its SCHED_FIFO priority). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#tell();
    this.#native.close();
  }
}
