/**
 * `play-video --first-pictures FILE`: when each segment started without a preroll (an unarmed GO, a locate, a loop's
 * unprepared pass) had its first picture decoded and handed to the presenting thread, ready to be shown, with that
 * picture's MD5. Why: such a GO's first in-sync tick shows a later picture than the in-point (the clock moved on while
 * the in-point was decoded), so the ticks alone cannot say when the in-point picture was ready, which is what an
 * unarmed GO is measured by against a player that opens the file itself (bench:go). The MD5 lets a reader check the
 * picture against FFmpeg's, as the `hash:` sink does for ticks.
 *
 * One JSON line per segment, in the sync-log shape (readSyncLog reads it): `mono_ns` (CLOCK_MONOTONIC when the picture
 * reached the presenting thread), `pts_seconds` (its media time), `clock_seconds` (where it lies on the show clock),
 * then `cue`, `segment`, `generation`, `md5`, `width`, `height`. Lines are written once their MD5 is known (hashed off
 * the presenting thread, as the hash sink's: 5-6 ms for a 1080p picture), so they may come out of order.
 */
import { PictureDigests, type Digest } from './picture-digests';
import { SyncLog } from './sync-log';
import type { Picture } from './video-sinks';

/** Where and when a segment's first picture arrived. */
export interface FirstPictureInfo {
  /** CLOCK_MONOTONIC ns when the presenting thread got it. */
  monoNs: bigint;
  cueId: string;
  segment: number;
  generation: bigint;
  /** Its media time, s. */
  mediaSeconds: number;
  /** Its time on the show clock, s. */
  clockSeconds: number;
}

/** The `--first-pictures` log. */
export class FirstPictureLog {
  readonly #log: SyncLog;
  readonly #digests = new PictureDigests(() => this.#flush());
  readonly #pending: Array<{ info: FirstPictureInfo; width: number; height: number; digest: Digest }> = [];

  private constructor(log: SyncLog) {
    this.#log = log;
  }

  /** Create (or truncate) `path`; rejects like {@link SyncLog.open}. */
  static async open(path: string): Promise<FirstPictureLog> {
    return new FirstPictureLog(await SyncLog.open(path));
  }

  /** Log `picture` as its segment's first (hashed off this thread when it is a pooled picture). Never throws. */
  note(picture: Picture, info: FirstPictureInfo): void {
    this.#pending.push({ info, width: picture.width, height: picture.height, digest: this.#digests.digest(picture.planes, picture.retain) });
    this.#flush();
  }

  #flush(): void {
    for (let i = 0; i < this.#pending.length;) {
      const x = this.#pending[i];
      if (x.digest.md5 === null) {
        i++;
        continue;
      }
      this.#pending.splice(i, 1);
      const { info } = x;
      this.#log.record(info.monoNs, info.mediaSeconds, info.clockSeconds, {
        cue: info.cueId, segment: info.segment, generation: String(info.generation), md5: x.digest.md5, width: x.width, height: x.height,
      });
    }
  }

  /** Wait for the digests pending, write them and close the file. Idempotent; never rejects. */
  async close(): Promise<void> {
    await this.#digests.close();
    this.#flush();
    await this.#log.close();
  }
}
