/**
 * Native loading: the only module that loads beamcoder (FFmpeg 5.1 through N-API), and the typed surface of the
 * part of it cuemux uses. Everything else in src/ffmpeg/ sees beamcoder's objects through the interfaces below, so
 * the untyped boundary is this one file (the eslint config lets only it handle `any`).
 *
 * We load the compiled addon directly rather than `require('beamcoder')`: the package's index.js prints a licence
 * banner to stdout (which would corrupt `--json` output) and registers a segfault handler that writes `crash.log`
 * into the working directory. The addon is patched at install (scripts/patch-beamcoder.js) so packet bytes are
 * exact for every container and so many packets can be read in one native call (`readBatch`).
 *
 * Fields beamcoder reports from FFmpeg structs are typed `unknown`: which are set, and as what, depends on the codec
 * and the FFmpeg build, so readers convert them defensively (Number(), String(), typeof checks) where they read them.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError, errorMessage } from '../common/errors';

/** An FFmpeg struct as beamcoder exposes it: named fields whose presence and type vary (read defensively). */
export interface NativeFields {
  [field: string]: unknown;
}

/** AVCodecParameters (a stream's, or one built for a decoder): fields are read and written by FFmpeg name. */
export type NativeCodecParameters = NativeFields;

/** AVStream of an open input. */
export interface NativeStream extends NativeFields {
  /** Stream index in the container. */
  index: number;
  /** The stream's codec parameters. */
  codecpar: NativeCodecParameters;
}

/** What the patched `readBatch` returns: packet metadata columns, optional payload bytes, and why it stopped. */
export interface NativeBatch {
  /** Packets read. */
  count: number;
  /** `count` × META_STRIDE float64 values (possibly not 8-byte aligned). */
  meta: Buffer;
  /** Concatenated payloads when read with data, else null. */
  data: Buffer | null;
  /** End of file reached. */
  eof: boolean;
  /** FFmpeg's message when reading stopped on an error, else null. */
  error: string | null;
  /** Byte position where reading stopped on an error. */
  stopPos: number;
}

/** AVFormatContext of an open input (beamcoder's demuxer). */
export interface NativeFormat extends NativeFields {
  /** The input format (`iformat.name`: `mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...). */
  iformat?: { name?: unknown };
  /** The streams found. */
  streams: NativeStream[];
  /** Read up to `maxPackets` packets / `maxBytes` bytes in one thread-pool job (cuemux's patch). */
  readBatch(maxPackets: number, maxBytes: number, withData: boolean): Promise<NativeBatch>;
  /** av_seek_frame. */
  seek(options: { stream_index: number; timestamp: number; backward: boolean; any: boolean }): Promise<unknown>;
  /** avformat_close_input, now (only when no call is running on it). */
  forceClose(): void;
}

/** AVFrame: planes, line sizes and FFmpeg's frame fields. */
export interface NativeFrame extends NativeFields {
  /** Plane buffers data[0..7] (a new array of views at each access: read once). */
  data: Buffer[];
  /** Bytes per row of each plane. */
  linesize: number[];
  /** Allocate the frame's buffers for its format and size (returns the frame). */
  alloc(): NativeFrame;
}

/** What decode() and flush() resolve with. */
export interface NativeDecodeResult {
  /** Frames that came out. */
  frames: NativeFrame[];
}

/** AVPacket built for a decoder. */
export interface NativePacket {
  /** Payload (FFmpeg reads it through its own AVBufferRef wrapping this memory). */
  data: Buffer;
  /** Payload size (set explicitly: setting data does not). */
  size: number;
  /** AV_PKT_FLAG_* as booleans. */
  flags: { KEY: boolean; CORRUPT: boolean; DISCARD: boolean; TRUSTED: boolean; DISPOSABLE: boolean };
  /** Side data by name, e.g. `skip_samples`. */
  side_data: Record<string, Buffer>;
}

