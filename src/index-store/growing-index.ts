/**
 * The index of a media file that is still being written (copied, rendered): built as far as the file is written and
 * growing with it, then completed and published as a normal `.idx` once the file stops growing.
 *
 * How growth is followed: one FFmpeg demuxer opened with the file protocol's `follow=1` (ffmpeg-protocols: "retry
 * reading at the end of the file, allowing reading files that still are being written") reads on as bytes arrive.
 * A packet comes out only once its bytes are all read (the demuxer blocks at the written end, mid-packet or not), so
 * the index never holds a partial packet; the demuxer gives up with an I/O error once no byte has arrived for
 * `waitMs` (`rw_timeout`). The last packet of the batch in which it gave up is left out (MPEG-TS flushes the PES it
 * was in as a packet; MP4 returns what it could read of a sample), unless it is known whole (MP4: it ends before a size
 * the file had when the read began). If the file then grows again, a new demuxer reads on, skipping (and checking) the packets already
 * indexed. (FFmpeg 5.1's MP4 demuxer ends at the size the file had when it opened unless told to ignore its index:
 * it is opened with `fflags +ignidx` (openDemuxer's ignoreIndex) and then reads fragment after fragment as they are written; a new
 * demuxer per fragment, each reading the whole file again, grew the server's RSS by ~2 MiB/s.) The file is finished once its end mark is there
 * (media-end.ts: a fragmented MP4's `mfra`, a Matroska Segment's size; found at two looks in a row), or, for a container
 * without one, once it has not changed for `waitMs`; a pause of a writer whose container has an end mark is not its end
 * (ABANDONED_MS). The index is then completed by a normal build, which must agree with every packet already indexed,
 * and published (see openIndex).
 *
 * Growth is never taken for corruption; a file truncated or replaced while growing is: every LOOK_MS the open file
 * is checked (size never shrinking, the path still naming the same inode, the bytes of the first packet and of the
 * latest packet checked unchanged), and a change ends the index with a MEDIA_DAMAGED error naming the file.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { CuemuxError, errorMessage, isCuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { openDemuxer } from '../ffmpeg/demuxer';
import { libavformatVersion } from '../ffmpeg/native';
import { META_STRIDE, Meta, type Demuxer, type PacketColumns } from '../ffmpeg/types';
import { fdPath, fingerprint } from './fingerprint';
import { lastWhole, truncatedAt } from './short-reads';
import { IndexEncoder } from './idx-encoder';
import type { SourceIdentity } from './idx-format';
import { readUpTo, type BuildProgress } from './index-builder';
import { MediaIndex } from './media-index';
import { endMark, type EndMark } from './media-end';
import { fragmentedMp4, notPlayableUntilComplete } from './mp4-layout';
import { DEFAULT_GROWING_WAIT_MS, LOOK_MS, look, watchGrowth, type Look } from './growth-watch';
import { openIndex } from './open-index';

const log = getLogger('growing-index');

export { DEFAULT_GROWING_WAIT_MS, recentlyModified, watchGrowth } from './growth-watch';


/**
 * Packets per read while the demuxer is near the written end: one, so each packet is indexed as soon as it is whole.
 * With 4, the last packets of a fragment waited in a batch for the next fragment (1080p fragmented MP4 in 200 ms
 * fragments written at its real rate: index behind the writer p90 304 ms with 4, 54 ms with 1).
 */
const NEAR_BATCH = 1;
/** Packets per read while far behind the written end (catching up on a file that is already long). */
const FAR_BATCH = 4096;
/** Bytes behind the written end beyond which the demuxer counts as far behind. */
const FAR_BYTES = 4 << 20;
/**
 * How long a file whose container marks its end (see media-end.ts) but whose mark is not there must be still before
 * it is taken as finished as it stands (its writer died), in ms: at least this, and at least 12 x waitMs. A writer's
 * pause (a render stuck on a heavy frame, a copy stalled on the network) is not its end: a cue on it waits, as at any
 * written end, instead of ending early; only a writer gone for a minute is given up on.
 */
