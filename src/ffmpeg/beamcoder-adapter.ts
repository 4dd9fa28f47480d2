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
  META_STRIDE, Meta, NO_VALUE, PacketFlag,
  type AudioFormat, type AudioResampler, type CodecType, type ContainerInfo, type DecodedAudioFrame, type DecodedFrame,
  type DecodedVideoFrame, type Decoder, type DecoderConfig, type Demuxer, type EncodedPacket, type Packet,
  type PacketColumns, type ReadColumnsOptions, type ResamplerOutput, type StreamParams,
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

/**
 * Load FFmpeg's libraries now (they load at first use otherwise): a player does it before it follows, so its first
 * GO does not pay for it. Throws a CuemuxError (INTERNAL) when the binding cannot be loaded.
 */
export function loadFfmpeg(): void {
  load();
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
 * or no streams). With `source`, FFmpeg opens that path instead (e.g. `/proc/self/fd/N`: a file the caller already
 * has open) and `file` only names it in errors and in the demuxer's info.
 */
export async function openDemuxer(file: string, options: { source?: string } = {}): Promise<Demuxer> {
  const abs = path.resolve(file);
  const source = options.source === undefined ? abs : path.resolve(options.source);
  const st = await fsp.stat(source).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${abs}: is a directory, a media file is needed`, { path: abs, operation: 'open' });
  if (!st.isFile()) throw new CuemuxError('NOT_MEDIA', `${abs}: not a regular file`, { path: abs, operation: 'open' });
  if (st.size === 0) throw new CuemuxError('NOT_MEDIA', `${abs}: file is empty (0 bytes), not media`, { path: abs, operation: 'open' });
  // Permission is checked here so the message is the OS's, not FFmpeg's generic one.
  await fsp.access(source, fsp.constants.R_OK).catch((e: unknown) => { throw fromSystemError(e, abs, 'open'); });
  const bc = load();
  let fmt: any;
  try {
    // `file:` so that a colon in a file name is never taken for a protocol (FFmpeg URL syntax).
    fmt = await bc.demuxer(`file:${source}`);
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

// ------------------------------------------------------------------------------------------------------------------
// Decoding and audio resampling (the reference players)
//
// beamcoder 0.7.1 facts this code works around (measured with FFmpeg 5.1, see also FIELD-NOTES):
// - `packet.data = buf` wraps the JavaScript memory as the packet's AVBufferRef without FFmpeg's 64 bytes of zeroed
//   input padding (decoders' bitstream readers over-read), and does not set `size`: data is copied into a padded
//   buffer and size set explicitly.
// - When FFmpeg drops the last reference to such a buffer, beamcoder deletes a napi reference from whatever thread
//   does it; a frame-threaded decoder drops its copy on a thread-pool thread. Each decoder therefore keeps its last
//   HOLD_PACKETS packet objects alive, so FFmpeg has always let go first and the final release happens on the main
//   thread (garbage collection).
// - decode() with a packet whose data is set but size is 0 makes avcodec_send_packet return EINVAL, which beamcoder
//   takes for "decoder not open", reopens, and retries forever on a pool thread: empty packets are refused here.
// - decode() never reports FFmpeg's errors: decodeComplete overwrites the worker's status with that of deleting the
//   packet references before checking it (and avcodec_receive_frame errors are ignored anyway), so a packet FFmpeg
//   rejects, or a decoder that failed to open, just yields no frames. flush() (no packets) does report them: a
//   throwaway decoder with the same parameters is flushed at open to check that FFmpeg can open it.
// - After a failed open the codec context has no codec: getters such as `name`, `long_name`, `priv_data`
//   dereference it and would crash the process. They are never read here.
// - A decoder has no close(): its AVCodecContext is freed when the JavaScript object is garbage-collected.
// - A filter graph cannot be sent end-of-stream, so aresample's buffered tail would never come out. The graph is
//   `atrim=end_pts=END,aresample=R`: input frames carry a running sample count as pts, and flush() sends a 1-sample
//   frame at pts END, which atrim drops and answers with end-of-stream, exactly as ffmpeg closing the input does.
// - Setting an unknown profile name prints to stdout (profiles are looked up first); an empty or unknown channel
//   layout name throws.
// ------------------------------------------------------------------------------------------------------------------

/** Packet objects each decoder keeps alive after decoding them (see above); FFmpeg holds at most 16 (threads). */
const HOLD_PACKETS = 64;
/** AV_INPUT_BUFFER_PADDING_SIZE: zeroed bytes FFmpeg's decoders may read past the end of a packet. */
const INPUT_PADDING = 64;
/** atrim's end pts in the resampler graph; input pts count samples from 0 and never reach it. */
const RESAMPLER_END_PTS = Number.MAX_SAFE_INTEGER;
/** beamcoder exposes frame planes data[0..7] only (not extended_data). */
const MAX_PLANES = 8;

/**
 * One codec or filter object's lifetime: operations run strictly one after another (FFmpeg codec and filter contexts
 * are not reentrant), fail with CLOSED after close(), and close() waits for the operation in progress (its context
 * is in use on a pool thread).
 */
class CodecGuard {
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(readonly name: string) {}

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Run `op` after every operation queued before it; `operation` names it in errors. */
  run<T>(operation: string, op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(codecOpError('CLOSED', this.name, `${operation} after close`, operation));
    const guarded = async (): Promise<T> => {
      if (this.#closed) throw codecOpError('CLOSED', this.name, `closed before ${operation} ran`, operation);
      return op();
    };
    const next = this.#tail.then(guarded, guarded);
    this.#tail = next.catch(() => undefined);
    return next;
  }

  /** Close once the operation in progress is done; `release` drops the native object (idempotent). */
  async close(release: () => void): Promise<void> {
    if (this.#closed) return;
    await this.#tail;
    if (this.#closed) return;
    this.#closed = true;
    release();
  }
}

function codecOpError(code: ErrorCode, name: string, message: string, operation: string, cause?: unknown): CuemuxError {
  return new CuemuxError(code, `${name}: ${message}`, { operation, cause, details: { name } });
}

/** A rejection from beamcoder as a CuemuxError: FFmpeg's reason ("In file ... found error: <reason>") with `code`. */
function nativeCodecError(e: unknown, name: string, operation: string, code: ErrorCode): CuemuxError {
  if (e instanceof CuemuxError) return e;
  const raw = e instanceof Error ? e.message : String(e);
  if (!raw.startsWith('In file ')) {
    return codecOpError('INTERNAL', name, `${operation} failed: ${raw}`, operation, e);
  }
  const reason = raw.replace(/^In file .*? found error: /, '');
  return codecOpError(code, name, `${operation} failed (FFmpeg: ${reason})`, operation, e);
}

/** A timestamp/duration from the wire as an exact number; null stays null. */
function ticks(v: number | bigint | null, what: string, name: string): number | null {
  if (v === null) return null;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || (typeof v === 'bigint' && BigInt(n) !== v)) {
    throw codecOpError('INVALID_ARGUMENT', name, `packet ${what} must be a safe integer number of ticks, got ${String(v)}`, 'decode');
  }
  return n;
}

interface PixDesc {
  log2_chroma_w: number;
  log2_chroma_h: number;
  flags: { PAL: boolean; BITSTREAM: boolean; HWACCEL: boolean };
  comp: Array<{ plane: number; step: number }>;
}
let pixDescs: Record<string, PixDesc> | undefined;
interface SampleDesc { packed: string; bytes_per_sample: number; is_planar: boolean }
let sampleDescs: Record<string, SampleDesc> | undefined;

function sampleDesc(format: string): SampleDesc | undefined {
  sampleDescs ??= load().sample_fmts() as Record<string, SampleDesc>;
  return Object.prototype.hasOwnProperty.call(sampleDescs, format) ? sampleDescs[format] : undefined;
}

/**
 * Bytes per row and rows of each plane of a `width`x`height` picture with tightly packed rows: FFmpeg's
 * av_image_fill_linesizes(align 1) and av_image_fill_plane_sizes, i.e. what av_image_copy_to_buffer (rawvideo) writes.
 */
function planeLayout(format: string, width: number, height: number): { planes: Array<{ rowBytes: number; rows: number }>; palette: boolean } | null {
  pixDescs ??= load().pix_fmts() as Record<string, PixDesc>;
  const d = Object.prototype.hasOwnProperty.call(pixDescs, format) ? pixDescs[format] : undefined;
  if (d === undefined || d.flags.HWACCEL) return null;
  const maxStep = [0, 0, 0, 0];
  const maxComp = [0, 0, 0, 0];
  d.comp.forEach((c, i) => {
    if (c.step > maxStep[c.plane]) {
      maxStep[c.plane] = c.step;
      maxComp[c.plane] = i;
    }
  });
  const count = Math.max(...d.comp.map((c) => c.plane)) + 1;
  const planes: Array<{ rowBytes: number; rows: number }> = [];
  for (let p = 0; p < count; p++) {
    const sw = maxComp[p] === 1 || maxComp[p] === 2 ? d.log2_chroma_w : 0;
    const sh = p === 1 || p === 2 ? d.log2_chroma_h : 0;
    let rowBytes = maxStep[p] * -((-width) >> sw);
    if (d.flags.BITSTREAM) rowBytes = (rowBytes + 7) >> 3;
    planes.push({ rowBytes, rows: -((-height) >> sh) });
  }
  return { planes, palette: d.flags.PAL };
}

function videoFrame(f: any, name: string): DecodedVideoFrame {
  const format = String(f.format);
  const width = Number(f.width);
  const height = Number(f.height);
  const layout = planeLayout(format, width, height);
  if (layout === null) throw codecOpError('INTERNAL', name, `decoded pixel format ${format} is not supported`, 'decode');
  const data = f.data as Buffer[]; // a new view per access: read once
  const linesize = f.linesize as number[];
  const planes = layout.planes.map(({ rowBytes, rows }, p) => {
    const src = data[p];
    const stride = linesize[p];
    if (src === undefined || stride < rowBytes || src.length < stride * (rows - 1) + rowBytes) {
      throw codecOpError('INTERNAL', name, `decoded ${format} frame has an unexpected plane ${p} (linesize ${stride})`, 'decode');
    }
    // Rows already packed: a view of FFmpeg's frame buffer, no copy (beamcoder holds a reference on the AVBuffer
    // until the view is garbage-collected). A 1080p player otherwise copies 75 MB/s on its presenting thread.
    if (stride === rowBytes) return src.subarray(0, rowBytes * rows);
    const out = Buffer.allocUnsafe(rowBytes * rows);
    for (let y = 0; y < rows; y++) src.copy(out, y * rowBytes, y * stride, y * stride + rowBytes);
    return out;
  });
  if (layout.palette) {
    if (data[1] === undefined || data[1].length < 1024) throw codecOpError('INTERNAL', name, `decoded ${format} frame has no palette`, 'decode');
    planes.push(Buffer.from(data[1].subarray(0, 1024)));
  }
  const sar = f.sample_aspect_ratio as [number, number] | undefined;
  return {
    kind: 'video',
    pts: typeof f.pts === 'number' ? f.pts : null,
    bestEffortPts: typeof f.best_effort_timestamp === 'number' ? f.best_effort_timestamp : null,
    duration: Number(f.pkt_duration ?? 0),
    width,
    height,
    format,
    planes,
    keyFrame: f.key_frame === true,
    sampleAspectRatio: Array.isArray(sar) && sar[1] > 0 ? { num: sar[0], den: sar[1] } : { num: 0, den: 1 },
  };
}

/** Interleave `channels` planes of `samples` samples of `bps` bytes into one buffer (L R L R ...). */
function interleave(planes: Buffer[], channels: number, samples: number, bps: number): Buffer {
  const out = Buffer.alloc(channels * samples * bps);
  // Copy 1/2/4-byte units through integer views (never floats: NaN payloads must survive bit for bit).
  const unit = bps === 8 ? 4 : bps;
  const per = bps / unit; // units per sample
  const aligned = (b: Buffer): boolean => b.byteOffset % unit === 0;
  const view = (b: Buffer, len: number): Uint8Array | Uint16Array | Uint32Array =>
    unit === 4 ? new Uint32Array(b.buffer, b.byteOffset, len) : unit === 2 ? new Uint16Array(b.buffer, b.byteOffset, len) : new Uint8Array(b.buffer, b.byteOffset, len);
  if ((unit === 1 || unit === 2 || unit === 4) && aligned(out) && planes.every(aligned)) {
    const dst = view(out, channels * samples * per);
    for (let c = 0; c < channels; c++) {
      const src = view(planes[c], samples * per);
      for (let s = 0, o = c * per; s < samples * per; s += per, o += channels * per) {
        for (let k = 0; k < per; k++) dst[o + k] = src[s + k];
      }
    }
    return out;
  }
  for (let c = 0; c < channels; c++) {
    for (let s = 0; s < samples; s++) planes[c].copy(out, (s * channels + c) * bps, s * bps, (s + 1) * bps);
  }
  return out;
}

function audioFrame(f: any, name: string): DecodedAudioFrame {
  const format = String(f.format);
  const desc = sampleDesc(format);
  if (desc === undefined) throw codecOpError('INTERNAL', name, `decoded sample format ${format} is not supported`, 'decode');
  const channels = Number(f.channels);
  const samples = Number(f.nb_samples ?? 0);
  const bytes = channels * samples * desc.bytes_per_sample;
  const data = f.data as Buffer[]; // a new view per access: read once
  let out: Buffer;
  if (!desc.is_planar) {
    if (bytes > 0 && (data[0] === undefined || data[0].length < bytes)) throw codecOpError('INTERNAL', name, `decoded ${format} frame is short`, 'decode');
    out = bytes > 0 ? Buffer.from(data[0].subarray(0, bytes)) : Buffer.alloc(0);
  } else {
    if (channels > MAX_PLANES) {
      throw codecOpError('INTERNAL', name, `${channels} planar channels: beamcoder exposes only ${MAX_PLANES} planes`, 'decode');
    }
    const per = samples * desc.bytes_per_sample;
    if (data.length < channels || data.slice(0, channels).some((b) => b.length < per)) {
      throw codecOpError('INTERNAL', name, `decoded ${format} frame has fewer planes than its ${channels} channels`, 'decode');
    }
    out = interleave(data, channels, samples, desc.bytes_per_sample);
  }
  return {
    kind: 'audio',
    pts: typeof f.pts === 'number' ? f.pts : null,
    bestEffortPts: typeof f.best_effort_timestamp === 'number' ? f.best_effort_timestamp : null,
    sampleRate: Number(f.sample_rate),
    channels,
    channelLayout: String(f.channel_layout),
    format,
    dataFormat: desc.packed,
    samples,
    data: out,
  };
}

let decoderProfiles: Record<string, { profiles?: string[] | null }> | undefined;

/** beamcoder codec parameters for `config`; throws INVALID_ARGUMENT for what FFmpeg does not know. */
function codecParameters(config: DecoderConfig, name: string): any {
  const bc = load();
  const invalid = (what: string, cause?: unknown): CuemuxError => codecOpError('INVALID_ARGUMENT', name, what, 'open decoder', cause);
  const cp = bc.codecParameters();
  cp.name = config.codecName;
  if (cp.codec_id === 0 && config.codecId !== undefined && config.codecId > 0) {
    cp.codec_id = config.codecId;
    // Setting the name again sets codec_type from FFmpeg's codec descriptor for that id.
    if (String(cp.name) !== 'none') cp.name = String(cp.name);
  }
  if (cp.codec_id === 0) throw invalid(`unknown codec "${config.codecName}" (not a codec this FFmpeg ${ffmpegVersion()} knows)`);
  const type = String(cp.codec_type);
  if (type !== 'video' && type !== 'audio') throw invalid(`codec "${config.codecName}" is ${type}, not audio or video`);
  if (config.extradata !== null && config.extradata.length > 0) cp.extradata = config.extradata;
  if (!Number.isInteger(config.timeBase.num) || !Number.isInteger(config.timeBase.den) || config.timeBase.num <= 0 || config.timeBase.den <= 0) {
    throw invalid(`time base must be a positive rational, got ${config.timeBase.num}/${config.timeBase.den}`);
  }
  const int = (v: number | undefined): number | undefined => (v !== undefined && Number.isInteger(v) ? v : undefined);
  const set = (key: string, v: number | undefined): void => {
    if (v !== undefined && v !== 0) cp[key] = v;
  };
  set('bit_rate', int(config.bitRate));
  set('bits_per_coded_sample', int(config.bitsPerCodedSample));
  set('codec_tag', int(config.codecTag));
  if (typeof config.level === 'number' && Number.isInteger(config.level) && config.level !== -99) cp.level = config.level;
  if (typeof config.profile === 'number' && Number.isInteger(config.profile) && config.profile !== -99) cp.profile = config.profile;
  if (typeof config.profile === 'string') {
    // A name FFmpeg does not list would be printed to stdout by beamcoder: only known names are passed.
    decoderProfiles ??= bc.decoders() as Record<string, { profiles?: string[] | null }>;
    const known = decoderProfiles[String(cp.name)]?.profiles;
    if (Array.isArray(known) && known.includes(config.profile)) cp.profile = config.profile;
  }
  if (config.format !== '') cp.format = config.format; // after codec_type: the name is looked up by media type
  if (type === 'video') {
    set('width', int(config.width));
    set('height', int(config.height));
    const sar = config.sampleAspectRatio;
    if (sar !== undefined && sar.num > 0 && sar.den > 0) cp.sample_aspect_ratio = [sar.num, sar.den];
  } else {
    set('sample_rate', int(config.sampleRate));
    set('channels', int(config.channels));
    if (config.channelLayout !== '') {
      try {
        cp.channel_layout = config.channelLayout;
      } catch (e) {
        throw invalid(`unknown channel layout "${config.channelLayout}"`, e);
      }
    }
    set('block_align', int(config.blockAlign));
    set('frame_size', int(config.frameSize));
    set('initial_padding', int(config.initialPadding));
  }
  return cp;
}

class BeamcoderDecoder implements Decoder {
  readonly name: string;
  readonly codecType: 'video' | 'audio';
  #dec: any;
  #codec: string;
  readonly #guard: CodecGuard;
  #held: any[] = [];
  #flushed = false;

  constructor(dec: any, codecType: 'video' | 'audio', codec: string, name: string) {
    this.#dec = dec;
    this.codecType = codecType;
    this.#codec = codec;
    this.name = name;
    this.#guard = new CodecGuard(name);
  }

  get closed(): boolean {
    return this.#guard.closed;
  }

  #frames(r: any): DecodedFrame[] {
    const frames = r.frames as any[];
    return frames.map((f) => (this.codecType === 'video' ? videoFrame(f, this.name) : audioFrame(f, this.name)));
  }

  /** beamcoder's rejection of a decode/flush call as a CuemuxError. */
  #failure(e: unknown, operation: string): CuemuxError {
    const raw = e instanceof Error ? e.message : '';
    if (/Problem opening decoder/.test(raw)) {
      // The decoder is opened by the first packet (or flush): its parameters are only checked then.
      return codecOpError('INVALID_ARGUMENT', this.name,
        `cannot open the ${this.#codec} decoder with these stream parameters (FFmpeg: ${raw.replace(/^In file .*? found error: /, '')})`,
        operation, e);
    }
    return nativeCodecError(e, this.name, operation, 'MEDIA_DAMAGED');
  }

  decode(packet: EncodedPacket): Promise<DecodedFrame[]> {
    let pkt: any;
    try {
      pkt = this.#packet(packet);
    } catch (e) {
      return Promise.reject(e instanceof CuemuxError ? e : codecOpError('INTERNAL', this.name, `decode failed: ${String(e)}`, 'decode', e));
    }
    return this.#guard.run('decode', async () => {
      if (this.#flushed) throw codecOpError('WRONG_STATE', this.name, 'decode after flush (end of stream): open a new decoder', 'decode');
      let r: any;
      try {
        r = await this.#dec.decode(pkt);
      } catch (e) {
        throw this.#failure(e, 'decode');
      } finally {
        this.#held.push(pkt);
        if (this.#held.length > HOLD_PACKETS) this.#held.shift();
      }
      return this.#frames(r);
    });
  }

  #packet(p: EncodedPacket): any {
    if (!Buffer.isBuffer(p.data) || p.data.length === 0) {
      throw codecOpError('INVALID_ARGUMENT', this.name, 'packet data must be a non-empty Buffer', 'decode');
    }
    const pts = ticks(p.pts, 'pts', this.name);
    const dts = ticks(p.dts, 'dts', this.name);
    const duration = ticks(p.duration, 'duration', this.name) ?? 0;
    const flags = Number(p.flags);
    const bc = load();
    const pkt = bc.packet({ pts, dts, duration });
    const data = Buffer.alloc(p.data.length + INPUT_PADDING); // zeroed padding
    p.data.copy(data);
    pkt.data = data;
    pkt.size = p.data.length; // after data: setting data leaves size alone
    pkt.flags = {
      KEY: (flags & PacketFlag.KEY) !== 0,
      CORRUPT: (flags & PacketFlag.CORRUPT) !== 0,
      DISCARD: (flags & PacketFlag.DISCARD) !== 0,
      TRUSTED: (flags & 0x8) !== 0,
      DISPOSABLE: (flags & 0x10) !== 0,
    };
    if (p.skipSamples !== undefined) {
      const { start, end } = p.skipSamples;
      const u32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
      if (!u32(start) || !u32(end)) {
        throw codecOpError('INVALID_ARGUMENT', this.name, `skipSamples must be non-negative sample counts, got ${start}/${end}`, 'decode');
      }
      // AV_PKT_DATA_SKIP_SAMPLES: u32le skip from start, u32le discard from end, u8 reasons.
      const side = Buffer.alloc(10);
      side.writeUInt32LE(start, 0);
      side.writeUInt32LE(end, 4);
      pkt.side_data = { skip_samples: side };
    }
    return pkt;
  }

  flush(): Promise<DecodedFrame[]> {
    return this.#guard.run('flush', async () => {
      if (this.#flushed) return [];
      this.#flushed = true;
      let r: any;
      try {
        r = await this.#dec.flush();
      } catch (e) {
        throw this.#failure(e, 'flush');
      }
      return this.#frames(r);
    });
  }

  close(): Promise<void> {
    // beamcoder frees the AVCodecContext when the object is garbage-collected; there is no explicit close.
    return this.#guard.close(() => {
      this.#dec = null;
      this.#held = [];
    });
  }
}