/** AVCodecContext of a decoder (opened by beamcoder at the first packet or flush). */
export interface NativeDecoder extends NativeFields {
  /** Decoding threads (read by FFmpeg at open). */
  thread_count: number;
  /** Time base of the packets (read by FFmpeg at open). */
  pkt_timebase: [number, number];
  /** AVDiscard of the pictures to skip (`default`, `nonref`...): read at each packet sent. */
  skip_frame: string;
  /** Send one packet and receive the frames it completes. */
  decode(packet: NativePacket): Promise<NativeDecodeResult>;
  /** Send end of stream and receive the remaining frames. */
  flush(): Promise<NativeDecodeResult>;
}

/** A filter in a filter graph, as far as we read it. */
export interface NativeGraphFilter {
  /** The filter's definition. */
  filter?: { name?: unknown };
  /** Its input links. */
  inputs?: Array<{ channel_count?: unknown }>;
}

/** An audio filter graph (beamcoder's filterer). */
export interface NativeFilterer {
  /** The configured graph. */
  graph?: { filters?: NativeGraphFilter[] };
  /** Push frames into the graph's one input and pull what its one output has. */
  filter(frames: NativeFrame[]): Promise<Array<{ frames?: NativeFrame[] }>>;
}

/** An entry of FFmpeg's pixel format descriptor table (av_pix_fmt_desc_get). */
export interface PixelFormatDescriptor {
  /** Horizontal chroma subsampling, log2. */
  log2_chroma_w: number;
  /** Vertical chroma subsampling, log2. */
  log2_chroma_h: number;
  /** AV_PIX_FMT_FLAG_*. */
  flags: { PAL: boolean; BITSTREAM: boolean; HWACCEL: boolean };
  /** Components: the plane each is in and its step (bytes, or bits for bitstream formats). */
  comp: Array<{ plane: number; step: number }>;
}

/** An entry of FFmpeg's sample format table. */
export interface SampleFormatDescriptor {
  /** The packed (interleaved) variant's name, e.g. `flt` for `fltp`. */
  packed: string;
  /** Bytes per sample of one channel. */
  bytes_per_sample: number;
  /** One plane per channel. */
  is_planar: boolean;
}

/** AVStream of an output (a muxer's), as far as we set it. */
export interface NativeOutputStream extends NativeFields {
  /** Its codec parameters (assigning copies them into the stream). */
  codecpar: NativeCodecParameters;
}

/**
 * AVFormatContext of an output (beamcoder's muxer). Its calls run on the thread pool and must not overlap (as for a
 * demuxer): the muxer module (muxer.ts) serialises them.
 */
export interface NativeMuxer extends NativeFields {
  /** avformat_new_stream: a stream with this codec name and time base (ticks of its packets). */
  newStream(options: { name: string; time_base: [number, number]; interleaved: boolean }): NativeOutputStream;
  /** avio_open of `url` (a `file:` path; here a FIFO whose reading end is ours). */
  openIO(options: { url: string }): Promise<unknown>;
  /** avformat_write_header with the muxer's private options (e.g. `movflags`). */
  writeHeader(options: { options: Record<string, string> }): Promise<unknown>;
  /**
   * Which FFmpeg call writeFrame makes: true (beamcoder's default) av_interleaved_write_frame, false av_write_frame.
   * Set it false: av_interleaved_write_frame takes the packet's reference and drops it later on a thread-pool thread,
   * where beamcoder's release of a JavaScript-made packet buffer (packetBufferFree) called napi_delete_reference off
   * the main thread (see muxer.ts). cuemux's patch now queues that deletion to the main thread instead (counted by
   * {@link NativeBinding.cuemuxReleaseStats}); av_write_frame needs no such hop.
   */
  interleaved: boolean;
  /** av_write_frame or av_interleaved_write_frame, by {@link interleaved}, on a thread-pool thread. */
  writeFrame(packet: NativePacket): Promise<unknown>;
  /** av_write_trailer, then the output is closed. */
  writeTrailer(): Promise<unknown>;
  /** Close the output and free the context now (only when no call is running on it). */
  forceClose(): void;
}

