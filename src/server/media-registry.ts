/**
 * All media open in the server, by real path and by media_id. Opening the same path twice shares one OpenMedia
 * (and concurrent first opens share one open); a media nobody uses is closed after an idle delay.
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { openIndex } from '../index-store/open-index';
import type { MediaRoots } from './media-roots';
import { OpenMedia, mediaIdFor } from './open-media';

const log = getLogger('media-registry');

/** Registry settings. */
export interface RegistryOptions {
  /** Index cache folder. */
  cacheDir: string;
  /** Most media open at once. */
  maxOpenMedia: number;
  /** Close an unused media after this many ms. */
  idleCloseMs: number;
}

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

  /** Open (or join) the media at the requested path; the caller owes one {@link release}. */
  async open(requested: string): Promise<OpenMedia> {
    if (this.#closed) throw new CuemuxError('CLOSED', 'server is shutting down');
    const real = await this.#roots.resolve(requested);
    if (this.#closed) throw new CuemuxError('CLOSED', 'server is shutting down');
    const id = mediaIdFor(real);
    let media = this.#byId.get(id);
    if (media === undefined) {
      let pending = this.#opening.get(id);
      if (pending === undefined) {
        if (this.#byId.size + this.#opening.size >= this.#options.maxOpenMedia) {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `${requested}: ${this.#options.maxOpenMedia} media are already open (max-open-media); close some first`,
            { path: requested });
        }
        pending = (async () => {
          const index = await openIndex(real, { cacheDir: this.#options.cacheDir });
          const m = await OpenMedia.open(real, index);
          if (this.#closed) {
            // close() ran while this open was in flight: do not leave the file open behind it.
            await m.close();
            throw new CuemuxError('CLOSED', 'server is shutting down');
          }
          this.#byId.set(id, m);
          log.info('media opened', { media: real, id, mode: m.mode, packets: index.packetCount, index: index.indexPath, origin: index.origin });
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
