/**
 * The operator page's live view: one JSON "state" (the show clock with its anchor, the cue list with each cue's state
 * and the standby cue, server status, cue problems) pushed to every page over Server-Sent Events. Changes are
 * coalesced (one state per {@link COALESCE_MS} however many clock or cue events came), and a state goes out every
 * {@link STATUS_EVERY_MS} anyway for the status panel (clients and buffers change without a show event) and as a
 * heartbeat. Bounded: at most {@link OperatorEventsOptions.maxClients} pages, and a page whose socket holds more than
 * {@link MAX_UNSENT_BYTES} unsent is dropped (its browser reconnects by itself): there is no queue per page beyond
 * the socket's own buffer, and each state replaces the previous one rather than queueing behind it.
 */
import type { ServerResponse } from 'node:http';
import { CuemuxError } from '../common/errors';
import type { ServerStatus } from '../generated/cuemux/v1/media_server';
import * as path from 'node:path';
import type { Show } from '../show/show';
import { snapshotTimecode } from '../show/show-clock';

/** Changes within this many ms go out as one state (a GO moves the clock, a cue and the playhead at once). */
const COALESCE_MS = 40;

/** A state goes out at least this often, in ms, for the status panel and as a heartbeat through proxies. */
const STATUS_EVERY_MS = 1000;

/**
 * A page whose socket holds more than this many unsent bytes is dropped. One state is 2-20 KB (64 cues and a few
 * open media); 256 KiB is many states behind, a page on a stalled Wi-Fi link, not a slow one.
 */
const MAX_UNSENT_BYTES = 256 * 1024;

/** What the live view reads. */
export interface OperatorSource {
  /** The show: clock, cues, cue list, problems. */
  readonly show: Show;
  /** The status GetStatus reports (open media, clients, buffers). */
  readonly status: () => ServerStatus;
  /** The media roots (absolute): a cue's preview path is its media's path beneath one. */
  readonly mediaRoots: readonly string[];
}

/** Settings of {@link OperatorEvents}. */
export interface OperatorEventsOptions {
  /** Most pages connected at once (default 16); one more is refused with RESOURCE_EXHAUSTED. */
  maxClients?: number;
}

/** The operator page's SSE hub. */
export class OperatorEvents {
  readonly #source: OperatorSource;
  readonly #clients = new Set<ServerResponse>();
  readonly #max: number;
  readonly #onChange = (): void => this.#schedule();
  #pending: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #dropped = 0;
  #closed = false;

