/**
 * A fragmented-MP4 muxer (FFmpeg's mov muxer, `-movflags frag_keyframe+empty_moov+default_base_moof`) fed with
 * packets as they are (no re-encode), its bytes coming out of a Node stream as they are written: an init segment
 * (`ftyp`+`moov`) at once, then a `moof`+`mdat` fragment per keyframe. What HTTP previews are made of.
 *
 * Where the bytes go: FFmpeg writes them to a FIFO whose reading end this process holds as a non-blocking pipe
 * (libuv reads it on the event loop). beamcoder's other way, its "governor" custom IO, blocks a libuv thread-pool
 * thread in every pending read until the requested length has been written (FIELD-NOTES: demuxerStream likewise); a
 * few previews would then hold the whole pool (4 threads), which every file read of the server shares. The FIFO
 * costs a `mkfifo` (coreutils) per preview and is removed as soon as both ends are open.
 *
 * Backpressure: write() waits while the output stream's buffer is full (the reader is slower than the muxer), so the
 * pipe never fills and FFmpeg's writes, on the thread pool, never block; memory is bounded by the output's
 * highWaterMark plus one packet plus one fragment.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { CuemuxError, errorMessage } from '../common/errors';
import { CallOrder } from '../common/call-order';
import type { Rational } from '../common/rational';
import { codecParameters, decoderConfigFromParams } from './decoder';
import { native, type NativeMuxer } from './native';
import type { StreamParams } from './types';

/** One packet to mux: stream is the index in the muxer's stream list; times in that stream's source time base. */
export interface MuxPacket {
  /** Index in the list of streams given to {@link FragmentedMp4.open}. */
  stream: number;
  /** Presentation time (source ticks), null when unknown. */
  pts: number | null;
  /** Decoding time (source ticks), null when unknown. */
  dts: number | null;
  /** Duration (source ticks), 0 when unknown. */
  duration: number;
  /** A keyframe (a fragment starts at each video keyframe). */
  key: boolean;
  /** Exactly the packet's bytes. */
  data: Buffer;
}

/** The output's buffer (bytes) beyond which write() waits for the reader. */
const OUTPUT_HIGH_WATER = 256 << 10;

/** `ticks` of time base `from` in time base `to`, rounded to the nearest tick (FFmpeg's av_rescale_q, exactly). */
export function rescaleTicks(ticks: number, from: Rational, to: Rational): number {
  const num = BigInt(ticks) * BigInt(from.num) * BigInt(to.den);
  const den = BigInt(from.den) * BigInt(to.num);
  const q = num / den;
  const r = num % den;
  const twice = (r < 0n ? -r : r) * 2n;
  return Number(twice >= den ? q + (num < 0n ? -1n : 1n) : q);
}

/** A fragmented MP4 being written; see the module comment. */
export class FragmentedMp4 {
  /** The fMP4 bytes, in order; ends after finish(), is destroyed with an error when muxing fails. */
  readonly output: Readable;
  readonly #mux: NativeMuxer;
  readonly #pipe: net.Socket;
  readonly #out: PassThrough;
  readonly #from: Rational[];
  readonly #to: Rational[];
  readonly #subject: string;
  readonly #order = new CallOrder();
  #closed = false;

  private constructor(mux: NativeMuxer, pipe: net.Socket, out: PassThrough, from: Rational[], to: Rational[], subject: string) {
    this.#mux = mux;
    this.#pipe = pipe;
    this.#out = out;
    this.output = out;
    this.#from = from;
    this.#to = to;
    this.#subject = subject;
  }

