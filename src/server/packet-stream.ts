/**
 * The ReadPackets pump: plans the packets from the index, fetches their bytes (one batch ahead), and writes bounded
 * batches honouring backpressure. A cancelled call never emits 'drain' (grpc-js 1.14: a pump waiting on 'drain' alone hung forever), so waiting also ends on
 * 'cancelled'/'close'; a slow client only ever waits on its own call.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { CuemuxError, isCuemuxError } from '../common/errors';
import type { IndexEntry } from '../index-store/media-index';
import type { PacketBatch, ReadPacketsRequest } from '../generated/cuemux/v1/media_server';
import { framedBatchSize, framedPacketBatch, layoutFramedBatch } from '../wire/packet-batch';
import type { OpenMedia } from '../media/open-media';
import { BUFFERS_PER_CALL as FRAMES_PER_CALL, BUFFER_SLACK as FRAME_SLACK } from './stream-memory';

/** What GetStatus reports about one streaming call. */
export interface ClientRecord {
  /** The peer address. */
  peer: string;
  /** Media id. */
  mediaId: string;
  /** Requested streams (empty = all). */
  streams: number[];
  /** Presentation time of the last packet sent, in seconds. */
  positionSeconds: number;
  /** Bytes handed to gRPC but not yet flushed to the transport. */
  bytesQueued: number;
  /** Bytes of packet data sent. */
  bytesSent: number;
  /** Packets sent. */
  packetsSent: number;
  /** The output of a Follow call; absent for ReadPackets. */
  output?: string;
}

/** Fixed per-packet overhead (fields + framing) counted against the batch size, in bytes. */
const PACKET_OVERHEAD = 48;

/** Write `msg`, resolving true once more may be written, false if the call was cancelled or closed. */
export function writeWithBackpressure<T>(call: ServerWritableStream<unknown, T>, msg: T, onFlushed: () => void): Promise<boolean> {
  if (call.cancelled || call.destroyed) return Promise.resolve(false);
  if (call.write(msg, onFlushed)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      call.off('drain', onDrain);
      call.off('cancelled', onStop);
      call.off('close', onStop);
      call.off('error', onStop);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onStop = (): void => done(false);
    call.once('drain', onDrain);
    call.once('cancelled', onStop);
    call.once('close', onStop);
    call.once('error', onStop);
  });
}

/** Validate a ReadPackets request against the media; returns the stream list (all when empty). */
export function checkRequest(media: OpenMedia, req: ReadPacketsRequest): number[] {
  const n = media.index.streams.length;
  for (const s of req.streams) {
    if (!Number.isInteger(s) || s < 0 || s >= n) {
      throw new CuemuxError('NO_SUCH_STREAM', `${media.path}: no stream ${s} (it has ${n}: 0..${n - 1})`, { path: media.path });
    }
  }
  // Absent start_seconds: from each stream's first packet (priming packets with a negative pts included).
  if (req.startSeconds !== undefined && !Number.isFinite(req.startSeconds)) throw new CuemuxError('INVALID_ARGUMENT', `start_seconds must be a number, got ${req.startSeconds}`);
  if (req.endSeconds !== undefined && Number.isNaN(req.endSeconds)) throw new CuemuxError('INVALID_ARGUMENT', 'end_seconds must be a number, got NaN');
  if (req.endSeconds !== undefined && req.startSeconds !== undefined && !(req.endSeconds > req.startSeconds)) {
    throw new CuemuxError('INVALID_ARGUMENT', `end_seconds (${req.endSeconds}) must be after start_seconds (${req.startSeconds})`);
  }
  return req.streams.length > 0 ? [...new Set(req.streams)] : media.index.streams.map((s) => s.index);
}

/** Index entries scanned without a wanted packet before the pump yields to other work (about a millisecond). */
const PLAN_STEP = 4096;
/** Bytes of idle message buffers the server keeps for the next calls (beyond this they are left to the GC). */
const SPARE_FRAME_BYTES = 4 << 20;

/**
 * Message buffers no call is using, by size, shared by all calls: a new call (most ask for the default batch size)
 * reuses them instead of allocating. Buffers a call leaves to the GC are freed only at its next full collection, so
 * reusing them keeps the server's memory at what its calls need at once.
 */
const spareFrames = new Map<number, Buffer[]>();
let spareBytes = 0;

function takeSpare(capacity: number): Buffer {
  const list = spareFrames.get(capacity);
  const buf = list?.pop();
  if (buf === undefined) return Buffer.allocUnsafeSlow(capacity);
  spareBytes -= capacity;
  if (list?.length === 0) spareFrames.delete(capacity);
  return buf;
}

/**
 * Capacity of the buffer for an oversize batch of `size` bytes: the next power of two, so such buffers are reused
 * from batch to batch and call to call; exactly `size` for one too large to be kept among the spares anyway.
 */
function oversizeCapacity(size: number): number {
  const rounded = 2 ** Math.ceil(Math.log2(size));
  return rounded > SPARE_FRAME_BYTES / 2 ? size : rounded;
}

