/**
 * The narrow, typed view of FFmpeg that the rest of cuemux uses. Only `native.ts` knows beamcoder.
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

/**
 * What a player needs to create a decoder for one stream: the fields of gRPC `StreamInfo` (FFmpeg's
 * AVCodecParameters) that libavcodec's decoders read. Build it from {@link StreamParams} with
 * `decoderConfigFromParams()` (decoder.ts) or field by field from the wire.
 *
 * Which fields matter, measured on the test corpus (FFmpeg 5.1): H.264 (avcC), AAC and Opus need only `codecName`
 * and `extradata`; VP9, ProRes, MP2, FLAC only `codecName`; PCM needs `sampleRate` and `channels` (its decoder
 * refuses to open without them). The rest are passed to FFmpeg unchanged for codecs that do read them (e.g.
 * `blockAlign` for ADPCM/WMA, `bitsPerCodedSample` for raw video and some PCM, `codecTag` for raw video).
 */
export interface DecoderConfig {
  /** FFmpeg codec name, e.g. `h264`, `aac`, `prores`, `vp9`, `opus`, `pcm_s16le` (`StreamInfo.codec_name`). */
  codecName: string;
  /**
   * FFmpeg `AVCodecID` numeric value: used only when this FFmpeg does not know `codecName` (ids are specific to a
   * libavcodec version; the name is authoritative).
   */
  codecId?: number;
  /** Codec extradata (avcC, AudioSpecificConfig, OpusHead...); null or empty when the stream has none. */
  extradata: Buffer | null;
  /** Seconds per tick of the packets' pts/dts/duration; frames come out in the same ticks. */
  timeBase: Rational;
  /** Video width in pixels (0 when unknown or audio; most decoders read it from the bitstream). */
  width: number;
  /** Video height in pixels (0 when unknown or audio). */
  height: number;
  /**
   * Pixel format (video) or sample format (audio) name as the server's FFmpeg reports it, e.g. `yuv420p`, `fltp`;
   * empty when unknown. A hint only: the decoder chooses its own output format (see the frames' `format`).
   */
  format: string;
  /** Audio samples per second (0 for video). */
  sampleRate: number;
  /** Audio channel count (0 for video). */
  channels: number;
  /** Audio channel layout name, e.g. `stereo`, `5.1`; empty when unknown. */
  channelLayout: string;
  /** Bits per coded sample (0 = n/a). */
  bitsPerCodedSample: number;
  /** Audio block alignment in bytes (0 = n/a). */
  blockAlign: number;
  /** Audio samples per frame (0 = variable or unknown). */
  frameSize: number;
  /** Codec profile: FFmpeg's profile name or number; null/undefined when unknown. */
  profile?: string | number | null;
  /** Codec level; -99 (FF_LEVEL_UNKNOWN) or undefined when unknown. */
  level?: number;
  /** Container codec tag (FourCC as a little-endian uint32); 0 or undefined when none. */
  codecTag?: number;
  /** Sample aspect ratio; 0/1 or undefined when unknown. */
  sampleAspectRatio?: Rational;
  /** Bit rate in bits per second; 0 or undefined when unknown. */
  bitRate?: number;
  /** Audio samples of encoder delay (informative: decoders take it from extradata or packet side data). */
  initialPadding?: number;
}

