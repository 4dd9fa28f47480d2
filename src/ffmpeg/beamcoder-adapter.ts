/**
 * The only module that loads beamcoder (FFmpeg 5.1 through N-API). It turns beamcoder's untyped objects into the
 * narrow interface of `types.ts` and native failures into {@link CuemuxError}s naming the operation and the file.
 *
 * We load the compiled addon directly rather than `require('beamcoder')`: the package's index.js prints a licence
 * banner to stdout (which would corrupt `--json` output) and registers a segfault handler that writes `crash.log`
 * into the working directory. The addon is patched at install (scripts/patch-beamcoder.js) so packet bytes are
 * exact for every container and so many packets can be read in one native call (`readBatch`).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError, fromSystemError, type ErrorCode } from '../common/errors';
import type { Rational } from '../common/rational';
import {
  META_STRIDE, Meta, NO_VALUE,
  type CodecType, type ContainerInfo, type Demuxer, type Packet, type PacketColumns, type ReadColumnsOptions,
  type StreamParams,
} from './types';

type Native = any;
let native: Native = undefined;

function load(): Native {
  if (native !== undefined) return native;
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve('beamcoder/package.json'));
  } catch (e) {
    throw new CuemuxError('INTERNAL', 'beamcoder is not installed: run `npm ci` (see README)', { operation: 'load ffmpeg', cause: e });
  }
  const addon = path.join(pkgDir, 'build', 'Release', 'beamcoder.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    native = require(addon);
  } catch (e) {
    throw new CuemuxError('INTERNAL', `cannot load FFmpeg binding ${addon}: ${(e as Error).message}; run \`npm ci\``,
      { operation: 'load ffmpeg', cause: e });
  }
  if (typeof native.demuxer !== 'function') {
    throw new CuemuxError('INTERNAL', `${addon} is not a beamcoder build`, { operation: 'load ffmpeg' });
  }
  const level = process.env.CUEMUX_FFMPEG_LOG ?? 'quiet';
  native.logging(level);
  const rec = recordedVersions();
  if (rec !== null && Number(native.versions().avformat) !== rec.versions.avformat) {
    // FFmpeg was upgraded under a built addon: trust the library actually loaded from now on.
    recorded = null;
  }
  return native;
}

interface RecordedVersions {
  versions: Record<string, number>;
  info: string;
}
let recorded: RecordedVersions | null | undefined;

/**
 * FFmpeg's versions as recorded next to the addon when it was built (scripts/patch-beamcoder.js), so that asking for
 * them does not map FFmpeg's libraries into the process; null when the record is missing.
 */
function recordedVersions(): RecordedVersions | null {
  if (recorded !== undefined) return recorded;
  try {
    const file = path.join(path.dirname(require.resolve('beamcoder/package.json')), 'build', 'Release', 'cuemux-ffmpeg-versions.json');
    recorded = JSON.parse(readFileSync(file, 'utf8')) as RecordedVersions;
  } catch {
    recorded = null;
  }
  return recorded;
}

/** FFmpeg's version string, e.g. `5.1.9-0+deb12u1`. */
export function ffmpegVersion(): string {
  return recordedVersions()?.info ?? String(load().avVersionInfo());
}

/** libavformat's version as major.minor.micro, e.g. `59.27.100` (recorded in every index). */
export function libavformatVersion(): { major: number; minor: number; micro: number } {
  const v = Number(recordedVersions()?.versions.avformat ?? load().versions().avformat);
  return { major: v >>> 16, minor: (v >>> 8) & 0xff, micro: v & 0xff };
}