/**
 * A message buffer for `size` bytes from the shared spares: of capacity `usual` (a call's batch size plus slack)
 * when it fits, else of the next power of two. Give it back with {@link giveSpareFrame} once gRPC has written it.
 */
export function takeSpareFrame(size: number, usual: number): Buffer {
  return takeSpare(size <= usual ? usual : oversizeCapacity(size));
}

/**
 * Bytes of idle message buffers kept for reuse now (at most 4 MiB, SPARE_FRAME_BYTES): memory the server holds by
 * design whatever it serves (the GC probe of bench:progressive and the fault suite reports it beside live memory).
 */
export function spareFrameBytes(): number {
  return spareBytes;
}

/** Return a buffer from {@link takeSpareFrame} (after gRPC's write callback): the next call reuses it. */
export function giveSpareFrame(buf: Buffer): void {
  if (spareBytes + buf.length > SPARE_FRAME_BYTES) return;
  spareBytes += buf.length;
  const list = spareFrames.get(buf.length);
  if (list === undefined) spareFrames.set(buf.length, [buf]);
  else list.push(buf);
}

/**
 * The message buffers of one call, reused: a batch is read from the file into its buffer and handed to gRPC, and the
 * buffer comes back when gRPC reports it written. Bounds the call's bytes in flight to FRAMES_PER_CALL batches (a
 * stalled client costs the server that much, never more) and makes the hot path allocate nothing per batch.
 */
class FramePool {
  readonly #free: Buffer[] = [];
  #outstanding = 0;
  #wake: (() => void) | null = null;
  #ended = false;

  constructor(readonly capacity: number, readonly slots: number) {}

