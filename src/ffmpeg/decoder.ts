/**
 * The decoder of the reference players: one audio or video stream's packets in, decoded frames out (see frames.ts),
 * FFmpeg's libavcodec through beamcoder, every call in the decoder's lane (native-lane.ts).
 *
 * beamcoder 0.7.1 facts this code works around (measured with FFmpeg 5.1):
 * - `packet.data = buf` wraps the JavaScript memory as the packet's AVBufferRef without FFmpeg's 64 bytes of zeroed
 *   input padding (decoders' bitstream readers over-read), and does not set `size`: data is copied into a padded
 *   buffer and size set explicitly.
 * - When FFmpeg drops the last reference to such a buffer, beamcoder deletes a napi reference from whatever thread
 *   does it; a frame-threaded decoder drops its copy on a thread-pool thread. Each decoder therefore keeps its last
 *   HOLD_PACKETS packet objects alive, so FFmpeg has always let go first and the final release happens on the main
 *   thread (garbage collection). (cuemux's patch now queues an off-thread deletion to the main thread
 *   (native/beamcoder/cuemux_release.cc); holding the packets still spares that hop.)
 * - decode() with a packet whose data is set but size is 0 makes avcodec_send_packet return EINVAL, which beamcoder
 *   takes for "decoder not open", reopens, and retries forever on a pool thread: empty packets are refused here.
 * - decode() never reports FFmpeg's errors: decodeComplete overwrites the worker's status with that of deleting the
 *   packet references before checking it (and avcodec_receive_frame errors are ignored anyway), so a packet FFmpeg
 *   rejects, or a decoder that failed to open, just yields no frames. flush() (no packets) does report them: a
 *   throwaway decoder with the same parameters is flushed at open to check that FFmpeg can open it.
 * - After a failed open the codec context has no codec: getters such as `name`, `long_name`, `priv_data`
 *   dereference it and would crash the process. They are never read here.
 * - A decoder has no close(): its AVCodecContext is freed when the JavaScript object is garbage-collected.
 * - Setting an unknown profile name prints to stdout (profiles are looked up first); an empty or unknown channel
 *   layout name throws.
 */
import { CuemuxError } from '../common/errors';
import { audioFrame, videoFrame } from './frames';
import { ffmpegVersion, native, type NativeCodecParameters, type NativeDecodeResult, type NativeDecoder, type NativePacket } from './native';
import { nativeMessage, subjectError } from './native-error';
import { NativeLane } from './native-lane';
import { PacketFlag, type DecodedFrame, type Decoder, type DecoderConfig, type EncodedPacket, type StreamParams } from './types';

/** Packet objects each decoder keeps alive after decoding them (see above); FFmpeg holds at most 16 (threads). */
const HOLD_PACKETS = 64;
/** AV_INPUT_BUFFER_PADDING_SIZE: zeroed bytes FFmpeg's decoders may read past the end of a packet. */
const INPUT_PADDING = 64;

/** A timestamp/duration from the wire as an exact number; null stays null. */
function ticks(v: number | bigint | null, what: string, name: string): number | null {
  if (v === null) return null;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || (typeof v === 'bigint' && BigInt(n) !== v)) {
    throw subjectError({ name }, 'INVALID_ARGUMENT', `packet ${what} must be a safe integer number of ticks, got ${String(v)}`, 'decode');
  }
  return n;
}

/** The error for parameters FFmpeg cannot open the decoder with (found at the probe flush or the first packet). */
function cannotOpen(name: string, codec: string, e: unknown, operation: string): CuemuxError {
  return subjectError({ name }, 'INVALID_ARGUMENT', `cannot open the ${codec} decoder with these stream parameters (FFmpeg: ${nativeMessage(e)})`, operation, e);
}

let decoderProfiles: Record<string, { profiles?: string[] | null }> | undefined;

/**
 * beamcoder codec parameters for `config` (a decoder's), or set `into` an existing set (a muxer's output stream's own:
 * src/ffmpeg/muxer.ts); throws INVALID_ARGUMENT for what FFmpeg does not know.
 */