  constructor(source: OperatorSource, options: OperatorEventsOptions = {}) {
    this.#source = source;
    this.#max = options.maxClients ?? 16;
    source.show.clock.on('change', this.#onChange);
    source.show.on('cue', this.#onChange);
    source.show.on('cuelist', this.#onChange);
    source.show.on('prefetched', this.#onChange);
  }

  /** Pages connected now. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Pages dropped so far for falling behind. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Serve live updates on `res` (a request the caller has handed over): the SSE headers, the state at once, then
   * every change until the page goes away or {@link close}.
   *
   * @throws CuemuxError RESOURCE_EXHAUSTED when {@link OperatorEventsOptions.maxClients} pages are connected.
   * @throws CuemuxError CLOSED after close().
   */
  add(res: ServerResponse): void {
    if (this.#closed) throw new CuemuxError('CLOSED', 'the operator page\'s live updates are closed (server shutting down)');
    if (this.#clients.size >= this.#max) {
      throw new CuemuxError('RESOURCE_EXHAUSTED', `already ${this.#max} operator pages receive live updates; close one (or its browser tab) first`);
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive',
      // No proxy buffering: a state that waits in nginx is a clock that stands still on the page.
      'x-accel-buffering': 'no',
    });
    // A browser reconnects after `retry` ms when the stream ends (a dropped page, a server restart).
    res.write('retry: 1000\n\n');
    this.#clients.add(res);
    res.on('close', () => this.#clients.delete(res));
    this.#write(res, this.#frame());
    this.#heartbeat ??= setInterval(() => this.#flush(), STATUS_EVERY_MS);
  }

  /** The state as the page reads it (also served once by GET /state). */
  state(): Record<string, unknown> {
    const show = this.#source.show;
    const st = show.status();
    const s = show.clock.snapshot;
    const rate = s.timecodeRate;
    const server = this.#source.status();
    const problems = show.cueProblems;
    const problemOf = new Map(problems.map((p) => [p.cueId, p.message]));
    const loaded = new Map(st.cues.map((c) => [c.id, c]));
    // The cue list's order first (a cue not loaded shows its definition), then cues loaded outside it (ad hoc).
    const listed = new Set(show.cueList.cues.map((d) => d.id));
    const cues = [
      ...show.cueList.cues.map((d) => ({ inList: true, ...(loaded.get(d.id) ?? {
        id: d.id, name: d.name, media: d.media, state: 'unloaded', inSeconds: d.inSeconds, outSeconds: d.outSeconds, loop: d.loop,
      }) })),
      ...st.cues.filter((c) => !listed.has(c.id)).map((c) => ({ inList: false, ...c })),
    ].map((c) => ({ ...c, problem: problemOf.get(c.id) ?? null, previewPath: this.#previewPath(c.media) }));
    return {
      // The page runs the clock itself from the anchor: position = positionSeconds + rate × (now − anchor).
      clock: {
        generation: s.generation, state: s.state, source: s.source, rate: s.rate, positionSeconds: s.positionSeconds,
        anchorUnixMs: Number(s.anchorUnixNs) / 1e6, timecode: snapshotTimecode(s),
        timecodeRate: { name: rate.name, num: rate.num, den: rate.den, nominal: rate.nominal, dropFrame: rate.dropFrame },
      },
      serverUnixMs: Date.now(),
      standby: st.cueList.playhead,
      cueListPath: st.cueList.path,
      cues,
      problems: problems.map((p) => ({ cueId: p.cueId, during: p.during, message: p.message, unixMs: Number(p.unixNs / 1_000_000n) })),
      server: {
        uptimeSeconds: server.uptimeSeconds, version: server.version, role: server.role?.role ?? 'master',
        media: server.media.map((m) => ({
          path: m.path, clients: m.clients, bytesRead: Number(m.bytesReadFromFile), packets: Number(m.packetCount),
          growth: m.growth?.state ?? 'complete',
        })),
        clients: server.clients.map((c) => ({ peer: c.peer, output: c.output, bytesQueued: Number(c.bytesQueued), bytesSent: Number(c.bytesSent) })),
        pages: this.#clients.size, pagesDropped: this.#dropped,
      },
    };
  }

  /** `file` relative to the media root holding it (what /preview/<path> takes), or null when none does. */
  #previewPath(file: string): string | null {
    if (!path.isAbsolute(file)) return file.split(path.sep).join('/');
    for (const root of this.#source.mediaRoots) {
      const rel = path.relative(root, file);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
    }
    return null;
  }

  #frame(): string {
    return `event: state\ndata: ${JSON.stringify(this.state())}\n\n`;
  }

  #schedule(): void {
    if (this.#pending !== null || this.#clients.size === 0) return;
    this.#pending = setTimeout(() => this.#flush(), COALESCE_MS);
  }

  #flush(): void {
    if (this.#pending !== null) clearTimeout(this.#pending);
    this.#pending = null;
    if (this.#clients.size === 0) return;
    const frame = this.#frame();
    for (const res of this.#clients) this.#write(res, frame);
  }

  #write(res: ServerResponse, frame: string): void {
    if (res.writableLength > MAX_UNSENT_BYTES) {
      // Fallen behind: dropped rather than queued (its EventSource reconnects and gets the state afresh).
      this.#dropped++;
      this.#clients.delete(res);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  /** End every page's stream and stop listening to the show (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const show = this.#source.show;
    show.clock.off('change', this.#onChange);
    show.off('cue', this.#onChange);
    show.off('cuelist', this.#onChange);
    show.off('prefetched', this.#onChange);
    if (this.#pending !== null) clearTimeout(this.#pending);
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }
}
