/**
 * The cuemux.v1.MediaServer handlers. Every failure goes through toServiceError (one mapping), every streaming call
 * is registered (limits, status) and unregistered however it ends, and a failing call never affects another.
 */
import { type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { ffmpegVersion } from '../ffmpeg/native';
import type {
  ClockState, CloseMediaRequest, CloseMediaResponse, FollowEvent, FollowRequest, GetIndexRequest, GetStatusRequest, IndexEntryBatch,
  MediaInfo, MediaServerServer, OpenMediaRequest, PacketBatch, PingRequest, PingResponse, ReadPacketsRequest, ServerStatus, ShowState, ShowStatus, WatchClockRequest,
  WatchShowRequest, FollowerReport, FollowerReportResponse, GetRoleRequest, ClaimMasterRequest, ServerRole,
} from '../generated/cuemux/v1/media_server';
import { monoNs, monoToUnixNs, unixNs } from '../common/time-source';
import type { Show } from '../show/show';
import { positionAt } from '../show/show-clock';
import { clockStateMessage, watchClock } from './clock-watch';
import { checkFollowRequest, FollowSession } from './follow-stream';
import type { MediaRegistry } from './media-registry';
import type { OpenMedia } from '../media/open-media';
import { mediaGrowthOf, mediaInfoOf, optionalInt64 } from './media-info';
import { checkRequest, pumpPackets, writeWithBackpressure, type ClientRecord } from './packet-stream';
import { toServiceError } from './status-mapping';
import { DEFAULT_STREAM_MEMORY_BYTES, StreamMemoryBudget } from './stream-memory';
import { ShowWatch, type FollowerReports } from './show-watch';
import type { Failover } from './failover';
import { clockQualityMessage, type ClockQualityStatus } from './clock-quality';

const log = getLogger('media-service');

/** Settings the handlers need. */
export interface ServiceOptions {
  /** Most concurrent ReadPackets/GetIndex calls. */
  maxClients: number;
  /** Most concurrent WatchClock/Follow calls (players following the show; a limit of their own). */
  maxWatchers: number;
  /** Largest batch a client may ask for (bytes). */
  maxBatchBytes: number;
  /** Batch size when the client does not ask (bytes). */
  defaultBatchBytes: number;
  /** Message-buffer memory all streaming calls together may pin, in bytes (see StreamMemoryBudget); default 128 MiB. */
  maxStreamMemory?: number;
  /** The cuemux version reported by GetStatus. */
  version: string;
  /** Follow lead window when a request sets none, in seconds. */
  defaultLeadSeconds: number;
  /**
   * The extra show status OSC's /cuemux/status reports (ShowHost.statusExtra: `{ cueListFile: { path, reloads,
   * lastError } | null }`), for GetStatus's cue list file; absent = the cue list's path alone.
   */
  statusExtra?: () => Record<string, unknown>;
  /** What followers report they do not play (ReportFollower), listed with the cue problems; absent = refused. */
  followerReports?: FollowerReports;
  /** Main/backup failover: the role (GetRole, status, ShowState), a backup's refusal of Follow/WatchShow, ClaimMaster. */
  failover?: Pick<Failover, 'describe' | 'refusal' | 'claim'>;
  /** A follower's clock quality for GetStatus (ShowHost's ClockQuality); absent or null on a server that follows no master. */
  clockQuality?: () => ClockQualityStatus | null;
}

/** Index entries per GetIndex batch. */
const INDEX_BATCH = 4096;

/** Which limit a streaming call counts against. */
type CallKind = 'stream' | 'watch';

/** The part of an HTTP/2 session this file uses: one session is one client connection. */
interface Session {
  once(event: 'close', listener: () => void): unknown;
  readonly closed: boolean;
  readonly destroyed: boolean;
}

function isSession(x: unknown): x is Session {
  return typeof x === 'object' && x !== null && typeof (x as { once?: unknown }).once === 'function'
    && typeof (x as { closed?: unknown }).closed === 'boolean';
}

/**
 * The HTTP/2 session (= client connection) a call came on, or null. grpc-js 1.10+ has no public accessor: a call
 * handed to a handler keeps its BaseServerInterceptingCall as `call` (behind `nextCall` links when interceptors are
 * installed), which keeps its http2 stream as `stream`. getPeer() cannot stand in for it: every Unix-socket client
 * is "unknown". Tested by test/media-access.test.ts (a killed client's media is released).
 */
function sessionOf(call: object): Session | null {
  let c: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; typeof c === 'object' && c !== null && depth < 8; depth++) {
    const session = (c as { stream?: { session?: unknown } }).stream?.session;
    if (isSession(session)) return session;
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return null;
}

/**
 * One client connection: the OpenMedia references it holds (CloseMedia releases only these), released together
 * when the connection goes (a client that crashed or was killed after OpenMedia leaks nothing).
 */
class ClientConnection {
  /** References taken by this connection's OpenMedia calls, by media_id. */
  readonly held = new Map<string, { media: OpenMedia; count: number }>();
  /** The connection has closed: its references are released, and any it would take now are at once. */
  gone = false;
}

/** The service state: clients, limits; `implementation` is what grpc-js serves. */
export class MediaService {
  readonly #registry: MediaRegistry;
  readonly #show: Show;
  readonly #options: ServiceOptions;
  readonly #clients = new Set<ClientRecord>();
  readonly #streamMemory: StreamMemoryBudget;
  /** Every streaming call running (forced shutdown cancels them). */
  readonly #calls = new Set<ServerWritableStream<unknown, unknown>>();
  /** Streaming calls running, per limit (ReadPackets/GetIndex: max-clients; WatchClock/Follow: max-watchers). */
  readonly #running: Record<CallKind, number> = { stream: 0, watch: 0 };
  /** Client connections by their HTTP/2 session. */
  readonly #connections = new WeakMap<Session, ClientConnection>();
  /** Where references go when grpc-js does not show a call's connection (never released on its own, as before). */
  readonly #unknownConnection = new ClientConnection();
  #warnedUnknown = false;
  /** WatchClock and Follow calls: they run until the client leaves, so shutdown ends them itself. */
  readonly #endless = new Set<ServerWritableStream<unknown, unknown>>();
  readonly #started = process.hrtime.bigint();
  readonly #showWatch: ShowWatch;
  #closing = false;

  constructor(registry: MediaRegistry, show: Show, options: ServiceOptions) {
    this.#registry = registry;
    this.#show = show;
    this.#options = options;
    this.#streamMemory = new StreamMemoryBudget(options.maxStreamMemory ?? DEFAULT_STREAM_MEMORY_BYTES);
    this.#showWatch = new ShowWatch(show, () => this.#role());
  }

  /** Streaming calls in progress. */
  get activeCalls(): number {
    return this.#calls.size;
  }

  /**
   * Refuse new work (UNAVAILABLE) from now on, and end the calls that would otherwise never end (WatchClock, Follow)
   * with UNAVAILABLE so players know to reconnect.
   */
  beginShutdown(): void {
    this.#closing = true;
    for (const call of this.#endless) this.#endWithUnavailable(call);
  }

  /** End the Follow, WatchClock and WatchShow calls with UNAVAILABLE (a master that stands down: they go to the master). */
  endWatchers(): void {
    for (const call of this.#endless) this.#endWithUnavailable(call, 'this server stood down: it is now a backup; go to the master');
  }

  /** The server's failover role (a master of term 0 without failover). */
  #role(): ServerRole {
    return this.#options.failover?.describe() ?? { role: 'master', term: 0n, master: '', address: '', sinceUnixNs: 0n, reason: '' };
  }

  /** A backup refuses WatchShow, naming its master (follower servers watch the master, not a mirror of it). */
  #checkServes(): void {
    const refusal = this.#options.failover?.refusal() ?? null;
    if (refusal !== null) throw new CuemuxError('WRONG_STATE', refusal);
  }

  /** End every streaming call still running with UNAVAILABLE (forced shutdown). */
  cancelAll(): void {
    for (const call of this.#calls) this.#endWithUnavailable(call);
  }

  #endWithUnavailable(call: ServerWritableStream<unknown, unknown>, why = 'cuemux is shutting down; reconnect when it is back'): void {
    if (call.cancelled || call.destroyed) return;
    call.emit('error', toServiceError(new CuemuxError('CLOSED', why)));
  }

  #checkOpen(): void {
    if (this.#closing) throw new CuemuxError('CLOSED', 'cuemux is shutting down; try again when it is back');
  }

  #unary<Req, Res>(name: string, f: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      Promise.resolve()
        .then(() => {
          this.#checkOpen();
          return f(call.request, call);
        })
        .then((res) => callback(null, res), (e: unknown) => {
          log.debug(`${name} failed`, { peer: call.getPeer(), error: String(e) });
          callback(toServiceError(e), null);
        });
    };
  }

  /** The connection `call` came on (created on its first call; its references are released when it closes). */
  #connectionOf(call: object): ClientConnection {
    const session = sessionOf(call);
    if (session === null) {
      if (!this.#warnedUnknown) {
        this.#warnedUnknown = true;
        log.warn('grpc-js does not show which connection a call came on: OpenMedia references are not released when their client goes');
      }
      return this.#unknownConnection;
    }
    let conn = this.#connections.get(session);
    if (conn === undefined) {
      const c = new ClientConnection();
      conn = c;
      this.#connections.set(session, c);
      if (session.closed || session.destroyed) this.#connectionGone(c);
      else session.once('close', () => this.#connectionGone(c));
    }
    return conn;
  }

  /** A client connection closed: drop every OpenMedia reference it still held (the media then closes when idle). */
  #connectionGone(conn: ClientConnection): void {
    if (conn.gone) return;
    conn.gone = true;
    let released = 0;
    for (const { media, count } of conn.held.values()) {
      for (let i = 0; i < count; i++) {
        try {
          this.#registry.release(media);
          released++;
        } catch {
          // Already closed with the server.
        }
      }
    }
    conn.held.clear();
    if (released > 0) log.info('client connection closed: its open media released', { references: released });
  }

  /** OpenMedia: the reference belongs to the caller's connection. */
  async #openMedia(req: OpenMediaRequest, call: object): Promise<MediaInfo> {
    const conn = this.#connectionOf(call);
    const media = await this.#registry.open(req.path);
    if (conn.gone) {
      // The client left while its file was being opened: nobody can close this reference but us.
      this.#registry.release(media);
      throw new CuemuxError('CLOSED', `${media.path}: the client connection closed before the media was open`, { path: media.path });
    }
    // A held media cannot be closed for idleness, so the same id is the same OpenMedia as long as references are held.
    const held = conn.held.get(media.id);
    if (held !== undefined && held.media === media) held.count++;
    else conn.held.set(media.id, { media, count: 1 });
    return mediaInfoOf(media);
  }

  /** CloseMedia: releases one reference taken by an OpenMedia on the same connection; any other is NOT_FOUND. */
  #closeMedia(req: CloseMediaRequest, call: object): CloseMediaResponse {
    const conn = this.#connectionOf(call);
    const held = conn.held.get(req.mediaId);
    if (held === undefined) {
      throw new CuemuxError('NOT_FOUND', `no media with id "${req.mediaId}" is open on this connection (CloseMedia releases only what this client's OpenMedia took)`);
    }
    if (--held.count === 0) conn.held.delete(req.mediaId);
    this.#registry.release(held.media);
    return {};
  }

  /** Run a streaming handler with registration, limits (per kind) and error mapping. */
  #streaming<Req, Res>(name: string, kind: CallKind, f: (call: ServerWritableStream<Req, Res>) => Promise<void>) {
    return (call: ServerWritableStream<Req, Res>): void => {
      const generic = call as unknown as ServerWritableStream<unknown, unknown>;
      const run = async (): Promise<void> => {
        this.#checkOpen();
        const limit = kind === 'stream' ? this.#options.maxClients : this.#options.maxWatchers;
        if (this.#running[kind] >= limit) {
          throw kind === 'stream'
            ? new CuemuxError('RESOURCE_EXHAUSTED', `${limit} streams are already running (max-clients); try again later`)
            : new CuemuxError('RESOURCE_EXHAUSTED', `${limit} WatchClock/Follow calls are already running (max-watchers); try again later`);
        }
        this.#calls.add(generic);
        this.#running[kind]++;
        try {
          await f(call);
        } finally {
          this.#running[kind]--;
          this.#calls.delete(generic);
        }
      };
      run().then(() => {
        if (!call.cancelled && !call.destroyed) call.end();
      }, (e: unknown) => {
        if (call.cancelled || call.destroyed) return;
        log.info(`${name} ended with an error`, { peer: call.getPeer(), error: errorMessage(e) });
        call.emit('error', toServiceError(e));
      });
    };
  }

  /** The grpc-js implementation of cuemux.v1.MediaServer. */
  get implementation(): MediaServerServer {
    return {
      openMedia: this.#unary<OpenMediaRequest, MediaInfo>('OpenMedia', (req, call) => this.#openMedia(req, call)),
      closeMedia: this.#unary<CloseMediaRequest, CloseMediaResponse>('CloseMedia', (req, call) => this.#closeMedia(req, call)),
      readPackets: this.#streaming<ReadPacketsRequest, PacketBatch>('ReadPackets', 'stream', async (call) => {
        const req = call.request;
        const media = this.#registry.get(req.mediaId);
        const streams = checkRequest(media, req);
        // Absent or 0: the server's default (proto3 cannot tell them apart for clients without optional support).
        const batch = req.maxBatchBytes === undefined || req.maxBatchBytes === 0 ? this.#options.defaultBatchBytes : req.maxBatchBytes;
        if (batch > this.#options.maxBatchBytes) {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `max_batch_bytes ${batch} is above this server's limit of ${this.#options.maxBatchBytes} bytes`);
        }
        const client: ClientRecord = {
          peer: call.getPeer(), mediaId: media.id, streams: req.streams, positionSeconds: req.startSeconds ?? media.startSeconds,
          bytesQueued: 0, bytesSent: 0, packetsSent: 0,
        };
        const release = this.#streamMemory.reserve(batch, `ReadPackets of ${media.path}`);
        this.#registry.beginCall(media);
        this.#clients.add(client);
        try {
          await pumpPackets(call, media, streams, batch, client);
        } finally {
          this.#clients.delete(client);
          this.#registry.endCall(media);
          release();
        }
      }),
      getIndex: this.#streaming<GetIndexRequest, IndexEntryBatch>('GetIndex', 'stream', async (call) => {
        const media = this.#registry.get(call.request.mediaId);
        const s = call.request.streamIndex;
        if (s !== undefined) media.index.stream(s);
        const client: ClientRecord = {
          peer: call.getPeer(), mediaId: media.id, streams: s === undefined ? [] : [s], positionSeconds: 0, bytesQueued: 0, bytesSent: 0, packetsSent: 0,
        };
        this.#registry.beginCall(media);
        this.#clients.add(client);
        try {
          let entries: IndexEntryBatch['entries'] = [];
          for (const e of media.index.entries(0, media.index.packetCount, s)) {
            entries.push({
              streamIndex: e.stream, pts: optionalInt64(e.pts), dts: optionalInt64(e.dts),
              duration: BigInt(e.duration ?? 0), pos: optionalInt64(e.pos), size: e.size, key: e.key,
              corrupt: e.corrupt, discard: e.discard,
            });
            if (entries.length === INDEX_BATCH) {
              if (!(await writeWithBackpressure(call, { entries }, () => undefined))) return;
              entries = [];
            }
          }
          if (entries.length > 0) await writeWithBackpressure(call, { entries }, () => undefined);
        } finally {
          this.#clients.delete(client);
          this.#registry.endCall(media);
        }
      }),
      getStatus: this.#unary<GetStatusRequest, ServerStatus>('GetStatus', () => this.status()),
      watchClock: this.#streaming<WatchClockRequest, ClockState>('WatchClock', 'watch', async (call) => {
        // Listed by GetStatus as a client with no media and no output.
        const client: ClientRecord = { peer: call.getPeer(), mediaId: '', streams: [], positionSeconds: 0, bytesQueued: 0, bytesSent: 0, packetsSent: 0 };
        this.#clients.add(client);
        try {
          await this.#endlessCall(call, () => watchClock(call, this.#show.clock));
        } finally {
          this.#clients.delete(client);
        }
      }),
      follow: this.#streaming<FollowRequest, FollowEvent>('Follow', 'watch', async (call) => {
        // Served by a backup too: its own players play the mirrored show, as a follower's do (issue 14).
        const [lead, batch] = checkFollowRequest(call.request, {
          defaultLeadSeconds: this.#options.defaultLeadSeconds, defaultBatchBytes: this.#options.defaultBatchBytes, maxBatchBytes: this.#options.maxBatchBytes,
        });
        const client: ClientRecord = {
          peer: call.getPeer(), mediaId: '', streams: [], positionSeconds: 0, bytesQueued: 0, bytesSent: 0, packetsSent: 0, output: call.request.output,
        };
        const release = this.#streamMemory.reserve(batch, `Follow of output "${call.request.output}"`);
        this.#clients.add(client);
        try {
          await this.#endlessCall(call, () => new FollowSession(call, this.#show, this.#registry, client, lead, batch).run());
        } finally {
          release();
          this.#clients.delete(client);
        }
      }),
      watchShow: this.#streaming<WatchShowRequest, ShowState>('WatchShow', 'watch', async (call) => {
        this.#checkServes();
        // Listed by GetStatus as a client with no media, output "(follower server)".
        const client: ClientRecord = { peer: call.getPeer(), mediaId: '', streams: [], positionSeconds: 0, bytesQueued: 0, bytesSent: 0, packetsSent: 0, output: '(follower server)' };
        this.#clients.add(client);
        try {
          await this.#endlessCall(call, () => this.#showWatch.serve(call));
        } finally {
          this.#clients.delete(client);
        }
      }),
      reportFollower: this.#unary<FollowerReport, FollowerReportResponse>('ReportFollower', (req) => {
        const reports = this.#options.followerReports;
        if (reports === undefined) throw new CuemuxError('WRONG_STATE', 'this server takes no follower reports');
        reports.take(req);
        return {};
      }),
      getRole: this.#unary<GetRoleRequest, ServerRole>('GetRole', () => this.#role()),
      claimMaster: this.#unary<ClaimMasterRequest, ServerRole>('ClaimMaster', async (req) => {
        const failover = this.#options.failover;
        if (failover === undefined) throw new CuemuxError('WRONG_STATE', 'this server takes no failover claims');
        return failover.claim(req);
      }),
      ping: this.#unary<PingRequest, PingResponse>('Ping', (req) => {
        const received = unixNs();
        const mono = monoNs();
        return { clientSendUnixNs: req.clientSendUnixNs, serverReceiveUnixNs: received, serverSendUnixNs: monoToUnixNs(mono), serverSendMonotonicNs: mono };
      }),
    };
  }

  async #endlessCall<Req, Res>(call: ServerWritableStream<Req, Res>, run: () => Promise<void>): Promise<void> {
    const generic = call as unknown as ServerWritableStream<unknown, unknown>;
    this.#endless.add(generic);
    try {
      await run();
    } finally {
      this.#endless.delete(generic);
    }
  }

  /** The "Active, Buffer, Clients" view: open media, clients, uptime, versions. */
  status(): ServerStatus {
    const clientsOf = new Map<string, number>();
    for (const c of this.#clients) clientsOf.set(c.mediaId, (clientsOf.get(c.mediaId) ?? 0) + 1);
    return {
      uptimeSeconds: Number(process.hrtime.bigint() - this.#started) / 1e9,
      version: this.#options.version,
      ffmpegVersion: ffmpegVersion(),
      media: this.#registry.list().map((m) => ({
        path: m.path, mediaId: m.id, clients: clientsOf.get(m.id) ?? 0, bytesReadFromFile: BigInt(m.bytesRead),
        packetCount: BigInt(m.index.packetCount), openCount: m.openCount, openedUnixNs: m.openedUnixNs, growth: mediaGrowthOf(m),
      })),
      clients: [...this.#clients].map((c) => ({
        peer: c.peer, mediaId: c.mediaId, streams: c.streams, positionSeconds: c.positionSeconds,
        bytesQueued: BigInt(Math.max(0, c.bytesQueued)), bytesSent: BigInt(c.bytesSent), packetsSent: BigInt(c.packetsSent), output: c.output ?? '',
      })),
      show: this.#showStatus(),
      role: this.#role(),
    };
  }

  /** The show part of GetStatus: what /cuemux/status reports over OSC (Show.status and the cue list file). */
  #showStatus(): ShowStatus {
    const show = this.#show;
    // The clock re-anchored now, so position and timecode are the position at this answer (ClockState's rules).
    const now = monoNs();
    const snapshot = show.clock.snapshot;
    const clock = clockStateMessage({ ...snapshot, positionSeconds: positionAt(snapshot, now), anchorMonoNs: now, anchorUnixNs: monoToUnixNs(now) }, show.clock.showId);
    const st = show.status();
    const file = this.#options.statusExtra?.().cueListFile;
    const f = typeof file === 'object' && file !== null ? file as { path?: unknown; reloads?: unknown; lastError?: unknown } : {};
    const prefetched = new Map(show.cues.map((c) => [c.id, c.prefetch === null ? 0 : c.prefetch.bytes ?? c.prefetch.data.reduce((n, b) => n + b.length, 0)]));
    return {
      clock,
      chaseLocked: st.clock.chaseLocked,
      cueList: {
        path: typeof f.path === 'string' ? f.path : st.cueList.path, cueIds: st.cueList.cues, standby: st.cueList.playhead ?? undefined,
        reloads: typeof f.reloads === 'number' ? f.reloads : 0, lastError: typeof f.lastError === 'string' ? f.lastError : '',
      },
      cues: st.cues.map((c) => ({
        id: c.id, name: c.name, media: c.media, state: c.state, inSeconds: c.inSeconds, outSeconds: c.outSeconds ?? undefined, loop: c.loop,
        outputs: Object.entries(c.outputs).map(([output, streams]) => ({ output, streams })),
        positionSeconds: c.positionSeconds ?? undefined, clockSeconds: c.clockSeconds ?? undefined, prefetchBytes: BigInt(prefetched.get(c.id) ?? 0),
      })),
      problems: [...show.cueProblems.map((p) => ({ cueId: p.cueId, during: p.during, message: p.message, unixNs: p.unixNs })),
        ...(this.#options.followerReports?.problems() ?? [])],
      clockQuality: clockQualityMessage(this.#options.clockQuality?.() ?? null),
    };
  }
}
