/**
 * The narrow, typed view of FFmpeg that the rest of cuemux uses. Only `beamcoder-adapter.ts` knows beamcoder.
 */
import type { Rational } from '../common/rational';

/** The kind of elementary stream, as FFmpeg's `AVMediaType`. */
export type CodecType = 'video' | 'audio' | 'subtitle' | 'data' | 'attachment' | 'unknown';

/** Everything about one stream a player needs to create a decoder (FFmpeg's AVStream + AVCodecParameters). */
export interface StreamParams {
  /** Stream index in the container (FFmpeg's `AVStream.index`). */
  index: number;
  /** Media type. */
  codecType: CodecType;
  /** FFmpeg codec name, e.g. `h264`, `aac`, `prores`, `vp9`, `opus`, `pcm_s16le`. */
  codecName: string;
  /** FFmpeg `AVCodecID` numeric value (libavcodec version specific; prefer `codecName`). */
  codecId: number;
  /** Container codec tag (FourCC as a little-endian uint32), 0 when none. */
  codecTag: number;
  /** Seconds per tick of this stream's timestamps. */
  timeBase: Rational;
  /** First timestamp in ticks, or null when FFmpeg has none (AV_NOPTS_VALUE). */
  startPts: number | null;
  /** Duration in ticks, or null when FFmpeg has none. */
  durationPts: number | null;
  /** Frame count the container declares (0 = unknown). Not authoritative: the index counts packets. */
  declaredFrames: number;
  /** Average frame rate (frames per second as a rational) for video; null when unknown. */
  frameRate: Rational | null;
  /** Samples per second for audio, 0 otherwise. */
  sampleRate: number;
  /** Audio channel count, 0 otherwise. */
  channels: number;
  /** Audio channel layout name, e.g. `stereo`, `5.1`; empty when none. */
  channelLayout: string;
  /** Width in pixels for video, 0 otherwise. */
  width: number;
  /** Height in pixels for video, 0 otherwise. */
  height: number;
  /** Pixel format (video) or sample format (audio) name, empty when unknown. */
  format: string;
  /** Bit rate in bits per second, 0 when unknown. */
  bitRate: number;
  /** Codec extradata (e.g. avcC, AudioSpecificConfig, OpusHead); empty when none. */
  extradata: Buffer;
  /** Codec profile name or number as FFmpeg reports it; null when unknown. */
  profile: string | number | null;
  /** Codec level, -99 when unknown (FFmpeg's FF_LEVEL_UNKNOWN). */
  level: number;
  /** Sample aspect ratio (0/1 = unknown). */
  sampleAspectRatio: Rational;
  /** Field order name, e.g. `progressive`, `tt`; `unknown` when not set. */
  fieldOrder: string;
  /** Colour range, primaries, transfer, matrix names (`unknown` when not set). */
  color: { range: string; primaries: string; transfer: string; space: string };
  /** Audio frame size in samples (0 = variable/unknown). */
  frameSize: number;
  /** Audio block alignment in bytes (0 = n/a). */
  blockAlign: number;
  /** Bits per coded sample (0 = n/a). */
  bitsPerCodedSample: number;
  /** Samples of encoder delay to skip at the start (audio), 0 when none. */
  initialPadding: number;
}

/** The container and its streams. */
export interface ContainerInfo {
  /** Absolute path of the media file. */
  path: string;
  /** FFmpeg demuxer short name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  formatName: string;
  /** Container duration in seconds, or null when unknown. */
  durationSeconds: number | null;
  /** Container start time in seconds, or null when unknown. */
  startSeconds: number | null;
  /** Container bit rate in bits per second, 0 when unknown. */
  bitRate: number;
  /** Streams in index order. */
  streams: StreamParams[];
}

/** FFmpeg packet flags (AV_PKT_FLAG_*). */
export const PacketFlag = {
  /** The packet holds a keyframe. */
  KEY: 0x1,
  /** The packet content is corrupted. */
  CORRUPT: 0x2,
  /** The packet is needed to maintain decoder state but is to be discarded after decoding. */
  DISCARD: 0x4,
} as const;

/**
 * Packets as the demuxer returned them, in columns. Record `i` occupies `meta[i * META_STRIDE ...]`, with field
 * offsets {@link Meta}. Values are FFmpeg's, exactly: `NO_VALUE` (-2^63, FFmpeg's AV_NOPTS_VALUE) where pts/dts
 * are unknown, pos = -1 where unknown, duration = 0 where unknown.
 */
export interface PacketColumns {
  /** Number of packets. */
  count: number;
  /** `count * META_STRIDE` doubles. */
  meta: Float64Array;
  /** Concatenated payloads (when requested), packet i at `[meta[i*S+DATA], +size)`; null otherwise. */
  data: Buffer | null;
  /** True when the demuxer reported end of file after these packets. */
  eof: boolean;
  /** Set when reading stopped on an error after these packets (a truncated or damaged file). */
  stopped: { message: string; bytePos: number } | null;
}

/** Doubles per packet record in {@link PacketColumns.meta}. */
export const META_STRIDE = 8;
/** Field offsets inside one record of {@link PacketColumns.meta}. */
export const Meta = { PTS: 0, DTS: 1, DURATION: 2, POS: 3, SIZE: 4, STREAM: 5, FLAGS: 6, DATA: 7 } as const;
/** FFmpeg's AV_NOPTS_VALUE (INT64_MIN), exactly representable as a double. */
export const NO_VALUE = -9223372036854775808;

/** One packet with its payload. Times in the stream's time-base ticks. */
export interface Packet {
  /** Stream index. */
  stream: number;
  /** Presentation timestamp in ticks, null when unknown. */
  pts: number | null;
  /** Decoding timestamp in ticks, null when unknown. */
  dts: number | null;
  /** Duration in ticks, 0 when unknown (as FFmpeg). */
  duration: number;
  /** Byte position in the file, null when unknown. */
  pos: number | null;
  /** Payload size in bytes. */
  size: number;
  /** AV_PKT_FLAG_* bits. */
  flags: number;
  /** Exactly the packet's bytes. */
  data: Buffer;
}

/** Options for {@link Demuxer.readColumns}. */
export interface ReadColumnsOptions {
  /** At most this many packets (default 4096). */
  maxPackets?: number;
  /** With data: stop once this many payload bytes are collected (default 4 MiB; always at least one packet). */
  maxBytes?: number;
  /** Copy payloads into {@link PacketColumns.data} (default false: metadata only, the fast path for indexing). */
  withData?: boolean;
}

/** An open media file. Every operation is serialised: FFmpeg's demuxer is not safe for overlapping calls. */
export interface Demuxer {
  /** Container and stream parameters, read once at open. */
  readonly info: ContainerInfo;
  /** Read the next packets in file order; an empty result with `eof` at the end. */
  readColumns(options?: ReadColumnsOptions): Promise<PacketColumns>;
  /** Read the next packet with its data, or null at the end of the file. */
  readPacket(): Promise<Packet | null>;
  /**
   * Seek so the next read starts at the keyframe at or before `timestamp` (ticks of stream `streamIndex`'s time base).
   * With `anyFrame`, any packet (not only a keyframe) may be the target.
   */
  seek(streamIndex: number, timestamp: number, options?: { anyFrame?: boolean; forward?: boolean }): Promise<void>;
  /** Close the file. Idempotent; waits for the operation in progress; later calls reject with CLOSED. */
  close(): Promise<void>;
  /** True once close() was called. */
  readonly closed: boolean;
}