/** The decoder parameters of a demuxed stream (what the server sends as `StreamInfo`). */
export function decoderConfigFromParams(p: StreamParams): DecoderConfig {
  return {
    codecName: p.codecName,
    codecId: p.codecId,
    extradata: p.extradata.length > 0 ? p.extradata : null,
    timeBase: p.timeBase,
    width: p.width,
    height: p.height,
    format: p.format,
    sampleRate: p.sampleRate,
    channels: p.channels,
    channelLayout: p.channelLayout,
    bitsPerCodedSample: p.bitsPerCodedSample,
    blockAlign: p.blockAlign,
    frameSize: p.frameSize,
    profile: p.profile,
    level: p.level,
    codecTag: p.codecTag,
    sampleAspectRatio: p.sampleAspectRatio,
    bitRate: p.bitRate,
    initialPadding: p.initialPadding,
  };
}

/** Options for {@link openDecoder}. */
export interface DecoderOptions {
  /**
   * Decoding threads: 0 (default) lets FFmpeg choose (CPU count + 1, at most 16), as the ffmpeg tool does; 1 decodes
   * on one thread with the lowest latency (no frame-thread delay). The output is identical either way.
   */
  threads?: number;
}

/**
 * Open a decoder for one audio or video stream. `name` (e.g. `"/show/act1.mov stream 1"`) is put in every error.
 * Errors: INVALID_ARGUMENT for an unknown codec, a subtitle/data codec, a bad time base or channel layout, or
 * parameters FFmpeg cannot open the decoder with (e.g. PCM without sample rate and channels; FFmpeg's detailed
 * reason goes to its log only, see CUEMUX_FFMPEG_LOG).
 */
