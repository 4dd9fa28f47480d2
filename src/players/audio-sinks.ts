/**
 * Where an audio player writes its periods: a WAV file (`wav:PATH`), raw interleaved float32 little-endian
 * (`raw:PATH`, a FIFO, a file or `-`, for `aplay -t raw -f FLOAT_LE -r 48000 -c 2 FIFO` or `ffplay -f f32le ...`),
 * or nothing (`null`). Each period is one unit of a {@link PipeOutput}: written whole or dropped, never blocking.
 *
 * The WAV is IEEE float 32 (format tag 3, an 18-byte fmt chunk and the `fact` chunk the spec requires for non-PCM
 * data). Its sizes are written as 0 at the start and patched by close(), so a cleanly closed file is exact. A killed
 * player leaves the zeros: ffmpeg/ffprobe then read the data up to the end of the file (checked with FFmpeg 5.1), and
 * so do most tools that accept streamed WAV. Beyond 4 GiB (about 3 h of 48 kHz stereo) the 32-bit sizes cannot hold
 * the length and stay 0. The same header is written to a FIFO or stdout, where nothing can be patched.
 */
import { promises as fsp } from 'node:fs';
import { CuemuxError, fromSystemError } from '../common/errors';
import { getLogger } from '../common/logger';
import { PipeOutput } from './pipe-output';
import type { PresentInfo } from './video-sinks';

const log = getLogger('player-sink');

/** Counters of an {@link AudioSink}; a snapshot. */
export interface AudioSinkStats {
  /** write() calls (periods). */
  periods: number;
  /** Sample frames (samples per channel) given to write(). */
  frames: number;
  /** Periods taken by the output. */
  written: number;
  /** Periods dropped: no reader, slow reader, failed output, or a length that is not whole frames. */
  dropped: number;
  /** Bytes taken by the output, header included (0 for the null sink). */
  bytesWritten: number;
}

/** An audio output of a player. */
export interface AudioSink {
  /**
   * Write one period of interleaved float32 samples (`channels` per frame) presented at `at`. The samples are copied,
   * so the array may be reused at once. Never throws, never blocks.
   */
  write(samples: Float32Array, at: PresentInfo): void;
  /** Flush and close (and patch a WAV file's sizes). Idempotent; never rejects. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  readonly stats: AudioSinkStats;
}

/** Options of {@link openAudioSink}. */
export interface AudioSinkOptions {
  /** Samples per second per channel, default 48000. */
  sampleRate?: number;
  /** Channels per frame (interleaved), 1 or more. */
  channels: number;
  /** Output name for log lines, e.g. `main`. */
  name: string;
  /**
   * Bytes that may wait for a slow reader before periods are dropped, default one second of audio. Keeping it short
   * keeps a live reader (aplay on a FIFO) close to the show clock.
   */
  maxQueuedBytes?: number;
}

const BYTES_PER_SAMPLE = 4;
/** RIFF header + fmt chunk (18-byte body) + fact chunk + data chunk header. */
const WAV_HEADER_BYTES = 12 + 8 + 18 + 8 + 4 + 8;
const RIFF_SIZE_AT = 4;
const FACT_LENGTH_AT = 46;
const DATA_SIZE_AT = 54;

/**
 * A WAV header for IEEE float 32 interleaved audio, with the RIFF, fact and data sizes left 0 (patched later by the
 * file sink, read as "up to the end" by ffmpeg otherwise).
 */
export function wavFloatHeader(sampleRate: number, channels: number): Buffer {
  const h = Buffer.alloc(WAV_HEADER_BYTES);
  h.write('RIFF', 0, 'latin1');
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(18, 16);
  h.writeUInt16LE(3, 20); // WAVE_FORMAT_IEEE_FLOAT
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * channels * BYTES_PER_SAMPLE, 28);
  h.writeUInt16LE(channels * BYTES_PER_SAMPLE, 32);
  h.writeUInt16LE(8 * BYTES_PER_SAMPLE, 34);
  h.writeUInt16LE(0, 36); // cbSize: no extension
  h.write('fact', 38, 'latin1');
  h.writeUInt32LE(4, 42);
  h.write('data', 50, 'latin1');
  return h;
}

/** The wav, raw and null sinks (null: no output): validation, counters, one unit per period. */
class FloatSink implements AudioSink {
  readonly #channels: number;
  readonly #name: string;
  readonly #out: PipeOutput | null;
  readonly #onClose: (() => Promise<void>) | null;
  #periods = 0;
  #frames = 0;
  #malformed = 0;
  #closePromise: Promise<void> | null = null;

