/**
 * The FFmpeg command-line tools as the reference that cuemux's own index and packets are checked against.
 *
 * ffprobe and ffmpeg run the same libavformat demuxers cuemux uses, but through an independent, well-trodden path,
 * so agreement with them is strong evidence the index is exact. Everything here shells out; nothing is cached.
 *
 * Quirks of the tools that the parsers below handle (checked against Debian's FFmpeg 5.1):
 * - ffprobe's JSON writer omits a key whose value is N/A (pts/dts of raw elementary streams, unknown pos), and
 *   writes `duration` as N/A (so: omits it) when FFmpeg's duration is 0. The string "N/A" is accepted too, in case
 *   `-show_optional_fields always` or another writer is ever used.
 * - ffprobe prints pts/dts/duration as JSON numbers but `size`, `pos` and stream `nb_frames` as strings.
 * - ffprobe emits `side_data_list` on packets even when only other entries were asked for; it is ignored.
 * - framemd5 lines may carry side-data hashes after the six standard columns (`, S=1, <size>, <md5>`).
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { md5 } from './check';

/** A rational number num/den, e.g. a time base; structurally the same as src/common/rational's Rational. */
export interface TimeBase {
  /** Numerator. */
  readonly num: number;
  /** Denominator. */
  readonly den: number;
}

/** One demuxed packet as ffprobe reports it. Timestamps are in the stream's time base. */
export interface ProbePacket {
  /** Stream index in the input file. */
  readonly stream: number;
  /** Presentation timestamp, or null when FFmpeg has none (e.g. raw elementary streams). */
  readonly pts: number | null;
  /** Decoding timestamp, or null when FFmpeg has none. */
  readonly dts: number | null;
  /** Duration; null both when unknown and when FFmpeg's value is 0 (ffprobe prints both as N/A). */
  readonly duration: number | null;
  /** Byte offset of the packet in the file, or null when the demuxer does not know it. */
  readonly pos: number | null;
  /** Payload size in bytes. */
  readonly size: number;
  /** Keyframe flag (ffprobe flags `K`). */
  readonly key: boolean;
  /** Discard flag (ffprobe flags `D`): the packet decodes only to prime the decoder, e.g. AAC priming. */
  readonly discard: boolean;
}

/** One line of FFmpeg's framemd5 output: a packet (stream copy) or a decoded frame. */
export interface FrameMd5 {
  /** Stream index in the input file (for decoding with a stream subset, mapped back from the output index). */
  readonly stream: number;
  /**
   * Decoding timestamp in {@link FrameMd5.timeBase}; null for AV_NOPTS_VALUE. For stream copy this is ffmpeg's
   * own estimate when the demuxer had none (e.g. raw H.264), so it can be set where ffprobe's dts is null.
   */
  readonly dts: number | null;
  /** Presentation timestamp in {@link FrameMd5.timeBase}; null for AV_NOPTS_VALUE (e.g. raw H.264). */
  readonly pts: number | null;
  /** Duration in {@link FrameMd5.timeBase}. */
  readonly duration: number;
  /** Payload size in bytes. */
  readonly size: number;
  /** MD5 of the payload, lower-case hex. */
  readonly md5: string;
  /**
   * The time base framemd5 wrote this stream in (its `#tb` header). framemd5 rescales timestamps to the output
   * stream's time base, which need not be the input's; compare timestamps with ffprobe only when the bases match.
   */
  readonly timeBase: TimeBase;
}

/** The stream properties of ffprobe `-show_streams` that the tests need. Absent/N/A values are null. */
export interface ProbeStream {
  /** Stream index. */
  readonly index: number;
  /** `codec_type`: `video`, `audio`, `subtitle`, `data`, `attachment` or `unknown`. */
  readonly codecType: string;
  /** `codec_name`, e.g. `h264`; null for streams FFmpeg has no codec for. */
  readonly codecName: string | null;
  /** `time_base`, the unit of every timestamp of the stream. */
  readonly timeBase: TimeBase;
  /** `start_pts` in the time base. */
  readonly startPts: number | null;
  /** `duration_ts` in the time base. */
  readonly durationTs: number | null;
  /** `nb_frames` from the container header (mp4 sample count etc.); often null for streamed formats. */
  readonly nbFrames: number | null;
  /** `r_frame_rate` (the lowest rate all timestamps fit), null when 0/0. */
  readonly rFrameRate: TimeBase | null;
  /** `avg_frame_rate`, null when 0/0. */
  readonly avgFrameRate: TimeBase | null;
  /** `has_b_frames`: the decoder's reorder delay in frames. */
  readonly hasBFrames: number | null;
  /** Video width. */
  readonly width: number | null;
  /** Video height. */
  readonly height: number | null;
  /** Video pixel format. */
  readonly pixFmt: string | null;
  /** Audio sample rate in Hz. */
  readonly sampleRate: number | null;
  /** Audio channel count. */
  readonly channels: number | null;
  /** Audio sample format of the decoder, e.g. `fltp`. */
  readonly sampleFmt: string | null;
}

