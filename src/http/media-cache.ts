/**
 * The media an HTTP request names, kept open between requests: a player or a browser asks for one file range after
 * range, and opening it through the registry each time (realpath, open, fstat, readlink, open and check its folder,
 * then close both: ten thread-pool round trips) made the first byte of a 64 KiB range 1.56x a static server's
 * (bench:progressive, p50 3.24 vs 2.08 ms). A request then costs one stat of its path, as a static server's does.
 *
 * Single-open rules kept: every media is still opened only by MediaRegistry.open (beneath a media root, once); this
 * holds one reference to it (one `release` owed) while requests keep coming, and lets it go after IDLE_MS without
 * one. A kept media serves a request only when the request's path still names that very file (the same device and
 * inode as the open handle, by a stat that follows links, in the roots' order): its bytes are then the bytes of a file
 * opened beneath a root, whatever happened to the path since. Anything else (a file renamed over, removed, a path
 * now naming another file) goes through MediaRegistry.open again.
 */
import { statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { OpenMedia } from '../media/open-media';
import type { MediaRegistry } from '../server/media-registry';

/** How long a media is kept after its last request, in ms: longer than a player's pause between two ranges. */
const IDLE_MS = 2000;
/** Media kept at most (each holds one open file's registry reference). */
const MAX_KEPT = 64;

interface Kept {
  media: OpenMedia;
  dev: number;
  ino: number;
  /** Requests using it now (its reference is not released while one is). */
  users: number;
  /** Still in the cache (false once dropped: the last user releases it). */
  kept: boolean;
  timer: NodeJS.Timeout | null;
}

/** A media for one request: `stat` is the file's status when it was found by its path (null when just opened). */
export interface MediaUse {
  /** The open media. */
  media: OpenMedia;
  /** The file's status from the path's stat that found the kept media (it is the open file's), else null. */
  stat: Stats | null;
  /** Ends this request's use (once). */
  done: () => void;
}

/** Media kept open for HTTP requests; see the module comment. */
export class MediaCache {
  readonly #registry: MediaRegistry;
  readonly #roots: readonly string[];
  readonly #kept = new Map<string, Kept>();
  #closed = false;

  constructor(registry: MediaRegistry, roots: readonly string[]) {
    this.#registry = registry;
    this.#roots = roots;
  }

  /** The media at `requested` (relative to a media root, checked by mediaPathOf), kept or opened through the registry. */
  async use(requested: string): Promise<MediaUse> {
    const kept = this.#kept.get(requested);
    if (kept !== undefined) {
      kept.users++;
      const st = this.#stat(requested);
      if (st !== null && st.dev === kept.dev && st.ino === kept.ino && this.#kept.get(requested) === kept) return { media: kept.media, stat: st, done: this.#doneOnce(requested, kept) };
      this.#drop(requested, kept);
      this.#leave(kept);
    }
    const media = await this.#registry.open(requested);
    const unkept = (): MediaUse => ({ media, stat: null, done: once(() => this.#release(media)) });
    if (this.#closed || this.#kept.has(requested) || this.#kept.size >= MAX_KEPT) return unkept();
    let st: Stats;
    try {
      st = await media.stat();
    } catch {
      return unkept();
    }
    if (this.#closed || this.#kept.has(requested)) return unkept();
    const entry: Kept = { media, dev: st.dev, ino: st.ino, users: 1, kept: true, timer: null };
    this.#kept.set(requested, entry);
    return { media, stat: null, done: this.#doneOnce(requested, entry) };
  }

  /** Let every kept media go (idempotent); requests using one keep it until they end. */
  close(): void {
    this.#closed = true;
    for (const [k, e] of [...this.#kept]) this.#drop(k, e);
  }

  /**
   * The status of the first of the roots' files named `requested` that exists, or null. Synchronous, as a static
   * server's (bench:progressive's peer) is: it is only asked for a path whose file this cache holds open and found by
   * this very stat less than IDLE_MS ago, so its dentry and inode are in the kernel's caches (an NFS client's
   * attribute cache too: acregmin 3 s) and it costs a system call of a few µs; through the thread pool it cost two
   * hops (~0.1-0.2 ms of CPU each on this 2-core VM, bench:progressive's profile) and was the one step of a request
   * the peer does not take.
   */
  #stat(requested: string): Stats | null {
    for (const r of this.#roots) {
      try {
        const st = statSync(path.resolve(r, requested), { throwIfNoEntry: false });
        if (st !== undefined) return st;
      } catch {
        // Not a folder on the way, no permission: not this root's file.
      }
    }
    return null;
  }

  #doneOnce(key: string, e: Kept): () => void {
    return once(() => {
      if (this.#kept.get(key) === e && e.users === 1) {
        // One timer per kept media, re-armed by each last request out (refresh() re-arms a timer that has fired too):
        // a new timer and a clearTimeout per request were ~5 % of the server's CPU profile of 64 KiB ranges.
        if (e.timer === null) {
          e.timer = setTimeout(() => {
            if (e.users === 0) this.#drop(key, e);
          }, IDLE_MS);
          e.timer.unref();
        } else e.timer.refresh();
      }
      this.#leave(e);
    });
  }

  /** One request stops using `e`: the last one out of a media no longer kept releases its reference. */
  #leave(e: Kept): void {
    e.users--;
    if (e.users === 0 && !e.kept) this.#release(e.media);
  }

  /** Stop keeping `e`; its registry reference is released once no request uses it. */
  #drop(key: string, e: Kept): void {
    if (e.timer !== null) clearTimeout(e.timer);
    e.timer = null;
    if (!e.kept) return;
    e.kept = false;
    if (this.#kept.get(key) === e) this.#kept.delete(key);
    if (e.users === 0) this.#release(e.media);
  }

  #release(media: OpenMedia): void {
    try {
      this.#registry.release(media);
    } catch {
      // The registry closed first (server shutdown): it has closed the media itself.
    }
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}
