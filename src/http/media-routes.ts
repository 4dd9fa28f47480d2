/**
 * `GET|HEAD /media/<path>`: a media file's bytes, with byte ranges (RFC 9110 §14: single and multiple, If-Range,
 * 416) and, while the file is still being written, unknown-length ranges (RFC 8673: `Content-Range: bytes A-B/*`).
 *
 * Every file is opened through the server's media registry (beneath a media root, once: the same rules as gRPC) and
 * streamed from that one handle in chunks of {@link CHUNK_BYTES}, pulled as the client takes them: a response holds
 * at most a chunk or two, whatever the file's size.
 *
 * A growing file: a range starting past the written end waits (at most --growing-wait-ms) for its first byte, then
 * what exists of it is served, labelled `/*`; a request without Range follows the file as it grows (chunked) until
 * it is complete or nothing was written for --growing-wait-ms. No ETag while it grows (its bytes are not final), so
 * If-Range never matches then.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CuemuxError } from '../common/errors';
import type { OpenMedia } from '../media/open-media';
import { contentRange, firstAskedByte, ifRangeHolds, parseRange, unsatisfiedRange, type ByteRange, type Validators } from './byte-ranges';
import { mediaContentType } from './content-types';
import type { HttpContext } from './http-server';
import { sendError } from './http-errors';
import type { MediaUse } from './media-cache';
import { mediaPathOf } from './request-path';

/** Bytes read from the file per chunk: large enough for few reads, small enough to bound each response's memory. */
export const CHUNK_BYTES = 256 << 10;

/**
 * A request's lifetime: its signal is aborted when the client goes away before its response was sent whole, or when
 * the listener's grace is over. Made on first use of `signal`: a range read in one piece from a complete file never
 * waits and needs none (the AbortController and its listeners on `closing` and on the response were ~9 % of the
 * server's CPU profile of 64 KiB ranges, the largest cost of ours after the file's stat and read). A listener on
 * `closing` rather than AbortSignal.any, and nothing at the end of a response sent whole (the abort, its CuemuxError
 * and its stack cost ~0.15 ms a request in bench:progressive's profile).
 */
export class RequestLife {
  readonly #req: FastifyRequest;
  readonly #reply: FastifyReply;
  readonly #closing: AbortSignal;
  #signal: AbortSignal | null = null;

  constructor(req: FastifyRequest, reply: FastifyReply, closing: AbortSignal) {
    this.#req = req;
    this.#reply = reply;
    this.#closing = closing;
  }