const ABANDONED_MS = 60_000;
/** Where a media file stands: still being written, complete, or unplayable until it is complete. */
export type GrowthState = 'growing' | 'complete' | 'not-playable' | 'failed';

/** Options of {@link GrowingIndex.start} and {@link watchGrowth}. */
export interface GrowingOptions {
  /** The file counts as complete once it has not changed for this long, in ms (default {@link DEFAULT_GROWING_WAIT_MS}). */
  waitMs?: number;
  /** The media, already open (the server's): read through it; left open. */
  file?: FileHandle;
  /** The media's folder as a path that reaches it (see OpenIndexOptions.folder); used for the final index. */
  folder?: string;
  /** Index cache folder for the final index (see OpenIndexOptions.cacheDir). */
  cacheDir?: string;
  /** Stops the following (the index then fails with CLOSED). */
  signal?: AbortSignal;
  /** Progress, after every read of packets and once complete. */
  onProgress?: (p: BuildProgress & { state: GrowthState }) => void;
}

/** A packet's bytes, remembered to see whether they change: where, how many, and their hash. */
interface Anchor {
  pos: number;
  size: number;
  hash: string;
}

/** The index of one growing file; see the module comment. */
export class GrowingIndex {
  /** Absolute media path. */
  readonly media: string;
  /** How long the file must be still to count as complete when its container has no end mark, in ms. */
  readonly waitMs: number;
  /** Resolves with the final index once the file is complete; rejects with the error that ended the following. */
  readonly done: Promise<MediaIndex>;
  #index: MediaIndex;
  #state: GrowthState = 'growing';
  #error: CuemuxError | null = null;
  #waiters = new Set<() => void>();
  readonly #file: FileHandle;
  readonly #ownFile: boolean;
  readonly #options: GrowingOptions;
  readonly #encoder: IndexEncoder;
  readonly #demuxerInfo: Demuxer['info'];
  #identity: SourceIdentity;
  #demuxer: Demuxer | null;
  #lastLook: Look;
  /** The largest size a reader's own look found (waitForBytes): bytes there to read, not yet checked by #check. */
  #readerLook = 0;
  #anchors: Anchor[] = [];
  #stop = new AbortController();
  #timer: NodeJS.Timeout | null = null;
  /** A fragmented MP4 (its end mark is an `mfra`; it is read with ignoreIndex). */
  readonly #fragmented: boolean;
  /** The look at which the end mark was last read, and what it said. */
  #endLook: Look | null = null;
  #mark: EndMark = 'unmarked';
  /** Resolves once the end mark was found twice, with no change to the file between (see #lookAtEnd). */
  #ended: Promise<void>;
  #endedNow: () => void = () => undefined;