/** Map beamcoder's error ("In file ... found error: Problem opening input format: <FFmpeg message>") to a code. */
function nativeError(e: unknown, file: string, operation: string, fallback: ErrorCode): CuemuxError {
  const raw = e instanceof Error ? e.message : String(e);
  const reason = raw.replace(/^In file .*? found error: /, '').replace(/^Problem [^:]*: /, '');
  let code: ErrorCode = fallback;
  if (/No such file/i.test(reason)) code = 'NOT_FOUND';
  else if (/Permission denied|Operation not permitted/i.test(reason)) code = 'PERMISSION_DENIED';
  else if (/Is a directory/i.test(reason)) code = 'INVALID_ARGUMENT';
  else if (/Invalid data found|End of file/i.test(reason) && operation === 'open') code = 'NOT_MEDIA';
  // FFmpeg cannot say "truncated" for an MP4/MOV whose moov (at the end) is missing: hint at it by name.
  const hint = code === 'NOT_MEDIA' && /\.(mp4|m4a|m4v|mov|3gp)$/i.test(file) ? '; an MP4/MOV cut short before its index (moov) looks like this' : '';
  const what = code === 'NOT_MEDIA' ? `not a media file FFmpeg can read${hint}` : `${operation} failed`;
  return new CuemuxError(code, `${file}: ${what} (FFmpeg: ${reason})`, { path: file, operation, cause: e });
}

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

function streamParams(s: any): StreamParams {
  const cp = s.codecpar;
  const tb = rational(s.time_base) ?? { num: 1, den: 1 };
  const type = codecType(cp.codec_type);
  const nullable = (v: unknown): number | null => (typeof v === 'number' && v !== NO_VALUE ? v : null);
  return {
    index: s.index,
    codecType: type,
    codecName: String(cp.name ?? 'none'),
    codecId: Number(cp.codec_id ?? 0),
    codecTag: fourcc(cp.codec_tag),
    timeBase: tb,
    startPts: nullable(s.start_time),
    durationPts: nullable(s.duration),
    declaredFrames: Number(s.nb_frames ?? 0),
    frameRate: type === 'video' ? rational(s.avg_frame_rate) ?? rational(s.r_frame_rate) : null,
    sampleRate: type === 'audio' ? Number(cp.sample_rate ?? 0) : 0,
    channels: type === 'audio' ? Number(cp.channels ?? 0) : 0,
    channelLayout: type === 'audio' ? String(cp.channel_layout ?? '') : '',
    width: Number(cp.width ?? 0),
    height: Number(cp.height ?? 0),
    format: typeof cp.format === 'string' ? cp.format : '',
    bitRate: Number(cp.bit_rate ?? 0),
    extradata: Buffer.isBuffer(cp.extradata) ? Buffer.from(cp.extradata) : Buffer.alloc(0),
    profile: cp.profile === -99 || cp.profile === undefined ? null : cp.profile,
    level: Number(cp.level ?? -99),
    sampleAspectRatio: (Array.isArray(cp.sample_aspect_ratio)
      ? { num: cp.sample_aspect_ratio[0], den: cp.sample_aspect_ratio[1] } : { num: 0, den: 1 }),
    fieldOrder: String(cp.field_order ?? 'unknown'),
    color: {
      range: String(cp.color_range ?? 'unknown'),
      primaries: String(cp.color_primaries ?? 'unknown'),
      transfer: String(cp.color_trc ?? 'unknown'),
      space: String(cp.color_space ?? 'unknown'),
    },
    frameSize: Number(cp.frame_size ?? 0),
    blockAlign: Number(cp.block_align ?? 0),
    bitsPerCodedSample: Number(cp.bits_per_coded_sample ?? 0),
    initialPadding: Number(cp.initial_padding ?? 0),
  };
}

