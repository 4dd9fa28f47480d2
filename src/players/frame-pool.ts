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
  /**
   * Of those, slots allocated by the pool's own thread because no spare was ready (its first picture then waits for
   * the kernel to map and zero the memory: see {@link FrameSlotPoolOptions.request}).
   */
  allocatedHere: number;
  /** Spare buffers ready (allocated and mapped by another thread, not slots yet). */
  spares: number;
}

/** Options of a {@link FrameSlotPool}. */
export interface FrameSlotPoolOptions {
  /** Most free slots kept (default 48, 2 s of 24 fps pictures); a free slot beyond these is let go (after a burst, e.g. two cues at 4K). */
  maxFree?: number;
  /**
   * Ask for `count` spare buffers of `bytes` each, to come through {@link FrameSlotPool.supply} (made by another
   * thread: slot-allocator.ts). Called when the pool grows: a new slot is then a spare, not memory allocated and first
   * touched on the decoding thread, which took 8.9 ms for a 1080p picture's 3 MB on this VM against 0.1 ms to copy
   * into a slot used before (p50 of 30; page faults and the kernel's zeroing), and 32 % of a decode worker's CPU in a
   * bench:go --quick profile, up to 205 ms a second while a player that had just started prepared its cues.
   */
  request?: (bytes: number, count: number) => void;
  /** Spare buffers the pool keeps ready while it grows (default 8). */
  spares?: number;
}

/** Spares are asked for in sizes rounded up to this many bytes, so that pictures of one stream share them. */
const SPARE_ROUND_BYTES = 64 << 10;

/** The worker's side: SharedArrayBuffer slots, lent out and given back, allocated only when none free fits. */
export class FrameSlotPool {
  readonly #slots: Array<SharedArrayBuffer | null> = [];
  readonly #lent = new Set<number>();
  /** Slots holding memory (lent or free): the others are null, ids to use again. */
  #held = 0;
  #allocations = 0;
  #allocatedHere = 0;
  /** Buffers supplied and not made slots yet, and how many more were asked for. */
  readonly #spares: SharedArrayBuffer[] = [];
  /** Spares asked for and not supplied yet, by size. */
  readonly #asked = new Map<number, number>();
  readonly #request: ((bytes: number, count: number) => void) | null;
  readonly #spareTarget: number;

  /** Most free slots kept; a free slot beyond these is let go (after a burst, e.g. two cues at 4K). */
  readonly maxFree: number;

  constructor(options: FrameSlotPoolOptions = {}) {
    this.maxFree = options.maxFree ?? 48;
    this.#request = options.request ?? null;
    this.#spareTarget = options.spares ?? 8;
  }

  /** Spare buffers asked for with {@link FrameSlotPoolOptions.request}, to make slots of when the pool grows. */
  supply(buffers: readonly SharedArrayBuffer[]): void {
    for (const b of buffers) {
      const n = this.#asked.get(b.byteLength) ?? 0;
      if (n > 1) this.#asked.set(b.byteLength, n - 1);
      else this.#asked.delete(b.byteLength);
    }
    this.#spares.push(...buffers);
    // Beyond twice the target (a show whose pictures got larger), the smallest go.
    this.#spares.sort((a, b) => b.byteLength - a.byteLength);
    this.#spares.length = Math.min(this.#spares.length, 2 * this.#spareTarget);
  }

  /** Ask for spares of `bytes` (rounded up to 64 KiB) now, before any picture (a player's warm start). */
  warm(bytes: number): void {
    this.#topUp(bytes);
  }

  /** Ask for spares of `bytes` (rounded up) while fewer than the target that fit are ready or asked for. */
  #topUp(bytes: number): void {
    if (this.#request === null) return;
    const size = Math.ceil(bytes / SPARE_ROUND_BYTES) * SPARE_ROUND_BYTES;
    let have = this.#spares.filter((b) => b.byteLength >= bytes).length;
    for (const [asked, n] of this.#asked) if (asked >= bytes) have += n;
    if (have >= this.#spareTarget) return;
    this.#asked.set(size, (this.#asked.get(size) ?? 0) + this.#spareTarget - have);
    this.#request(size, this.#spareTarget - have);
  }

  /** The smallest spare of at least `bytes`, taken out of the spares; null when none fits. */
  #takeSpare(bytes: number): SharedArrayBuffer | null {
    let best = -1;
    for (let i = 0; i < this.#spares.length; i++) {
      const b = this.#spares[i];
      if (b.byteLength >= bytes && (best < 0 || b.byteLength < this.#spares[best].byteLength)) best = i;
    }
    return best < 0 ? null : this.#spares.splice(best, 1)[0];
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
      let memory = this.#takeSpare(bytes);
      if (memory === null) {
        memory = new SharedArrayBuffer(bytes);
        this.#allocatedHere++;
      }
      this.#slots[best] = memory;
      this.#allocations++;
      this.#topUp(bytes);
    }
    this.#lent.add(best);
    return { id: best, buffer: this.#slots[best] as SharedArrayBuffer };
  }

  /** Take back slot `id` (unknown or already free ids are ignored: a late release after a restart is harmless). */
  release(id: number): void {
    if (!this.#lent.delete(id)) return;
    if (this.#held - this.#lent.size > this.maxFree) {
      // Mapped memory: kept as a spare while the pool keeps fewer than its target, so it need not be mapped again.
      const memory = this.#slots[id];
      if (memory !== null && this.#request !== null && this.#spares.length < this.#spareTarget) this.#spares.push(memory);
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
    return { slots, lent: this.#lent.size, bytes, allocations: this.#allocations, allocatedHere: this.#allocatedHere, spares: this.#spares.length };
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
