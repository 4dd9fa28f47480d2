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

/** Decoded audio as one interleaved buffer (planar formats are interleaved), a copy of FFmpeg's. */
export function audioFrame(f: NativeFrame, name: string): DecodedAudioFrame {
  const format = String(f.format);
  const desc = sampleFormat(format);
  if (desc === undefined) throw subjectError({ name }, 'INTERNAL', `decoded sample format ${format} is not supported`, 'decode');
  const channels = Number(f.channels);
  const samples = Number(f.nb_samples ?? 0);
  const bytes = channels * samples * desc.bytes_per_sample;
  const data = f.data; // a new array of views per access: read once
  let out: Buffer;
  if (!desc.is_planar) {
    if (bytes > 0 && (data[0] === undefined || data[0].length < bytes)) throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame is short`, 'decode');
    out = bytes > 0 ? Buffer.from(data[0].subarray(0, bytes)) : Buffer.alloc(0);
  } else {
    if (channels > MAX_PLANES) {
      throw subjectError({ name }, 'INTERNAL', `${channels} planar channels: beamcoder exposes only ${MAX_PLANES} planes`, 'decode');
    }
    const per = samples * desc.bytes_per_sample;
    if (data.length < channels || data.slice(0, channels).some((b) => b.length < per)) {
      throw subjectError({ name }, 'INTERNAL', `decoded ${format} frame has fewer planes than its ${channels} channels`, 'decode');
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