export function codecParameters(config: DecoderConfig, name: string, into?: NativeCodecParameters): NativeCodecParameters {
  const bc = native();
  const invalid = (what: string, cause?: unknown): CuemuxError => subjectError({ name }, 'INVALID_ARGUMENT', what, 'open decoder', cause);
  const cp = into ?? bc.codecParameters();
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
    decoderProfiles ??= bc.decoders();
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

/** An open decoder; decode and flush run in its lane (native-lane.ts). */
class BeamcoderDecoder implements Decoder {
  readonly name: string;
  readonly codecType: 'video' | 'audio';
  #dec: NativeDecoder | null;
  readonly #codec: string;
  readonly #lane: NativeLane;
  #held: NativePacket[] = [];
  #flushed = false;
  /** skip_frame set on the context (EncodedPacket.unshown). */
  #skipFrame = 'default';

  constructor(dec: NativeDecoder, codecType: 'video' | 'audio', codec: string, name: string) {
    this.#dec = dec;
    this.codecType = codecType;
    this.#codec = codec;
    this.name = name;
    // A native failure on a packet means the packet (the media) is damaged.
    this.#lane = new NativeLane({ name }, 'MEDIA_DAMAGED');
  }

  get closed(): boolean {
    return this.#lane.closed;
  }

  #frames(r: NativeDecodeResult): DecodedFrame[] {
    return r.frames.map((f) => (this.codecType === 'video' ? videoFrame(f, this.name) : audioFrame(f, this.name)));
  }

  /** The decoder (the lane only runs calls before close, so it is there). */
  #context(): NativeDecoder {
    if (this.#dec === null) throw subjectError({ name: this.name }, 'CLOSED', 'closed', 'decode');
    return this.#dec;
  }

  /** Run native call `call`; the decoder is opened by the first packet (or flush): its parameters are checked then. */
  async #call(operation: string, call: (dec: NativeDecoder) => Promise<NativeDecodeResult>): Promise<NativeDecodeResult> {
    try {
      return await call(this.#context());
    } catch (e) {
      if (e instanceof Error && /Problem opening decoder/.test(e.message)) throw cannotOpen(this.name, this.#codec, e, operation);
      throw e; // the lane translates it
    }
  }

  decode(packet: EncodedPacket): Promise<DecodedFrame[]> {
    let pkt: NativePacket;
    try {
      pkt = this.#packet(packet);
    } catch (e) {
      return Promise.reject(e instanceof CuemuxError ? e : subjectError({ name: this.name }, 'INTERNAL', `decode failed: ${String(e)}`, 'decode', e));
    }
    const skip = packet.unshown === true && this.codecType === 'video' ? 'nonref' : 'default';
    return this.#lane.run('decode', async () => {
      if (this.#flushed) throw subjectError({ name: this.name }, 'WRONG_STATE', 'decode after flush (end of stream): open a new decoder', 'decode');
      try {
        return this.#frames(await this.#call('decode', (dec) => {
          // Between calls (the lane runs one at a time); frame threads take it with the packet they are given.
          if (skip !== this.#skipFrame) {
            dec.skip_frame = skip;
            this.#skipFrame = skip;
          }
          return dec.decode(pkt);
        }));
      } finally {
        this.#held.push(pkt);
        if (this.#held.length > HOLD_PACKETS) this.#held.shift();
      }
    });
  }

  #packet(p: EncodedPacket): NativePacket {
    if (!Buffer.isBuffer(p.data) || p.data.length === 0) {
      throw subjectError({ name: this.name }, 'INVALID_ARGUMENT', 'packet data must be a non-empty Buffer', 'decode');
    }
    const pts = ticks(p.pts, 'pts', this.name);
    const dts = ticks(p.dts, 'dts', this.name);
    const duration = ticks(p.duration, 'duration', this.name) ?? 0;
    const flags = Number(p.flags);
    const pkt = native().packet({ pts, dts, duration });
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
        throw subjectError({ name: this.name }, 'INVALID_ARGUMENT', `skipSamples must be non-negative sample counts, got ${start}/${end}`, 'decode');
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
    return this.#lane.run('flush', async () => {
      if (this.#flushed) return [];
      this.#flushed = true;
      return this.#frames(await this.#call('flush', (dec) => dec.flush()));
    });
  }

  close(): Promise<void> {
    // beamcoder frees the AVCodecContext when the object is garbage-collected; there is no explicit close. Dropping
    // our references after the running call is what lets it go.
    return this.#lane.close(() => {
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
  /**
   * Decode audio so that a decoder started anywhere in a stream gives, once pre-rolled, the samples of a decoder
   * that ran from the start, bit for bit, where FFmpeg has a way ({@link EXACT_START_DECODERS}). Default false:
   * FFmpeg's default decoder and options for the codec, as `ffmpeg -i` uses.
   */
  exactStarts?: boolean;
}

/** How a codec is decoded with {@link DecoderOptions.exactStarts}: another decoder than the default, private options. */
export interface ExactStartDecoder {
  /** FFmpeg decoder name to use instead of the default one for the codec id (e.g. `mp2float`). */
  decoder?: string;
  /** Private options of the decoder (AVOptions, as `ffmpeg -OPTION VALUE -i`). */
  options?: Readonly<Record<string, boolean>>;
}