  /**
   * A muxer for `streams` (audio and video: what MP4 carries), its init segment already written to `output`.
   * `subject` (the media path) names the file in errors.
   *
   * @throws CuemuxError NOT_MEDIA when a codec cannot go in MP4 (FFmpeg refuses the header), naming it.
   */
  static async open(streams: readonly StreamParams[], subject: string): Promise<FragmentedMp4> {
    const bc = native();
    const mux = bc.muxer({ format_name: 'mp4' });
    // av_write_frame, not beamcoder's default av_interleaved_write_frame: the latter takes each packet's reference and
    // drops it on a thread-pool thread after a later write, where beamcoder's release of a buffer made in JavaScript
    // (packetBufferFree) calls napi_delete_reference off the main thread. Measured with gdb on a 1,439-packet file: 10
    // releases on pool threads; a server that made previews aborted once in `malloc_consolidate(): unaligned fastbin
    // chunk` and once crashed at exit walking Node-API's reference list. av_write_frame takes a reference of its own
    // and drops it before returning, so the last release is the packet object's, on the main thread. The packets come
    // in file order, which the mov muxer needs no interleaving for (it buffers each track's samples per fragment).
    // (The beamcoder patch now also makes such a release safe, by queuing the deletion to the main thread:
    // test/native-release.test.ts checks that this muxer needs none, and that an interleaving one does.)
    mux.interleaved = false;
    const from = streams.map((s) => s.timeBase);
    for (const s of streams) {
      const out = mux.newStream({ name: s.codecName, time_base: [s.timeBase.num, s.timeBase.den], interleaved: false });
      // Set in the stream's own parameters: assigning `out.codecpar = other` makes the stream point at the other
      // object's AVCodecParameters, which the garbage collector frees under it (measured: "Invalid argument" at the
      // header in a busy server, where a collection ran between the assignment and writeHeader).
      const cp = codecParameters(decoderConfigFromParams(s), subject, out.codecpar);
      cp.codec_tag = 0; // the source container's tag (Matroska's, AVI's) is not MP4's: the muxer picks its own
    }
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cuemux-mux-'));
    const fifo = path.join(dir, 'out');
    let pipe: net.Socket | null = null;
    try {
      await promisify(execFile)('mkfifo', ['-m', '600', fifo]);
      // Non-blocking: opening a FIFO's reading end without a writer succeeds at once; FFmpeg's open then finds it.
      // A plain descriptor, owned by the socket from here (a FileHandle would close it when collected).
      const fd = await promisify(fs.open)(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
      pipe = new net.Socket({ fd, readable: true, writable: false });
      await mux.openIO({ url: `file:${fifo}` });
    } catch (e) {
      pipe?.destroy();
      throw new CuemuxError('INTERNAL', `${subject}: cannot open the preview muxer's output: ${errorMessage(e)}`, { path: subject, cause: e });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
    const out = new PassThrough({ highWaterMark: OUTPUT_HIGH_WATER });
    // Always flowing: the pipe is drained as FFmpeg fills it; write() holds packets back instead (see the module comment).
    pipe.on('data', (chunk: Buffer) => { out.write(chunk); });
    pipe.on('end', () => out.end());
    pipe.on('error', (e) => out.destroy(e));
    try {
      await mux.writeHeader({ options: { movflags: 'frag_keyframe+empty_moov+default_base_moof' } });
    } catch (e) {
      pipe.destroy();
      try { mux.forceClose(); } catch { /* already closed */ }
      const codecs = streams.map((s) => `${s.codecType} ${s.codecName}`).join(', ');
      throw new CuemuxError('NOT_MEDIA', `${subject}: its streams (${codecs}) cannot be carried in fragmented MP4 (FFmpeg: ${errorMessage(e)})`,
        { path: subject, operation: 'preview', cause: e });
    }
    // The muxer chose each stream's time base at the header (e.g. 1/12800 for 25 fps video).
    const to = (mux.streams as Array<{ time_base: [number, number] }>).map((s) => ({ num: s.time_base[0], den: s.time_base[1] }));
    return new FragmentedMp4(mux, pipe, out, from, to, subject);
  }

  /** Run `op` after the previous native call (calls on one muxer must not overlap). */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    return this.#order.run(op);
  }

  /** Mux one packet (in decoding order per stream); waits first while the output's reader is behind. */
  async write(p: MuxPacket): Promise<void> {
    if (this.#closed) throw new CuemuxError('CLOSED', `${this.#subject}: preview muxer closed`, { path: this.#subject });
    if (this.#out.writableNeedDrain) await Promise.race([once(this.#out, 'drain'), once(this.#out, 'close')]);
    if (this.#closed || this.#out.destroyed) throw new CuemuxError('CLOSED', `${this.#subject}: preview reader went away`, { path: this.#subject });
    const from = this.#from[p.stream];
    const to = this.#to[p.stream];
    const pkt = native().packet({
      pts: p.pts === null ? null : rescaleTicks(p.pts, from, to),
      dts: p.dts === null ? null : rescaleTicks(p.dts, from, to),
      duration: p.duration === 0 ? 0 : rescaleTicks(p.duration, from, to),
      stream_index: p.stream,
    });
    pkt.data = p.data;
    pkt.size = p.data.length;
    pkt.flags = { KEY: p.key, CORRUPT: false, DISCARD: false, TRUSTED: false, DISPOSABLE: false };
    try {
      await this.#serial(() => this.#mux.writeFrame(pkt));
    } catch (e) {
      throw new CuemuxError('MEDIA_DAMAGED', `${this.#subject}: muxing a packet of stream ${p.stream} failed: ${errorMessage(e)}`, { path: this.#subject, cause: e });
    }
  }

  /** Write the trailer: the output ends once its reader has taken everything. */
  async finish(): Promise<void> {
    if (this.#closed) return;
    await this.#serial(() => this.#mux.writeTrailer());
    this.#closed = true;
  }

  /** Stop now (the reader went away, or muxing failed): the output is destroyed, the muxer freed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pipe.destroy();
    this.#out.destroy();
    await this.#order.idle();
    try { this.#mux.forceClose(); } catch { /* closed by the trailer */ }
  }
}