/** Options for {@link framemd5Decode}. */
export interface DecodeOptions {
  /** Input stream indices to decode, in output order; default: every audio and video stream. */
  readonly streams?: readonly number[];
}

/** AV_NOPTS_VALUE (INT64_MIN) as framemd5 prints it. */
const NOPTS = '-9223372036854775808';

/** Large enough for the packet list of a long clip (ffprobe JSON is ~150 bytes per packet). */
const MAX_BUFFER = 1024 * 1024 * 1024;

/** Run a tool and return its stdout; on failure the error carries the command and stderr, which say why. */
function run(bin: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { maxBuffer: MAX_BUFFER, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`${bin} failed: ${bin} ${args.join(' ')}\n${err.message}\n${stderr.trim()}`));
        return;
      }
      resolve(stdout);
    });
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * An integer field that ffprobe may print as a number, a numeric string, N/A, or omit. Unsafe integers throw:
 * JSON.parse would already have rounded them, and an index must be exact.
 */
function optInt(rec: Record<string, unknown>, key: string): number | null {
  const v = rec[key];
  if (v === undefined || v === 'N/A') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`ffprobe: ${key} is not a safe integer: ${JSON.stringify(v)}`);
  return n;
}

function reqInt(rec: Record<string, unknown>, key: string): number {
  const n = optInt(rec, key);
  if (n === null) throw new Error(`ffprobe: missing ${key} in ${JSON.stringify(rec)}`);
  return n;
}

function optStr(rec: Record<string, unknown>, key: string): string | null {
  const v = rec[key];
  return typeof v === 'string' && v !== 'N/A' ? v : null;
}

/** `num/den` (time bases, frame rates; ffprobe never prints them reduced differently); `0/0` is null. */
function parseRational(text: string | null): TimeBase | null {
  if (text === null) return null;
  const m = /^(-?\d+)[/:](\d+)$/.exec(text);
  if (m === null) throw new Error(`not a rational: ${text}`);
  const num = Number(m[1]);
  const den = Number(m[2]);
  return den === 0 ? null : { num, den };
}

/** The array under `key` of ffprobe's top-level JSON object, each element checked to be an object. */
function probeArray(stdout: string, key: string): Record<string, unknown>[] {
  const parsed: unknown = JSON.parse(stdout);
  if (!isRecord(parsed)) throw new Error('ffprobe: output is not a JSON object');
  // ffprobe omits the array entirely when there are no elements (e.g. a file with no packets).
  const list = parsed[key] ?? [];
  if (!Array.isArray(list)) throw new Error(`ffprobe: "${key}" is not an array`);
  return list.map((item: unknown) => {
    if (!isRecord(item)) throw new Error(`ffprobe: an element of "${key}" is not an object`);
    return item;
  });
}

/**
 * Every packet FFmpeg demuxes from `file`, in file (demux) order, as reported by
 * `ffprobe -show_entries packet=stream_index,pts,dts,duration,pos,size,flags -of json`.
 */
export async function ffprobePackets(file: string): Promise<ProbePacket[]> {
  const stdout = await run('ffprobe', [
    '-v', 'error', '-show_entries', 'packet=stream_index,pts,dts,duration,pos,size,flags', '-of', 'json', file,
  ]);
  return probeArray(stdout, 'packets').map((p) => {
    const flags = optStr(p, 'flags') ?? '';
    return {
      stream: reqInt(p, 'stream_index'),
      pts: optInt(p, 'pts'),
      dts: optInt(p, 'dts'),
      duration: optInt(p, 'duration'),
      pos: optInt(p, 'pos'),
      size: reqInt(p, 'size'),
      // Flags are positional: "K_" / "__" / "KD" (key, discard; 5.1 has a third, corrupt, only when set).
      key: flags.charAt(0) === 'K',
      discard: flags.charAt(1) === 'D',
    };
  });
}

