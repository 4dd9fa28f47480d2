/**
 * The demuxer: open a media file with FFmpeg (as ffprobe does: the container, then stream info probing), describe its
 * streams as {@link StreamParams}, and read its packets in column batches or one at a time, and seek. Opening checks
 * what FFmpeg would report badly (a missing file, a directory, an empty or text file) with the OS's words first.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError, fromSystemError } from '../common/errors';
import type { Rational } from '../common/rational';
import { native, type NativeFormat, type NativeStream } from './native';
import { translateNativeError } from './native-error';
import { NativeLane } from './native-lane';
import {
  META_STRIDE, Meta, NO_VALUE,
  type CodecType, type ContainerInfo, type Demuxer, type Packet, type PacketColumns, type ReadColumnsOptions, type StreamParams,
} from './types';

/** A rational FFmpeg reported as `[num, den]`, or null when absent, zero or negative (FFmpeg's "unknown"). */
function rational(v: unknown): Rational | null {
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [num, den] = v as [number, number];
  return den > 0 && num > 0 ? { num, den } : null;
}

function codecType(t: unknown): CodecType {
  switch (t) {
    case 'video': case 'audio': case 'subtitle': case 'data': case 'attachment':
      return t;
    default:
      return 'unknown';
  }
}

/** beamcoder reports codec_tag as a FourCC string ('avc1') or a number: FFmpeg's MKTAG value (little-endian). */
function fourcc(tag: unknown): number {
  if (typeof tag === 'number' && Number.isFinite(tag)) return tag >>> 0;
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > 4) return 0;
  let v = 0;
  for (let i = 0; i < tag.length; i++) v |= (tag.charCodeAt(i) & 0xff) << (8 * i);
  return v >>> 0;
}

/** A field FFmpeg reports as a string (an enum or layout name), or `fallback` when it is absent. */
function text(v: unknown, fallback: string): string {
  if (typeof v === 'string') return v;
  return v === undefined || v === null ? fallback : JSON.stringify(v);
}

function streamParams(s: NativeStream): StreamParams {
  const cp = s.codecpar;
  const tb = rational(s.time_base) ?? { num: 1, den: 1 };
  const type = codecType(cp.codec_type);
  const nullable = (v: unknown): number | null => (typeof v === 'number' && v !== NO_VALUE ? v : null);
  const sar = cp.sample_aspect_ratio;
  const profile = cp.profile;
  return {
    index: s.index,
    codecType: type,
    codecName: text(cp.name, 'none'),
    codecId: Number(cp.codec_id ?? 0),
    codecTag: fourcc(cp.codec_tag),
    timeBase: tb,
    startPts: nullable(s.start_time),
    durationPts: nullable(s.duration),
    declaredFrames: Number(s.nb_frames ?? 0),
    frameRate: type === 'video' ? rational(s.avg_frame_rate) ?? rational(s.r_frame_rate) : null,
    sampleRate: type === 'audio' ? Number(cp.sample_rate ?? 0) : 0,
    channels: type === 'audio' ? Number(cp.channels ?? 0) : 0,
    channelLayout: type === 'audio' ? text(cp.channel_layout, '') : '',
    width: Number(cp.width ?? 0),
    height: Number(cp.height ?? 0),
    format: typeof cp.format === 'string' ? cp.format : '',
    bitRate: Number(cp.bit_rate ?? 0),
    extradata: Buffer.isBuffer(cp.extradata) ? Buffer.from(cp.extradata) : Buffer.alloc(0),
    // -99 is FF_PROFILE_UNKNOWN.
    profile: (typeof profile === 'string' || typeof profile === 'number') && profile !== -99 ? profile : null,
    level: Number(cp.level ?? -99),
    sampleAspectRatio: Array.isArray(sar) ? { num: sar[0] as number, den: sar[1] as number } : { num: 0, den: 1 },
    fieldOrder: text(cp.field_order, 'unknown'),
    color: {
      range: text(cp.color_range, 'unknown'),
      primaries: text(cp.color_primaries, 'unknown'),
      transfer: text(cp.color_trc, 'unknown'),
      space: text(cp.color_space, 'unknown'),
    },
    frameSize: Number(cp.frame_size ?? 0),
    blockAlign: Number(cp.block_align ?? 0),
    bitsPerCodedSample: Number(cp.bits_per_coded_sample ?? 0),
    initialPadding: Number(cp.initial_padding ?? 0),
  };
}

/** An open input; every native call goes through its lane (see native-lane.ts). */
class BeamcoderDemuxer implements Demuxer {
  readonly info: ContainerInfo;
  #fmt: NativeFormat | null;
  readonly #lane: NativeLane;

  constructor(fmt: NativeFormat, info: ContainerInfo) {
    this.#fmt = fmt;
    this.info = info;
    // A native failure while reading an opened file means the media is damaged (FFmpeg read it at open).
    this.#lane = new NativeLane({ path: info.path }, 'MEDIA_DAMAGED');
  }

