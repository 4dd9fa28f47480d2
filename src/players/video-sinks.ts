/**
 * Where a video player presents its pictures, one call per output tick: a YUV4MPEG2 stream (`y4m:PATH`, for
 * `ffplay`/`mpv` reading a FIFO, or a file), raw pictures (`raw:PATH`, for `ffplay -f rawvideo ...`), a frame-hash
 * log (`hash:PATH`, checked against `ffmpeg -f framemd5`), or nothing (`null`).
 *
 * A stream sink (y4m, raw) carries one picture format: the first picture fixes width, height and pixel format (black
 * presented before it is not written, there is nothing to size it by). A later picture of another size or format
 * would break every reader, so it is replaced by black and counted as `mismatched`. A picture format a sink cannot
 * carry (y4m has no colorspace tag for nv12 or RGB; raw needs to know the layout to make black) is never thrown at
 * the player: presenting is real-time and may happen mid-show. It is logged once, counted as `unsupported` and kept
 * as {@link VideoSink.error}; nothing is written until a picture of a supported format comes (it then fixes the
 * format). Use {@link videoFormatSupported} to check before playing.
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import type { Rational } from '../common/rational';
import { PictureDigests, type Digest } from './picture-digests';
import { PipeOutput, totalLength } from './pipe-output';
import { SyncLog } from './sync-log';

const log = getLogger('player-sink');

/** One decoded picture as a player presents it (a `DecodedVideoFrame` is one). */
export interface Picture {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** FFmpeg pixel format name, e.g. `yuv420p`. */
  format: string;
  /**
   * The planes in FFmpeg's plane order with tightly packed rows: concatenated they are exactly the bytes of
   * `ffmpeg -f rawvideo`. Sinks may queue them by reference, so they must not be modified after presenting.
   */
  planes: Buffer[];
  /** Sample (pixel) aspect ratio; 0/1 or absent when unknown. */
  sampleAspectRatio?: Rational;
  /**
   * Present when the planes are lent (a pool slot shared with the decoding thread): a sink that uses them after
   * present() returns (a queued write) calls it, and calls the function it returns once it is done with them.
   */
  retain?: () => () => void;
}

/** When and what a tick presents. */
export interface PresentInfo {
  /** CLOCK_MONOTONIC instant of the tick, in nanoseconds. */
  monoNs: bigint;
  /** Presentation time of the picture on the show clock's timeline, in seconds; null when nothing is shown. */
  ptsSeconds: number | null;
  /** Show clock position at `monoNs`, in seconds. */
  clockSeconds: number;
  /**
   * True when the picture is not the one for the clock but an earlier one held on screen: the frame due was not
   * decoded in time, or a cue ended with `--at-end hold`. Absent = false.
   */
  held?: boolean;
}

/** Counters of a {@link VideoSink}; a snapshot. */
export interface VideoSinkStats {
  /** present() calls (ticks). */
  presented: number;
  /** Ticks that presented a picture as itself. */
  pictures: number;
  /** Ticks that presented black: nothing to show, or a picture replaced by black. */
  black: number;
  /** Pictures replaced by black because their size or format differs from the stream's. */
  mismatched: number;
  /** Pictures this sink cannot carry (format, or planes of the wrong size); not written. */
  unsupported: number;
  /** Units (frames, hash lines) taken by the output. */
  written: number;
  /** Units the output dropped (no reader, slow reader, failed output). */
  dropped: number;
  /** Bytes taken by the output (0 for hash and null sinks). */
  bytesWritten: number;
}

/** A video output of a player. */
export interface VideoSink {
  /**
   * Present `picture` (null: nothing on this output now, which a stream sink shows as black) at the tick `at`.
   * Never throws, never blocks.
   */
  present(picture: Picture | null, at: PresentInfo): void;
  /** Flush and close. Idempotent; never rejects. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  readonly stats: VideoSinkStats;
  /** The last picture this sink could not carry (INVALID_ARGUMENT), or null. */
  readonly error: CuemuxError | null;
  /**
   * Fields this sink adds to the tick's sync-log line, asked right after present() (a window's presentation
   * figures: `present_ns`...). Absent: none.
   */
  syncFields?(): Record<string, string | number | boolean | null>;
}

/** Options of {@link openVideoSink}. */
export interface VideoSinkOptions {
  /** Output frame rate (ticks per second) as num/den, written into the y4m header. */
  fps: Rational;
  /** Output name for log lines, e.g. `main`. */
  name: string;
  /**
   * Bytes a stream sink may queue for a slow reader before frames are dropped, default 32 MiB (about ten 1080p
   * yuv420p frames). See PipeOutput.
   */
  maxQueuedBytes?: number;
}

// ------------------------------------------------------------------------------------------------------------------
// Pixel formats