/** Every stream of `file` from `ffprobe -show_streams -of json`. */
export async function ffprobeStreams(file: string): Promise<ProbeStream[]> {
  const stdout = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', file]);
  return probeArray(stdout, 'streams').map((s) => {
    const timeBase = parseRational(optStr(s, 'time_base'));
    if (timeBase === null) throw new Error(`ffprobe: stream without a time base: ${JSON.stringify(s)}`);
    return {
      index: reqInt(s, 'index'),
      codecType: optStr(s, 'codec_type') ?? 'unknown',
      codecName: optStr(s, 'codec_name'),
      timeBase,
      startPts: optInt(s, 'start_pts'),
      durationTs: optInt(s, 'duration_ts'),
      nbFrames: optInt(s, 'nb_frames'),
      rFrameRate: parseRational(optStr(s, 'r_frame_rate')),
      avgFrameRate: parseRational(optStr(s, 'avg_frame_rate')),
      hasBFrames: optInt(s, 'has_b_frames'),
      width: optInt(s, 'width'),
      height: optInt(s, 'height'),
      pixFmt: optStr(s, 'pix_fmt'),
      sampleRate: optInt(s, 'sample_rate'),
      channels: optInt(s, 'channels'),
      sampleFmt: optStr(s, 'sample_fmt'),
    };
  });
}

/**
 * Parse framemd5 output. `inputStream[i]` is the input stream index of output stream i (framemd5 numbers the
 * streams it writes, which differ from the input's when only some streams are mapped).
 */
export function parseFramemd5(text: string, inputStream?: readonly number[]): FrameMd5[] {
  const timeBases = new Map<number, TimeBase>();
  const frames: FrameMd5[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const tb = /^#tb (\d+): (\d+)\/(\d+)$/.exec(line);
      if (tb !== null) timeBases.set(Number(tb[1]), { num: Number(tb[2]), den: Number(tb[3]) });
      continue;
    }
    // Only the first six columns are the packet; any further ones are side-data sizes and hashes.
    const cols = line.split(',').map((c) => c.trim());
    if (cols.length < 6) throw new Error(`framemd5: malformed line: ${line}`);
    const [streamCol, dtsCol, ptsCol, durCol, sizeCol, md5] = cols as [string, string, string, string, string, string];
    // framemd5 prints a missing timestamp as the raw AV_NOPTS_VALUE, INT64_MIN.
    const nums = [streamCol, dtsCol, ptsCol, durCol, sizeCol].map((c) => (c === NOPTS ? null : Number(c)));
    if (!nums.every((n) => n === null || Number.isSafeInteger(n)) || !/^[0-9a-f]{32}$/.test(md5)) {
      throw new Error(`framemd5: malformed line: ${line}`);
    }
    const [outStream, dts, pts, duration, size] = nums;
    if (outStream === null || duration === null || size === null) throw new Error(`framemd5: malformed line: ${line}`);
    const timeBase = timeBases.get(outStream);
    if (timeBase === undefined) throw new Error(`framemd5: no #tb header for stream ${outStream}`);
    const stream = inputStream === undefined ? outStream : inputStream[outStream];
    if (stream === undefined) throw new Error(`framemd5: unexpected output stream ${outStream}`);
    frames.push({ stream, dts, pts, duration, size, md5, timeBase });
  }
  return frames;
}

/**
 * Every packet of every stream of `file`, stream-copied through `ffmpeg -f framemd5`: the payload MD5 lets tests
 * check cuemux serves the exact bytes FFmpeg demuxes. `-copyts` keeps the demuxer's timestamps instead of shifting
 * the file to start at 0, and `-copyinkf` keeps packets before a stream's first keyframe, which ffmpeg would drop
 * by default; with both, the list matches {@link ffprobePackets} packet for packet.
 * framemd5 writes in interleaved mux order, not file order, so compare per stream.
 */
export async function framemd5Copy(file: string): Promise<FrameMd5[]> {
  const stdout = await run('ffmpeg', [
    '-v', 'error', '-nostdin', '-copyts', '-i', file, '-map', '0', '-c', 'copy', '-copyinkf', '-f', 'framemd5', '-',
  ]);
  return parseFramemd5(stdout);
}

/**
 * The raw PCM codec that stores `sampleFmt` unchanged, so audio frames are hashed without conversion (framemd5's
 * default, pcm_s16le, would quantise float decoders). Planar formats are interleaved, which loses nothing.
 */
function pcmCodecFor(sampleFmt: string | null): string {
  switch (sampleFmt?.replace(/p$/, '')) {
    case 'u8': return 'pcm_u8';
    case 's16': return 'pcm_s16le';
    case 's32': return 'pcm_s32le';
    case 's64': return 'pcm_s64le';
    case 'flt': return 'pcm_f32le';
    case 'dbl': return 'pcm_f64le';
    default: throw new Error(`framemd5Decode: no lossless PCM codec for sample format ${String(sampleFmt)}`);
  }
}