  /** Aborted when the client goes away before the response was sent whole, or the listener's grace is over. */
  get signal(): AbortSignal {
    if (this.#signal !== null) return this.#signal;
    const gone = new AbortController();
    this.#signal = gone.signal;
    const res = this.#reply.raw;
    const away = (): CuemuxError => new CuemuxError('CLOSED', `${this.#req.url}: client went away`);
    if (this.#closing.aborted) gone.abort(this.#closing.reason);
    else if (res.destroyed) {
      // Closed already: gone before it was sent whole, or sent whole (then nothing will abort it, and no listener waits).
      if (!res.writableFinished) gone.abort(away());
    } else {
      const onClosing = (): void => gone.abort(this.#closing.reason);
      this.#closing.addEventListener('abort', onClosing, { once: true });
      res.once('close', () => {
        this.#closing.removeEventListener('abort', onClosing);
        if (!res.writableFinished) gone.abort(away());
      });
    }
    return gone.signal;
  }
}

/**
 * Buffers of CHUNK_BYTES for ranges sent in one piece, taken back when their response has closed (its bytes handed
 * to the kernel, or the connection gone: no write holds them then) and never before the read into them has ended.
 * Why: the server runs with glibc's mmap threshold at 64 KiB (scripts/start.sh), so a fresh 64 KiB Buffer a request
 * was an mmap, 16 page faults and a munmap: ~5 % of a 64 KiB range's first byte against a static server
 * (microbenchmark of two fastify servers, one with that setting).
 */
class ChunkPool {
  /** Free buffers kept at most: a few ranges in flight at once, ~1 MiB. */
  static readonly KEPT = 4;
  readonly #free: Buffer[] = [];

  /** A buffer (CHUNK_BYTES): give it back with {@link ChunkPool.backWhenClosed} once nothing reads into it. */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
  }

  /**
   * `b` back to the pool once `res` has closed. Called after the read into it has ended, never at take(): a client
   * gone during a slow read closes its response while the read still writes into the buffer, and a buffer given back
   * then was another request's body (the review's probe: a stalled read, its client gone, the next range got its
   * bytes). A response closed already leaves it to the collector.
   */
  backWhenClosed(b: Buffer, res: FastifyReply['raw']): void {
    if (res.destroyed) return;
    res.once('close', () => {
      if (this.#free.length < ChunkPool.KEPT) this.#free.push(b);
    });
  }
}
const chunks = new ChunkPool();

/**
 * Open the media a request names (kept open between requests: ctx.media) and run `use` with it (and the file's
 * status when the path's check found it, else null); its use ends when `use`'s body has been sent or closed.
 */
export async function withMedia(ctx: HttpContext, req: FastifyRequest, reply: FastifyReply, prefix: string,
  use: (media: OpenMedia, life: RequestLife, stat: Stats | null) => Promise<Readable | Buffer | null>): Promise<FastifyReply> {
  let m: MediaUse;
  try {
    m = await ctx.media.use(mediaPathOf(req.url, prefix));
  } catch (e) {
    return sendError(reply, e);
  }
  let body: Readable | Buffer | null;
  try {
    body = await use(m.media, new RequestLife(req, reply, ctx.closing), m.stat);
  } catch (e) {
    m.done();
    return sendError(reply, e);
  }
  if (body === null || Buffer.isBuffer(body)) {
    m.done();
    return body === null ? reply.send() : reply.send(body);
  }
  body.once('close', m.done);
  return reply.send(body);
}

/** The error of a file that ended at `pos` while a range of it was being sent. */
function truncated(media: OpenMedia, pos: number): CuemuxError {
  return new CuemuxError('MEDIA_DAMAGED', `${media.path}: the file ended at ${pos} bytes while it was being sent (truncated?)`, { path: media.path });
}

/** The bytes `start`..`end` (inclusive) of `media`, chunk by chunk. */
async function* rangeBytes(media: OpenMedia, r: ByteRange, signal: AbortSignal): AsyncGenerator<Buffer> {
  for (let pos = r.start; pos <= r.end;) {
    const b = await media.readAt(pos, Math.min(CHUNK_BYTES, r.end + 1 - pos), { timeoutMs: 0, signal });
    if (b.length === 0) throw truncated(media, pos);
    pos += b.length;
    yield b;
  }
}

/** The whole of a growing `media` from `start`, following it until it is complete or still for --growing-wait-ms. */
async function* followBytes(media: OpenMedia, waitMs: number, signal: AbortSignal): AsyncGenerator<Buffer> {
  for (let pos = 0; ;) {
    const g = media.growth;
    if (g !== null && g.state === 'growing') await g.waitForBytes(pos + 1, waitMs, signal);
    if (signal.aborted) return;
    const available = await media.availableBytes();
    if (available <= pos) return;
    const b = await media.readAt(pos, Math.min(CHUNK_BYTES, available - pos), { timeoutMs: 0, signal });
    if (b.length === 0) return;
    pos += b.length;
    yield b;
  }
}

/** A multipart/byteranges body (RFC 9110 §14.6): each range with its own headers, then the closing boundary. */
async function* multipartBytes(media: OpenMedia, ranges: ByteRange[], parts: string[], boundary: string, signal: AbortSignal): AsyncGenerator<Buffer> {
  for (let i = 0; i < ranges.length; i++) {
    yield Buffer.from(parts[i]);
    yield* rangeBytes(media, ranges[i], signal);
  }
  yield Buffer.from(`\r\n--${boundary}--\r\n`);
}

/** The ETag and Last-Modified of a file's status, kept per media for the next request of the same status. */
interface Stamps {
  ino: number;
  size: number;
  mtimeMs: number;
  etag: string;
  lastModified: string;
}
const stampsOf = new WeakMap<OpenMedia, Stamps>();

/** Validators of `media` now (no ETag while it grows); `found` is its status when the request's path check just took it. */
async function validatorsOf(media: OpenMedia, found: Stats | null): Promise<Validators & { size: number }> {
  const st = found ?? await media.stat();
  const growing = media.growthState === 'growing';
  // Built once per status, not per request: a player asks for range after range of a file that does not change.
  let s = stampsOf.get(media);
  if (s === undefined || s.ino !== st.ino || s.size !== st.size || s.mtimeMs !== st.mtimeMs) {
    s = {
      ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, etag: `"${st.ino.toString(16)}-${st.size.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}"`,
      lastModified: new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString(),
    };
    stampsOf.set(media, s);
  }
  return { etag: growing ? null : s.etag, lastModified: s.lastModified, size: growing ? await media.availableBytes() : st.size };
}

/** Answer one /media request on `media`: headers set on `reply`, and the body (null for HEAD or a refusal without one). */
async function serveMedia(ctx: HttpContext, req: FastifyRequest, reply: FastifyReply, media: OpenMedia, life: RequestLife, found: Stats | null): Promise<Readable | Buffer | null> {
  const head = req.method === 'HEAD';
  const type = mediaContentType(media.path, media.info.formatName);
  const rangeHeader = typeof req.headers.range === 'string' ? req.headers.range : undefined;
  const g = media.growth;
  // A growing file: a range starting past the written end waits (bounded) for its first byte.
  const first = firstAskedByte(rangeHeader);
  const waited = g !== null && g.state === 'growing' && first !== null && first >= g.writtenBytes;
  if (waited) await g.waitForBytes(first + 1, ctx.growingWaitMs, life.signal);
  const v = await validatorsOf(media, waited ? null : found);
  const growing = media.growthState === 'growing';
  const complete = growing ? null : v.size;
  reply.header('accept-ranges', 'bytes').header('last-modified', v.lastModified).header('cache-control', 'no-cache');
  if (v.etag !== null) reply.header('etag', v.etag);
  const asked = ifRangeHolds(typeof req.headers['if-range'] === 'string' ? req.headers['if-range'] : undefined, v) ? parseRange(rangeHeader, v.size) : { kind: 'whole' as const };
  if (asked.kind === 'unsatisfiable') {
    reply.code(416).header('content-range', unsatisfiedRange(v.size)).header('content-type', 'application/json; charset=utf-8');
    throw new CuemuxError('INVALID_ARGUMENT', `${media.path}: range ${rangeHeader} starts at or after the ${growing ? 'written ' : ''}end (${v.size} bytes)`,
      { path: media.path, details: { httpStatus: 416 } });
  }
  if (asked.kind === 'whole') {
    reply.code(200).header('content-type', type);
    if (growing) return head ? null : Readable.from(followBytes(media, ctx.growingWaitMs, life.signal), { objectMode: false });
    reply.header('content-length', v.size);
    return head ? null : Readable.from(rangeBytes(media, { start: 0, end: v.size - 1 }, life.signal), { objectMode: false });
  }
  reply.code(206);
  const ranges = asked.ranges;
  if (ranges.length === 1) {
    const r = ranges[0];
    reply.header('content-type', type).header('content-range', contentRange(r, complete)).header('content-length', r.end - r.start + 1);
    if (head) return null;
    // A range of one chunk is read (at once: it is written, waited for above if the file grows) into a pooled buffer,
    // then sent as one: no stream to set up before its first byte.
    const length = r.end + 1 - r.start;
    if (length <= CHUNK_BYTES) {
      const into = chunks.take();
      let b: Buffer;
      try {
        b = await media.readAt(r.start, length, { timeoutMs: 0, into });
      } finally {
        chunks.backWhenClosed(into, reply.raw);
      }
      if (b.length < length) throw truncated(media, r.start + b.length);
      return b;
    }
    return Readable.from(rangeBytes(media, r, life.signal), { objectMode: false });
  }
  const boundary = `cuemux-${randomBytes(12).toString('hex')}`;
  const parts = ranges.map((r, i) => `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: ${contentRange(r, complete)}\r\n\r\n`);
  const length = parts.reduce((n, p, i) => n + Buffer.byteLength(p) + ranges[i].end - ranges[i].start + 1, 0) + Buffer.byteLength(`\r\n--${boundary}--\r\n`);
  reply.header('content-type', `multipart/byteranges; boundary=${boundary}`).header('content-length', length);
  return head ? null : Readable.from(multipartBytes(media, ranges, parts, boundary, life.signal), { objectMode: false });
}

/** The /media routes. */
export function mediaRoutes(app: FastifyInstance, ctx: HttpContext): void {
  app.route({
    method: ['GET', 'HEAD'], url: '/media/*', exposeHeadRoute: false,
    handler: (req, reply) => withMedia(ctx, req, reply, '/media/', (media, life, found) => serveMedia(ctx, req, reply, media, life, found)),
  });
}
