/**
 * The ReadPackets pump: plans the packets from the index, fetches their bytes (one batch ahead), and writes bounded
 * batches honouring backpressure. A cancelled call never emits 'drain' (FIELD-NOTES), so waiting also ends on
 * 'cancelled'/'close'; a slow client only ever waits on its own call.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { CuemuxError } from '../common/errors';
import type { IndexEntry } from '../index-store/media-index';
import type { Packet, PacketBatch, ReadPacketsRequest } from '../generated/cuemux/v1/media_server';
import type { OpenMedia } from './open-media';

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
  if (!Number.isFinite(req.startSeconds)) throw new CuemuxError('INVALID_ARGUMENT', `start_seconds must be a number, got ${req.startSeconds}`);
  if (req.endSeconds !== undefined && !(req.endSeconds > req.startSeconds)) {
    throw new CuemuxError('INVALID_ARGUMENT', `end_seconds (${req.endSeconds}) must be after start_seconds (${req.startSeconds})`);
  }
  return req.streams.length > 0 ? [...new Set(req.streams)] : media.index.streams.map((s) => s.index);
}

/** A nullable tick/byte value as a proto3 optional int64 (absent = FFmpeg's "no value"). */
export function optionalInt64(v: number | null): bigint | undefined {
  return v === null ? undefined : BigInt(v);
}

/** The API message of index entry `e` with its payload. */
export function toPacket(e: IndexEntry, data: Buffer): Packet {
  return {
    streamIndex: e.stream,
    pts: optionalInt64(e.pts),
    dts: optionalInt64(e.dts),
    duration: BigInt(e.duration ?? 0),
    pos: optionalInt64(e.pos),
    key: e.key,
    data,
    flags: (e.key ? 1 : 0) | (e.corrupt ? 2 : 0) | (e.discard ? 4 : 0),
    entry: 0n, // ReadPackets does not send it (see Packet.entry); Follow sets it
  };
}

/** Run one ReadPackets call to completion (or cancellation). Throws domain errors for the caller to map. */
export async function pumpPackets(call: ServerWritableStream<ReadPacketsRequest, PacketBatch>, media: OpenMedia, streams: number[],
  batchBytes: number, client: ClientRecord): Promise<void> {
  const req = call.request;
  const plan = media.index.packetsInRange(streams, req.startSeconds, req.endSeconds);
  const reader = media.reader();
  let held: IndexEntry | null = null;
  let planEnded = false;
  /** The next batch: packets up to `batchBytes` in all, or a single larger packet alone. */
  const nextChunk = (): IndexEntry[] => {
    const chunk: IndexEntry[] = [];
    let bytes = 0;
    for (;;) {
      let e = held;
      held = null;
      if (e === null) {
        const r = plan.next();
        if (r.done) {
          planEnded = true;
          break;
        }
        e = r.value;
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
  const queueLimit = 2 * batchBytes;
  let flushed: (() => void) | null = null;
  const untilFlushed = (): Promise<boolean> => new Promise((resolve) => {
    const stop = (): void => done(false);
    const done = (ok: boolean): void => {
      flushed = null;
      call.off('cancelled', stop);
      call.off('close', stop);
      resolve(ok);
    };
    flushed = () => done(true);
    call.once('cancelled', stop);
    call.once('close', stop);
  });
  let chunk: IndexEntry[] = [];
  let fetching: Promise<Buffer[]> | null = null;
  try {
    chunk = nextChunk();
    fetching = chunk.length > 0 ? reader.read(chunk) : null;
    while (fetching !== null) {
      const data = await fetching;
      fetching = null;
      if (stopped()) return;
      const current = chunk;
      // Fetch the next batch while this one is written.
      chunk = nextChunk();
      fetching = chunk.length > 0 ? reader.read(chunk) : null;
      fetching?.catch(() => undefined); // surfaced when awaited
      const packets = current.map((e, i) => toPacket(e, data[i]));
      const bytes = data.reduce((a, b) => a + b.length, 0);
      client.bytesQueued += bytes;
      const ok = await writeWithBackpressure(call, { packets }, () => {
        client.bytesQueued -= bytes;
        if (client.bytesQueued <= queueLimit) flushed?.();
      });
      if (!ok) return;
      // grpc-js only pushes back after 16 queued messages, i.e. 16 batches: bound the bytes in flight instead, so a
      // stalled client costs the server ~2 batches of memory, not 16.
      if (client.bytesQueued > queueLimit && !(await untilFlushed())) return;
      client.bytesSent += bytes;
      client.packetsSent += packets.length;
      const last = current[current.length - 1];
      const t = last.pts ?? last.dts;
      if (t !== null) client.positionSeconds = media.index.toSeconds(last.stream, t);
    }
    // Damage matters only if this range ran into it: the plan ended with the index, not at end_seconds.
    if (media.index.partial && planEnded && reachesEnd(media, streams, req.endSeconds)) {
      throw new CuemuxError('MEDIA_DAMAGED', `${media.path}: damaged or truncated: FFmpeg stopped at byte ${media.index.partial.bytePos} (${media.index.partial.message}); every packet before it was sent`,
        { path: media.path, operation: 'read' });
    }
  } finally {
    // A prefetch may still be running (cancel during a write): let it settle before closing its reader.
    await fetching?.catch(() => undefined);
    await reader.close();
  }
}

/** True when reading to `endSeconds` would pass the last indexed packet of some requested stream. */
function reachesEnd(media: OpenMedia, streams: number[], endSeconds: number | undefined): boolean {
  if (endSeconds === undefined) return true;
  return streams.some((s) => {
    const last = media.index.lastTime(s);
    return last === null || media.index.toTicks(s, endSeconds) > last;
  });
}