  get closed(): boolean {
    return this.#lane.closed;
  }

  /** The open context (the lane only runs calls before close, so it is there). */
  #context(): NativeFormat {
    if (this.#fmt === null) throw new CuemuxError('CLOSED', `${this.info.path}: closed`, { path: this.info.path });
    return this.#fmt;
  }

  readColumns(options: ReadColumnsOptions = {}): Promise<PacketColumns> {
    const maxPackets = options.maxPackets ?? 4096;
    const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    const withData = options.withData ?? false;
    return this.#lane.run('read', async () => {
      const r = await this.#context().readBatch(maxPackets, maxBytes, withData);
      const meta = new Float64Array(r.count * META_STRIDE);
      // The native Buffer may not be 8-byte aligned: copy through a byte view.
      new Uint8Array(meta.buffer).set(new Uint8Array(r.meta.buffer, r.meta.byteOffset, r.count * META_STRIDE * 8));
      return {
        count: r.count,
        meta,
        data: r.data,
        eof: r.eof,
        stopped: r.error === null ? null : { message: r.error, bytePos: Number(r.stopPos) },
      };
    });
  }

  async readPacket(): Promise<Packet | null> {
    const cols = await this.readColumns({ maxPackets: 1, withData: true });
    if (cols.count === 0) {
      if (cols.stopped) {
        throw new CuemuxError('MEDIA_DAMAGED', `${this.info.path}: reading stopped at byte ${cols.stopped.bytePos}: ${cols.stopped.message}`,
          { path: this.info.path, operation: 'read', details: { bytePos: cols.stopped.bytePos } });
      }
      return null;
    }
    return packetAt(cols, 0);
  }

  seek(streamIndex: number, timestamp: number, options: { anyFrame?: boolean; forward?: boolean } = {}): Promise<void> {
    if (!Number.isInteger(streamIndex) || streamIndex < 0 || streamIndex >= this.info.streams.length) {
      return Promise.reject(new CuemuxError('NO_SUCH_STREAM', `${this.info.path}: no stream ${streamIndex} (it has ${this.info.streams.length})`,
        { path: this.info.path, operation: 'seek' }));
    }
    return this.#lane.run('seek', async () => {
      await this.#context().seek({ stream_index: streamIndex, timestamp, backward: !(options.forward ?? false), any: options.anyFrame ?? false });
    });
  }

  close(): Promise<void> {
    // The lane waits for the read in progress: closing the context under a running av_read_frame would crash.
    return this.#lane.close(() => {
      this.#fmt?.forceClose();
      this.#fmt = null;
    });
  }
}

/** Packet `i` of `cols` as an object (payload is a view into `cols.data`; throws if read without data). */
export function packetAt(cols: PacketColumns, i: number): Packet {
  const m = cols.meta;
  const o = i * META_STRIDE;
  if (cols.data === null) throw new CuemuxError('INTERNAL', 'packetAt() needs columns read withData', { operation: 'read' });
  const size = m[o + Meta.SIZE];
  const at = m[o + Meta.DATA];
  return {
    stream: m[o + Meta.STREAM],
    pts: m[o + Meta.PTS] === NO_VALUE ? null : m[o + Meta.PTS],
    dts: m[o + Meta.DTS] === NO_VALUE ? null : m[o + Meta.DTS],
    duration: m[o + Meta.DURATION],
    pos: m[o + Meta.POS] < 0 ? null : m[o + Meta.POS],
    size,
    flags: m[o + Meta.FLAGS],
    data: cols.data.subarray(at, at + size),
  };
}

/**
 * True when the first bytes of `file` carry the signature of a common media container (MP4/MOV, Matroska/WebM,
 * RIFF/WAV/AVI, MPEG-TS/PS, Ogg, FLAC, MP3, AIFF). Used to tell damaged media (an error) from files that were never
 * media (skipped) when FFmpeg cannot open a file found in a folder.
 */
