/**
 * Makes the frame pool's memory off the decoding thread: a thread of its own allocates SharedArrayBuffers and maps
 * their pages (slot-allocator-thread.ts), and hands them to the {@link FrameSlotPool} as spares, so a picture is
 * copied into memory that is already there.
 *
 * Why: allocated and first written on the decode worker's thread, a 1080p slot took 8.9 ms for 3 MB (this VM, p50 of
 * 30: the kernel's page faults and zeroing) against 0.1 ms to copy into a slot used before. A player that has just
 * connected fills some 80 slots with its cues' prerolls, and in a bench:go --quick CPU profile those copies were 32 %
 * of the decode worker's time, up to 205 ms in a second: the thread that reads each GO off the server read it up to
 * 130 ms late while its event loop ran 80-100 % busy, and the fresh player's first cue fell behind the clock.
 */
import type { Worker } from 'node:worker_threads';
import { getLogger } from '../common/logger';
import { startHelperThread } from './helper-thread';

const log = getLogger('player');

/** Decoding thread → allocating thread: make `count` buffers of `bytes` each. */
export interface SlotRequest {
  bytes: number;
  count: number;
}

/** Allocating thread → decoding thread: the buffers made for one request. */
export interface SlotSupply {
  bytes: number;
  buffers: SharedArrayBuffer[];
}

/** The allocating thread, started at the first request; when it cannot run, the pool allocates on its own thread. */
export class SlotAllocator {
  readonly #onSupply: (buffers: SharedArrayBuffer[]) => void;
  #worker: Worker | null = null;
  #failed = false;

  /** @param onSupply called on this thread with the buffers of each request, in order. */
  constructor(onSupply: (buffers: SharedArrayBuffer[]) => void) {
    this.#onSupply = onSupply;
  }

  /** Ask for `count` buffers of `bytes` each (nothing happens once the thread failed or was closed). */
  request(bytes: number, count: number): void {
    const w = this.#thread();
    if (w === null) return;
    const req: SlotRequest = { bytes, count };
    w.postMessage(req);
  }

  /** Stop the thread. Idempotent; never rejects. */
  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    this.#failed = true;
    if (w !== null) await w.terminate().catch(() => undefined);
  }

  #thread(): Worker | null {
    if (this.#failed) return null;
    this.#worker ??= startHelperThread<SlotSupply>('slot-allocator-thread.js', (m) => this.#onSupply(m.buffers), (why) => this.#fail(why), (w) => this.#worker === w);
    return this.#worker;
  }

  #fail(why: string): void {
    this.#failed = true;
    this.#worker = null;
    log.warn(`the frame pool's allocating thread stopped (${why}): new pool slots are allocated by the decode worker itself`);
  }
}
