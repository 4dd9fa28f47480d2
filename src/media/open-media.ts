/**
 * One open media file, shared by every client that opens the same path: its index, its stream parameters, one file
 * handle for direct reads, reference counts and the bytes read from it. What the show plays and the server serves;
 * the server's wire form of it (MediaInfo) is server/media-info.ts.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { CuemuxError } from '../common/errors';
import { ticksToSeconds } from '../common/rational';
import { openDemuxer } from '../ffmpeg/demuxer';
import type { ContainerInfo, Demuxer, StreamParams } from '../ffmpeg/types';
import { fdPath } from '../index-store/fingerprint';
import type { GrowingIndex, GrowthState } from '../index-store/growing-index';
import { readUpTo } from '../index-store/index-builder';
import type { MediaIndex } from '../index-store/media-index';
import { DemuxReader, DirectReader, type PacketReader } from './packet-reader';

/** Which file a media is: its device and inode numbers (from fstat of the one open handle). */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/**
 * A stable id for a media file: the same path naming the same file always gets the same media_id (also across server
 * restarts). With `file`, a file put in the place of another (saved by renaming over it, as editors, renderers and
 * `rsync` do) gets another id: a server that joined an open media by path alone kept serving the old file's bytes to
 * every new OpenMedia and cue for as long as anything held the old one open.
 */
export function mediaIdFor(realPath: string, file: FileIdentity | null = null): string {
  const h = createHash('sha256').update(realPath);
  if (file !== null) h.update(`\0${file.dev}:${file.ino}`);
  return h.digest('hex').slice(0, 16);
}

/** The type of a stream as clients and cue outputs name it: attachments and streams of unknown type count as data. */
export type StreamType = 'video' | 'audio' | 'subtitle' | 'data';

/** A stream's type as clients and cue outputs name it. */
export function streamType(p: StreamParams): StreamType {
  return p.codecType === 'attachment' || p.codecType === 'unknown' ? 'data' : p.codecType;
}

/** One stream of an open media, as a cue's output selectors pick it. */
export interface MediaStream {
  /** Stream index in the container. */
  readonly index: number;
  /** Its type. */
  readonly codecType: StreamType;
}

/** Pictures at the end of a stream whose steps give the last picture's span (see durationOf). */
const STEP_FRAMES = 16;

/**
 * Duration in seconds from the container's start: the container's, or the end of the last picture in the index when
 * that is later (or when the container has none). Why: FFmpeg's duration of a fragmented MP4 it wrote is the last
 * packet's dts plus its duration, which with B-frames ends before the last picture's span (bench:progressive: 12.16 s
 * for a last picture at pts 12.20 s), and a cue ending there never showed its last picture (a black tick).
 * A picture's end is its pts plus the smallest step between the last {@link STEP_FRAMES} pictures.
 */
function durationOf(info: ContainerInfo, index: MediaIndex): number {
  const start = info.startSeconds ?? 0;
  let d = 0;
  for (const s of index.streams) {
    const n = s.frameCount;
    if (n === 0) continue;
    const last = index.frameToPts(s.index, n - 1);
    // A picture's span: the smallest step between the last pictures (a cut by -t can drop B-frames before the last).
    let step = 0;
    for (let k = n - 1; k > 0 && k >= n - STEP_FRAMES; k--) {
      const dt = index.frameToPts(s.index, k) - index.frameToPts(s.index, k - 1);
      if (dt > 0 && (step === 0 || dt < step)) step = dt;
    }
    d = Math.max(d, ticksToSeconds(last + step, s.timeBase) - start);
  }
  return info.durationSeconds !== null ? Math.max(info.durationSeconds, d) : d;
}

/** A media file open in the server. */
export class OpenMedia {
  /** Stable id (hash of the real path). */
  readonly id: string;
  /** Real path. */
  readonly path: string;
  /** Set while the file is (or was, when opened) being written: its growing index. */
  readonly growth: GrowingIndex | null;
  /** Container and stream parameters. */
  readonly info: ContainerInfo;
  /** Its streams by type (what cue outputs select). */
  readonly streams: readonly MediaStream[];
  /** Presentation time of its start, in seconds (the container's start time, 0 when it has none). */
  readonly startSeconds: number;
  readonly #durationSeconds: number;
  readonly #index: MediaIndex;
  /** When the file was opened (ns since the Unix epoch). */
  readonly openedUnixNs: bigint;
  /** OpenMedia calls not yet matched by CloseMedia. */
  openCount = 0;
  /** Streaming calls running on this media. */
  activeCalls = 0;
  /** Bytes read from the file since it was opened. */
  bytesRead = 0;
  readonly #file: FileHandle;
  #closed = false;
  /** Demuxers being opened on the file (through /proc/self/fd/N): the file is closed only once none is. */
  #demuxersOpening = 0;
  #demuxersOpened: (() => void) | null = null;

  private constructor(path: string, index: MediaIndex, info: ContainerInfo, file: FileHandle, growth: GrowingIndex | null, identity: FileIdentity | null) {
    this.id = mediaIdFor(path, identity);
    this.path = path;
    this.#index = index;
    this.growth = growth;
    this.info = info;
    this.#file = file;
    this.openedUnixNs = BigInt(Date.now()) * 1_000_000n;
    this.streams = info.streams.map((s) => ({ index: s.index, codecType: streamType(s) }));
    this.startSeconds = info.startSeconds ?? 0;
    this.#durationSeconds = durationOf(info, index);
  }

