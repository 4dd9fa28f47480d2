/**
 * The audio resampler of the reference players: decoded frames in, interleaved float32 at the output rate out,
 * through FFmpeg's swresample via the `aresample` filter with default options, so the output equals
 * `ffmpeg -i in -af aresample=<rate> -f f32le` byte for byte. Every filter call runs in the resampler's lane.
 *
 * A beamcoder filter graph cannot be sent end-of-stream, so aresample's buffered tail would never come out. The
 * graph is therefore `atrim=end_pts=END,aresample=R`: input frames carry a running sample count as pts, and flush()
 * sends a 1-sample frame at pts END, which atrim drops and answers with end-of-stream, exactly as ffmpeg closing the
 * input does. The graph has no close(): it is freed when the beamcoder object is garbage-collected.
 *
 * The graph takes the decoder's own sample format (planar too, as ffmpeg feeds it), so a decoder's frame is filtered as
 * it is (FFmpeg takes its own reference to it), with no copy in JavaScript; other frames' interleaved `data` is
 * copied into a new FFmpeg frame. Both give the same bytes: swresample converts planar and packed input alike.
 *
 * Float input at the output's rate and layout needs no graph: swresample then only interleaves (float to float, no
 * resampling, no rematrixing, nothing held back), so the resampler copies the frame's interleaved samples (checked
 * against ffmpeg by the tests: 48 kHz fltp AAC). Why: each filter call is a native round trip through libuv's pool
 * that makes a beamcoder frame object per output frame; in a play-audio following one 48 kHz AAC cue alone, the decode
 * worker's thread took 84-93 ms of CPU per second, the filter's JavaScript side 6 % of its busy samples.
 */
import type { CuemuxError } from '../common/errors';
import { native, sampleFormat, type NativeFilterer, type NativeFrame } from './native';
import { nativeMessage, subjectError } from './native-error';
import { NativeLane } from './native-lane';
import { copyInterleaved, nativeAudioFrame, transposeSamples } from './frames';
import type { AudioFormat, AudioResampler, DecodedAudioFrame, ResamplerOutput } from './types';

/** atrim's end pts in the resampler graph; input pts count samples from 0 and never reach it. */
const RESAMPLER_END_PTS = Number.MAX_SAFE_INTEGER;

/** FFmpeg's default layout name for `channels` channels (what a frame without a layout reports). */
function defaultLayout(channels: number): string {
  return String(native().frame({ channels }).channel_layout);
}

/** `frame`'s first `bytes` bytes of interleaved samples as float32 in an ArrayBuffer of their own (bytes copied: NaN payloads kept). */
function copyOf(frame: DecodedAudioFrame, bytes: number): Float32Array {
  const out = new Float32Array(bytes / 4);
  copyInterleaved(frame, new Uint8Array(out.buffer), bytes);
  return out;
}

/** An open resampler; convert and flush run in its lane (native-lane.ts). */
class BeamcoderResampler implements AudioResampler {
  readonly name: string;
  readonly input: Readonly<AudioFormat>;
  readonly output: Readonly<Required<ResamplerOutput>>;
  #filt: NativeFilterer | null;
  /** No graph: the output is the input's samples interleaved (see the module comment). */
  readonly #copy: boolean;
  /** The packed form of the input format (what convert() accepts frames in, as their interleaved `data`). */
  readonly #packed: string;
  readonly #planar: boolean;
  readonly #bps: number;
  readonly #lane: NativeLane;
  #next = 0;
  #flushed = false;

  /** `filt` null: no graph, the samples are copied (float input at the output's rate and layout). */
  constructor(filt: NativeFilterer | null, input: AudioFormat, packed: string, output: Required<ResamplerOutput>, name: string) {
    this.#filt = filt;
    this.#copy = filt === null;
    this.input = input;
    this.#packed = packed;
    const desc = sampleFormat(input.format);
    this.#planar = desc?.is_planar ?? false;
    this.#bps = desc?.bytes_per_sample ?? 0;
    this.output = output;
    this.name = name;
    // A filter failure on well-formed frames (checked before they enter the lane) is a fault of ours or FFmpeg's.
    this.#lane = new NativeLane({ name }, 'INTERNAL');
  }

  get closed(): boolean {
    return this.#lane.closed;
  }

  /** An FFmpeg-owned frame in the graph's input format holding `samples` interleaved samples (zeros when `data` is null) at pts `pts`. */
  #frame(samples: number, data: Buffer | null, pts: number): NativeFrame {
    const f = native().frame({
      nb_samples: samples,
      format: this.input.format,
      sample_rate: this.input.sampleRate,
      channels: this.input.channels,
      channel_layout: this.input.channelLayout,
      pts,
    }).alloc();
    const planes = f.data; // a new array of views per access: read once
    if (data === null) for (const p of planes) p.fill(0);
    else if (this.#planar) transposeSamples(planes.slice(0, this.input.channels), data, this.input.channels, samples, this.#bps, false);
    else data.copy(planes[0]);
    return f;
  }