  /** A buffer of at least `size` bytes, once fewer than `slots` are out; null when `stopped()` first. */
  async acquire(size: number, stopped: () => boolean, onStop: (f: () => void) => () => void): Promise<Buffer | null> {
    while (this.#outstanding >= this.slots) {
      if (stopped()) return null;
      const ok = await new Promise<boolean>((resolve) => {
        const off = onStop(() => resolve(false));
        this.#wake = () => {
          off();
          resolve(true);
        };
      });
      this.#wake = null;
      if (!ok) return null;
    }
    this.#outstanding++;
    // A batch larger than the usual (one packet above the batch size, e.g. a keyframe in small batches) gets a
    // buffer of the next power-of-two size from the shared spares, and goes back there: a fresh buffer per call
    // would be freed only by a full collection (measured: 100 KB keyframes at 300 calls/s grew the server's
    // ArrayBuffers by 30 MB/s and cost a multi-millisecond mark-compact every ~150 ms).
    if (size > this.capacity) return takeSpareFrame(size, this.capacity);
    return this.#free.pop() ?? takeSpare(this.capacity);
  }

  /** Give back a buffer from {@link acquire} (once gRPC is done with it). */
  release(buf: Buffer): void {
    this.#outstanding--;
    if (buf.length !== this.capacity || this.#ended) giveSpareFrame(buf);
    else this.#free.push(buf);
    this.#wake?.();
  }

  /** The call is over: its idle buffers go to the next calls (those still being written follow on release). */
  end(): void {
    this.#ended = true;
    for (const b of this.#free.splice(0)) giveSpareFrame(b);
  }
}

/**
 * Largest first batch of a call read on the event loop's own thread, in bytes. A read through libuv's thread pool
 * costs two cross-thread wake-ups, and on a busy 2-core machine their tail is milliseconds: reading a call's first
 * batch here cut the first-packet p90 by about 1 ms and p99 by 1.5-2.5 ms (bench:serve, C-core client). A read of this
 * size from the page cache takes tens of µs, from an SSD well under a millisecond; other calls wait that long. Later
 * batches, which are not what a seeking player waits for, go through the pool.
 */
const SYNC_READ_BYTES = 128 << 10;

/** Run one ReadPackets call to completion (or cancellation). Throws domain errors for the caller to map. */
export async function pumpPackets(call: ServerWritableStream<ReadPacketsRequest, PacketBatch>, media: OpenMedia, streams: number[],
  batchBytes: number, client: ClientRecord): Promise<void> {
  const req = call.request;
  // Planned step by step: a null after PLAN_STEP index entries without a wanted packet (a sparse stream in a long
  // file) lets other calls run, so one call never holds the event loop for a walk over the whole index.
  let planned = media.index;
  let plan = planned.packetsInRangeSteps(streams, req.startSeconds ?? null, req.endSeconds, PLAN_STEP);
  /** Entry number of the last packet taken from the plan (a growing file's next plan starts after it). */
  let lastPlanned = -1;
  const reader = media.reader();
  let held: IndexEntry | null = null;
  let planEnded = false;
  const cancelled = new AbortController();
  /**
   * The next batch: packets up to `batchBytes` in all, or a single larger packet alone; or, for a sparse stream, the
   * packets found before a long stretch of the index without one (they are sent at once, not when the batch fills).
   */
  const nextChunk = async (): Promise<IndexEntry[]> => {
    const chunk: IndexEntry[] = [];
    let bytes = 0;
    for (;;) {
      let e = held;
      held = null;
      if (e === null) {
        const r = plan.next();
        if (r.done) {
          // A growing file: what is planned is sent, then the call waits for the index to grow (or complete) and
          // plans on from the entry after the last one planned.
          if (media.growth?.error) throw media.growth.error;
          if (media.growthState !== 'growing' && media.index === planned) {
            planEnded = true;
            break;
          }
          if (chunk.length > 0) break;
          await waitForGrowth(media, cancelled.signal);
          if (stopped()) break;
          planned = media.index;
          plan = planned.packetsInRangeSteps(streams, req.startSeconds ?? null, req.endSeconds, PLAN_STEP, { fromEntry: lastPlanned + 1 });
          continue;
        }
        if (r.value === null) {
          if (chunk.length > 0) break;
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (stopped()) break;
          continue;
        }
        e = r.value;
        lastPlanned = e.index;
      }
      if (chunk.length > 0 && bytes + e.size + PACKET_OVERHEAD > batchBytes) {
        held = e; // starts the next batch
        break;
      }
      chunk.push(e);
      bytes += e.size + PACKET_OVERHEAD;
    }
    return chunk;
  };
  const stopped = (): boolean => call.cancelled || call.destroyed;
  const onStop = (f: () => void): (() => void) => {
    call.once('cancelled', f);
    call.once('close', f);
    return () => {
      call.off('cancelled', f);
      call.off('close', f);
    };
  };
  const offCancel = onStop(() => cancelled.abort());
  const pool = new FramePool(batchBytes + FRAME_SLACK, FRAMES_PER_CALL);
  /** Reads (and copies, for readers without readInto) running into a pool buffer: settled before the reader closes. */
  let filling: Promise<unknown> = Promise.resolve();
  let first = true;
  try {
    for (let chunk = await nextChunk(); chunk.length > 0; chunk = await nextChunk()) {
      const size = framedBatchSize(chunk);
      const buf = await pool.acquire(size, stopped, onStop);
      if (buf === null) return;
      if (stopped()) {
        pool.release(buf);
        return;
      }
      const frame = buf.subarray(0, size);
      const at = layoutFramedBatch(frame, chunk);
      if (first && size <= SYNC_READ_BYTES && reader.readIntoSync !== undefined) {
        reader.readIntoSync(chunk, frame, at);
      } else {
        const fill = reader.readInto !== undefined
          ? reader.readInto(chunk, frame, at)
          : reader.read(chunk).then((data) => {
            for (let i = 0; i < chunk.length; i++) data[i].copy(frame, at[i]);
          });
        filling = fill.catch(() => undefined);
        await fill;
      }
      first = false;
      if (stopped()) {
        pool.release(buf); // never handed to gRPC, and every read into it is done
        return;
      }
      let bytes = 0;
      for (const e of chunk) bytes += e.size;
      client.bytesQueued += bytes;
      // The buffer is reused only once gRPC has written it out: the write callback. While up to FRAMES_PER_CALL - 1
      // batches are being written, the next one is read from the file.
      const ok = await writeWithBackpressure(call, framedPacketBatch(frame), () => {
        client.bytesQueued -= bytes;
        pool.release(buf);
      });
      if (!ok) return;
      client.bytesSent += bytes;
      client.packetsSent += chunk.length;
      const last = chunk[chunk.length - 1];
      const t = last.pts ?? last.dts;
      if (t !== null) client.positionSeconds = media.index.toSeconds(last.stream, t);
    }
    // Damage matters only if this range ran into it: the plan ended with the index, not at end_seconds.
    if (media.index.partial && planEnded && reachesEnd(media, streams, req.endSeconds)) {
      throw new CuemuxError('MEDIA_DAMAGED', `${media.path}: damaged or truncated: FFmpeg stopped at byte ${media.index.partial.bytePos} (${media.index.partial.message}); every packet before it was sent`,
        { path: media.path, operation: 'read' });
    }
  } catch (e) {
    // A packet not where a growing file's index says: the file was cut or replaced while it grew; say that.
    if (isCuemuxError(e, 'MEDIA_DAMAGED') && media.growth !== null) throw (await media.growth.verify()) ?? e;
    throw e;
  } finally {
    // A read may still be running (cancel during a read): let it settle before closing its reader.
    await filling;
    offCancel();
    pool.end();
    await reader.close();
  }
}

/**
 * Wait until the growing `media`'s index grows, completes or fails (each wait bounded by its growing-wait-ms; the
 * growing index itself completes once the file has been still that long), or `signal` aborts. Throws the error that
 * ended a growth (a file truncated or replaced while growing: MEDIA_DAMAGED naming it).
 */
export async function waitForGrowth(media: OpenMedia, signal: AbortSignal): Promise<void> {
  const growth = media.growth;
  if (growth === null) return;
  await growth.waitForChange(growth.waitMs, signal);
  if (growth.error !== null && !signal.aborted) throw growth.error;
}

/** True when reading to `endSeconds` would pass the last indexed packet of some requested stream. */
function reachesEnd(media: OpenMedia, streams: number[], endSeconds: number | undefined): boolean {
  if (endSeconds === undefined) return true;
  return streams.some((s) => {
    const last = media.index.lastTime(s);
    return last === null || media.index.toTicks(s, endSeconds) > last;
  });
}