/** The beamcoder functions cuemux calls. */
export interface NativeBinding {
  /**
   * Open an input (avformat_open_input + avformat_find_stream_info) on a thread-pool thread; `options` are FFmpeg's
   * format and protocol options (an AVDictionary), e.g. the file protocol's `follow` and `rw_timeout`.
   */
  demuxer(input: string | { url: string; options?: Record<string, string> }): Promise<NativeFormat>;
  /** A decoder for the given parameters (opened at its first packet or flush). */
  decoder(options: { params: NativeCodecParameters }): NativeDecoder;
  /** Empty codec parameters. */
  codecParameters(): NativeCodecParameters;
  /** A packet with these timestamps (and, for a muxer, its output stream). */
  packet(init: { pts: number | null; dts: number | null; duration: number; stream_index?: number }): NativePacket;
  /** An output (avformat_alloc_output_context2) of the named format, e.g. `mp4`. */
  muxer(options: { format_name: string }): NativeMuxer;
  /** A frame with these fields (buffers allocated by alloc()). */
  frame(init: Record<string, unknown>): NativeFrame;
  /** Build and configure a filter graph. */
  filterer(options: Record<string, unknown>): Promise<NativeFilterer>;
  /** FFmpeg's pixel format descriptors by name. */
  pix_fmts(): Record<string, PixelFormatDescriptor>;
  /** FFmpeg's sample formats by name. */
  sample_fmts(): Record<string, SampleFormatDescriptor>;
  /** FFmpeg's decoders by name, with their profile names. */
  decoders(): Record<string, { profiles?: string[] | null }>;
  /** Library versions (avformat, avcodec, ...) as FFmpeg's packed integers. */
  versions(): Record<string, unknown>;
  /** FFmpeg's version string. */
  avVersionInfo(): unknown;
  /** Set FFmpeg's log level (`quiet`, `error`, `info`, ...). */
  logging(level: string): void;
  /** cuemux's patch (native/beamcoder/cuemux_frame.cc): the picture packed into `dest`, bytes written. */
  cuemuxCopyPicture(frame: NativeFrame, dest: Uint8Array): number;
  /** cuemux's patch: av_frame_unref now and V8's external-memory count taken back (the frame object stays, empty). */
  cuemuxReleaseFrame(frame: NativeFrame): void;
  /**
   * cuemux's patch (native/beamcoder/cuemux_release.cc): how FFmpeg's releases of JavaScript Buffers (packet and frame
   * data set from JavaScript; each release ends one Node-API reference) were handled, as counts of releases since the
   * addon was loaded, over every thread and worker of the process.
   * `deferred`: released on a thread other than the Buffer's environment's JavaScript thread (a thread-pool thread
   * running a mux, decode or encode call, or one of FFmpeg's own threads), where Node-API may not be called: the
   * reference was queued to that JavaScript thread and deleted there (beamcoder deleted it on the spot).
   * `dropped`: released once the environment's teardown had begun (its cleanup hook has run), on any thread: the
   * reference is left undeleted (a few dozen bytes each, not freed) rather than touch an environment going away;
   * e.g. the packets a worker still holds when it ends.
   */
  cuemuxReleaseStats(): { deferred: number; dropped: number };
}

let binding: NativeBinding | undefined;

/**
 * The loaded binding (loaded, and FFmpeg's libraries mapped, at the first call).
 *
 * @throws CuemuxError('INTERNAL') when beamcoder is not installed or its addon cannot be loaded.
 */
