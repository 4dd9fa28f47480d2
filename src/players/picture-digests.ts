/**
 * MD5s of presented pictures, computed off the presenting thread (for the `hash:` sink).
 *
 * Why: hashing a 1080p picture takes 5-6 ms, and the presenting thread runs at real-time priority: measured with perf
 * in bench:go (60 ticks/s, two players and a peer on 2 cores), MD5 was 36 % of that thread's time and preempted the
 * decoders it waits for. A picture lent from the decode worker's pool (a shared slot, see frame-pool.ts) is hashed
 * in place by a thread of its own at normal priority, while the presenting thread holds the slot; the bytes hashed are
 * exactly those presented (a slot never changes while it is held). A picture that is not in one shared slot (decoded
 * on the presenting thread), or a backlog of {@link MAX_PENDING} pictures, is hashed at once, as before.
 */
import { createHash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { getLogger } from '../common/logger';
import { startHelperThread } from './helper-thread';

const log = getLogger('player-sink');

/** Pictures at most waiting for the hashing thread; beyond, a picture is hashed on the calling thread. */
export const MAX_PENDING = 16;

/** A picture's MD5 (hex): known at once, or null until the hashing thread answers. */
export interface Digest {
  md5: string | null;
}

/** Presenting thread → hashing thread: the planes of a picture as byte ranges of one shared slot. */
export interface HashJob {
  id: number;
  buffer: SharedArrayBuffer;
  /** [byte offset, byte length] of each plane in `buffer`, in plane order. */
  ranges: Array<[number, number]>;
}

/** Hashing thread → presenting thread. */
export interface HashDone {
  id: number;
  md5: string;
}

/** The MD5 of planes concatenated (what `ffmpeg -f framemd5` prints for a rawvideo frame). */
export function md5OfPlanes(planes: readonly Uint8Array[]): string {
  const h = createHash('md5');
  for (const p of planes) h.update(p);
  return h.digest('hex');
}

/** The shared slot every plane is a view of, or null (planes in ordinary memory, or in several slots). */
function sharedSlot(planes: readonly Uint8Array[]): SharedArrayBuffer | null {
  const b = planes[0]?.buffer;
  if (!(b instanceof SharedArrayBuffer)) return null;
  return planes.every((p) => p.buffer === b) ? b : null;
}

/** A picture handed to the hashing thread. */
interface Job {
  digest: Digest;
  planes: readonly Uint8Array[];
  release: () => void;
}

/** Hashes pictures, off the calling thread where it can; `onDigest` is called each time a pending digest is known. */
export class PictureDigests {
  readonly #onDigest: () => void;
  #worker: Worker | null = null;
  /** The hashing thread failed: every picture is hashed at once from then on. */
  #failed = false;
  readonly #jobs = new Map<number, Job>();
  #nextId = 1;
  #idle: Array<() => void> = [];

  /** @param onDigest called (on the calling thread) whenever a digest returned as pending gets its MD5. */
  constructor(onDigest: () => void) {
    this.#onDigest = onDigest;
  }

  /** Digests waiting for the hashing thread. */
  get pending(): number {
    return this.#jobs.size;
  }

  /**
   * The digest of `planes`. When they are all views of one shared slot and `retain` is given, the slot is retained
   * and hashed by the hashing thread (the digest's md5 is null until then); otherwise it is hashed now.
   */
  digest(planes: readonly Uint8Array[], retain?: () => () => void): Digest {
    const slot = sharedSlot(planes);
    const worker = slot === null || retain === undefined || this.#jobs.size >= MAX_PENDING ? null : this.#hasher();
    if (worker === null || slot === null || retain === undefined) return { md5: md5OfPlanes(planes) };
    const id = this.#nextId++;
    const digest: Digest = { md5: null };
    this.#jobs.set(id, { digest, planes, release: retain() });
    if (this.#jobs.size === 1) worker.ref(); // an answer is awaited: the process stays up for it
    const job: HashJob = { id, buffer: slot, ranges: planes.map((p) => [p.byteOffset, p.byteLength]) };
    worker.postMessage(job);
    return digest;
  }

  /** Resolves once no digest is pending. */
  idle(): Promise<void> {
    if (this.#jobs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Wait for the pending digests, then stop the hashing thread. Idempotent; never rejects. */
  async close(): Promise<void> {
    await this.idle();
    const w = this.#worker;
    this.#worker = null;
    this.#failed = true; // nothing more is sent to a thread
    if (w !== null) await w.terminate().catch(() => undefined);
  }

  #hasher(): Worker | null {
    if (this.#failed) return null;
    // Started from the presenting thread, it gets normal scheduling (real-time priority is reset on thread creation,
    // see thread-priority.ts): it competes with the decoders as an equal, and never preempts them.
    this.#worker ??= startHelperThread<HashDone>('picture-hasher.js', (m) => this.#done(m.id, m.md5), (why) => this.#fail(why), (w) => this.#worker === w);
    return this.#worker;
  }

  #done(id: number, md5: string): void {
    const job = this.#jobs.get(id);
    if (job === undefined) return;
    this.#jobs.delete(id);
    job.digest.md5 = md5;
    job.release();
    if (this.#jobs.size === 0) {
      this.#worker?.unref();
      for (const resolve of this.#idle.splice(0)) resolve();
    }
    this.#onDigest();
  }

  /** The hashing thread is gone: what it was asked is hashed here, and everything from now on. */
  #fail(why: string): void {
    if (!this.#failed) log.warn('the picture hashing thread failed; pictures are hashed on the presenting thread from now on', { error: why });
    this.#failed = true;
    this.#worker = null;
    for (const [id, job] of [...this.#jobs]) this.#done(id, md5OfPlanes(job.planes));
  }
}
