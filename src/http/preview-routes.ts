/**
 * `GET|HEAD /preview/<path>?start=S&end=E`: the media from S to E seconds (E omitted: to its end) as fragmented MP4,
 * remuxed from the index's packets without re-encoding (src/ffmpeg/muxer.ts): each audio and video stream starts at
 * its keyframe at or before S (every audio packet is one) and ends before its first packet at or after E. Timestamps
 * are shifted so the earliest first packet decodes at 0; `X-Cuemux-Preview-Start` gives that shift in seconds (the
 * media time of the preview's 0).
 *
 * A growing file's preview goes on as the file grows: once the packets indexed so far are sent, it waits (at most
 * --growing-wait-ms at a time) for the index to grow, and ends when the growing index says the file is complete.
 * A codec MP4 cannot carry is refused with 415 before any byte is sent. `HEAD /preview/<path>?...` answers the same
 * status and headers without muxing.
 */
import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { CuemuxError, errorMessage } from '../common/errors';
import { FragmentedMp4 } from '../ffmpeg/muxer';
import type { IndexEntry } from '../index-store/media-index';
import type { OpenMedia } from '../media/open-media';
import type { HttpContext } from './http-server';
import { withMedia } from './media-routes';

/** Packets read from the file per batch (and bytes at most): a bounded amount in memory per preview. */
const BATCH_PACKETS = 64;
const BATCH_BYTES = 1 << 20;

/** A time query parameter in seconds (>= 0), or undefined when absent. */
function seconds(value: unknown, name: string, subject: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < 0) throw new CuemuxError('INVALID_ARGUMENT', `${subject}: ${name} must be a number of seconds >= 0, got ${JSON.stringify(value)}`, { path: subject });
  return n;
}

/** Mux `media`'s packets in [start, end) into `fmp4`, following a growing file; ends or closes the muxer. */
async function pump(ctx: HttpContext, media: OpenMedia, streams: number[], start: number, end: number | undefined, shift: (s: number) => number,
  fmp4: FragmentedMp4, signal: AbortSignal): Promise<void> {
  const reader = media.reader();
  try {
    let next = 0;
    for (;;) {
      // The state before the index: once complete, media.index is the final one. A pass over a growing index that
      // completes meanwhile is followed by one over the final index, which may hold packets the growing one had not
      // yet (the end mark completes a file while its growing index trails the writer: previews lost their last 1.2 s).
      const final = media.growthState !== 'growing';
      const index = media.index;
      let batch: IndexEntry[] = [];
      let bytes = 0;
      const flush = async (): Promise<void> => {
        const data = await reader.read(batch);
        for (let i = 0; i < batch.length; i++) {
          const e = batch[i];
          const k = streams.indexOf(e.stream);
          await fmp4.write({ stream: k, pts: e.pts === null ? null : e.pts - shift(e.stream), dts: e.dts === null ? null : e.dts - shift(e.stream), duration: e.duration ?? 0, key: e.key, data: data[i] });
        }
        batch = [];
        bytes = 0;
      };
      for (const e of index.packetsInRange(streams, start, end, { fromEntry: next })) {
        if (signal.aborted) throw new CuemuxError('CLOSED', `${media.path}: preview ended (client went away or server closing)`, { path: media.path });
        batch.push(e);
        bytes += e.size;
        next = e.index + 1;
        if (batch.length >= BATCH_PACKETS || bytes >= BATCH_BYTES) await flush();
      }
      await flush();
      const g = media.growth;
      if (final || g === null || signal.aborted) break;
      if (g.state !== 'growing') continue;
      // Wait for more packets, --growing-wait-ms at a time, while the file is growing: the growing index, not this
      // loop, decides when it is complete (still for --growing-wait-ms). Ending here after one still wait cut
      // previews short when the index was published late (bench:progressive under a load of 35 on 2 cores).
      await g.waitForChange(ctx.growingWaitMs, signal);
    }
    await fmp4.finish();
  } catch (e) {
    if (!signal.aborted) ctx.log.warn('preview failed', { media: media.path, error: errorMessage(e) });
    await fmp4.close();
  } finally {
    await reader.close();
  }
}