export function native(): NativeBinding {
  if (binding !== undefined) return binding;
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve('beamcoder/package.json'));
  } catch (e) {
    throw new CuemuxError('INTERNAL', 'beamcoder is not installed: run `npm ci` (see README)', { operation: 'load ffmpeg', cause: e });
  }
  const addon = path.join(pkgDir, 'build', 'Release', 'beamcoder.node');
  let loaded: any;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(addon);
  } catch (e) {
    throw new CuemuxError('INTERNAL', `cannot load FFmpeg binding ${addon}: ${errorMessage(e)}; run \`npm ci\``,
      { operation: 'load ffmpeg', cause: e });
  }
  if (typeof loaded?.demuxer !== 'function') {
    throw new CuemuxError('INTERNAL', `${addon} is not a beamcoder build`, { operation: 'load ffmpeg' });
  }
  if (typeof loaded.cuemuxCopyPicture !== 'function' || typeof loaded.cuemuxReleaseStats !== 'function') {
    throw new CuemuxError('INTERNAL', `${addon} was built without cuemux's patch: run \`node scripts/patch-beamcoder.js\` (or \`npm ci\`)`, { operation: 'load ffmpeg' });
  }
  const bc = loaded as NativeBinding;
  bc.logging(process.env.CUEMUX_FFMPEG_LOG ?? 'quiet');
  const rec = recordedVersions();
  if (rec !== null && Number(bc.versions().avformat) !== rec.versions.avformat) {
    // FFmpeg was upgraded under a built addon: trust the library actually loaded from now on.
    recorded = null;
  }
  binding = bc;
  return bc;
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
 * Copy a decoded picture into `dest` in rawvideo's packed layout (FFmpeg's av_image_copy_to_buffer, align 1), without
 * making a Buffer of the frame's memory. Returns the bytes written; throws when `dest` is too small or the frame holds
 * no picture.
 */
export function copyPicture(frame: NativeFrame, dest: Uint8Array): number {
  return native().cuemuxCopyPicture(frame, dest);
}

/**
 * Give a decoded frame's buffers back to FFmpeg now (av_frame_unref) and take its memory off V8's external-memory
 * count, instead of at the garbage collection that finalizes the frame object. Why: see native/beamcoder/cuemux_frame.cc.
 */
export function releaseFrame(frame: NativeFrame): void {
  native().cuemuxReleaseFrame(frame);
}

/**
 * Load FFmpeg's libraries now (they load at first use otherwise): a player does it before it follows, so its first
 * GO does not pay for it. Throws a CuemuxError (INTERNAL) when the binding cannot be loaded.
 */
export function loadFfmpeg(): void {
  native();
}

/** FFmpeg's version string, e.g. `5.1.9-0+deb12u1`. */
export function ffmpegVersion(): string {
  return recordedVersions()?.info ?? String(native().avVersionInfo());
}

/** libavformat's version as major.minor.micro, e.g. `59.27.100` (recorded in every index). */
export function libavformatVersion(): { major: number; minor: number; micro: number } {
  const v = Number(recordedVersions()?.versions.avformat ?? native().versions().avformat);
  return { major: v >>> 16, minor: (v >>> 8) & 0xff, micro: v & 0xff };
}

let pixelFormats: Record<string, PixelFormatDescriptor> | undefined;
let sampleFormats: Record<string, SampleFormatDescriptor> | undefined;

/** FFmpeg's descriptor of pixel format `name` (fetched once), or undefined for a name FFmpeg does not know. */
export function pixelFormat(name: string): PixelFormatDescriptor | undefined {
  pixelFormats ??= native().pix_fmts();
  return Object.prototype.hasOwnProperty.call(pixelFormats, name) ? pixelFormats[name] : undefined;
}

/** FFmpeg's description of sample format `name` (fetched once), or undefined for a name FFmpeg does not know. */
export function sampleFormat(name: string): SampleFormatDescriptor | undefined {
  sampleFormats ??= native().sample_fmts();
  return Object.prototype.hasOwnProperty.call(sampleFormats, name) ? sampleFormats[name] : undefined;
}