/**
 * Every decoded frame of the chosen streams of `file`, hashed by `ffmpeg -f framemd5`. Video is hashed as rawvideo
 * in the decoder's pixel format, audio as interleaved PCM in the decoder's sample format.
 * `-fps_mode passthrough` keeps every decoded frame: framemd5 is a variable-frame-rate muxer, for which ffmpeg's
 * default drops frames whose timestamps collide. `-copyts` keeps the input timestamps, and `-enc_time_base -1`
 * keeps video in the input stream's time base (ffmpeg would otherwise use 1/frame rate and round VFR timestamps).
 */
export async function framemd5Decode(file: string, opts: DecodeOptions = {}): Promise<FrameMd5[]> {
  const streams = await ffprobeStreams(file);
  const chosen = opts.streams ?? streams.filter((s) => s.codecType === 'video' || s.codecType === 'audio').map((s) => s.index);
  const args = ['-v', 'error', '-nostdin', '-copyts', '-i', file];
  chosen.forEach((index, out) => {
    const s = streams.find((x) => x.index === index);
    if (s === undefined) throw new Error(`framemd5Decode: ${file} has no stream ${index}`);
    args.push('-map', `0:${index}`);
    if (s.codecType === 'video') args.push(`-c:${out}`, 'rawvideo', `-enc_time_base:${out}`, '-1');
    else if (s.codecType === 'audio') args.push(`-c:${out}`, pcmCodecFor(s.sampleFmt));
    else throw new Error(`framemd5Decode: stream ${index} is ${s.codecType}, not audio or video`);
  });
  args.push('-fps_mode', 'passthrough', '-f', 'framemd5', '-');
  return parseFramemd5(await run('ffmpeg', args), chosen);
}

/**
 * `pick(packet)` of each packet, grouped by stream in order. ffmpeg's muxer interleaves framemd5 lines by dts, not in
 * file order, so packets are compared with it stream by stream.
 */
export function groupByStream<T extends { stream: number }, V>(packets: readonly T[], pick: (p: T) => V): Map<number, V[]> {
  const m = new Map<number, V[]>();
  for (const p of packets) {
    const list = m.get(p.stream);
    if (list) list.push(pick(p));
    else m.set(p.stream, [pick(p)]);
  }
  return m;
}

/**
 * Assert that `packets` (as a client received them, in file order) are every packet of the file `file` once: their
 * count, each stream's payload MD5s (`ffmpeg -c copy -f framemd5`) and the file order with stream, pts, pos and key
 * flag (`ffprobe -show_packets`). For media that grew while it was served: checked against the final file.
 */
export async function assertPacketsOfFile(packets: ReadonlyArray<{ streamIndex: number; pts?: bigint; pos?: bigint; key: boolean; data: Buffer }>, file: string): Promise<void> {
  const reference = await framemd5Copy(file);
  assert.equal(packets.length, reference.length, 'every packet exactly once');
  assert.deepEqual(groupByStream(packets.map((p) => ({ stream: p.streamIndex, md5: md5(p.data) })), (x) => x.md5),
    groupByStream(reference, (r) => r.md5), 'payload bytes (ffmpeg -c copy -f framemd5 of the final file)');
  const probe = await ffprobePackets(file);
  assert.deepEqual(packets.map((p) => [p.streamIndex, p.pts === undefined ? null : Number(p.pts), p.pos === undefined ? null : Number(p.pos), p.key]),
    probe.map((p) => [p.stream, p.pts, p.pos, p.key]), 'file order and fields (ffprobe -show_packets of the final file)');
}

/**
 * Assert the claim a direct-readable index makes: each packet's bytes in `media` at pos + offsets[stream] are FFmpeg's
 * (`ffmpeg -c copy -f framemd5`, paired with `packets` per stream, in order).
 */
export async function assertPayloadsAtPositions(media: string, packets: Iterable<{ stream: number; pos: number | null; size: number }>,
  offsets: readonly number[], label = media): Promise<void> {
  const bytes = await fsp.readFile(media);
  const payloads = groupByStream(await framemd5Copy(media), (m) => m.md5);
  const seen = new Map<number, number>();
  for (const p of packets) {
    const n = seen.get(p.stream) ?? 0;
    seen.set(p.stream, n + 1);
    const from = (p.pos as number) + offsets[p.stream];
    assert.equal(md5(bytes.subarray(from, from + p.size)), payloads.get(p.stream)?.[n], `${label}: stream ${p.stream} packet ${n}`);
  }
}
