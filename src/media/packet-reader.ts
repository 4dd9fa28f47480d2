/**
 * Fetching the bytes of indexed packets, two ways:
 *  - direct: pread [pos + offset, + size) from the file. Exact for containers that store each packet's bytes
 *    contiguously and unmodified (MP4/MOV, WAV, FLAC, MP3, unlaced Matroska; verified at index build), and each client
 *    reads only the bytes of its own streams: an audio and a video client together read the file once.
 *  - demux: a private FFmpeg demuxer per stream of packets (MKV, MPEG-TS...), aligned on the index and checked
 *    packet by packet against it.
 */
import { readvSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { CuemuxError } from '../common/errors';
import { CallOrder } from '../common/call-order';
import { openDemuxer, packetAt } from '../ffmpeg/demuxer';
import type { Demuxer, PacketColumns } from '../ffmpeg/types';
import type { IndexEntry, MediaIndex } from '../index-store/media-index';

/** Reads the bytes of a sequence of index entries (ascending entry numbers). */
export interface PacketReader {
  /** Bytes of `entries` (ascending, as planned), in the same order. */
  read(entries: IndexEntry[]): Promise<Buffer[]>;
  /**
   * Optional: read the bytes of `entries` straight into `target`, entry i at `at[i]` (what the server's pump uses
   * to read packets into the message it sends, without a copy). Readers without it are used through `read`.
   */
  readInto?(entries: IndexEntry[], target: Buffer, at: readonly number[]): Promise<void>;
  /** Optional: as readInto, on the calling thread (see SYNC_READ_BYTES in server/packet-stream.ts). */
  readIntoSync?(entries: IndexEntry[], target: Buffer, at: readonly number[]): void;
  /** Release what the reader holds (idempotent). */
  close(): Promise<void>;
}

/** Counts bytes read from the media file (for GetStatus and the one-read-per-file check). */
export interface ReadCounter {
  /** Add bytes read. */
  add(bytes: number): void;
}

/**
 * Largest gap (bytes) between two wanted packets that is read through rather than split into two reads: it bridges
 * Matroska's block headers (a few bytes between one block's payload and the next), never another stream's packets
 * worth reading around (an audio packet is hundreds of bytes).
 */
const COALESCE_GAP = 32;
/** Most payloads scattered by one readv (below every platform's IOV_MAX, gaps included). */
const MAX_IOVECS = 512;
/** Largest single read of `read()`, in bytes. */
const MAX_RUN_BYTES = 16 << 20;
/** Reads one readInto keeps in flight (libuv's thread pool has 4 threads, shared by every call). */
const READS_IN_FLIGHT = 4;
/** Where readv drops the bytes of a bridged gap (never read by anyone). */
const GAP_SINK = Buffer.alloc(COALESCE_GAP);

/** A run of packets read with one read: entries [i, j) from file bytes [start, end). */
interface Run {
  i: number;
  j: number;
  start: number;
  end: number;
}

/**
 * pread-based reader over a FileHandle shared by every client of the file. A packet's bytes are at
 * [pos + dataOffsets[stream], + size) (see SourceParams).
 */
export class DirectReader implements PacketReader {
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #counter: ReadCounter;
  readonly #offsets: readonly number[];

  constructor(file: FileHandle, mediaPath: string, counter: ReadCounter, dataOffsets: readonly number[]) {
    this.#file = file;
    this.#path = mediaPath;
    this.#counter = counter;
    this.#offsets = dataOffsets;
  }

  /** File offset of entry `e`'s payload. */
  #at(e: IndexEntry): number {
    if (e.pos === null) throw new CuemuxError('INTERNAL', `${this.#path}: packet ${e.index} has no position`, { path: this.#path });
    return e.pos + (this.#offsets[e.stream] ?? 0);
  }

  /** Split `entries` into runs of packets that lie back to back in the file, or nearly (see COALESCE_GAP). */
  #runs(entries: IndexEntry[], maxPackets: number, maxBytes: number): Run[] {
    const runs: Run[] = [];
    for (let i = 0; i < entries.length;) {
      const start = this.#at(entries[i]);
      let end = start + entries[i].size;
      let j = i + 1;
      while (j < entries.length && j - i < maxPackets) {
        const p = this.#at(entries[j]);
        if (p < end || p > end + COALESCE_GAP || p + entries[j].size - start > maxBytes) break;
        end = p + entries[j].size;
        j++;
      }
      runs.push({ i, j, start, end });
      i = j;
    }
    return runs;
  }

  #truncated(e: IndexEntry, at: number, end: number): CuemuxError {
    return new CuemuxError('MEDIA_DAMAGED', `${this.#path}: file ends at byte ${at}, packet ${e.index} needs ${end}; was it truncated?`,
      { path: this.#path, operation: 'read' });
  }

  async read(entries: IndexEntry[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array<Buffer>(entries.length);
    for (const run of this.#runs(entries, Infinity, MAX_RUN_BYTES)) {
      const { i, j, start, end } = run;
      const buf = Buffer.allocUnsafe(end - start);
      await this.#readRun(entries, run, [buf]);
      for (let k = i; k < j; k++) {
        const at = this.#at(entries[k]) - start;
        out[k] = buf.subarray(at, at + entries[k].size);
      }
    }
    return out;
  }

  async readInto(entries: IndexEntry[], target: Buffer, at: readonly number[]): Promise<void> {
    // One readv for each run of packets that lie (nearly) back to back in the file, each landing in its own slot;
    // the half of MAX_IOVECS leaves room for the gaps' views.
    const runs = this.#runs(entries, MAX_IOVECS / 2, Infinity);
    // Runs are read a few at a time: one stream of an interleaved file is many short runs (the audio between video
    // chunks), and one thread-pool round trip after another would dominate a small batch's latency.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < runs.length) {
        try {
          const run = runs[next++];
          await this.#readRun(entries, run, this.#views(entries, run, target, at));
        } catch (e) {
          next = runs.length; // the others stop after their current read
          throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, runs.length) }, worker));
  }

  readIntoSync(entries: IndexEntry[], target: Buffer, at: readonly number[]): void {
    for (const run of this.#runs(entries, MAX_IOVECS / 2, Infinity)) {
      let views = this.#views(entries, run, target, at);
      let got = 0;
      while (got < run.end - run.start) {
        const bytesRead = readvSync(this.#file.fd, views, run.start + got);
        if (bytesRead === 0) throw this.#truncated(entries[run.i], run.start + got, run.end);
        got += bytesRead;
        views = remainingViews(views, bytesRead);
      }
      this.#counter.add(run.end - run.start);
    }
  }

  /** The buffers one readv of `run` fills: each packet's slot in `target`, the gaps' bytes dropped in GAP_SINK. */
  #views(entries: IndexEntry[], { i, j, start }: Run, target: Buffer, at: readonly number[]): Buffer[] {
    const views: Buffer[] = [];
    let pos = start;
    for (let k = i; k < j; k++) {
      const p = this.#at(entries[k]);
      if (p > pos) views.push(GAP_SINK.subarray(0, p - pos));
      if (entries[k].size > 0) views.push(target.subarray(at[k], at[k] + entries[k].size));
      pos = p + entries[k].size;
    }
    return views;
  }

  /** Read the bytes of `run` into `views` (which cover it exactly), through short reads; count them. */
  async #readRun(entries: IndexEntry[], run: Run, views: Buffer[]): Promise<void> {
    let got = 0;
    while (got < run.end - run.start) {
      const { bytesRead } = await this.#file.readv(views, run.start + got);
      if (bytesRead === 0) throw this.#truncated(entries[run.i], run.start + got, run.end);
      got += bytesRead;
      views = remainingViews(views, bytesRead);
    }
    this.#counter.add(run.end - run.start);
  }

  async close(): Promise<void> {
    // The FileHandle belongs to the open media, not to one reader.
  }
}