/** A compressed packet as a player receives it. Times in ticks of {@link DecoderConfig.timeBase}. */
export interface EncodedPacket {
  /** Exactly the packet's bytes (not empty). The decoder copies them; the caller may reuse the buffer. */
  data: Buffer;
  /** Presentation timestamp in ticks, null when unknown. A bigint must be a safe integer. */
  pts: number | bigint | null;
  /** Decoding timestamp in ticks, null when unknown. */
  dts: number | bigint | null;
  /** Duration in ticks, 0 when unknown. */
  duration: number | bigint;
  /** AV_PKT_FLAG_* bits ({@link PacketFlag}); DISCARD makes the decoder drop the packet's output (AAC priming). */
  flags: number;
  /**
   * FFmpeg's AV_PKT_DATA_SKIP_SAMPLES side data: audio samples to drop from the start (`start`) and the end (`end`)
   * of this packet's decoded frame. The demuxer sets it for MP3 encoder delay/padding (LAME header), the end
   * trimming of Matroska Opus (DiscardPadding) and partial MP4 priming. Without it those frames keep the samples
   * FFmpeg would have trimmed (everything else stays exact).
   */
  skipSamples?: { start: number; end: number };
  /**
   * The packet's picture is never shown (it ends before a cue's in-point): when no other picture refers to it (a
   * non-reference B-frame), it is not decoded at all (FFmpeg's skip_frame = nonref for this packet) and gives no
   * frame. Reference pictures decode as always, so every picture after it is exactly what a full decode gives.
   * Default false.
   */
  unshown?: boolean;
}

/** One decoded picture. */
export interface DecodedVideoFrame {
  /** Discriminant. */
  kind: 'video';
  /** Presentation timestamp in ticks of the decoder's time base (the packets'), null when unknown. */
  pts: number | null;
  /**
   * FFmpeg's best-effort presentation timestamp (guessed from pts/dts when pts is missing), null when none. This is
   * the timestamp `ffmpeg` itself presents a frame at.
   */
  bestEffortPts: number | null;
  /** Duration in ticks, from the packet; 0 when unknown. */
  duration: number;
  /** Width in pixels (after the codec's cropping). */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Pixel format name, e.g. `yuv420p`, `yuv422p10le`. */
  format: string;
  /**
   * The planes in FFmpeg's plane order, each with tightly packed rows (no linesize padding). Concatenated (plus the
   * palette for PAL formats, which is the last plane) they are exactly what `ffmpeg -c:v rawvideo` writes. A plane
   * whose rows FFmpeg already packed is a view of the decoder's own frame buffer (kept alive while referenced, never
   * reused by FFmpeg meanwhile): treat planes as read-only.
   */
  planes: Buffer[];
  /** True for a keyframe (an intra picture the decoder marked as such). */
  keyFrame: boolean;
  /** Sample (pixel) aspect ratio; 0/1 when unknown. */
  sampleAspectRatio: Rational;
  /** Bytes of each plane as `planes` has them (known without reading them); a decoder's pictures have it. */
  readonly planeLengths?: readonly number[];
  /** Bytes of the whole packed picture (the planes concatenated); a decoder's pictures have it. */
  readonly byteLength?: number;
  /**
   * Copy the packed picture (the planes concatenated) into `dest` (at least `byteLength` bytes); returns the bytes
   * written. A decoder's pictures have it: FFmpeg copies from its own frame, and no Buffer is made per plane.
   */
  copyTo?(dest: Uint8Array): number;
  /**
   * Give the frame's memory back to FFmpeg now rather than at a garbage collection (a decoder's pictures have it).
   * Afterwards `planes` throws unless it was read before; call it once nothing will read the picture again.
   */
  release?(): void;
}

/** One decoded block of audio. */
export interface DecodedAudioFrame {
  /** Discriminant. */
  kind: 'audio';
  /**
   * Presentation timestamp of the first sample in ticks of the decoder's time base (the packets'), null when
   * unknown. Already moved past samples the decoder skipped (priming, skip-samples side data).
   */
  pts: number | null;
  /** FFmpeg's best-effort timestamp in the same ticks, null when none. */
  bestEffortPts: number | null;
  /** Samples per second. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
  /** Channel layout name, e.g. `stereo` (FFmpeg's default layout for `channels` when the stream has none). */
  channelLayout: string;
  /** The decoder's sample format, e.g. `fltp`, `s16p`, `s16` (may be planar). */
  format: string;
  /** The sample format of {@link DecodedAudioFrame.data}: the packed (interleaved) form of `format`, e.g. `flt`. */
  dataFormat: string;
  /** Samples per channel. */
  samples: number;
  /**
   * The samples interleaved (L R L R ...) in `dataFormat`, native little-endian: exactly the bytes `ffmpeg -c:a
   * pcm_<format>le` writes for this frame (`samples * channels * bytes per sample`).
   */
  data: Buffer;
}