export async function openDecoder(config: DecoderConfig, name: string, options: DecoderOptions = {}): Promise<Decoder> {
  const bc = load();
  let cp: any;
  try {
    cp = codecParameters(config, name);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw codecOpError('INVALID_ARGUMENT', name, `invalid decoder parameters: ${e instanceof Error ? e.message : String(e)}`, 'open decoder', e);
  }
  let dec: any;
  try {
    dec = bc.decoder({ params: cp });
  } catch (e) {
    throw codecOpError('INVALID_ARGUMENT', name, `no FFmpeg decoder for codec "${config.codecName}" (${e instanceof Error ? e.message : String(e)})`, 'open decoder', e);
  }
  const threads = options.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) {
    throw codecOpError('INVALID_ARGUMENT', name, `threads must be an integer 0..64, got ${threads}`, 'open decoder');
  }
  // beamcoder opens the codec on the first packet and decode() loses the error if that fails; flush() reports it.
  // A throwaway decoder with the same parameters is opened (and drained, being empty) to check them now.
  const probe = bc.decoder({ params: cp });
  probe.thread_count = 1;
  probe.pkt_timebase = [config.timeBase.num, config.timeBase.den];
  try {
    await probe.flush();
  } catch (e) {
    throw codecOpError('INVALID_ARGUMENT', name,
      `cannot open the ${config.codecName} decoder with these stream parameters (FFmpeg: ${e instanceof Error ? e.message.replace(/^In file .*? found error: /, '') : String(e)})`,
      'open decoder', e);
  }
  // Before the first packet opens the codec: FFmpeg reads these at avcodec_open2.
  dec.thread_count = threads;
  // The packets' time base: FFmpeg moves audio pts past skipped samples in it.
  dec.pkt_timebase = [config.timeBase.num, config.timeBase.den];
  return new BeamcoderDecoder(dec, String(cp.codec_type) as 'video' | 'audio', config.codecName, name);
}