/**
 * Codecs whose default FFmpeg decode depends on where decoding started, for ever, and how to decode them instead
 * (measured with FFmpeg 5.1, a cue started mid-file against the continuous decode):
 * - MPEG audio layers 1/2: FFmpeg picks the fixed-point decoder (`mp2`, s16p output). Its synthesis rounds to 16 bits
 *   with error feedback (`dither_state`), and the remainder it carries from sample to sample is never forgotten: a
 *   decoder opened mid-file differs by one 16-bit step (3.05e-5) on ~30 % of the samples for the rest of the stream.
 *   The float decoders (`mp1float`, `mp2float`: fltp, no 16-bit detour) have no such state. MP3 and its variants are
 *   named too, so that a build listing the fixed-point decoder first does not change the output.
 * - AC-3/E-AC-3: zero-bit mantissas are dithered from a generator seeded when the decoder opens, so a decoder opened
 *   mid-file draws other numbers (a difference of up to a few 1e-5 on every dithered sample, for ever). With
 *   `cons_noisegen` the generator is seeded from each frame's own bytes: the decode is a function of the stream.
 * Compare with `ffmpeg` given the same choice (`-c:a mp2float -i`, `-cons_noisegen 1 -i`): see the exact-starts test.
 */
export const EXACT_START_DECODERS: Readonly<Record<string, ExactStartDecoder>> = {
  mp1: { decoder: 'mp1float' },
  mp2: { decoder: 'mp2float' },
  mp3: { decoder: 'mp3float' },
  mp3adu: { decoder: 'mp3adufloat' },
  mp3on4: { decoder: 'mp3on4float' },
  ac3: { options: { cons_noisegen: true } },
  eac3: { options: { cons_noisegen: true } },
};

/** The decoder pre-roll every audio start gets, s: AAC's and MP3's overlapped transforms need the frame before. */
export const BASE_AUDIO_PREROLL_SECONDS = 0.1;

/**
 * Seconds a decoder of `codecName` must decode and discard before its output equals that of a decoder that ran from
 * the start of the stream (measured with FFmpeg 5.1, cues started at 10 points of each file, against the continuous
 * decode), {@link BASE_AUDIO_PREROLL_SECONDS} included:
 * - Opus: the stream's own seek pre-roll (RFC 7845 §4.6: 80 ms, FFmpeg's `seek_preroll`, Matroska's SeekPreRoll)
 *   makes the decoder converge, not repeat the continuous decode: CELT predicts each band's energy from the previous
 *   frame's and halves a difference per 20-ms frame. Measured on CELT streams (a 0.5 mono chirp at 96 kb/s, a stereo
 *   chirp at 128 kb/s, pink noise at 64 kb/s), the worst sample after 100 ms of pre-roll is off by 2.8e-2, 1.5e-1,
 *   6e-3; after 180 ms by 1.8e-3, 2.6e-2, 3.8e-4; after 300 ms by 2.8e-5, 9.2e-4, 5.7e-6; from 700 / 800 / 700 ms of
 *   pre-roll on every sample is identical. 1 s is given. SILK (speech at low rates, e.g. 12 kb/s voip) never gets
 *   bit-exact (its output is resampled from 8-16 kHz inside the decoder): its error stays about 1e-5 whatever the
 *   pre-roll (−94 dB against 0.5), reached after ~0.3 s.
 * Others need no more than the base (AAC, MP1/2/3, Vorbis, FLAC, PCM, AC-3/E-AC-3 with {@link EXACT_START_DECODERS}).
 * `seekPrerollSamples` at `sampleRate` (the stream's seek_preroll, when known) is a floor for codecs not listed.
 */
export function audioPrerollSeconds(codecName: string, seekPrerollSamples = 0, sampleRate = 0): number {
  const seek = seekPrerollSamples > 0 && sampleRate > 0 ? seekPrerollSamples / sampleRate : 0;
  const codec = codecName === 'opus' ? 0.9 : 0;
  return BASE_AUDIO_PREROLL_SECONDS + Math.max(codec, seek);
}

/**
 * A decoder context of the FFmpeg decoder named `decoderName` with what avcodec_parameters_to_context would take from
 * `cp`, as far as a decoder context lets it be set (what the MPEG audio and AC-3 decoders read: rate, channels,
 * layout, extradata). beamcoder's decoder() ignores a name when given parameters.
 */