  /** Push `frame` through the graph; what came out, as float32 samples in an ArrayBuffer of their own (transferable). */
  async #filter(frame: NativeFrame): Promise<Float32Array> {
    if (this.#filt === null) throw subjectError({ name: this.name }, 'CLOSED', 'closed', 'resample');
    const r = await this.#filt.filter([frame]);
    const frames = r[0]?.frames ?? [];
    // Usually one frame out per frame in: read each frame's data once (beamcoder makes new views at every read).
    const chunks: Buffer[] = [];
    let total = 0;
    for (const f of frames) {
      const n = Number(f.nb_samples) * Number(f.channels) * 4;
      if (n <= 0) continue;
      chunks.push(f.data[0].subarray(0, n));
      total += n;
    }
    const out = new Float32Array(total / 4);
    // Byte copy (not through float values, which could alter NaN payloads).
    const bytes = new Uint8Array(out.buffer);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return out;
  }

  convert(frame: DecodedAudioFrame): Promise<Float32Array> {
    const want = this.input;
    const packed = sampleFormat(frame.format)?.packed ?? frame.dataFormat;
    const layout = frame.channelLayout === '' ? defaultLayout(frame.channels) : frame.channelLayout;
    if (frame.sampleRate !== want.sampleRate || frame.channels !== want.channels || packed !== this.#packed || layout !== want.channelLayout) {
      return Promise.reject(subjectError({ name: this.name }, 'INVALID_ARGUMENT',
        `frame is ${frame.sampleRate} Hz ${frame.channels} ch ${layout} ${frame.format}, the resampler was opened for ` +
        `${want.sampleRate} Hz ${want.channels} ch ${want.channelLayout} ${want.format}`, 'resample'));
    }
    // A decoder's frame in the graph's format goes in as it is (its `data` is never made); its layout
    // must be the graph's by name (a frame with none would be refused by FFmpeg's buffer source as a change of layout).
    const native = nativeAudioFrame(frame);
    const own = !this.#copy && frame.format === want.format && frame.channelLayout === want.channelLayout ? native : undefined;
    const bytes = frame.samples * frame.channels * this.#bps;
    // A decoder's frame is checked against FFmpeg's planes where they are read (frames.ts), not through `data`.
    if (native === undefined && frame.data.length < bytes) {
      return Promise.reject(subjectError({ name: this.name }, 'INVALID_ARGUMENT', `frame data holds ${frame.data.length} bytes, ${bytes} expected`, 'resample'));
    }
    return this.#lane.run('resample', async () => {
      if (this.#flushed) throw subjectError({ name: this.name }, 'WRONG_STATE', 'convert after flush (end of stream): open a new resampler', 'resample');
      if (frame.samples === 0) return new Float32Array(0);
      if (this.#copy) return copyOf(frame, bytes);
      const pts = this.#next;
      this.#next += frame.samples;
      if (own === undefined) return this.#filter(this.#frame(frame.samples, frame.data, pts));
      // The decoded frame's pts becomes the running sample count (its own was read when it was decoded).
      own.pts = pts;
      return this.#filter(own);
    });
  }

  flush(): Promise<Float32Array> {
    return this.#lane.run('flush', async () => {
      if (this.#flushed) return new Float32Array(0);
      this.#flushed = true;
      if (this.#copy) return new Float32Array(0);
      // atrim drops this frame (pts >= its end) and signals end of stream: aresample drains swresample.
      return this.#filter(this.#frame(1, null, RESAMPLER_END_PTS));
    });
  }

  close(): Promise<void> {
    // The filter graph is freed when the beamcoder object is garbage-collected, once we let go of it.
    return this.#lane.close(() => {
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
  const bc = native();
  const invalid = (what: string, cause?: unknown): CuemuxError => subjectError({ name }, 'INVALID_ARGUMENT', what, 'open resampler', cause);
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
  const desc = sampleFormat(input.format);
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
  if (inRate === outRate && outLayout === inLayout && desc.packed === 'flt') {
    return new BeamcoderResampler(null, { sampleRate: inRate, channels: input.channels, channelLayout: inLayout, format: input.format },
      desc.packed, { sampleRate: outRate, format: 'flt', channels: input.channels, channelLayout: outLayout }, name);
  }
  let filt: NativeFilterer;
  try {
    filt = await bc.filterer({
      filterType: 'audio',
      inputParams: [{ timeBase: [1, inRate], sampleRate: inRate, sampleFormat: input.format, channelLayout: inLayout }],
      outputParams: [{ sampleRate: outRate, sampleFormat: 'flt', channelLayout: outLayout }],
      filterSpec: `atrim=end_pts=${RESAMPLER_END_PTS},aresample=${outRate}`,
    });
  } catch (e) {
    throw invalid(`FFmpeg cannot convert ${inRate} Hz ${input.channels} ch ${inLayout} ${input.format} to ${outRate} Hz ${outLayout} flt ` +
      `(${nativeMessage(e)})`, e);
  }
  // The layout FFmpeg negotiated tells the output channel count when only a layout was given.
  const sink = filt.graph?.filters?.find((f) => f?.filter?.name === 'abuffersink');
  const negotiated = Number(sink?.inputs?.[0]?.channel_count ?? 0);
  if (negotiated > 0) outChannels = negotiated;
  if (outChannels <= 0) throw invalid(`cannot tell the channel count of layout "${outLayout}"`);
  return new BeamcoderResampler(filt, { sampleRate: inRate, channels: input.channels, channelLayout: inLayout, format: input.format },
    desc.packed, { sampleRate: outRate, format: 'flt', channels: outChannels, channelLayout: outLayout }, name);
}