class BeamcoderDemuxer implements Demuxer {
  readonly info: ContainerInfo;
  #fmt: any;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(fmt: any, info: ContainerInfo) {
    this.#fmt = fmt;
    this.info = info;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Run `op` after every earlier operation on this demuxer has settled (FFmpeg contexts are not reentrant). */
  #serial<T>(operation: string, op: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new CuemuxError('CLOSED', `${this.info.path}: ${operation} after close`, { path: this.info.path, operation }));
    }
    const run = async (): Promise<T> => {
      if (this.#closed) throw new CuemuxError('CLOSED', `${this.info.path}: closed before ${operation} ran`, { path: this.info.path, operation });
      try {
        return await op();
      } catch (e) {
        if (e instanceof CuemuxError) throw e;
        // beamcoder's own rejections start "In file ../src/...": FFmpeg failed on the media. Anything else is a bug.
        if (e instanceof Error && e.message.startsWith('In file ')) throw nativeError(e, this.info.path, operation, 'MEDIA_DAMAGED');
        throw new CuemuxError('INTERNAL', `${this.info.path}: ${operation} failed: ${e instanceof Error ? e.message : String(e)}`,
          { path: this.info.path, operation, cause: e });
      }
    };
    const next = this.#tail.then(run, run);
    this.#tail = next.catch(() => undefined);
    return next;
  }

  readColumns(options: ReadColumnsOptions = {}): Promise<PacketColumns> {
    const maxPackets = options.maxPackets ?? 4096;
    const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    const withData = options.withData ?? false;
    return this.#serial('read', async () => {
      const r = await this.#fmt.readBatch(maxPackets, maxBytes, withData);
      const meta = new Float64Array(r.count * META_STRIDE);
      // The native Buffer may not be 8-byte aligned: copy through a byte view.
      new Uint8Array(meta.buffer).set(new Uint8Array(r.meta.buffer, r.meta.byteOffset, r.count * META_STRIDE * 8));
      return {
        count: r.count as number,
        meta,
        data: r.data as Buffer | null,
        eof: r.eof as boolean,
        stopped: r.error === null ? null : { message: String(r.error), bytePos: Number(r.stopPos) },
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
    return this.#serial('seek', async () => {
      await this.#fmt.seek({ stream_index: streamIndex, timestamp, backward: !(options.forward ?? false), any: options.anyFrame ?? false });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Let the operation in progress finish: closing the context under a running av_read_frame would crash.
    await this.#tail;
    if (this.#closed) return;
    this.#closed = true;
    this.#fmt.forceClose();
    this.#fmt = null;
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

/**
 * Open `file` with FFmpeg (demuxer + stream info probing, as ffprobe does).
 * Errors: NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT (a directory), NOT_MEDIA (empty, text, unknown format,
 * or no streams).
 */
export async function openDemuxer(file: string): Promise<Demuxer> {
  const abs = path.resolve(file);
  const st = await fsp.stat(abs).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${abs}: is a directory, a media file is needed`, { path: abs, operation: 'open' });
  if (!st.isFile()) throw new CuemuxError('NOT_MEDIA', `${abs}: not a regular file`, { path: abs, operation: 'open' });
  if (st.size === 0) throw new CuemuxError('NOT_MEDIA', `${abs}: file is empty (0 bytes), not media`, { path: abs, operation: 'open' });
  // Permission is checked here so the message is the OS's, not FFmpeg's generic one.
  await fsp.access(abs, fsp.constants.R_OK).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  const bc = load();
  let fmt: any;
  try {
    // `file:` so that a colon in a file name is never taken for a protocol (FFmpeg URL syntax).
    fmt = await bc.demuxer(`file:${abs}`);
  } catch (e) {
    throw nativeError(e, abs, 'open', 'NOT_MEDIA');
  }
  const formatName = String(fmt.iformat?.name ?? '');
  if (NOT_SHOW_MEDIA.has(formatName)) {
    fmt.forceClose();
    throw new CuemuxError('NOT_MEDIA', `${abs}: a text file, not media (FFmpeg would only read it as "${formatName}" ANSI art)`,
      { path: abs, operation: 'open' });
  }
  const streams = (fmt.streams as any[]).map(streamParams);
  if (streams.length === 0) {
    fmt.forceClose();
    throw new CuemuxError('NOT_MEDIA', `${abs}: FFmpeg found no streams (format ${String(fmt.iformat?.name)})`, { path: abs, operation: 'open' });
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
