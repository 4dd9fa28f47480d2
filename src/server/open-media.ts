/**
 * One open media file, shared by every client that opens the same path: its index, its stream parameters, one file
 * handle for direct reads, reference counts and the bytes read from it.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, type promises as fspTypes } from 'node:fs';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { ticksToSeconds } from '../common/rational';
import { openDemuxer, packetAt } from '../ffmpeg/beamcoder-adapter';
import type { ContainerInfo, StreamParams } from '../ffmpeg/types';
import type { MediaIndex } from '../index-store/media-index';
import { DIRECT_FORMATS } from '../index-store/index-builder';
import type { MediaInfo, StreamInfo } from '../generated/cuemux/v1/media_server';
import { DemuxReader, DirectReader, type PacketReader } from './packet-reader';

const log = getLogger('open-media');

/** Packets compared between the demuxer and pread before direct reads are trusted for a file. */
const VERIFY_PACKETS = 64;

/** A stable id for a media path: the same path always gets the same media_id. */
export function mediaIdFor(realPath: string): string {
  return createHash('sha256').update(realPath).digest('hex').slice(0, 16);
}

const FIELD_ORDER: Record<string, string> = {
  'top coded first, top displayed first': 'tt',
  'bottom coded first, bottom displayed first': 'bb',
  'top coded first, bottom displayed first': 'tb',
  'bottom coded first, top displayed first': 'bt',
};

function big(v: number | null): bigint | undefined {
  return v === null ? undefined : BigInt(v);
}

function streamInfo(p: StreamParams, index: MediaIndex): StreamInfo {
  const st = index.streams[p.index];
  return {
    index: p.index, codecType: p.codecType === 'attachment' || p.codecType === 'unknown' ? 'data' : p.codecType,
    codecName: p.codecName, timeBaseNum: p.timeBase.num, timeBaseDen: p.timeBase.den,
    startPts: big(p.startPts), durationPts: big(p.durationPts), packetCount: BigInt(st?.packetCount ?? 0),
    frameRateNum: p.frameRate?.num ?? 0, frameRateDen: p.frameRate?.den ?? 0, sampleRate: p.sampleRate, channels: p.channels,
    channelLayout: p.channelLayout, width: p.width, height: p.height, format: p.format, bitRate: BigInt(p.bitRate),
    extradata: p.extradata, codecId: p.codecId, codecTag: p.codecTag,
    profile: typeof p.profile === 'number' ? p.profile : undefined, profileName: typeof p.profile === 'string' ? p.profile : '',
    level: p.level === -99 ? undefined : p.level,
    sampleAspectRatioNum: p.sampleAspectRatio.num, sampleAspectRatioDen: p.sampleAspectRatio.den,
    fieldOrder: FIELD_ORDER[p.fieldOrder] ?? p.fieldOrder, colorRange: p.color.range, colorPrimaries: p.color.primaries,
    colorTransfer: p.color.transfer, colorSpace: p.color.space, chromaLocation: '', frameSize: p.frameSize,
    blockAlign: p.blockAlign, bitsPerCodedSample: p.bitsPerCodedSample, bitsPerRawSample: 0, initialPadding: p.initialPadding,
    trailingPadding: 0, seekPreroll: 0, videoDelay: 0, declaredFrames: BigInt(p.declaredFrames), disposition: 0,
  };
}

/** Duration in seconds: the container's, else the latest end of any stream in the index. */
function durationOf(info: ContainerInfo, index: MediaIndex): number {
  if (info.durationSeconds !== null) return info.durationSeconds;
  let d = 0;
  for (const s of index.streams) {
    if (s.frameCount > 0) d = Math.max(d, ticksToSeconds(index.frameToPts(s.index, s.frameCount - 1) - (s.startPts ?? 0), s.timeBase));
  }
  return d;
}

/** A media file open in the server. */
export class OpenMedia {
  /** Stable id (hash of the real path). */
  readonly id: string;
  /** Real path. */
  readonly path: string;
  /** The packet index. */
  readonly index: MediaIndex;
  /** Container and stream parameters. */
  readonly info: ContainerInfo;
  /** What OpenMedia returns. */
  readonly mediaInfo: MediaInfo;
  /** `direct` (pread from the index) or `demux` (a demuxer per reader). */
  readonly mode: 'direct' | 'demux';
  /** When the file was opened (ns since the Unix epoch). */
  readonly openedUnixNs: bigint;
  /** OpenMedia calls not yet matched by CloseMedia. */
  openCount = 0;
  /** Streaming calls running on this media. */
  activeCalls = 0;
  /** Bytes read from the file since it was opened. */
  bytesRead = 0;
  readonly #file: fspTypes.FileHandle;
  #closed = false;

  private constructor(path: string, index: MediaIndex, info: ContainerInfo, file: fspTypes.FileHandle, mode: 'direct' | 'demux', verifyBytes: number) {
    this.id = mediaIdFor(path);
    this.path = path;
    this.index = index;
    this.info = info;
    this.#file = file;
    this.mode = mode;
    this.bytesRead = verifyBytes;
    this.openedUnixNs = BigInt(Date.now()) * 1_000_000n;
    this.mediaInfo = {
      mediaId: this.id, path, durationSeconds: durationOf(info, index), streams: info.streams.map((s) => streamInfo(s, index)),
      formatName: info.formatName, startSeconds: info.startSeconds ?? undefined, bitRate: BigInt(info.bitRate),
    };
  }

  /** Open `path` (real path) with its `index`: read stream parameters, decide direct vs demux reading. */
  static async open(path: string, index: MediaIndex): Promise<OpenMedia> {
    const params = index.params;
    if (params !== null) {
      // Everything is in the index: no FFmpeg open at all (the cold-open cost is a fingerprint and an index read).
      const file = await fsp.open(path, 'r');
      return new OpenMedia(path, index, { ...params.container, path }, file, params.directReadable ? 'direct' : 'demux', 0);
    }
    const demuxer = await openDemuxer(path);
    let file: fspTypes.FileHandle | undefined;
    try {
      file = await fsp.open(path, 'r');
      let mode: 'direct' | 'demux' = 'demux';
      let verifyBytes = 0;
      if (DIRECT_FORMATS.has(demuxer.info.formatName)) {
        const cols = await demuxer.readColumns({ maxPackets: VERIFY_PACKETS, withData: true });
        let ok = cols.count > 0;
        for (let i = 0; ok && i < cols.count; i++) {
          const p = packetAt(cols, i);
          if (p.pos === null) { ok = false; break; }
          const b = Buffer.allocUnsafe(p.size);
          await file.read(b, 0, p.size, p.pos);
          verifyBytes += 2 * p.size;
          ok = b.equals(p.data);
        }
        mode = ok ? 'direct' : 'demux';
        if (!ok) log.warn('direct reads do not match the demuxer for this file: serving through the demuxer', { media: path });
      }
      return new OpenMedia(path, index, demuxer.info, file, mode, verifyBytes);
    } catch (e) {
      await file?.close();
      throw e;
    } finally {
      await demuxer.close();
    }
  }

  /** A reader for one stream of packets (direct ones share the file handle). */
  reader(): PacketReader {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.path}: media closed`, { path: this.path });
    const counter = { add: (n: number): void => { this.bytesRead += n; } };
    return this.mode === 'direct' ? new DirectReader(this.#file, this.path, counter) : new DemuxReader(this.index, counter);
  }

  /** True when nobody uses the media. */
  get idle(): boolean {
    return this.openCount === 0 && this.activeCalls === 0;
  }

  /** Close the file (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#file.close();
  }
}