/** One plane: its row length in samples and row count for a picture size, and the repeating black sample values. */
interface PlaneLayout {
  rowSamples: (width: number) => number;
  rows: (height: number) => number;
  black: readonly number[];
}

interface FormatLayout {
  bytesPerSample: 1 | 2;
  planes: readonly PlaneLayout[];
  /** The y4m `C` tag, null when y4m has none. */
  y4m: string | null;
}

/** FFmpeg's AV_CEIL_RSHIFT: chroma of an odd-sized picture covers the last column/row too. */
const ceilShift = (v: number, s: number): number => (v + (1 << s) - 1) >> s;

function planar(bytesPerSample: 1 | 2, xShift: number, yShift: number, y: number, uv: number, y4m: string): FormatLayout {
  const chroma: PlaneLayout = { rowSamples: (w) => ceilShift(w, xShift), rows: (h) => ceilShift(h, yShift), black: [uv] };
  return { bytesPerSample, planes: [{ rowSamples: (w) => w, rows: (h) => h, black: [y] }, chroma, chroma], y4m };
}

function packed(samplesPerPixel: number, black: readonly number[]): FormatLayout {
  return { bytesPerSample: 1, planes: [{ rowSamples: (w) => w * samplesPerPixel, rows: (h) => h, black }], y4m: null };
}

// Black is limited-range (studio swing) like what decoders of broadcast material produce: Y 16, chroma 128 at 8 bits,
// 64 and 512 at 10 bits. The y4m tags are the ones ffmpeg's yuv4mpegpipe muxer writes (C420jpeg for yuv420p).
const FORMATS: ReadonlyMap<string, FormatLayout> = new Map<string, FormatLayout>([
  ['yuv420p', planar(1, 1, 1, 16, 128, '420jpeg')],
  ['yuv422p', planar(1, 1, 0, 16, 128, '422')],
  ['yuv444p', planar(1, 0, 0, 16, 128, '444')],
  ['yuv420p10le', planar(2, 1, 1, 64, 512, '420p10')],
  ['yuv422p10le', planar(2, 1, 0, 64, 512, '422p10')],
  ['yuv444p10le', planar(2, 0, 0, 64, 512, '444p10')],
  ['gray', { bytesPerSample: 1, planes: [{ rowSamples: (w) => w, rows: (h) => h, black: [16] }], y4m: 'mono' }],
  ['nv12', {
    bytesPerSample: 1,
    planes: [
      { rowSamples: (w) => w, rows: (h) => h, black: [16] },
      { rowSamples: (w) => 2 * ceilShift(w, 1), rows: (h) => ceilShift(h, 1), black: [128, 128] },
    ],
    y4m: null,
  }],
  ['rgb24', packed(3, [0, 0, 0])],
  ['bgr24', packed(3, [0, 0, 0])],
  ['rgba', packed(4, [0, 0, 0, 255])],
  ['bgra', packed(4, [0, 0, 0, 255])],
]);

/** Which sinks can carry pictures of `format`: `raw` needs a known layout, `y4m` also a colorspace tag. */
export function videoFormatSupported(kind: 'y4m' | 'raw', format: string): boolean {
  const f = FORMATS.get(format);
  return f !== undefined && (kind === 'raw' || f.y4m !== null);
}

/** The y4m colorspace tag of `format` (e.g. `420jpeg` for yuv420p), or null when y4m cannot carry it. */
export function y4mColorspace(format: string): string | null {
  return FORMATS.get(format)?.y4m ?? null;
}

/** Bytes of one `width`×`height` picture of `format` as `ffmpeg -f rawvideo` writes it, or null for an unknown format. */
export function rawFrameSize(width: number, height: number, format: string): number | null {
  const f = FORMATS.get(format);
  if (f === undefined) return null;
  let n = 0;
  for (const p of f.planes) n += p.rowSamples(width) * p.rows(height) * f.bytesPerSample;
  return n;
}

/** A black picture's planes, each filled with its repeating black samples (little-endian at 16 bits). */
function blackPlanes(width: number, height: number, f: FormatLayout): Buffer[] {
  return f.planes.map((p) => {
    const samples = p.rowSamples(width) * p.rows(height);
    const b = Buffer.alloc(samples * f.bytesPerSample);
    for (let i = 0; i < samples; i++) {
      const v = p.black[i % p.black.length];
      if (f.bytesPerSample === 1) b[i] = v;
      else b.writeUInt16LE(v, 2 * i);
    }
    return b;
  });
}

const formatKey = (p: Picture): string => `${p.width}x${p.height} ${p.format}`;

// ------------------------------------------------------------------------------------------------------------------
// Sinks

/** The stream format fixed by the first picture. */
interface Established {
  key: string;
  size: number;
  black: Buffer[];
  header: Buffer | null;
}

const FRAME = Buffer.from('FRAME\n');

