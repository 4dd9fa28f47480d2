/**
 * All media open in the server, by real path and by media_id. Opening the same path twice shares one OpenMedia
 * (and concurrent first opens share one open); a media nobody uses is closed after an idle delay.
 */
import { CuemuxError, isCuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { fdPath } from '../index-store/fingerprint';
import { GrowingIndex, recentlyModified, watchGrowth } from '../index-store/growing-index';
import type { MediaIndex } from '../index-store/media-index';
import { openIndex } from '../index-store/open-index';
import type { FileHandle } from 'node:fs/promises';
import type { MediaRoots } from './media-roots';
import { OpenMedia, mediaIdFor, type FileIdentity } from '../media/open-media';

const log = getLogger('media-registry');

/** Registry settings. */
export interface RegistryOptions {
  /** Index cache folder. */
  cacheDir: string;
  /** Most media open at once. */
  maxOpenMedia: number;
  /** Close an unused media after this many ms. */
  idleCloseMs: number;
  /**
   * A file without a fresh index that changes within this many ms is growing (being copied or rendered): it is
   * indexed as it grows, and readers at its written end wait for more; it counts as complete once it has not changed
   * for this long (see GrowingIndex). Default DEFAULT_GROWING_WAIT_MS.
   */
  growingWaitMs?: number;
}

/** Growing files followed at once (see #openFile). */
const MAX_GROWING = 2;

/**
 * How long a file without an index is looked at for growth before it is indexed as it is, in ms: three looks. A file
 * that is still being written but did not change in that time is recognised by the build (see #openFile).
 */
const QUICK_LOOK_MS = 300;

/** The server's open media. */
export class MediaRegistry {
  readonly #roots: MediaRoots;
  readonly #options: RegistryOptions;
  readonly #byId = new Map<string, OpenMedia>();
  readonly #opening = new Map<string, Promise<OpenMedia>>();
  readonly #idleTimers = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(roots: MediaRoots, options: RegistryOptions) {
    this.#roots = roots;
    this.#options = options;
  }

  /**
   * Open (or join) the media at the requested path; the caller owes one {@link release}. The file is opened once,
   * beneath its media root (MediaRoots.open), and that one handle serves the fingerprint, the index build and every
   * read: the path is never opened again.
   */
  async open(requested: string): Promise<OpenMedia> {
    if (this.#closed) throw new CuemuxError('CLOSED', 'server is shutting down');
    const opened = await this.#roots.open(requested);
    const real = opened.path;
    let file: FileHandle | null = opened.file;
    const folder = opened.folder;
    try {
      if (this.#closed) throw new CuemuxError('CLOSED', 'server is shutting down');
      // The path and the file it names now: a file renamed over an open one is another media (see mediaIdFor).
      const st = await opened.file.stat();
      const identity: FileIdentity = { dev: st.dev, ino: st.ino };
      const id = mediaIdFor(real, identity);
      let media = this.#byId.get(id);
      if (media === undefined) {
        let pending = this.#opening.get(id);
        if (pending === undefined) {
          if (this.#byId.size + this.#opening.size >= this.#options.maxOpenMedia) {
            throw new CuemuxError('RESOURCE_EXHAUSTED', `${requested}: ${this.#options.maxOpenMedia} media are already open (max-open-media); close some first`,
              { path: requested });
          }
          const own = file;
          file = null; // the open below owns it now
          pending = (async () => {
            let m: OpenMedia;
            try {
              m = await this.#openFile(real, own, folder, identity);
            } catch (e) {
              await own.close().catch(() => undefined);
              throw e;
            }
            if (this.#closed) {
              // close() ran while this open was in flight: do not leave the file open behind it.
              await m.close();
              throw new CuemuxError('CLOSED', 'server is shutting down');
            }
            this.#byId.set(id, m);
            log.info('media opened', { media: real, id, mode: m.mode, packets: m.index.packetCount, index: m.index.indexPath, origin: m.index.origin, growth: m.growthState });
            return m;
          })().finally(() => this.#opening.delete(id));
          this.#opening.set(id, pending);
        }
        media = await pending;
      }
      if (this.#closed) throw new CuemuxError('CLOSED', 'server is shutting down');
      media.openCount++;
      this.#touch(media);
      return media;
    } finally {
      // Joined a media already open (or being opened): these handles were only needed to find which file it is.
      if (file !== null) {
        await file.close().catch(() => undefined);
        await folder.close().catch(() => undefined);
      }
    }
  }

  /**
   * Open the media `file` (at `real`, in `folder`, which this closes): with its index when it has a fresh one; else,
   * when it is growing, with a GrowingIndex (the folder stays open until that completes: the final index is written
   * there); else with an index built now.
   */
  async #openFile(real: string, file: FileHandle, folder: FileHandle, identity: FileIdentity): Promise<OpenMedia> {
    const options = { cacheDir: this.#options.cacheDir, file, folder: fdPath(folder) };
    let keepFolder = false;
    try {
      const fresh: MediaIndex | null = await openIndex(real, { ...options, build: false })
        .catch((e: unknown) => { if (isCuemuxError(e, 'INDEX_MISSING', 'INDEX_STALE', 'INDEX_CORRUPT')) return null; throw e; });
      const waitMs = this.#options.growingWaitMs;
      // Growing: seen to change within a short look, or, when it was modified within --growing-wait-ms, found by the
      // build to end inside a packet, to change while it was read, or to have no readable header yet. A file that was
      // just copied whole is not held back for the whole wait (a 5 s look at every fresh file delayed each GO on it).
      let index = fresh;
      if (index === null && !await watchGrowth(file, waitMs, undefined, QUICK_LOOK_MS)) {
        const built = await openIndex(real, options).catch(async (e: unknown) => {
          if (isCuemuxError(e, 'INDEX_STALE', 'NOT_MEDIA', 'MEDIA_DAMAGED') && await recentlyModified(file, waitMs)) return null;
          throw e;
        });
        if (built !== null && (built.partial === null || !await recentlyModified(file, waitMs))) index = built;
      }
      if (index === null) {
        // While FFmpeg waits at a growing file's written end it holds a thread of libuv's pool (4 by default), which
        // every file read of the server shares: at most MAX_GROWING files are followed at once.
        const followed = this.list().filter((m) => m.growthState === 'growing').length;
        if (followed >= MAX_GROWING) {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `${real}: the file is being written, and ${followed} growing files are followed already (at most ${MAX_GROWING}); open it once one of them is complete`,
            { path: real, operation: 'open media' });
        }
        const growth = await GrowingIndex.start(real, { ...options, waitMs });
        keepFolder = true;
        growth.done.catch(() => undefined).finally(() => folder.close().catch(() => undefined));
        return OpenMedia.open(real, growth.index, file, growth, identity);
      }
      return OpenMedia.open(real, index, file, null, identity);
    } finally {
      if (!keepFolder) await folder.close().catch(() => undefined);
    }
  }

  /** The open media with `id`, or NOT_FOUND. */
  get(id: string): OpenMedia {
    const m = this.#byId.get(id);
    if (m === undefined) throw new CuemuxError('NOT_FOUND', `no open media with id "${id}" (open it with OpenMedia first)`);
    return m;
  }

  /** Drop one OpenMedia reference (CloseMedia). */
  release(media: OpenMedia): void {
    if (media.openCount === 0) throw new CuemuxError('NOT_FOUND', `${media.path}: media ${media.id} is not open`, { path: media.path });
    media.openCount--;
    this.#touch(media);
  }

  /** A streaming call starts using `media`. */
  beginCall(media: OpenMedia): void {
    media.activeCalls++;
    this.#touch(media);
  }

  /** A streaming call on `media` ended. */
  endCall(media: OpenMedia): void {
    media.activeCalls--;
    this.#touch(media);
  }

  /** Open media, for status. */
  list(): OpenMedia[] {
    return [...this.#byId.values()];
  }

  #touch(media: OpenMedia): void {
    const t = this.#idleTimers.get(media.id);
    if (t) clearTimeout(t);
    this.#idleTimers.delete(media.id);
    if (!media.idle || this.#closed) return;
    const timer = setTimeout(() => {
      this.#idleTimers.delete(media.id);
      if (!media.idle || this.#byId.get(media.id) !== media) return;
      this.#byId.delete(media.id);
      log.info('media closed (idle)', { media: media.path, id: media.id, bytesRead: media.bytesRead });
      media.close().catch((e: unknown) => log.warn('closing media failed', { media: media.path, error: String(e) }));
    }, this.#options.idleCloseMs);
    timer.unref();
    this.#idleTimers.set(media.id, timer);
  }

  #closing: Promise<void> | null = null;

  /** Close every media (idempotent: every call returns the same promise). */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#idleTimers.values()) clearTimeout(t);
    this.#idleTimers.clear();
    await Promise.allSettled([...this.#opening.values()]);
    const all = [...this.#byId.values()];
    this.#byId.clear();
    await Promise.all(all.map((m) => m.close()));
  }
}