/** FFmpeg's default layout name for `channels` channels (what a frame without a layout reports). */
function defaultLayout(channels: number): string {
  return String(load().frame({ channels }).channel_layout);
}

class BeamcoderResampler implements AudioResampler {
  readonly name: string;
  readonly input: Readonly<AudioFormat>;
  readonly output: Readonly<Required<ResamplerOutput>>;
  #filt: any;
  #packed: string;
  readonly #guard: CodecGuard;
  #next = 0;
  #flushed = false;

  constructor(filt: any, input: AudioFormat, packed: string, output: Required<ResamplerOutput>, name: string) {
    this.#filt = filt;
    this.input = input;
    this.#packed = packed;
    this.output = output;
    this.name = name;
    this.#guard = new CodecGuard(name);
  }

  get closed(): boolean {
    return this.#guard.closed;
  }

  /** An FFmpeg-owned frame holding `samples` interleaved samples (zeros when `data` is null) at pts `pts`. */
  #frame(samples: number, data: Buffer | null, pts: number): any {
    const f = load().frame({
      nb_samples: samples,
      format: this.#packed,
      sample_rate: this.input.sampleRate,
      channels: this.input.channels,
      channel_layout: this.input.channelLayout,
      pts,
    }).alloc();
    const dst = (f.data as Buffer[])[0];
    if (data !== null) data.copy(dst);
    else dst.fill(0);
    return f;
  }

  async #filter(frame: any, operation: string): Promise<Float32Array> {
    let r: any;
    try {
      r = await this.#filt.filter([frame]);
    } catch (e) {
      throw nativeCodecError(e, this.name, operation, 'INTERNAL');
    }
    const frames = (r[0]?.frames ?? []) as any[];
    const chunks = frames.map((f) => {
      const n = Number(f.nb_samples) * Number(f.channels) * 4;
      return n > 0 ? (f.data as Buffer[])[0].subarray(0, n) : Buffer.alloc(0);
    });
    const total = chunks.reduce((s, c) => s + c.length, 0);
    const out = new Float32Array(total / 4);
    // Byte copy (not through float values, which could alter NaN payloads).
    let at = 0;
    const bytes = new Uint8Array(out.buffer);
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return out;
  }

  convert(frame: DecodedAudioFrame): Promise<Float32Array> {
    const want = this.input;
    const packed = sampleDesc(frame.format)?.packed ?? frame.dataFormat;
    const layout = frame.channelLayout === '' ? defaultLayout(frame.channels) : frame.channelLayout;
    if (frame.sampleRate !== want.sampleRate || frame.channels !== want.channels || packed !== this.#packed || layout !== want.channelLayout) {
      return Promise.reject(codecOpError('INVALID_ARGUMENT', this.name,
        `frame is ${frame.sampleRate} Hz ${frame.channels} ch ${layout} ${frame.format}, the resampler was opened for ` +
        `${want.sampleRate} Hz ${want.channels} ch ${want.channelLayout} ${want.format}`, 'resample'));
    }
    const bytes = frame.samples * frame.channels * (sampleDesc(this.#packed)?.bytes_per_sample ?? 0);
    if (frame.data.length < bytes) {
      return Promise.reject(codecOpError('INVALID_ARGUMENT', this.name, `frame data holds ${frame.data.length} bytes, ${bytes} expected`, 'resample'));
    }
    return this.#guard.run('resample', async () => {
      if (this.#flushed) throw codecOpError('WRONG_STATE', this.name, 'convert after flush (end of stream): open a new resampler', 'resample');
      if (frame.samples === 0) return new Float32Array(0);
      const pts = this.#next;
      this.#next += frame.samples;
      return this.#filter(this.#frame(frame.samples, frame.data, pts), 'resample');
    });
  }

  flush(): Promise<Float32Array> {
    return this.#guard.run('flush', async () => {
      if (this.#flushed) return new Float32Array(0);
      this.#flushed = true;
      // atrim drops this frame (pts >= its end) and signals end of stream: aresample drains swresample.
      return this.#filter(this.#frame(1, null, RESAMPLER_END_PTS), 'flush');
    });
  }

  close(): Promise<void> {
    // The filter graph is freed when the beamcoder object is garbage-collected.
    return this.#guard.close(() => {
      this.#filt = null;
    });
  }
}

