/**
 * Fetching the bytes of indexed packets, two ways:
 *  - direct: pread [pos, pos + size) from the file. Exact for containers that store each packet's bytes contiguously
 *    and unmodified (MP4/MOV, WAV, FLAC, MP3; checked per file at open), and each client reads only the bytes of its
 *    own streams: an audio and a video client together read the file once.
 *  - demux: a private FFmpeg demuxer per stream of packets (MKV, MPEG-TS...), aligned on the index and checked
 *    packet by packet against it.
 */
import type { FileHandle } from 'node:fs/promises';
import { CuemuxError } from '../common/errors';
import { openDemuxer, packetAt } from '../ffmpeg/beamcoder-adapter';
import type { Demuxer, PacketColumns } from '../ffmpeg/types';
import type { IndexEntry, MediaIndex } from '../index-store/media-index';

/** A packet to send: its index entry and exactly its bytes. */
export interface ServedPacket {
  /** The index entry. */
  entry: IndexEntry;
  /** The packet's bytes. */
  data: Buffer;
}

/** Reads the bytes of a sequence of index entries (ascending entry numbers). */
export interface PacketReader {
  /** Bytes of `entries` (ascending, as planned), in the same order. */
  read(entries: IndexEntry[]): Promise<Buffer[]>;
  /** Release what the reader holds (idempotent). */
  close(): Promise<void>;
}

/** Counts bytes read from the media file (for GetStatus and the one-read-per-file check). */
export interface ReadCounter {
  /** Add bytes read. */
  add(bytes: number): void;
}

/** Largest gap (bytes) between two wanted packets that is read through rather than split into two reads. */
const COALESCE_GAP = 0;

/** pread-based reader over a FileHandle shared by every client of the file. */
export class DirectReader implements PacketReader {
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #counter: ReadCounter;

  constructor(file: FileHandle, mediaPath: string, counter: ReadCounter) {
    this.#file = file;
    this.#path = mediaPath;
    this.#counter = counter;
  }

  async read(entries: IndexEntry[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array<Buffer>(entries.length);
    let i = 0;
    while (i < entries.length) {
      // One read for each run of packets that lie back to back in the file (e.g. a chunk of video samples).
      const start = entries[i].pos;
      if (start === null) throw new CuemuxError('INTERNAL', `${this.#path}: packet ${entries[i].index} has no position`, { path: this.#path });
      let end = start + entries[i].size;
      let j = i + 1;
      while (j < entries.length) {
        const p = entries[j].pos;
        if (p === null || p < end || p > end + COALESCE_GAP || p + entries[j].size - start > 16 << 20) break;
        end = p + entries[j].size;
        j++;
      }
      const buf = Buffer.allocUnsafe(end - start);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await this.#file.read(buf, got, buf.length - got, start + got);
        if (bytesRead === 0) {
          throw new CuemuxError('MEDIA_DAMAGED', `${this.#path}: file ends at byte ${start + got}, packet ${entries[i].index} needs ${end}; was it truncated?`,
            { path: this.#path, operation: 'read' });
        }
        got += bytesRead;
      }
      this.#counter.add(buf.length);
      for (let k = i; k < j; k++) {
        const at = (entries[k].pos as number) - start;
        out[k] = buf.subarray(at, at + entries[k].size);
      }
      i = j;
    }
    return out;
  }

  async close(): Promise<void> {
    // The FileHandle belongs to the open media, not to one reader.
  }
}

function sameEntry(e: IndexEntry, p: { stream: number; pts: number | null; dts: number | null; size: number }): boolean {
  return e.stream === p.stream && e.pts === p.pts && e.dts === p.dts && e.size === p.size;
}

/** Demuxer-based reader: positions a private demuxer on the first entry, then reads in lockstep with the index. */
export class DemuxReader implements PacketReader {
  readonly #index: MediaIndex;
  readonly #counter: ReadCounter;
  #demuxer: Demuxer | null = null;
  /** Entry number of the next packet the demuxer will return. */
  #next = -1;
  #cols: PacketColumns | null = null;
  #at = 0;

  constructor(index: MediaIndex, counter: ReadCounter) {
    this.#index = index;
    this.#counter = counter;
  }

  async #nextPacket(): Promise<{ stream: number; pts: number | null; dts: number | null; size: number; data: Buffer } | null> {
    const d = this.#demuxer as Demuxer;
    if (this.#cols === null || this.#at >= this.#cols.count) {
      const cols = await d.readColumns({ maxPackets: 256, maxBytes: 4 << 20, withData: true });
      if (cols.count === 0) return null;
      this.#cols = cols;
      this.#at = 0;
      this.#counter.add(cols.data?.length ?? 0);
    }
    return packetAt(this.#cols, this.#at++);
  }

  /** Open the demuxer and position it so the next packet read is entry `target`. */
  async #position(target: IndexEntry): Promise<void> {
    const path = this.#index.mediaPath;
    this.#demuxer ??= await openDemuxer(path);
    this.#cols = null;
    const t = target.dts ?? target.pts;
    const attempts: Array<number | null> = t === null ? [null] : [t, null];
    for (const ts of attempts) {
      // Seek to the target's time (FFmpeg lands on a keyframe at or before it), else rewind to the start.
      await this.#demuxer.seek(target.stream, ts ?? Number.MIN_SAFE_INTEGER);
      this.#cols = null;
      for (;;) {
        const p = await this.#nextPacket();
        if (p === null) break;
        if (sameEntry(target, p)) {
          this.#at--; // hand this packet out again as the first one
          this.#next = target.index;
          return;
        }
        const pt = p.dts ?? p.pts;
        if (p.stream === target.stream && pt !== null && t !== null && pt > t) break; // overshot: rewind
      }
    }
    throw new CuemuxError('MEDIA_DAMAGED', `${path}: cannot find packet ${target.index} (stream ${target.stream}) by demuxing; has the file changed?`,
      { path, operation: 'read' });
  }

  async read(entries: IndexEntry[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const e of entries) {
      if (this.#demuxer === null || e.index < this.#next || e.index - this.#next > 4096) await this.#position(e);
      for (;;) {
        const p = await this.#nextPacket();
        if (p === null) {
          throw new CuemuxError('MEDIA_DAMAGED', `${this.#index.mediaPath}: ended before packet ${e.index}; has the file changed?`,
            { path: this.#index.mediaPath, operation: 'read' });
        }
        const n = this.#next++;
        if (n < e.index) continue;
        if (!sameEntry(e, p)) {
          throw new CuemuxError('MEDIA_DAMAGED', `${this.#index.mediaPath}: packet ${e.index} differs from its index entry; has the file changed?`,
            { path: this.#index.mediaPath, operation: 'read' });
        }
        // A view into the native read's own buffer (a fresh one per readColumns): no copy needed.
        out.push(p.data);
        break;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    const d = this.#demuxer;
    this.#demuxer = null;
    await d?.close();
  }
}
