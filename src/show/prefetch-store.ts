/**
 * The prefetch store: the in-points of armed cues read into memory at load, so that a GO sends its first packets
 * from memory instead of the disk, held against one byte budget for the whole show (a cue whose prefetch would pass
 * it loads without one, and its GO reads from the file as an unarmed GO does).
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { RateLimitedLog } from '../common/rate-limited-log';
import { AUDIO_PREROLL_OPTIONS, type LoadedCue } from './loaded-cue';

const log = getLogger('show');

/** Default budget of prefetched bytes held by all armed cues (about 400 one-second 1080p prefetches). */
export const DEFAULT_MAX_PREFETCH_BYTES = 256 << 20;

/** A cue's prefetched packets (LoadedCue.prefetch when present). */
export type Prefetch = NonNullable<LoadedCue['prefetch']>;

/** Prefetched in-points and their byte budget. */
export class PrefetchStore {
  /** Seconds of packets read from each in-point (0: none), 0-30. */
  readonly seconds: number;
  readonly #max: number;
  /** Bytes held (or being read) by loaded cues. */
  #bytes = 0;
  readonly #warnings = new RateLimitedLog();

  /**
   * @param seconds seconds of packets read from each in-point, 0-30 (0 turns prefetching off).
   * @param maxBytes most bytes held by all cues together, a whole number >= 0.
   * @throws CuemuxError INVALID_ARGUMENT naming the setting out of range.
   */
  constructor(seconds: number, maxBytes: number) {
    if (!(Number.isInteger(maxBytes) && maxBytes >= 0)) throw new CuemuxError('INVALID_ARGUMENT', `maxPrefetchBytes must be a whole number >= 0, got ${maxBytes}`);
    if (!(seconds >= 0 && seconds <= 30)) throw new CuemuxError('INVALID_ARGUMENT', `prefetch must be 0-30 seconds, got ${seconds}`);
    this.seconds = seconds;
    this.#max = maxBytes;
  }

  /** Bytes held by loaded cues, and the budget. */
  get budget(): { bytes: number; max: number } {
    return { bytes: this.#bytes, max: this.#max };
  }

  /**
   * Whether the packets a prefetch of `cue` reads are all there: always for a complete file; for a growing one, once
   * the index holds every stream of the cue up to the prefetch's end (a prefetch read earlier would be cut short).
   */
  written(cue: LoadedCue): boolean {
    if (cue.media.growthState !== 'growing' || this.seconds === 0) return true;
    const index = cue.media.index;
    const until = Math.min(cue.endMedia, cue.inMedia + this.seconds);
    return cue.allStreams.every((s) => {
      const t = index.lastTime(s);
      return t !== null && index.toSeconds(s, t) >= until;
    });
  }

  /**
   * Read `cue`'s in-point (its packets from the in-point for {@link seconds}, audio from its pre-roll), or null when
   * prefetching is off, there is nothing to read, or the budget would be passed (logged, rate-limited). The bytes are
   * reserved before the read, so loads in flight together cannot pass the budget; a failed read gives them back.
   */
  async read(cue: LoadedCue): Promise<Prefetch | null> {
    if (this.seconds === 0) return null;
    const entries = [...cue.media.index.packetsInRange(cue.allStreams, cue.inMedia, Math.min(cue.endMedia, cue.inMedia + this.seconds), AUDIO_PREROLL_OPTIONS)];
    if (entries.length === 0) return null;
    let bytes = 0;
    for (const e of entries) bytes += e.size;
    if (this.#bytes + bytes > this.#max) {
      this.#warnings.log('prefetch', (suppressed) => log.warn(`cue "${cue.id.slice(0, 64)}" loaded without a prefetch: its ${bytes} bytes would take the `
        + `prefetched packets of all cues beyond the budget (--max-prefetch-bytes ${this.#max}; ${this.#bytes} held); its GO reads `
        + `from the file${suppressed > 0 ? ` (${suppressed} more cues since the last warning)` : ''}`, { cue: cue.id, bytes, held: this.#bytes }));
      return null;
    }
    this.#bytes += bytes;
    const reader = cue.media.reader();
    try {
      const data = await reader.read(entries);
      return { entries, data, numbers: new Set(entries.map((e) => e.index)), bytes };
    } catch (e) {
      this.#bytes -= bytes;
      throw e;
    } finally {
      await reader.close();
    }
  }

  /** Give back the place of a prefetch that was read but not kept (its cue was unloaded meanwhile). */
  release(prefetch: Prefetch): void {
    this.#bytes -= prefetch.bytes ?? 0;
  }

  /** Let go of `cue`'s prefetched packets and their place in the budget. */
  drop(cue: LoadedCue): void {
    if (cue.prefetch !== null) this.release(cue.prefetch);
    cue.prefetch = null;
  }
}
