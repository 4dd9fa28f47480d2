/**
 * Decoded frames out of FFmpeg's memory: pictures as tightly packed planes (what `ffmpeg -f rawvideo` writes, so
 * they hash like `-f framemd5`) and audio as interleaved samples, bit for bit. Pure layout arithmetic over FFmpeg's
 * format descriptors; no native calls beyond reading the frame.
 */
import { copyPicture, pixelFormat, releaseFrame, sampleFormat, type NativeFrame } from './native';
import { subjectError } from './native-error';
import type { DecodedAudioFrame, DecodedVideoFrame } from './types';

/** beamcoder exposes frame planes data[0..7] only (not extended_data). */
const MAX_PLANES = 8;

/**
 * Bytes per row and rows of each plane of a `width`x`height` picture with tightly packed rows: FFmpeg's
 * av_image_fill_linesizes(align 1) and av_image_fill_plane_sizes, i.e. what av_image_copy_to_buffer (rawvideo) writes.
 */
function planeLayout(format: string, width: number, height: number): { planes: Array<{ rowBytes: number; rows: number }>; palette: boolean } | null {
  const d = pixelFormat(format);
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

/** The packed planes of a picture read out of FFmpeg's frame (views where FFmpeg's rows are already packed). */
function packedPlanes(f: NativeFrame, format: string, layout: PictureLayout, name: string): Buffer[] {
  const data = f.data; // a new array of views per access: read once
  const linesize = f.linesize;
  const planes = layout.planes.map(({ rowBytes, rows }, p) => {
    const src = data[p];
    const stride = linesize[p];
    if (src === undefined || stride < rowBytes || src.length < stride * (rows - 1) + rowBytes) {
      throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame has an unexpected plane ${p} (linesize ${stride})`, 'decode');
    }
    // Rows already packed: a view of FFmpeg's frame buffer, no copy (beamcoder holds a reference on the AVBuffer
    // until the view is garbage-collected). A 1080p player otherwise copies 75 MB/s on its presenting thread.
    if (stride === rowBytes) return src.subarray(0, rowBytes * rows);
    const out = Buffer.allocUnsafe(rowBytes * rows);
    for (let y = 0; y < rows; y++) src.copy(out, y * rowBytes, y * stride, y * stride + rowBytes);
    return out;
  });
  if (layout.palette) {
    if (data[1] === undefined || data[1].length < 1024) throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame has no palette`, 'decode');
    planes.push(Buffer.from(data[1].subarray(0, 1024)));
  }
  return planes;
}

type PictureLayout = NonNullable<ReturnType<typeof planeLayout>>;

/**
 * A decoded picture of a beamcoder frame. Its planes are read out of FFmpeg's frame when first asked for; a consumer
 * that only copies the picture somewhere (a player's decode worker into its pool) uses copyTo() and release()
 * instead, and no JavaScript Buffer is ever made of the frame's memory.
 */
class BeamcoderPicture implements DecodedVideoFrame {
  readonly kind = 'video' as const;
  readonly pts: number | null;
  readonly bestEffortPts: number | null;
  readonly duration: number;
  readonly width: number;
  readonly height: number;
  readonly format: string;
  readonly keyFrame: boolean;
  readonly sampleAspectRatio: { num: number; den: number };
  readonly planeLengths: number[];
  readonly byteLength: number;
  #frame: NativeFrame | null;
  #planes: Buffer[] | null = null;
  readonly #layout: PictureLayout;
  readonly #name: string;

  constructor(f: NativeFrame, name: string) {
    const format = String(f.format);
    const width = Number(f.width);
    const height = Number(f.height);
    const layout = planeLayout(format, width, height);
    if (layout === null) throw subjectError({ name }, 'INTERNAL', `decoded pixel format ${format} is not supported`, 'decode');
    const sar = f.sample_aspect_ratio as [number, number] | undefined;
    this.pts = typeof f.pts === 'number' ? f.pts : null;
    this.bestEffortPts = typeof f.best_effort_timestamp === 'number' ? f.best_effort_timestamp : null;
    this.duration = Number(f.pkt_duration ?? 0);
    this.width = width;
    this.height = height;
    this.format = format;
    this.keyFrame = f.key_frame === true;
    this.sampleAspectRatio = Array.isArray(sar) && sar[1] > 0 ? { num: sar[0], den: sar[1] } : { num: 0, den: 1 };
    this.planeLengths = [...layout.planes.map((p) => p.rowBytes * p.rows), ...(layout.palette ? [1024] : [])];
    this.byteLength = this.planeLengths.reduce((a, b) => a + b, 0);
    this.#frame = f;
    this.#layout = layout;
    this.#name = name;
  }

  get planes(): Buffer[] {
    if (this.#planes !== null) return this.#planes;
    if (this.#frame === null) throw subjectError({ name: this.#name }, 'WRONG_STATE', 'the picture was released before its planes were read', 'decode');
    this.#planes = packedPlanes(this.#frame, this.format, this.#layout, this.#name);
    return this.#planes;
  }

  copyTo(dest: Uint8Array): number {
    if (dest.length < this.byteLength) throw subjectError({ name: this.#name }, 'INVALID_ARGUMENT', `copyTo: ${dest.length} bytes for a ${this.byteLength}-byte picture`, 'decode');
    if (this.#planes === null && this.#frame !== null) {
      const n = copyPicture(this.#frame, dest);
      // FFmpeg's layout (av_image_copy_to_buffer, align 1) and ours (rawvideo's) must agree byte for byte.
      if (n !== this.byteLength) throw subjectError({ name: this.#name }, 'INTERNAL', `${this.format} picture: FFmpeg copied ${n} bytes, ${this.byteLength} expected`, 'decode');
      return n;
    }
    let at = 0;
    for (const p of this.planes) {
      dest.set(p, at);
      at += p.length;
    }
    return at;
  }

  release(): void {
    const f = this.#frame;
    this.#frame = null;
    if (f !== null) releaseFrame(f);
  }
}

/**
 * A decoded picture as tightly packed planes (rawvideo's layout), read from FFmpeg's frame on first use (see
 * BeamcoderPicture). `name` names the stream in errors.
 */
export function videoFrame(f: NativeFrame, name: string): DecodedVideoFrame {
  return new BeamcoderPicture(f, name);
}

/**
 * Copy `samples` samples of `channels` channels of `bps` bytes between planes (one per channel) and one interleaved
 * buffer (L R L R ...): into `packed` when `toPacked`, out of it otherwise. Copies 1/2/4-byte units through integer
 * views (never floats: NaN payloads must survive bit for bit), byte by byte where a buffer is not aligned to them.
 */
export function transposeSamples(planes: Uint8Array[], packed: Uint8Array, channels: number, samples: number, bps: number, toPacked: boolean): void {
  const unit = bps === 8 ? 4 : bps;
  const per = bps / unit; // units per sample
  const aligned = (b: Uint8Array): boolean => b.byteOffset % unit === 0;
  const view = (b: Uint8Array, len: number): Uint8Array | Uint16Array | Uint32Array =>
    unit === 4 ? new Uint32Array(b.buffer, b.byteOffset, len) : unit === 2 ? new Uint16Array(b.buffer, b.byteOffset, len) : new Uint8Array(b.buffer, b.byteOffset, len);
  if ((unit === 1 || unit === 2 || unit === 4) && aligned(packed) && planes.every(aligned)) {
    const all = view(packed, channels * samples * per);
    for (let c = 0; c < channels; c++) {
      const one = view(planes[c], samples * per);
      for (let s = 0, o = c * per; s < samples * per; s += per, o += channels * per) {
        for (let k = 0; k < per; k++) {
          if (toPacked) all[o + k] = one[s + k];
          else one[s + k] = all[o + k];
        }
      }
    }
    return;
  }
  for (let c = 0; c < channels; c++) {
    for (let s = 0; s < samples; s++) {
      const o = (s * channels + c) * bps;
      if (toPacked) packed.set(planes[c].subarray(s * bps, (s + 1) * bps), o);
      else planes[c].set(packed.subarray(o, o + bps), s * bps);
    }
  }
}

/**
 * Decoded audio of a beamcoder frame. Its interleaved samples (`data`) are read out of FFmpeg's frame when first
 * asked for: the players' resampler filters FFmpeg's frame as it is ({@link nativeAudioFrame}) and never asks.
 * Why: in bench:multi's audio players, interleaving each frame into a new Buffer here and copying it into a new
 * FFmpeg frame for the resampler took 10 % of the decode worker's busy samples after a GO (session 12's profile).
 */
class BeamcoderAudio implements DecodedAudioFrame {
  readonly kind = 'audio' as const;
  readonly pts: number | null;
  readonly bestEffortPts: number | null;
  readonly sampleRate: number;
  readonly channels: number;
  readonly channelLayout: string;
  readonly format: string;
  readonly dataFormat: string;
  readonly samples: number;
  readonly #native: NativeFrame;
  #data: Buffer | null = null;
  readonly #planar: boolean;
  readonly #bps: number;
  readonly #name: string;

  constructor(f: NativeFrame, name: string) {
    const format = String(f.format);
    const desc = sampleFormat(format);
    if (desc === undefined) throw subjectError({ name }, 'INTERNAL', `decoded sample format ${format} is not supported`, 'decode');
    this.pts = typeof f.pts === 'number' ? f.pts : null;
    this.bestEffortPts = typeof f.best_effort_timestamp === 'number' ? f.best_effort_timestamp : null;
    this.sampleRate = Number(f.sample_rate);
    this.channels = Number(f.channels);
    this.channelLayout = String(f.channel_layout);
    this.format = format;
    this.dataFormat = desc.packed;
    this.samples = Number(f.nb_samples ?? 0);
    this.#native = f;
    this.#planar = desc.is_planar;
    this.#bps = desc.bytes_per_sample;
    this.#name = name;
  }

  /** FFmpeg's frame behind `frame` if it is one of these, else undefined. */
  static nativeOf(frame: DecodedAudioFrame): NativeFrame | undefined {
    return frame instanceof BeamcoderAudio ? frame.#native : undefined;
  }

  /**
   * The samples interleaved, a copy of FFmpeg's made at the first read (a frame FFmpeg gave short throws INTERNAL
   * then, not when decoded).
   */
  get data(): Buffer {
    this.#data ??= this.#interleaved();
    return this.#data;
  }

  #interleaved(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.channels * this.samples * this.#bps); // every byte written below
    this.copyTo(out);
    return out;
  }

  /**
   * Write the samples interleaved into `dest` (at least `channels * samples * bytes per sample` long) straight from
   * FFmpeg's frame, or from `data` once it was read.
   */
  copyTo(dest: Uint8Array): void {
    const { channels, samples, format } = this;
    const name = this.#name;
    const bytes = channels * samples * this.#bps;
    if (dest.length < bytes) throw subjectError({ name }, 'INTERNAL', `copyTo: ${dest.length} bytes for ${bytes} bytes of samples`, 'decode');
    if (this.#data !== null) {
      dest.set(this.#data.subarray(0, bytes));
      return;
    }
    const data = this.#native.data; // a new array of views per access: read once
    if (!this.#planar) {
      if (bytes > 0 && (data[0] === undefined || data[0].length < bytes)) throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame is short`, 'decode');
      if (bytes > 0) dest.set(data[0].subarray(0, bytes));
      return;
    }
    if (channels > MAX_PLANES) {
      throw subjectError({ name }, 'INTERNAL', `${channels} planar channels: beamcoder exposes only ${MAX_PLANES} planes`, 'decode');
    }
    const per = samples * this.#bps;
    if (data.length < channels || data.slice(0, channels).some((b) => b.length < per)) {
      throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame has fewer planes than its ${channels} channels`, 'decode');
    }
    transposeSamples(data.slice(0, channels), dest, channels, samples, this.#bps, true);
  }
}

/**
 * Decoded audio of a beamcoder frame: interleaved (planar formats too) when its `data` is read, a copy of FFmpeg's.
 * `name` names the stream in errors.
 */
export function audioFrame(f: NativeFrame, name: string): DecodedAudioFrame {
  return new BeamcoderAudio(f, name);
}

/**
 * Write `frame`'s first `bytes` bytes of interleaved samples into `dest`: a decoder's frame straight from FFmpeg's
 * planes (no Buffer of them made), any other frame from its `data`.
 */
export function copyInterleaved(frame: DecodedAudioFrame, dest: Uint8Array, bytes: number): void {
  if (frame instanceof BeamcoderAudio) frame.copyTo(dest);
  else dest.set(frame.data.subarray(0, bytes));
}

/** FFmpeg's frame behind a decoded audio frame that came from a decoder, or undefined for any other frame. */
export function nativeAudioFrame(frame: DecodedAudioFrame): NativeFrame | undefined {
  return BeamcoderAudio.nativeOf(frame);
}