function decoderByName(decoderName: string, cp: NativeCodecParameters): NativeDecoder {
  const bc = native() as unknown as { decoder(options: { name: string }): NativeDecoder };
  const dec = bc.decoder({ name: decoderName });
  for (const key of ['sample_rate', 'channels']) if (typeof cp[key] === 'number' && cp[key] > 0) dec[key] = cp[key];
  if (typeof cp.channels === 'number' && cp.channels > 0 && typeof cp.channel_layout === 'string' && cp.channel_layout !== '') {
    try {
      dec.channel_layout = cp.channel_layout;
    } catch {
      // a layout the context does not take: the decoder reads it from the stream
    }
  }
  if (Buffer.isBuffer(cp.extradata) && cp.extradata.length > 0) dec.extradata = cp.extradata;
  return dec;
}

/** Decoder parameters (as JSON) a probe has opened in this JavaScript thread: they are not probed again. */
const openedParameters = new Set<string>();
/** Parameters remembered at most (the oldest forgotten first): a show's few dozen streams. */
const OPENED_PARAMETERS_KEPT = 256;

/**
 * Open a decoder for one audio or video stream. `name` (e.g. `"/show/act1.mov stream 1"`) is put in every error.
 * Errors: INVALID_ARGUMENT for an unknown codec, a subtitle/data codec, a bad time base or channel layout, or
 * parameters FFmpeg cannot open the decoder with (e.g. PCM without sample rate and channels; FFmpeg's detailed
 * reason goes to its log only, see CUEMUX_FFMPEG_LOG).
 */
export async function openDecoder(config: DecoderConfig, name: string, options: DecoderOptions = {}): Promise<Decoder> {
  const bc = native();
  let cp: NativeCodecParameters;
  try {
    cp = codecParameters(config, name);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    throw subjectError({ name }, 'INVALID_ARGUMENT', `invalid decoder parameters: ${nativeMessage(e)}`, 'open decoder', e);
  }
  const exact = options.exactStarts === true && String(cp.codec_type) === 'audio' ? EXACT_START_DECODERS[config.codecName] : undefined;
  /** The decoder context: the exact-start decoder when there is one and this FFmpeg has it, else the default. */
  const context = (): NativeDecoder => {
    let d: NativeDecoder | null = null;
    if (exact?.decoder !== undefined) {
      try {
        d = decoderByName(exact.decoder, cp);
      } catch {
        d = null; // not in this FFmpeg build: its default decoder
      }
    }
    d ??= bc.decoder({ params: cp });
    if (exact?.options !== undefined) {
      try {
        d.priv_data = exact.options; // set, never read: beamcoder prints the options it cannot map when reading it
      } catch {
        // a decoder without these options (another FFmpeg): its default decode
      }
    }
    return d;
  };
  let dec: NativeDecoder;
  try {
    dec = context();
  } catch (e) {
    throw subjectError({ name }, 'INVALID_ARGUMENT', `no FFmpeg decoder for codec "${config.codecName}" (${nativeMessage(e)})`, 'open decoder', e);
  }
  const threads = options.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) {
    throw subjectError({ name }, 'INVALID_ARGUMENT', `threads must be an integer 0..64, got ${threads}`, 'open decoder');
  }
  // beamcoder opens the codec on the first packet and decode() loses the error if that fails; flush() reports it.
  // A throwaway decoder with the same parameters is opened (and drained, being empty) to check them now, once per
  // parameters in this thread (the decode worker has its own): the check took 2-8 ms (a thread-pool hop and an avcodec_open2) of every decoder a player opens at an
  // unarmed GO, before its first packet was decoded (bench:go's decode worker, traced).
  const key = JSON.stringify({ ...config, extradata: config.extradata?.toString('base64') ?? null, exact: exact ?? null },
    (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
  if (!openedParameters.has(key)) {
    const probe = context();
    probe.thread_count = 1;
    probe.pkt_timebase = [config.timeBase.num, config.timeBase.den];
    try {
      await probe.flush();
    } catch (e) {
      throw cannotOpen(name, config.codecName, e, 'open decoder');
    }
    if (openedParameters.size >= OPENED_PARAMETERS_KEPT) openedParameters.delete(openedParameters.values().next().value as string);
    openedParameters.add(key);
  }
  // Before the first packet opens the codec: FFmpeg reads these at avcodec_open2.
  dec.thread_count = threads;
  // The packets' time base: FFmpeg moves audio pts past skipped samples in it.
  dec.pkt_timebase = [config.timeBase.num, config.timeBase.den];
  return new BeamcoderDecoder(dec, String(cp.codec_type) as 'video' | 'audio', config.codecName, name);
}
