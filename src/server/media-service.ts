/**
 * The cuemux.v1.MediaServer handlers. Every failure goes through toServiceError (one mapping), every streaming call
 * is registered (limits, status) and unregistered however it ends, and a failing call never affects another.
 */
import { type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { ffmpegVersion } from '../ffmpeg/beamcoder-adapter';
import type {
  ClockState, CloseMediaRequest, CloseMediaResponse, FollowEvent, FollowRequest, GetIndexRequest, GetStatusRequest, IndexEntryBatch,
  MediaInfo, MediaServerServer, OpenMediaRequest, PacketBatch, PingRequest, PingResponse, ReadPacketsRequest, ServerStatus, WatchClockRequest,
} from '../generated/cuemux/v1/media_server';
import { monoNs, monoToUnixNs, unixNs } from '../common/time-source';
import type { Show } from '../show/show';
import { watchClock } from './clock-watch';
import { checkFollowRequest, FollowSession } from './follow-stream';
import type { MediaRegistry } from './media-registry';
import { checkRequest, optionalInt64, pumpPackets, writeWithBackpressure, type ClientRecord } from './packet-stream';
import { toServiceError } from './status-mapping';

const log = getLogger('media-service');

/** Settings the handlers need. */
export interface ServiceOptions {
  /** Most concurrent streaming calls. */
  maxClients: number;
  /** Largest batch a client may ask for (bytes). */
  maxBatchBytes: number;
  /** Batch size when the client does not ask (bytes). */
  defaultBatchBytes: number;
  /** The cuemux version reported by GetStatus. */
  version: string;
  /** Follow lead window when a request sets none, in seconds. */
  defaultLeadSeconds: number;
}

/** Index entries per GetIndex batch. */
const INDEX_BATCH = 4096;

/** The service state: clients, limits; `implementation` is what grpc-js serves. */
export class MediaService {
  readonly #registry: MediaRegistry;
  readonly #show: Show;
  readonly #options: ServiceOptions;
  readonly #clients = new Set<ClientRecord>();
  readonly #calls = new Set<ServerWritableStream<unknown, unknown>>();
  /** WatchClock and Follow calls: they run until the client leaves, so shutdown ends them itself. */
  readonly #endless = new Set<ServerWritableStream<unknown, unknown>>();
  readonly #started = process.hrtime.bigint();
  #closing = false;

  constructor(registry: MediaRegistry, show: Show, options: ServiceOptions) {
    this.#registry = registry;
    this.#show = show;
    this.#options = options;
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

  /** End every streaming call still running with UNAVAILABLE (forced shutdown). */
  cancelAll(): void {
    for (const call of this.#calls) this.#endWithUnavailable(call);
  }

  #endWithUnavailable(call: ServerWritableStream<unknown, unknown>): void {
    if (call.cancelled || call.destroyed) return;
    call.emit('error', toServiceError(new CuemuxError('CLOSED', 'cuemux is shutting down; reconnect when it is back')));
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

  /** Run a streaming handler with registration, limits and error mapping. */
  #streaming<Req, Res>(name: string, f: (call: ServerWritableStream<Req, Res>) => Promise<void>) {
    return (call: ServerWritableStream<Req, Res>): void => {
      const generic = call as unknown as ServerWritableStream<unknown, unknown>;
      const run = async (): Promise<void> => {
        this.#checkOpen();
        if (this.#calls.size >= this.#options.maxClients) {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `${this.#options.maxClients} streams are already running (max-clients); try again later`);
        }
        this.#calls.add(generic);
        try {
          await f(call);
        } finally {
          this.#calls.delete(generic);
        }
      };
      run().then(() => {
        if (!call.cancelled && !call.destroyed) call.end();
      }, (e: unknown) => {
        if (call.cancelled || call.destroyed) return;
        log.info(`${name} ended with an error`, { peer: call.getPeer(), error: e instanceof Error ? e.message : String(e) });
        call.emit('error', toServiceError(e));
      });
    };
  }

  /** The grpc-js implementation of cuemux.v1.MediaServer. */
  get implementation(): MediaServerServer {
    return {
      openMedia: this.#unary<OpenMediaRequest, MediaInfo>('OpenMedia', async (req) => (await this.#registry.open(req.path)).mediaInfo),
      closeMedia: this.#unary<CloseMediaRequest, CloseMediaResponse>('CloseMedia', (req) => {
        this.#registry.release(this.#registry.get(req.mediaId));
        return {};
      }),
      readPackets: this.#streaming<ReadPacketsRequest, PacketBatch>('ReadPackets', async (call) => {
        const req = call.request;
        const media = this.#registry.get(req.mediaId);
        const streams = checkRequest(media, req);
        // Absent or 0: the server's default (proto3 cannot tell them apart for clients without optional support).
        const batch = req.maxBatchBytes === undefined || req.maxBatchBytes === 0 ? this.#options.defaultBatchBytes : req.maxBatchBytes;
        if (batch > this.#options.maxBatchBytes) {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `max_batch_bytes ${batch} is above this server's limit of ${this.#options.maxBatchBytes} bytes`);
        }
        const client: ClientRecord = {
          peer: call.getPeer(), mediaId: media.id, streams: req.streams, positionSeconds: req.startSeconds ?? media.mediaInfo.startSeconds ?? 0,
          bytesQueued: 0, bytesSent: 0, packetsSent: 0,
        };
        this.#registry.beginCall(media);
        this.#clients.add(client);
        try {
          await pumpPackets(call, media, streams, batch, client);
        } finally {
          this.#clients.delete(client);
          this.#registry.endCall(media);
        }
      }),
      getIndex: this.#streaming<GetIndexRequest, IndexEntryBatch>('GetIndex', async (call) => {
        const media = this.#registry.get(call.request.mediaId);
        const s = call.request.streamIndex;
        if (s !== undefined) media.index.stream(s);
        this.#registry.beginCall(media);
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
          this.#registry.endCall(media);
        }
      }),
      getStatus: this.#unary<GetStatusRequest, ServerStatus>('GetStatus', () => this.status()),
      watchClock: this.#streaming<WatchClockRequest, ClockState>('WatchClock', async (call) => {
        await this.#endlessCall(call, () => watchClock(call, this.#show.clock));
      }),
      follow: this.#streaming<FollowRequest, FollowEvent>('Follow', async (call) => {
        const [lead, batch] = checkFollowRequest(call.request, {
          defaultLeadSeconds: this.#options.defaultLeadSeconds, defaultBatchBytes: this.#options.defaultBatchBytes, maxBatchBytes: this.#options.maxBatchBytes,
        });
        const client: ClientRecord = {
          peer: call.getPeer(), mediaId: '', streams: [], positionSeconds: 0, bytesQueued: 0, bytesSent: 0, packetsSent: 0, output: call.request.output,
        };
        this.#clients.add(client);
        try {
          await this.#endlessCall(call, () => new FollowSession(call, this.#show, this.#registry, client, lead, batch).run());
        } finally {
          this.#clients.delete(client);
        }
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
        packetCount: BigInt(m.index.packetCount), openCount: m.openCount, openedUnixNs: m.openedUnixNs,
      })),
      clients: [...this.#clients].map((c) => ({
        peer: c.peer, mediaId: c.mediaId, streams: c.streams, positionSeconds: c.positionSeconds,
        bytesQueued: BigInt(Math.max(0, c.bytesQueued)), bytesSent: BigInt(c.bytesSent), packetsSent: BigInt(c.packetsSent), output: c.output ?? '',
      })),
    };
  }
}