export async function hasMediaSignature(file: string): Promise<boolean> {
  const fh = await fsp.open(file, 'r').catch(() => null);
  if (fh === null) return false;
  try {
    const b = Buffer.alloc(16);
    const { bytesRead } = await fh.read(b, 0, 16, 0);
    if (bytesRead < 4) return false;
    const ascii = (at: number, n: number): string => b.toString('latin1', at, at + n);
    if (['ftyp', 'moov', 'mdat', 'free', 'wide', 'skip'].includes(ascii(4, 4))) return true; // ISO BMFF / QuickTime
    if (b.readUInt32BE(0) === 0x1a45dfa3 || b.readUInt32BE(0) === 0x000001ba) return true; // EBML (MKV), MPEG-PS
    if (['RIFF', 'RF64', 'OggS', 'fLaC', 'FORM'].includes(ascii(0, 4)) || ascii(0, 3) === 'ID3') return true;
    if (b[0] === 0xff && (b[1] & 0xe0) === 0xe0 && (b[1] & 0x06) !== 0) return true; // MPEG audio frame sync
    // MPEG-TS: the sync byte 0x47 must repeat every 188 bytes (one 'G' alone is just text).
    const sync = Buffer.alloc(1);
    for (const at of [0, 188, 376]) {
      const r = await fh.read(sync, 0, 1, at);
      if (r.bytesRead !== 1 || sync[0] !== 0x47) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}

/**
 * Demuxers that accept plain text: FFmpeg's `tty` reads any *.txt/*.nfo/... as ANSI art, which no show plays.
 */
const NOT_SHOW_MEDIA = new Set(['tty']);

/** Options of {@link openDemuxer}. */
export interface OpenDemuxerOptions {
  /** The path FFmpeg opens instead of `file` (e.g. `/proc/self/fd/N`). */
  source?: string;
  /**
   * Read a file that is still being written: FFmpeg's file protocol `follow=1` (documented in ffmpeg-protocols:
   * "retry reading at the end of the file, allowing reading files that still are being written"), ending with an
   * I/O error once no byte has arrived for this many ms (`rw_timeout`). A read at the written end blocks its
   * thread-pool thread that long. Default: not followed (a read at the end ends).
   */
  followMs?: number;
  /**
   * With followMs: FFmpeg's `fflags +ignidx`. FFmpeg 5.1's MP4 demuxer reads every fragment (moof) of a fragmented MP4
   * present at open into its index and ends there; ignoring the index, it reads fragment after fragment as the file
   * grows (measured: ffprobe -follow 1 on a fragmented MP4 written at its real rate got 70 of 435 packets without it,
   * all 435 with it). Not for an MP4 with its moov first: the demuxer then returns other packets (default false).
   */
  ignoreIndex?: boolean;
}

/**
 * Open `file` with FFmpeg (demuxer + stream info probing, as ffprobe does).
 * Errors: NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT (a directory), NOT_MEDIA (empty, text, unknown format,
 * or no streams). With `source`, FFmpeg opens that path instead (e.g. `/proc/self/fd/N`: a file the caller already
 * has open) and `file` only names it in errors and in the demuxer's info.
 */
export async function openDemuxer(file: string, options: OpenDemuxerOptions = {}): Promise<Demuxer> {
  const abs = path.resolve(file);
  const source = options.source === undefined ? abs : path.resolve(options.source);
  const st = await fsp.stat(source).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${abs}: is a directory, a media file is needed`, { path: abs, operation: 'open' });
  if (!st.isFile()) throw new CuemuxError('NOT_MEDIA', `${abs}: not a regular file`, { path: abs, operation: 'open' });
  if (st.size === 0) throw new CuemuxError('NOT_MEDIA', `${abs}: file is empty (0 bytes), not media`, { path: abs, operation: 'open' });
  // Permission is checked here so the message is the OS's, not FFmpeg's generic one.
  await fsp.access(source, fsp.constants.R_OK).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  const bc = native();
  let fmt: NativeFormat;
  try {
    // `file:` so that a colon in a file name is never taken for a protocol (FFmpeg URL syntax).
    const url = `file:${source}`;
    fmt = await (options.followMs === undefined ? bc.demuxer(url)
      : bc.demuxer({ url, options: { follow: '1', rw_timeout: String(Math.max(1, Math.round(options.followMs * 1000))), ...(options.ignoreIndex === true ? { fflags: '+ignidx' } : {}) } }));
  } catch (e) {
    throw translateNativeError(e, { path: abs }, 'open', 'NOT_MEDIA');
  }
  const formatName = text(fmt.iformat?.name, '');
  if (NOT_SHOW_MEDIA.has(formatName)) {
    fmt.forceClose();
    throw new CuemuxError('NOT_MEDIA', `${abs}: a text file, not media (FFmpeg would only read it as "${formatName}" ANSI art)`,
      { path: abs, operation: 'open' });
  }
  const streams = fmt.streams.map(streamParams);
  if (streams.length === 0) {
    fmt.forceClose();
    throw new CuemuxError('NOT_MEDIA', `${abs}: FFmpeg found no streams (format ${text(fmt.iformat?.name, 'undefined')})`, { path: abs, operation: 'open' });
  }
  const us = (v: unknown): number | null => (typeof v === 'number' && v !== NO_VALUE ? v / 1e6 : null);
  return new BeamcoderDemuxer(fmt, {
    path: abs,
    formatName,
    durationSeconds: us(fmt.duration),
    startSeconds: us(fmt.start_time),
    bitRate: Number(fmt.bit_rate ?? 0),
    streams,
  });
}