  private constructor(media: string, file: FileHandle, ownFile: boolean, demuxer: Demuxer, identity: SourceIdentity, first: Look, fragmented: boolean, options: GrowingOptions) {
    this.media = media;
    this.#fragmented = fragmented;
    this.#ended = new Promise((resolve) => { this.#endedNow = resolve; });
    this.waitMs = options.waitMs ?? DEFAULT_GROWING_WAIT_MS;
    this.#file = file;
    this.#ownFile = ownFile;
    this.#options = options;
    this.#demuxer = demuxer;
    this.#demuxerInfo = demuxer.info;
    this.#encoder = new IndexEncoder(demuxer.info.streams, { live: true });
    this.#identity = identity;
    this.#lastLook = first;
    this.#index = this.#snapshot();
    options.signal?.addEventListener('abort', () => this.#fail(new CuemuxError('CLOSED', `${media}: following the growing file was stopped`, { path: media, operation: 'index growing' })), { once: true });
    this.done = this.#run();
    this.done.catch(() => undefined);
  }

  /**
   * Start indexing the growing file `media` (absolute path). Resolves once FFmpeg has opened it (its stream
   * parameters are known: for MPEG-TS that takes a few seconds of the file), with an index of what is written so far.
   * An MP4 that cannot be read before it is complete rejects with WRONG_STATE (details.growth 'not-playable').
   */
  static async start(media: string, options: GrowingOptions = {}): Promise<GrowingIndex> {
    const file = options.file ?? await fsp.open(media, 'r');
    try {
      const waitMs = options.waitMs ?? DEFAULT_GROWING_WAIT_MS;
      for (;;) {
        const why = await notPlayableUntilComplete(file);
        if (why !== null) throw notPlayable(media, why);
        const identity = await fingerprint(file, media);
        const first = await look(file);
        let demuxer: Demuxer;
        const known = await fragmentedMp4(file);
        // Its moov still being written: wait for it (still with a partial moov: followed as not fragmented, as before).
        if (known === null && !options.signal?.aborted && await watchGrowth(file, waitMs, options.signal)) continue;
        const fragmented = known === true;
        try {
          demuxer = await openDemuxer(media, { source: fdPath(file), followMs: waitMs, ignoreIndex: fragmented });
        } catch (e) {
          // Too little written yet for FFmpeg to recognise the container or find its streams (an empty file, the
          // first bytes of a header): try again once it has grown, fail as any file would once it is still.
          if (isCuemuxError(e, 'NOT_MEDIA', 'MEDIA_DAMAGED') && !options.signal?.aborted && await watchGrowth(file, waitMs, options.signal)) continue;
          throw e;
        }
        return new GrowingIndex(media, file, options.file === undefined, demuxer, identity, first, fragmented, options);
      }
    } catch (e) {
      if (options.file === undefined) await file.close();
      throw e;
    }
  }

  /** The index as far as the file is written (the final one once complete). A new object after every growth. */
  get index(): MediaIndex {
    return this.#index;
  }

  /** Where the file stands. */
  get state(): GrowthState {
    return this.#state;
  }

  /** The file's size at the last look, or at a reader's later look (waitForBytes) when larger, in bytes. */
  get writtenBytes(): number {
    return Math.max(this.#lastLook.size, this.#readerLook);
  }

  /** The error that ended the following (state 'failed'), else null. */
  get error(): CuemuxError | null {
    return this.#error;
  }

  /**
   * Wait until the index grows, completes or fails, `timeoutMs` passes or `signal` aborts, whichever comes first.
   * Resolves at once when it is no longer growing.
   */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#state !== 'growing' || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Wait until the file holds the bytes before `end` (its written size reaches it), it is no longer growing, `timeoutMs`
   * passes or `signal` aborts; true when the bytes are there. What a byte-range reader of a growing file (HTTP) waits
   * on: sizes are looked at every LOOK_MS.
   */
  async waitForBytes(end: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.writtenBytes >= end) return true;
      // The file itself, not only the last look: the index's demuxer reads past it (FFmpeg reads the file directly) and
      // the next look waits for that demuxer's read, which at the written end blocks up to waitMs. Without this a
      // packet already indexed could wait that long for its bytes (bench:progressive: play-video held one picture for
      // 57 ticks, 2.3 s, at --growing-wait-ms 2000). What it finds is what writtenBytes says next (HTTP ranges).
      const size = (await look(this.#file)).size;
      this.#readerLook = Math.max(this.#readerLook, size); // after the await: a slower look never lowers it
      if (this.#readerLook >= end) return true;
      if (this.#state !== 'growing' || signal?.aborted || Date.now() >= deadline) return false;
      await this.waitForChange(Math.max(1, deadline - Date.now()), signal);
    }
  }

  /**
   * Look at the file now (a reader found a packet not where the index says): the error that ends the growth when the
   * file was truncated, replaced or overwritten (it then fails with it), else null. Once the file is no longer
   * growing, the error that ended it, if any.
   */
  async verify(): Promise<CuemuxError | null> {
    if (this.#state === 'growing') {
      try {
        await this.#check();
      } catch (e) {
        if (isCuemuxError(e)) this.#fail(e);
        else throw e;
      }
    }
    return this.#error;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * The index of the packets so far, as a MediaIndex over the encoder's live view: no encoding or parsing, O(streams)
   * however long the file (append-only, see growing-tables.ts), so it is published after every read.
   */
  #snapshot(): MediaIndex {
    const v = libavformatVersion();
    const info = this.#demuxerInfo;
    const view = this.#encoder.view({
      identity: { ...this.#identity, size: this.#lastLook.size }, sourcePath: this.media, formatName: info.formatName,
      lavfVersion: (v.major << 16) | (v.minor << 8) | v.micro,
      params: { container: { ...info, path: this.media }, directReadable: false, dataOffsets: info.streams.map(() => 0) },
    });
    return new MediaIndex(view, this.media, `${this.media} (growing, in memory)`, 'memory');
  }

  #publish(): void {
    if (this.#state !== 'growing' || this.#encoder.count === this.#index.packetCount) return;
    this.#index = this.#snapshot();
    this.#wake();
  }

  #fail(e: CuemuxError): void {
    if (this.#state !== 'growing') return;
    this.#state = 'failed';
    this.#error = e;
    this.#stop.abort();
    this.#wake();
  }

  /** Hash of the file's bytes [pos, pos + size). */
  async #hash(pos: number, size: number): Promise<string> {
    return createHash('sha1').update(await readUpTo(this.#file, pos, size)).digest('hex');
  }

  /**
   * One look at the file: throws MEDIA_DAMAGED when it shrank, its path names another file now, or bytes of packets
   * already indexed changed. Returns the look.
   */
  async #check(): Promise<Look> {
    const now = await look(this.#file);
    const media = this.media;
    const damaged = (why: string): CuemuxError => new CuemuxError('MEDIA_DAMAGED', `${media}: ${why} while it was growing; the packets indexed so far no longer match it`,
      { path: media, operation: 'index growing', details: { growth: 'failed' } });
    if (now.size < this.#lastLook.size) throw damaged(`truncated (${this.#lastLook.size} -> ${now.size} bytes)`);
    const grew = now.size > this.#lastLook.size;
    const byPath = await fsp.stat(media).catch(() => null);
    const fd = await this.#file.stat();
    if (byPath === null) throw damaged('removed or renamed');
    if (byPath.ino !== fd.ino || byPath.dev !== fd.dev) throw damaged('replaced by another file (inode changed)');
    for (const a of this.#anchors) {
      if (await this.#hash(a.pos, a.size) === a.hash) continue;
      // Cut between the look above and this read (a packet past the end reads short): say so, not "overwritten".
      const after = await this.#file.stat();
      if (after.size < a.pos + a.size) throw damaged(`truncated (${Math.max(this.#lastLook.size, now.size)} -> ${after.size} bytes)`);
      throw damaged(`overwritten (the bytes of a packet at byte ${a.pos} changed)`);
    }
    this.#lastLook = now;
    if (grew) this.#wake(); // byte readers (waitForBytes) go on
    await this.#lookAtEnd(now);
    return now;
  }

  /**
   * Read the file's end mark when the file changed since it was last read; the end counts as reached once the mark
   * says `ended` at two looks with no change between (a Matroska muxer rewrites its header after its Cues: the second
   * look, LOOK_MS later, lets it finish).
   */
  async #lookAtEnd(now: Look): Promise<void> {
    const last = this.#endLook;
    if (last !== null && last.size === now.size && last.mtimeMs === now.mtimeMs) {
      if (this.#mark === 'ended') this.#endedNow();
      return;
    }
    this.#endLook = now;
    this.#mark = await endMark(this.#file, now.size, this.#fragmented);
  }

  /** Remember the bytes of the first packet and of the last one of `cols` (the anchors checked at every look). */
  async #anchor(cols: PacketColumns): Promise<void> {
    for (const i of this.#anchors.length === 0 ? [0, cols.count - 1] : [cols.count - 1]) {
      const o = i * META_STRIDE;
      const pos = cols.meta[o + Meta.POS];
      const size = Math.min(cols.meta[o + Meta.SIZE], 64 << 10);
      if (pos < 0 || size <= 0) continue;
      const a = { pos, size, hash: await this.#hash(pos, size) };
      if (this.#anchors.length < 2) this.#anchors.push(a);
      else this.#anchors[1] = a;
    }
  }

  /** The looks at the file while it grows: every LOOK_MS, until the index is no longer growing. */
  #startLooking(): void {
    const tick = (): void => {
      this.#timer = null;
      if (this.#state !== 'growing') return;
      this.#check().then(() => {
        if (this.#state === 'growing') this.#timer = setTimeout(tick, LOOK_MS);
      }, (e: unknown) => this.#fail(isCuemuxError(e) ? e : new CuemuxError('INTERNAL', `${this.media}: ${errorMessage(e)}`, { path: this.media, cause: e })));
    };
    this.#timer = setTimeout(tick, LOOK_MS);
  }

  /**
   * After the demuxer stopped: true when the file grows again before its end, false once it is finished: its end mark
   * is there, or it has been still for waitMs with no end mark to look for, or for ABANDONED_MS (12 x waitMs if longer)
   * without the end mark its container has (its writer died; logged).
   */
  async #grewBeforeEnd(readSize: number): Promise<boolean> {
    for (;;) {
      // Bytes the stopped demuxer never read (a fragmented MP4's ends at the size it saw at open): read on now, not
      // after the file grows again (a writer that pauses there would leave them unindexed for the whole pause).
      const now = await look(this.#file);
      if (now.size > readSize) return true;
      // The end mark as the file stands now, not as the last look found it: that look may not have run yet (its file
      // reads queue in the thread pool behind FFmpeg's reads blocked at the written end), and the mark's default
      // ('unmarked') would take a writer's pause for the end (a flake of test/growing-end in a long mocha run).
      if (this.#mark !== 'unfinished' && await endMark(this.#file, now.size, this.#fragmented) === 'unfinished') this.#mark = 'unfinished';
      const unfinished = this.#mark === 'unfinished';
      const still = unfinished ? Math.max(ABANDONED_MS, 12 * this.waitMs) : this.waitMs;
      const watching = new AbortController();
      const stop = (): void => watching.abort();
      this.#stop.signal.addEventListener('abort', stop, { once: true });
      try {
        const how = await Promise.race([watchGrowth(this.#file, still, watching.signal).then((grew) => (grew ? 'grew' : 'still')), this.#ended.then(() => 'ended')]);
        if (how === 'grew') return true;
        if (how === 'ended' || this.#stop.signal.aborted || this.#mark !== 'unfinished') return false;
        if (unfinished) {
          log.warn('growing media still without the end mark its container has: taken as finished as it stands', { media: this.media, stillMs: still });
          return false;
        }
        // Its mark was read as 'unfinished' only during the wait: wait on, for ABANDONED_MS.
      } finally {
        watching.abort();
        this.#stop.signal.removeEventListener('abort', stop);
      }
    }
  }

  #throwIfEnded(): void {
    if (this.#error !== null) throw this.#error;
  }

  /** Read what the demuxer gives until it stops (no byte for waitMs, or its end). */
  async #readOn(demuxer: Demuxer, skip: { left: number; from: number }, sizeAtOpen: number): Promise<void> {
    let endPos = 0;
    let floor = sizeAtOpen;
    for (;;) {
      this.#throwIfEnded();
      // The file held at least `floor` bytes before this read started (it only grows: see #check).
      floor = Math.max(floor, this.#lastLook.size);
      const far = this.#lastLook.size - endPos > FAR_BYTES;
      const read = await demuxer.readColumns({ maxPackets: far ? FAR_BATCH : NEAR_BATCH });
      this.#throwIfEnded();
      // The batch in which the demuxer stopped may end with a packet flushed unfinished: that last packet is read
      // again (by the next demuxer, or the final build); the packets before it are whole and indexed now. Dropping the
      // whole batch lost every packet of a far-behind read (FAR_BATCH): a new demuxer (fragmented MP4 ends at the size
      // it saw at open) starts far behind, read the whole file in one batch, and dropped it, again and again, so a
      // 1080p fragmented MP4 written in real time stopped being indexed after ~2 s until its writer stopped.
      const cut = truncatedAt(read, sizeAtOpen);
      const ended = read.stopped !== null || read.eof || cut < read.count;
      const whole = cut < read.count ? { ...read, count: cut } : read;
      const cols = (read.stopped !== null || read.eof) && cut === read.count && !lastWhole(read, floor, this.#demuxerInfo.formatName) ? { ...read, count: Math.max(0, read.count - 1) } : whole;
      if (cols.count === 0) return;
      const o = (cols.count - 1) * META_STRIDE;
      if (cols.meta[o + Meta.POS] >= 0) endPos = cols.meta[o + Meta.POS] + cols.meta[o + Meta.SIZE];
      const fresh = this.#skip(cols, skip);
      if (fresh === null) {
        if (ended) return;
        continue;
      }
      this.#encoder.add(fresh);
      await this.#anchor(fresh);
      this.#options.onProgress?.({ media: this.media, packets: this.#encoder.count, bytePos: endPos, totalBytes: this.#lastLook.size, state: 'growing' });
      this.#publish();
      if (ended) return;
    }
  }

  /**
   * Drop from `cols` the packets a new demuxer reads again (`skip.left` of them, indexed from entry `skip.from`),
   * checking each is the packet indexed (else MEDIA_DAMAGED); null when nothing is left.
   */
  #skip(cols: PacketColumns, skip: { left: number; from: number }): PacketColumns | null {
    if (skip.left === 0) return cols;
    let i = 0;
    const streams = this.#demuxerInfo.streams.length;
    for (; i < cols.count && skip.left > 0; i++) {
      const o = i * META_STRIDE;
      if (cols.meta[o + Meta.STREAM] >= streams) continue;
      const e = this.#index.entry(skip.from);
      const pos = cols.meta[o + Meta.POS];
      if (e.stream !== cols.meta[o + Meta.STREAM] || e.size !== cols.meta[o + Meta.SIZE] || (e.pos ?? -1) !== (pos < 0 ? -1 : pos)) {
        throw new CuemuxError('MEDIA_DAMAGED', `${this.media}: changed while it was growing: packet ${skip.from} is no longer where it was indexed`,
          { path: this.media, operation: 'index growing', details: { growth: 'failed' } });
      }
      skip.from++;
      skip.left--;
    }
    if (i === cols.count) return null;
    if (i === 0) return cols;
    return { ...cols, count: cols.count - i, meta: cols.meta.subarray(i * META_STRIDE), data: null };
  }

  async #run(): Promise<MediaIndex> {
    this.#startLooking();
    try {
      let demuxer: Demuxer | null = this.#demuxer;
      for (;;) {
        // A new demuxer reads the file from its start again: the packets indexed so far are skipped (and checked).
        const skip = { left: demuxer === null ? this.#encoder.count : 0, from: 0 };
        let sizeAtOpen = this.#lastLook.size;
        if (demuxer === null) {
          sizeAtOpen = (await look(this.#file)).size;
          demuxer = await openDemuxer(this.media, { source: fdPath(this.#file), followMs: this.waitMs, ignoreIndex: this.#fragmented });
          this.#demuxer = demuxer;
        }
        const reading = this.#readOn(demuxer, skip, sizeAtOpen);
        const ended = await Promise.race([reading.then(() => false), this.#ended.then(() => true)]);
        const stopped = demuxer;
        this.#demuxer = null;
        demuxer = null;
        if (ended) {
          // The end mark is there: complete now. The demuxer may be blocked at the written end for up to waitMs; it
          // is closed once that read returns (its packets are no longer published), not waited for.
          reading.catch(() => undefined).finally(() => { stopped.close().catch(() => undefined); });
          const final = await this.#complete();
          if (final !== null) return final;
          await reading.catch(() => undefined); // it changed during the build: one demuxer at a time adds packets
          continue;
        }
        await stopped.close();
        this.#publish();
        // The demuxer stopped: no byte for waitMs, or (fragmented MP4) the size it saw at open. Read on if the file
        // grows again; complete it once its end mark is there.
        if (await this.#grewBeforeEnd(this.#fragmented ? sizeAtOpen : Number.POSITIVE_INFINITY)) continue;
        this.#throwIfEnded();
        const final = await this.#complete();
        if (final !== null) return final;
      }
    } catch (e) {
      const err = isCuemuxError(e) ? (this.#error ?? e) : new CuemuxError('INTERNAL', `${this.media}: following the growing file failed: ${errorMessage(e)}`, { path: this.media, cause: e });
      this.#fail(err);
      throw err;
    } finally {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      if (this.#demuxer !== null) this.#demuxer.close().catch(() => undefined);
      if (this.#ownFile) await this.#file.close().catch(() => undefined);
    }
  }

  /**
   * The file has been still for waitMs: build its index as any complete file's and publish it, after checking it
   * agrees with every packet indexed while it grew. Null when it changed during that build (it grows again).
   */
  async #complete(): Promise<MediaIndex | null> {
    let final: MediaIndex;
    try {
      final = await openIndex(this.media, { file: this.#file, folder: this.#options.folder, cacheDir: this.#options.cacheDir, force: true, signal: this.#stop.signal });
    } catch (e) {
      if (isCuemuxError(e, 'INDEX_STALE') && this.#error === null) {
        // It changed during the build: its end is looked for again.
        this.#endLook = null;
        this.#ended = new Promise((resolve) => { this.#endedNow = resolve; });
        return null;
      }
      throw e;
    }
    this.#throwIfEnded();
    const grown = this.#index;
    if (final.packetCount < grown.packetCount) {
      throw new CuemuxError('MEDIA_DAMAGED', `${this.media}: the complete file has ${final.packetCount} packets, fewer than the ${grown.packetCount} indexed while it grew: it was cut or rewritten`,
        { path: this.media, operation: 'index growing', details: { growth: 'failed' } });
    }
    const a = grown.entries();
    const b = final.entries(0, grown.packetCount);
    for (let x = a.next(), y = b.next(); !x.done && !y.done; x = a.next(), y = b.next()) {
      const p = x.value;
      const q = y.value;
      if (p.stream !== q.stream || p.pts !== q.pts || p.dts !== q.dts || p.size !== q.size || p.pos !== q.pos || p.key !== q.key) {
        throw new CuemuxError('MEDIA_DAMAGED', `${this.media}: packet ${p.index} of the complete file differs from the one indexed while it grew: it was rewritten`,
          { path: this.media, operation: 'index growing', details: { growth: 'failed' } });
      }
    }
    this.#index = final;
    this.#state = 'complete';
    log.info('growing media complete', { media: this.media, packets: final.packetCount, index: final.indexPath });
    this.#options.onProgress?.({ media: this.media, packets: final.packetCount, bytePos: this.#lastLook.size, totalBytes: this.#lastLook.size, state: 'complete' });
    this.#wake();
    return final;
  }

  /**
   * Stop following (idempotent): the index fails with CLOSED unless it is already complete. Does not wait for a
   * read FFmpeg has blocked at the written end (up to waitMs): that read ends on its own and its demuxer is closed
   * then (the media's file may be closed before: FFmpeg reads its own descriptor of it).
   */
  close(): Promise<void> {
    this.#fail(new CuemuxError('CLOSED', `${this.media}: closed while it was growing`, { path: this.media, operation: 'index growing' }));
    return Promise.resolve();
  }
}

/** The error for a file that cannot be read before it is complete (`why` from notPlayableUntilComplete). */
export function notPlayable(media: string, why: string): CuemuxError {
  return new CuemuxError('WRONG_STATE', `${media}: not playable until complete: ${why}`,
    { path: media, operation: 'open media', details: { growth: 'not-playable', reason: why } });
}