/**
 * Open a resampler from decoded frames in `input` format to interleaved float32 at `output.sampleRate` (default
 * 48000), channels as the input unless `output.channels`/`output.channelLayout` say otherwise (FFmpeg rematrixes).
 * FFmpeg's swresample via the `aresample` filter with default options: the concatenated output of convert() and
 * flush() equals `ffmpeg -i in -af aresample=<rate> -f f32le` byte for byte.
 * Errors: INVALID_ARGUMENT for a bad rate, channel count, sample format or layout.
 */
export async function openAudioResampler(input: AudioFormat, output: ResamplerOutput, name: string): Promise<AudioResampler> {
  const bc = load();
  const invalid = (what: string, cause?: unknown): CuemuxError => codecOpError('INVALID_ARGUMENT', name, what, 'open resampler', cause);
  const rate = (v: number, what: string): number => {
    if (!Number.isInteger(v) || v <= 0 || v > 1_000_000) throw invalid(`${what} sample rate must be a positive integer (Hz), got ${v}`);
    return v;
  };
  const inRate = rate(input.sampleRate, 'input');
  const outRate = rate(output.sampleRate ?? 48000, 'output');
  if ((output.format ?? 'flt') !== 'flt') throw invalid(`output format must be flt, got ${String(output.format)}`);
  if (!Number.isInteger(input.channels) || input.channels <= 0 || input.channels > 64) {
    throw invalid(`input channels must be 1..64, got ${input.channels}`);
  }
  const desc = sampleDesc(input.format);
  if (desc === undefined) throw invalid(`unknown sample format "${input.format}"`);
  const inLayout = input.channelLayout === '' ? defaultLayout(input.channels) : input.channelLayout;
  let outLayout: string;
  let outChannels: number;
  if (output.channelLayout !== undefined && output.channelLayout !== '') {
    outLayout = output.channelLayout;
    outChannels = output.channels ?? 0;
  } else if (output.channels !== undefined && output.channels !== input.channels) {
    if (!Number.isInteger(output.channels) || output.channels <= 0 || output.channels > 64) {
      throw invalid(`output channels must be 1..64, got ${output.channels}`);
    }
    outLayout = defaultLayout(output.channels);
    outChannels = output.channels;
  } else {
    outLayout = inLayout;
    outChannels = input.channels;
  }
  let filt: any;
  try {
    filt = await bc.filterer({
      filterType: 'audio',
      inputParams: [{ timeBase: [1, inRate], sampleRate: inRate, sampleFormat: desc.packed, channelLayout: inLayout }],
      outputParams: [{ sampleRate: outRate, sampleFormat: 'flt', channelLayout: outLayout }],
      filterSpec: `atrim=end_pts=${RESAMPLER_END_PTS},aresample=${outRate}`,
    });
  } catch (e) {
    throw invalid(`FFmpeg cannot convert ${inRate} Hz ${input.channels} ch ${inLayout} ${input.format} to ${outRate} Hz ${outLayout} flt ` +
      `(${e instanceof Error ? e.message.replace(/^In file .*? found error: /, '') : String(e)})`, e);
  }
  // The layout FFmpeg negotiated tells the output channel count when only a layout was given.
  const sink = (filt.graph?.filters as any[] | undefined)?.find((f) => f?.filter?.name === 'abuffersink');
  const negotiated = Number(sink?.inputs?.[0]?.channel_count ?? 0);
  if (negotiated > 0) outChannels = negotiated;
  if (outChannels <= 0) throw invalid(`cannot tell the channel count of layout "${outLayout}"`);
  return new BeamcoderResampler(filt, { sampleRate: inRate, channels: input.channels, channelLayout: inLayout, format: input.format },
    desc.packed, { sampleRate: outRate, format: 'flt', channels: outChannels, channelLayout: outLayout }, name);
}