/**
 * Start a preview of `media`: the fMP4 stream (headers set on the reply), its packets pumped in the background; for
 * HEAD (`head`), the same checks and headers and no stream (null).
 */
async function startPreview(ctx: HttpContext, query: Record<string, unknown>, media: OpenMedia, setHeader: (k: string, v: string) => void,
  signal: AbortSignal, head: boolean): Promise<Readable | null> {
  const start = seconds(query.start, 'start', media.path) ?? 0;
  const end = seconds(query.end, 'end', media.path);
  if (end !== undefined && end <= start) throw new CuemuxError('INVALID_ARGUMENT', `${media.path}: end (${end}) must be after start (${start})`, { path: media.path });
  // A growing file that has no packet yet in the range: wait (at most --growing-wait-ms) for its first ones.
  const g = media.growth;
  if (g !== null && g.state === 'growing' && media.index.packetsInRange([], start, end).next().done === true) await g.waitForChange(ctx.growingWaitMs, signal);
  const index = media.index;
  const params = index.params;
  if (params === null) throw new CuemuxError('WRONG_STATE', `${media.path}: not indexed yet (${media.growthState})`, { path: media.path });
  const chosen = params.container.streams.filter((s) => (s.codecType === 'video' || s.codecType === 'audio') && index.stream(s.index).packetCount > 0);
  if (chosen.length === 0) throw new CuemuxError('NOT_MEDIA', `${media.path}: no audio or video stream to preview`, { path: media.path });
  const streams = chosen.map((s) => s.index);
  // The earliest first packet (decoding time) is the preview's 0: no negative timestamps for the muxer.
  let t0 = Infinity;
  const seen = new Set<number>();
  let scanned = 0;
  for (const e of index.packetsInRange(streams, start, end)) {
    // A stream whose first packet is far on (sparse, or ending early) is not waited for beyond this scan.
    if (seen.size === streams.length || ++scanned > 100_000) break;
    if (seen.has(e.stream)) continue;
    seen.add(e.stream);
    const t = e.dts ?? e.pts;
    if (t !== null) t0 = Math.min(t0, index.toSeconds(e.stream, t));
  }
  if (t0 === Infinity) throw new CuemuxError('INVALID_ARGUMENT', `${media.path}: nothing to preview from ${start} s`, { path: media.path });
  setHeader('x-cuemux-preview-start', String(t0));
  // HEAD too opens the muxer (its header is where FFmpeg refuses a codec MP4 cannot carry: 415), then closes it.
  const fmp4 = await FragmentedMp4.open(chosen, media.path);
  if (head) {
    await fmp4.close();
    return null;
  }
  const shiftTicks = new Map(streams.map((s) => [s, index.toTicks(s, t0)]));
  void pump(ctx, media, streams, start, end, (s) => shiftTicks.get(s) ?? 0, fmp4, signal);
  return fmp4.output;
}

/** The /preview routes. */
export function previewRoutes(app: FastifyInstance, ctx: HttpContext): void {
  // HEAD answers what GET would (status, content type, X-Cuemux-Preview-Start, or the error) without muxing packets;
  // the length of a remuxed stream is not known before it is written, so neither answer has Content-Length.
  app.route({ method: ['GET', 'HEAD'], url: '/preview/*', exposeHeadRoute: false, handler: (req, reply) => withMedia(ctx, req, reply, '/preview/', async (media, life) => {
    const body = await startPreview(ctx, req.query as Record<string, unknown>, media, (k, v) => { reply.header(k, v); }, life.signal, req.method === 'HEAD');
    reply.code(200).header('content-type', 'video/mp4').header('cache-control', 'no-store');
    return body;
  }) });
}