/** y4m and raw: a stream of whole pictures through a {@link PipeOutput}. */
class StreamSink implements VideoSink {
  readonly #kind: 'y4m' | 'raw';
  readonly #options: VideoSinkOptions;
  #out: PipeOutput | null = null;
  #fmt: Established | null = null;
  #error: CuemuxError | null = null;
  #loggedUnsupported = new Set<string>();
  #lastMismatch: string | null = null;
  #presented = 0;
  #pictures = 0;
  #black = 0;
  #mismatched = 0;
  #unsupported = 0;

  constructor(kind: 'y4m' | 'raw', options: VideoSinkOptions) {
    this.#kind = kind;
    this.#options = options;
  }

  async open(path: string): Promise<void> {
    this.#out = await PipeOutput.open(path, {
      name: `video:${this.#options.name}`,
      maxQueuedBytes: this.#options.maxQueuedBytes ?? 32 * 1024 * 1024,
      // Null until the first picture fixes the format; PipeOutput then asks again before each frame.
      header: this.#kind === 'y4m' ? () => this.#fmt?.header ?? null : undefined,
    });
  }

  get error(): CuemuxError | null {
    return this.#error;
  }

  get stats(): VideoSinkStats {
    const o = this.#out?.stats;
    return {
      presented: this.#presented,
      pictures: this.#pictures,
      black: this.#black,
      mismatched: this.#mismatched,
      unsupported: this.#unsupported,
      written: o?.unitsWritten ?? 0,
      dropped: o?.unitsDropped ?? 0,
      bytesWritten: o?.bytesWritten ?? 0,
    };
  }

  present(picture: Picture | null): void {
    this.#presented++;
    if (picture !== null) {
      const fmt = this.#fmt ?? this.#establish(picture);
      if (fmt === null) return;
      const key = formatKey(picture);
      if (key === fmt.key && totalLength(picture.planes) === fmt.size) {
        this.#lastMismatch = null;
        this.#pictures++;
        this.#writeFrame(picture.planes, picture.retain?.());
        return;
      }
      this.#mismatched++;
      if (this.#lastMismatch !== key) {
        this.#lastMismatch = key;
        log.warn('a picture does not match the stream format; black is presented instead',
          { output: this.#options.name, stream: fmt.key, picture: key, bytes: totalLength(picture.planes), expected: fmt.size });
      }
    }
    if (this.#fmt === null) return;
    this.#black++;
    this.#writeFrame(this.#fmt.black);
  }

  close(): Promise<void> {
    return this.#out?.close() ?? Promise.resolve();
  }

  /** Queue one frame; `release` (of lent planes) runs once the write is done or dropped. */
  #writeFrame(planes: readonly Buffer[], release?: () => void): void {
    if (this.#out === null) {
      release?.();
      return;
    }
    this.#out.writeUnit(this.#kind === 'y4m' ? [FRAME, ...planes] : planes, release);
  }

  /** Fix the stream format from `p`, or refuse it (logged once per format). */
  #establish(p: Picture): Established | null {
    const f = FORMATS.get(p.format);
    const size = rawFrameSize(p.width, p.height, p.format);
    const key = formatKey(p);
    let problem: string | null = null;
    if (f === undefined || (this.#kind === 'y4m' && f.y4m === null)) {
      problem = `pixel format ${p.format} cannot be written to a ${this.#kind} output (supported: ${[...FORMATS.keys()].filter((k) => videoFormatSupported(this.#kind, k)).join(', ')})`;
    } else if (!(p.width > 0 && p.height > 0) || totalLength(p.planes) !== size) {
      problem = `a ${key} picture has ${totalLength(p.planes)} bytes of planes, ${size ?? '?'} expected`;
    }
    if (problem !== null || f === undefined || size === null) {
      this.#unsupported++;
      this.#error = new CuemuxError('INVALID_ARGUMENT', `video output ${this.#options.name}: ${problem ?? key}`,
        { operation: 'present', details: { picture: key } });
      if (!this.#loggedUnsupported.has(key)) {
        this.#loggedUnsupported.add(key);
        log.error(this.#error.message, { output: this.#options.name });
      }
      return null;
    }
    const sar = p.sampleAspectRatio !== undefined && p.sampleAspectRatio.num > 0 && p.sampleAspectRatio.den > 0
      ? `${p.sampleAspectRatio.num}:${p.sampleAspectRatio.den}`
      : '0:0';
    const { num, den } = this.#options.fps;
    const header = this.#kind === 'y4m'
      ? Buffer.from(`YUV4MPEG2 W${p.width} H${p.height} F${num}:${den} Ip A${sar} C${f.y4m}\n`, 'latin1')
      : null;
    this.#fmt = { key, size, black: blackPlanes(p.width, p.height, f), header };
    log.info('stream format fixed by the first picture', { output: this.#options.name, format: key, kind: this.#kind });
    return this.#fmt;
  }
}

/**
 * `hash:PATH`: one sync-log line per tick with the MD5 of the picture's concatenated planes, which is what
 * `ffmpeg -f framemd5` prints for rawvideo frames. Every picture is hashed as it is (no stream format to keep), and a
 * black tick has `md5`, `width`, `height` and `format` null; a picture held on screen (not the clock's) has `held:
 * true`. Pictures lent from the decode worker's pool are hashed off the presenting thread ({@link PictureDigests});
 * lines are written in tick order once their MD5 is known. This sink is for verification runs.
 */
class HashSink implements VideoSink {
  readonly #log: SyncLog;
  readonly #digests = new PictureDigests(() => this.#flush());
  /** The last picture hashed (compared by identity: a presented picture's planes never change) and its digest. */
  #last: { picture: Picture; digest: Digest } | null = null;
  /** Ticks not written yet, in order: each waits for its digest (and those before it). */
  readonly #lines: Array<{ at: PresentInfo; digest: Digest | null; fields: Record<string, string | number | boolean | null> }> = [];
  #presented = 0;
  #pictures = 0;
  #black = 0;
  #closing: Promise<void> | null = null;

  constructor(syncLog: SyncLog) {
    this.#log = syncLog;
  }

  get error(): CuemuxError | null {
    return null;
  }

  get stats(): VideoSinkStats {
    const s = this.#log.stats;
    return {
      presented: this.#presented, pictures: this.#pictures, black: this.#black, mismatched: 0, unsupported: 0,
      written: s.records, dropped: s.dropped, bytesWritten: 0,
    };
  }

  present(picture: Picture | null, at: PresentInfo): void {
    this.#presented++;
    if (picture === null) {
      this.#black++;
      this.#lines.push({ at, digest: null, fields: { md5: null, width: null, height: null, format: null } });
    } else {
      this.#pictures++;
      // A picture repeated at the next ticks (a 25 fps cue at 50 ticks/s, a held picture) is hashed once.
      if (this.#last?.picture !== picture) this.#last = { picture, digest: this.#digests.digest(picture.planes, picture.retain) };
      this.#lines.push({ at, digest: this.#last.digest, fields: { width: picture.width, height: picture.height, format: picture.format, ...(at.held === true ? { held: true } : {}) } });
    }
    this.#flush();
  }

  /** Write the lines whose MD5 is known, up to the first that waits. */
  #flush(): void {
    while (this.#lines.length > 0) {
      const l = this.#lines[0];
      if (l.digest !== null && l.digest.md5 === null) return;
      this.#lines.shift();
      this.#log.record(l.at.monoNs, l.at.ptsSeconds, l.at.clockSeconds, l.digest === null ? l.fields : { md5: l.digest.md5, ...l.fields });
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#digests.close().then(() => {
      this.#flush();
      return this.#log.close();
    });
    return this.#closing;
  }
}

/** `null`: counts ticks only. */
class NullSink implements VideoSink {
  #presented = 0;
  #pictures = 0;

  get error(): CuemuxError | null {
    return null;
  }

  get stats(): VideoSinkStats {
    return {
      presented: this.#presented, pictures: this.#pictures, black: this.#presented - this.#pictures, mismatched: 0,
      unsupported: 0, written: 0, dropped: 0, bytesWritten: 0,
    };
  }

  present(picture: Picture | null): void {
    this.#presented++;
    if (picture !== null) this.#pictures++;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Open a video sink from its command-line spec: `y4m:PATH`, `raw:PATH`, `hash:PATH` or `null` (PATH may be a FIFO,
 * a file or `-` for stdout; for `hash` a file). Rejects with a CuemuxError: INVALID_ARGUMENT for a malformed spec or
 * frame rate, or the path's error (see PipeOutput.open), naming the path.
 */
export async function openVideoSink(spec: string, options: VideoSinkOptions): Promise<VideoSink> {
  const { num, den } = options.fps;
  if (!Number.isSafeInteger(num) || !Number.isSafeInteger(den) || num <= 0 || den <= 0) {
    throw new CuemuxError('INVALID_ARGUMENT', `video output ${options.name}: frame rate ${num}/${den} is not a positive fraction of integers`);
  }
  if (spec === 'null') return new NullSink();
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const path = colon < 0 ? '' : spec.slice(colon + 1);
  if ((kind !== 'y4m' && kind !== 'raw' && kind !== 'hash') || path === '') {
    throw new CuemuxError('INVALID_ARGUMENT', `video output "${spec}": expected y4m:PATH, raw:PATH, hash:PATH or null`);
  }
  if (kind === 'hash') return new HashSink(await SyncLog.open(path));
  const sink = new StreamSink(kind, options);
  await sink.open(path);
  return sink;
}