  constructor(options: AudioSinkOptions, out: PipeOutput | null, onClose: (() => Promise<void>) | null = null) {
    this.#channels = options.channels;
    this.#name = options.name;
    this.#out = out;
    this.#onClose = onClose;
  }

  get stats(): AudioSinkStats {
    const o = this.#out?.stats;
    return {
      periods: this.#periods,
      frames: this.#frames,
      written: o?.unitsWritten ?? 0,
      dropped: (o?.unitsDropped ?? 0) + this.#malformed,
      bytesWritten: o?.bytesWritten ?? 0,
    };
  }

  write(samples: Float32Array): void {
    this.#periods++;
    if (samples.length % this.#channels !== 0) {
      // A partial frame would shift every later sample to the wrong channel.
      this.#malformed++;
      if (this.#malformed === 1) {
        log.error('a period is not a whole number of frames; dropped', { output: this.#name, samples: samples.length, channels: this.#channels });
      }
      return;
    }
    this.#frames += samples.length / this.#channels;
    if (this.#out === null || samples.length === 0) return;
    // Float32Array is host-endian, and every platform we run on (x86-64, arm64) is little-endian: the bytes are f32le.
    this.#out.writeUnit([Buffer.from(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength))]);
  }

  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      await this.#out?.close();
      await this.#onClose?.();
    })();
    return this.#closePromise;
  }
}

/** Write the final sizes into a closed WAV file; a failure is logged (the file stays readable to the end). */
async function patchWavSizes(path: string, name: string, channels: number): Promise<void> {
  try {
    const stat = await fsp.stat(path);
    if (!stat.isFile() || stat.size < WAV_HEADER_BYTES) return;
    const dataBytes = stat.size - WAV_HEADER_BYTES;
    if (WAV_HEADER_BYTES - 8 + dataBytes > 0xffffffff) {
      log.warn('WAV data beyond 4 GiB: its sizes stay 0 (ffmpeg reads to the end of the file)', { output: name, path, dataBytes });
      return;
    }
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v, 0);
      return b;
    };
    const fh = await fsp.open(path, 'r+');
    try {
      await fh.write(u32(WAV_HEADER_BYTES - 8 + dataBytes), 0, 4, RIFF_SIZE_AT);
      await fh.write(u32(Math.floor(dataBytes / (channels * BYTES_PER_SAMPLE))), 0, 4, FACT_LENGTH_AT);
      await fh.write(u32(dataBytes), 0, 4, DATA_SIZE_AT);
    } finally {
      await fh.close();
    }
  } catch (e) {
    log.error('cannot patch the WAV sizes; the file is still readable to its end', { output: name, path, error: fromSystemError(e, path, 'patch WAV header').message });
  }
}

/**
 * Open an audio sink from its command-line spec: `wav:PATH`, `raw:PATH` (PATH a FIFO, a file or `-` for stdout) or
 * `null`. Rejects with a CuemuxError: INVALID_ARGUMENT for a malformed spec, sample rate or channel count, or the
 * path's error (see PipeOutput.open), naming the path.
 */
export async function openAudioSink(spec: string, options: AudioSinkOptions): Promise<AudioSink> {
  const sampleRate = options.sampleRate ?? 48000;
  const { channels, name } = options;
  if (!Number.isInteger(sampleRate) || sampleRate <= 0 || !Number.isInteger(channels) || channels < 1 || channels > 0xffff) {
    throw new CuemuxError('INVALID_ARGUMENT', `audio output ${name}: ${sampleRate} Hz, ${channels} channels is not a valid format`);
  }
  if (spec === 'null') return new FloatSink(options, null);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const path = colon < 0 ? '' : spec.slice(colon + 1);
  if ((kind !== 'wav' && kind !== 'raw') || path === '') {
    throw new CuemuxError('INVALID_ARGUMENT', `audio output "${spec}": expected wav:PATH, raw:PATH or null`);
  }
  const out = await PipeOutput.open(path, {
    name: `audio:${name}`,
    maxQueuedBytes: options.maxQueuedBytes ?? sampleRate * channels * BYTES_PER_SAMPLE,
    header: kind === 'wav' ? () => wavFloatHeader(sampleRate, channels) : undefined,
  });
  const patch = kind === 'wav' && out.kind === 'file' ? () => patchWavSizes(path, name, channels) : null;
  return new FloatSink({ ...options, sampleRate }, out, patch);
}