/** What is left of `views` after a read of `bytesRead` bytes into them (a short read goes on from there). */
function remainingViews(views: Buffer[], bytesRead: number): Buffer[] {
  let skip = bytesRead;
  let k = 0;
  while (skip > 0 && k < views.length && views[k].length <= skip) skip -= views[k++].length;
  const rest = views.slice(k);
  if (skip > 0) rest[0] = rest[0].subarray(skip);
  return rest;
}

function sameEntry(e: IndexEntry, p: { stream: number; pts: number | null; dts: number | null; size: number }): boolean {
  return e.stream === p.stream && e.pts === p.pts && e.dts === p.dts && e.size === p.size;
}

/** Packets scanned forward for the next wanted one before the demuxer is repositioned. */
const SCAN_LIMIT = 4096;
/** Entries this close to the start are reached by reading from the start rather than by seeking. */
const NO_SEEK_BELOW = 256;
/**
 * Bounds of one demuxer read (bytes): what the call still wants plus READ_SLACK_BYTES (the other streams' packets
 * between them), at least MIN_READ_BYTES, at most MAX_READ_BYTES. Each packet handed out is a view into its read's
 * buffer, which stays alive while any of them does: read 4 MiB ahead for a Follow batch of 128 KiB, every batch in
 * flight held a read of 1.2-3.8 MiB (heap snapshots of bench:progressive's server, session 17).
 */
const MIN_READ_BYTES = 64 << 10;
const READ_SLACK_BYTES = 64 << 10;
const MAX_READ_BYTES = 4 << 20;