/** A decoded frame of either kind. */
export type DecodedFrame = DecodedVideoFrame | DecodedAudioFrame;

/**
 * A decoder for one stream. Operations run one at a time in call order (FFmpeg's codec context is not reentrant):
 * calls may overlap freely.
 */
export interface Decoder {
  /** The name given at open, used in every error message (e.g. the media path and stream). */
  readonly name: string;
  /** `video` or `audio`. */
  readonly codecType: 'video' | 'audio';
  /**
   * Decode one packet. Resolves with the frames that became ready, in presentation order (zero, one or several:
   * decoders with reordering or frame threads hold frames back; {@link Decoder.flush} drains them).
   * Data FFmpeg cannot decode is skipped: no frame and no error (FFmpeg only logs it; beamcoder 0.7.1 loses the
   * errors of its decode call), or noise for codecs where any bytes decode (PCM) or that conceal errors (Opus);
   * decoding continues with the next packets. Errors: INVALID_ARGUMENT (empty data, a timestamp that is not a
   * safe integer, bad skipSamples), WRONG_STATE after flush, CLOSED after close; MEDIA_DAMAGED should beamcoder
   * ever reject a packet.
   */
  decode(packet: EncodedPacket): Promise<DecodedFrame[]>;
  /**
   * End of stream: drain the frames still inside the decoder. Afterwards the decoder accepts no more packets
   * (open a new one to restart, e.g. after a seek). A second flush resolves with no frames.
   */
  flush(): Promise<DecodedFrame[]>;
  /** Release the decoder. Idempotent; waits for the operation in progress; later calls reject with CLOSED. */
  close(): Promise<void>;
  /** True once close() was called. */
  readonly closed: boolean;
}

/** An uncompressed audio format. */
export interface AudioFormat {
  /** Samples per second. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
  /** Channel layout name, e.g. `stereo`; empty for FFmpeg's default layout for `channels`. */
  channelLayout: string;
  /** FFmpeg sample format name, planar or packed, e.g. `fltp`, `s16` (frames are matched on its packed form). */
  format: string;
}

/** The output {@link AudioResampler}s produce: interleaved float32 (FFmpeg `flt`). */
export interface ResamplerOutput {
  /** Samples per second (default 48000). */
  sampleRate?: number;
  /** Sample format: only `flt` (interleaved float32), the default. */
  format?: 'flt';
  /** Channel count (default: the input's, or that of `channelLayout`). */
  channels?: number;
  /** Channel layout name (default: the input's when `channels` is not given, else FFmpeg's default for `channels`). */
  channelLayout?: string;
}

/**
 * Converts decoded audio to interleaved float32 at a fixed rate with FFmpeg's swresample (the `aresample` filter,
 * default options), sample for sample what `ffmpeg -i in -af aresample=<rate> -f f32le` produces. Operations are
 * serialised like a {@link Decoder}'s.
 */
export interface AudioResampler {
  /** The name given at open, used in error messages. */
  readonly name: string;
  /** The input format the resampler was opened for (layout filled in). */
  readonly input: Readonly<AudioFormat>;
  /** The output format (all fields filled in). */
  readonly output: Readonly<Required<ResamplerOutput>>;
  /**
   * Convert one decoded frame (it must match {@link AudioResampler.input}: same rate, channels and packed sample
   * format; else INVALID_ARGUMENT). Resolves with the interleaved samples that became ready: the resampler keeps a
   * few samples back for its filter until {@link AudioResampler.flush}.
   */
  convert(frame: DecodedAudioFrame): Promise<Float32Array>;
  /** End of stream: the samples still held back. Afterwards convert() rejects with WRONG_STATE; a second flush is empty. */
  flush(): Promise<Float32Array>;
  /** Release the resampler. Idempotent; later calls reject with CLOSED. */
  close(): Promise<void>;
  /** True once close() was called. */
  readonly closed: boolean;
}