  /**
   * The media at `path` (real path, inside a media root), open as `file` (from MediaRoots.open: every read goes
   * through it, the path is never opened again), with its `index`, which carries the stream parameters and the
   * direct-read verdict. Takes `file` over (closes it on close()); the caller closes it if this throws. `identity`
   * (the file's device and inode, default none) goes into its id (see mediaIdFor).
   */
  static open(path: string, index: MediaIndex, file: FileHandle, growth: GrowingIndex | null = null, identity: FileIdentity | null = null): OpenMedia {
    const params = index.params;
    if (params === null) {
      // openIndex never returns such an index (it counts as stale); this guards the invariant.
      throw new CuemuxError('INDEX_STALE', `${index.indexPath}: index has no codec parameters; rebuild it`, { path });
    }
    // No FFmpeg open at all: the cold-open cost is a fingerprint and an index read.
    return new OpenMedia(path, index, { ...params.container, path }, file, growth, identity);
  }

  /** The packet index: while the file grows, the index of what is written so far (a new object as it grows). */
  get index(): MediaIndex {
    return this.growth?.index ?? this.#index;
  }

  /**
   * Duration in seconds: the container's, else the latest end of any stream in the index; of a growing file, that of
   * what is indexed so far (the final container's once complete).
   */
  get durationSeconds(): number {
    const g = this.growth;
    if (g === null) return this.#durationSeconds;
    const params = g.index.params;
    const container = params === null ? this.info : { ...params.container, path: this.path };
    // Until the file is complete its index says how far it is written: FFmpeg's container duration of a file still
    // being written is not that (a Matroska file written by ffmpeg from a pipe said 8.02 s, the whole clip's, with
    // under 1 s written), nor is it after its growth failed.
    return durationOf(g.state === 'complete' ? container : { ...container, durationSeconds: null }, g.index);
  }

  /** `direct` (pread from the index) or `demux` (a demuxer per reader); a growing file's is `demux` until complete. */
  get mode(): 'direct' | 'demux' {
    return this.index.params?.directReadable === true ? 'direct' : 'demux';
  }

  /** `growing` while the file is being written, else `complete` (a failed growth reports its error on reads). */
  get growthState(): GrowthState {
    return this.growth?.state ?? 'complete';
  }

  /** A reader for one stream of packets (direct ones share the file handle). */
  reader(): PacketReader {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.path}: media closed`, { path: this.path });
    const counter = { add: (n: number): void => { this.bytesRead += n; } };
    return this.mode === 'direct' ? new DirectReader(this.#file, this.path, counter, this.index.params?.dataOffsets ?? []) : new DemuxReader(this.index, counter, () => this.#openDemuxer());
  }

  /**
   * Up to `length` bytes of the file at `offset` (fewer only where a complete file ends). Bytes a growing file does not
   * hold yet are waited for, at most `timeoutMs` (default: its growing-wait-ms) and until `signal` aborts; then what is
   * there is returned. For byte-range readers of the file (HTTP), which, like every read, go through the one handle.
   * With `into` (at least `length` bytes), the bytes are read into it and the result views it.
   */
  async readAt(offset: number, length: number, options: { timeoutMs?: number; signal?: AbortSignal; into?: Buffer } = {}): Promise<Buffer> {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.path}: media closed`, { path: this.path });
    const g = this.growth;
    if (g !== null) await g.waitForBytes(offset + length, options.timeoutMs ?? g.waitMs, options.signal);
    const bytes = await readUpTo(this.#file, offset, length, options.into === undefined ? undefined : { buf: options.into });
    this.bytesRead += bytes.length;
    return bytes;
  }

  /**
   * The open file's status (size, inode, modification time), from the one handle: for validators (HTTP ETag) and
   * the size a complete file has.
   */
  async stat(): Promise<Stats> {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.path}: media closed`, { path: this.path });
    return this.#file.stat();
  }

  /**
   * Bytes readable now: a growing file's written size at its last look, else the file's size.
   */
  async availableBytes(): Promise<number> {
    const g = this.growth;
    if (g !== null && g.state === 'growing') return g.writtenBytes;
    return (await this.stat()).size;
  }

  /**
   * A demuxer on this media's open file (FFmpeg opens `/proc/self/fd/N`, the very file, not the path). The file
   * stays open until every such open has finished, so the number N always names it.
   */
  async #openDemuxer(): Promise<Demuxer> {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.path}: media closed`, { path: this.path });
    this.#demuxersOpening++;
    try {
      return await openDemuxer(this.path, { source: fdPath(this.#file) });
    } finally {
      if (--this.#demuxersOpening === 0) this.#demuxersOpened?.();
    }
  }

  /** True when nobody uses the media. */
  get idle(): boolean {
    return this.openCount === 0 && this.activeCalls === 0;
  }

  /** Close the file (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.growth?.close();
    if (this.#demuxersOpening > 0) await new Promise<void>((resolve) => { this.#demuxersOpened = resolve; });
    await this.#file.close();
  }
}