/**
 * Demuxer-based reader: finds each wanted packet by its signature (stream, pts, dts, size) in what a private demuxer
 * returns. It never counts packets, because after a seek FFmpeg may drop packets of other streams (MPEG-TS drops
 * PES packets that began before the seek point) and may return packets of streams the index leaves out.
 */
export class DemuxReader implements PacketReader {
  readonly #index: MediaIndex;
  readonly #counter: ReadCounter;
  readonly #open: () => Promise<Demuxer>;
  #demuxer: Demuxer | null = null;
  #cols: PacketColumns | null = null;
  #at = 0;
  #closed = false;
  /** Bytes the read in progress still wants (sizes its demuxer reads, see MIN_READ_BYTES). */
  #wanted = 0;
  readonly #order = new CallOrder();

  /**
   * `open` opens a fresh demuxer on the media (default: by the index's media path; the server passes one that
   * opens the file it already has open, never the path again).
   */
  constructor(index: MediaIndex, counter: ReadCounter, open?: () => Promise<Demuxer>) {
    this.#index = index;
    this.#counter = counter;
    this.#open = open ?? (() => openDemuxer(index.mediaPath));
  }

  async #nextPacket(): Promise<{ stream: number; pts: number | null; dts: number | null; size: number; data: Buffer } | null> {
    const d = this.#demuxer;
    if (d === null) return null;
    if (this.#cols === null || this.#at >= this.#cols.count) {
      const maxBytes = Math.min(MAX_READ_BYTES, Math.max(MIN_READ_BYTES, this.#wanted + READ_SLACK_BYTES));
      const cols = await d.readColumns({ maxPackets: 256, maxBytes, withData: true });
      if (cols.count === 0) return null;
      this.#cols = cols;
      this.#at = 0;
      this.#counter.add(cols.data?.length ?? 0);
    }
    const p = packetAt(this.#cols, this.#at++);
    // Its last packet taken, the read is let go: kept, it stayed alive while the reader waited (for a
    // growing file's next bytes, or the next call) though nothing more would come from it.
    if (this.#at >= this.#cols.count) this.#cols = null;
    return p;
  }

  /** Scan forward at most `limit` packets for `e`; its bytes, or null. */
  async #scanTo(e: IndexEntry, limit: number): Promise<Buffer | null> {
    const streams = this.#index.streams.length;
    for (let i = 0; i < limit; i++) {
      if (this.#closed) return null;
      const p = await this.#nextPacket();
      if (p === null) return null;
      if (p.stream >= streams) continue; // a stream FFmpeg found mid-file: not in the index
      // A view into the native read's own buffer (a fresh one per readColumns): no copy needed.
      if (sameEntry(e, p)) return p.data;
    }
    return null;
  }

  /** A fresh demuxer placed at or before `e`: from the start for early entries, else seeking to its time. */
  async #reposition(e: IndexEntry): Promise<void> {
    await this.#demuxer?.close();
    this.#demuxer = null;
    this.#cols = null;
    if (this.#closed) return;
    this.#demuxer = await this.#open();
    const t = e.dts ?? e.pts;
    if (e.index < NO_SEEK_BELOW || t === null) return;
    try {
      await this.#demuxer.seek(e.stream, t);
    } catch {
      // Not seekable (raw streams): read from the start instead.
      await this.#demuxer.close();
      this.#demuxer = await this.#open();
    }
  }

  async #read(entries: IndexEntry[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    this.#wanted = entries.reduce((a, e) => a + e.size, 0);
    for (const e of entries) {
      let data = this.#demuxer !== null ? await this.#scanTo(e, SCAN_LIMIT) : null;
      if (data === null && !this.#closed) {
        await this.#reposition(e);
        data = await this.#scanTo(e, e.index < NO_SEEK_BELOW ? e.index + SCAN_LIMIT : SCAN_LIMIT);
        if (data === null && !this.#closed && e.index >= NO_SEEK_BELOW) {
          // The seek landed after the packet (or dropped it): read from the start, as ffprobe does.
          await this.#reposition({ ...e, index: 0 });
          data = await this.#scanTo(e, e.index + SCAN_LIMIT);
        }
      }
      if (this.#closed) throw new CuemuxError('CLOSED', `${this.#index.mediaPath}: reader closed`, { path: this.#index.mediaPath });
      if (data === null) {
        throw new CuemuxError('MEDIA_DAMAGED', `${this.#index.mediaPath}: packet ${e.index} (stream ${e.stream}) is not where the index says; has the file changed?`,
          { path: this.#index.mediaPath, operation: 'read' });
      }
      out.push(data);
      this.#wanted -= e.size;
    }
    return out;
  }

  read(entries: IndexEntry[]): Promise<Buffer[]> {
    return this.#order.run(() => this.#read(entries));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#order.idle(); // never close the demuxer under a read in progress
    const d = this.#demuxer;
    this.#demuxer = null;
    await d?.close();
  }
}
