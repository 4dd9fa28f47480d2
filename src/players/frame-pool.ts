/**
 * Decoded pictures shared between the decoding thread and the presenting thread without garbage.
 *
 * Why: a 1080p picture is 3 MB. Decoded on the presenting thread, every frame is a new native buffer the V8 heap
 * has to account for, and at 25 frames/s that alone triggered about ten full (mark-compact) collections a second,
 * each stopping the presenting thread for 2-12 ms (measured with --trace-gc in bench:sync): tick jitter the decoder
 * caused. So the decoder runs in a worker thread (its collections stop only itself) and copies each picture into a
 * slot of this pool: SharedArrayBuffers allocated once and reused, which the presenting thread reads in place. Its
 * heap then only sees small messages.
 *
 * A slot is owned by the worker's {@link FrameSlotPool} and lent to the presenting thread, where a
 * {@link SharedPicture} counts its holders; when the last lets go the slot goes back to the pool.
 */
import { getLogger } from '../common/logger';
import type { DecodedVideoFrame } from '../ffmpeg/types';

const log = getLogger('player');

/** A picture whose planes may be lent from a pool: whoever keeps it past the call that gave it must retain it. */
export type PlayerPicture = DecodedVideoFrame & {
  /**
   * Keep the planes valid until the returned function is called (it may be called more than once). Absent for a
   * picture that is garbage-collected like any buffer (decoded on the presenting thread): nothing to do.
   */
  retain?: () => () => void;
};

/** A slot lent to the presenting thread: which one, and its memory. */
export interface LentSlot {
  /** Slot number, to give back with {@link FrameSlotPool.release}. */
  id: number;
  /** The slot's memory (at least the bytes asked for). */
  buffer: SharedArrayBuffer;
}

/** Counters of a {@link FrameSlotPool}. */
export interface FrameSlotPoolStats {
  /** Slots allocated (lent or free). */
  slots: number;
  /** Slots lent now. */
  lent: number;
  /** Bytes of all slots. */
  bytes: number;
  /** Slots allocated since the start (a steady show allocates none after its first seconds). */
  allocations: number;
}

/** The worker's side: SharedArrayBuffer slots, lent out and given back, allocated only when none free fits. */
export class FrameSlotPool {
  readonly #slots: Array<SharedArrayBuffer | null> = [];
  readonly #lent = new Set<number>();
  /** Slots holding memory (lent or free): the others are null, ids to use again. */
  #held = 0;
  #allocations = 0;

  /** Most free slots kept; a free slot beyond these is let go (after a burst, e.g. two cues at 4K). */
  readonly maxFree: number;

  /** @param maxFree most free slots kept (default 48, 2 s of 24 fps pictures). */
  constructor(maxFree = 48) {
    this.maxFree = maxFree;
  }

  /** Lend a slot of at least `bytes` bytes: the smallest free one that fits, else a new one. */
  acquire(bytes: number): LentSlot {
    let best = -1;
    let tooSmall = -1;
    for (let id = 0; id < this.#slots.length; id++) {
      const s = this.#slots[id];
      if (this.#lent.has(id)) continue;
      if (s === null) {
        if (tooSmall < 0) tooSmall = id;
      } else if (s.byteLength >= bytes) {
        if (best < 0 || s.byteLength < (this.#slots[best] as SharedArrayBuffer).byteLength) best = id;
      } else if (tooSmall < 0) {
        tooSmall = id;
      }
    }
    if (best < 0) {
      // A free slot too small for this picture (the show changed resolution) is replaced rather than kept.
      best = tooSmall >= 0 ? tooSmall : this.#slots.length;
      if (best === this.#slots.length || this.#slots[best] === null) this.#held++;
      this.#slots[best] = new SharedArrayBuffer(bytes);
      this.#allocations++;
    }
    this.#lent.add(best);
    return { id: best, buffer: this.#slots[best] as SharedArrayBuffer };
  }

  /** Take back slot `id` (unknown or already free ids are ignored: a late release after a restart is harmless). */
  release(id: number): void {
    if (!this.#lent.delete(id)) return;
    if (this.#held - this.#lent.size > this.maxFree) {
      this.#slots[id] = null;
      this.#held--;
    }
  }

  /** Counters now. */
  get stats(): FrameSlotPoolStats {
    let slots = 0;
    let bytes = 0;
    for (const s of this.#slots) {
      if (s === null) continue;
      slots++;
      bytes += s.byteLength;
    }
    return { slots, lent: this.#lent.size, bytes, allocations: this.#allocations };
  }
}

/** Copy `planes` into `slot` back to back; returns each plane's length in bytes. */
export function copyPlanes(planes: readonly Uint8Array[], slot: SharedArrayBuffer): number[] {
  const into = new Uint8Array(slot);
  let at = 0;
  return planes.map((p) => {
    into.set(p, at);
    at += p.length;
    return p.length;
  });
}

/**
 * The presenting thread's side of a lent slot: a picture whose planes are views of the slot, with a count of its
 * holders. It starts with one holder (whoever received it); `giveBack` runs once, when the count reaches zero.
 */
export function sharedPicture(
  frame: Omit<DecodedVideoFrame, 'planes'>,
  buffer: SharedArrayBuffer,
  planeLengths: readonly number[],
  giveBack: () => void,
): { picture: PlayerPicture; release: () => void } {
  let holders = 1;
  const drop = (): void => {
    if (holders <= 0) return;
    if (--holders === 0) giveBack();
  };
  const once = (): (() => void) => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      drop();
    };
  };
  let at = 0;
  const planes = planeLengths.map((n) => {
    const b = Buffer.from(buffer, at, n);
    at += n;
    return b;
  });
  const picture: PlayerPicture = {
    ...frame,
    planes,
    retain: () => {
      if (holders <= 0) {
        // A holder's bug, not the show's: say so, and present what is there rather than stop the presenting thread.
        log.error('a picture was retained after its slot went back to the pool: it may show a later frame');
        return () => undefined;
      }
      holders++;
      return once();
    },
  };
  return { picture, release: once() };
}
