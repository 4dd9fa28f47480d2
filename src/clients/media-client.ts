/**
 * A typed client for cuemux.v1.MediaServer over the generated stubs. Every call takes `{ signal?, timeout? }`;
 * failures are {@link MediaClientError}s carrying the gRPC code and the method.
 */
import * as grpc from '@grpc/grpc-js';
import { resolve as pathResolve } from 'node:path';
import { decodeFollowEvent, decodePacketBatch } from '../common/packet-batch-wire';
import { unixNs } from '../common/time-source';
import {
  CloseMediaRequest, FollowRequest, GetIndexRequest, GetStatusRequest, MediaServerClient, MediaServerService, OpenMediaRequest, PingRequest,
  ReadPacketsRequest, WatchClockRequest, type ClockState, type FollowEvent, type IndexEntryBatch, type MediaInfo, type PacketBatch,
  type ServerStatus, type PingResponse, type FollowResume,
} from '../generated/cuemux/v1/media_server';

/** Per-call options. */
export interface CallOptions {
  /** Abort the call (rejects with CANCELLED). */
  signal?: AbortSignal;
  /** Deadline from now, in ms (default: none for streams, 30000 for unary calls). */
  timeout?: number;
}

/** A failed call: gRPC status code, the method, and the server's message. */
export class MediaClientError extends Error {
  /** gRPC status code. */
  readonly code: grpc.status;
  /** The RPC, e.g. `OpenMedia`. */
  readonly method: string;
  /** The server's message (names the file and the problem). */
  readonly details: string;
  /** The server's domain error code (`cuemux-error-code` trailer), when sent. */
  readonly errorCode: string | undefined;

  constructor(method: string, e: grpc.ServiceError) {
    super(`${method}: ${grpc.status[e.code] ?? e.code}: ${e.details}`);
    this.name = 'MediaClientError';
    this.code = e.code;
    this.method = method;
    this.details = e.details;
    const v = e.metadata?.get('cuemux-error-code')[0];
    this.errorCode = typeof v === 'string' ? v : undefined;
  }
}

/** The generated client with ReadPackets and Follow payloads decoded as views of the received message (no copy). */
const FastMediaServerClient = grpc.makeGenericClientConstructor(
  {
    ...MediaServerService,
    readPackets: { ...MediaServerService.readPackets, responseDeserialize: decodePacketBatch },
    follow: { ...MediaServerService.follow, responseDeserialize: decodeFollowEvent },
  },
  'cuemux.v1.MediaServer',
) as unknown as typeof MediaServerClient;

/** Where to connect: `unix:///abs/path.sock`, `/abs/path.sock`, or `host:port`. */
export function targetOf(address: string): string {
  if (/^(unix|dns|ipv4|ipv6):/.test(address) || /^[\w.-]+:\d+$/.test(address) || /^\[[0-9a-fA-F:]+\]:\d+$/.test(address)) return address;
  // Anything else is a socket path, relative paths included.
  return `unix://${pathResolve(address)}`;
}

/** Options for {@link MediaClient}. */
export interface MediaClientOptions {
  /** Largest message accepted, bytes (default unlimited: the server bounds its batches). */
  maxReceiveBytes?: number;
}

/** A connection to a cuemux server. */
export class MediaClient {
  readonly #stub: MediaServerClient;
  /** Calls in progress, cancelled by close(). */
  readonly #live = new Set<{ cancel(): void }>();

  constructor(address: string, options: MediaClientOptions = {}) {
    this.#stub = new FastMediaServerClient(targetOf(address), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? -1,
      // A larger flow-control window raises streaming throughput a lot (FIELD-NOTES).
      'grpc-node.flow_control_window': 8 << 20,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // One connection per client, never shared with another MediaClient of this process: the server ties the media a
      // client opens to its connection (CloseMedia by another connection is refused; a closed connection releases).
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  #unary<Res>(method: string, start: (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => grpc.ClientUnaryCall,
    options: CallOptions): Promise<Res> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new MediaClientError(method, Object.assign(new Error('aborted'), { code: grpc.status.CANCELLED, details: 'aborted by the caller', metadata: new grpc.Metadata() })));
        return;
      }
      const abort = (): void => c.cancel();
      const c = start({ deadline: Date.now() + (options.timeout ?? 30_000) }, (e, r) => {
        this.#live.delete(c);
        options.signal?.removeEventListener('abort', abort);
        if (e) reject(new MediaClientError(method, e));
        else resolve(r);
      });
      this.#live.add(c);
      options.signal?.addEventListener('abort', abort, { once: true });
    });
  }

  async *#stream<T>(method: string, start: (o: grpc.CallOptions) => grpc.ClientReadableStream<T>, options: CallOptions): AsyncGenerator<T> {
    const call = start(options.timeout !== undefined ? { deadline: Date.now() + options.timeout } : {});
    this.#live.add(call);
    const abort = (): void => call.cancel();
    if (options.signal?.aborted) call.cancel();
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const msg of call as AsyncIterable<T>) yield msg;
    } catch (e) {
      throw new MediaClientError(method, e as grpc.ServiceError);
    } finally {
      options.signal?.removeEventListener('abort', abort);
      this.#live.delete(call);
      call.cancel(); // no-op after the end; frees the stream when the consumer stopped early
    }
  }

  /** Open (or join) a media file by path. */
  openMedia(path: string, options: CallOptions = {}): Promise<MediaInfo> {
    const req = OpenMediaRequest.create({ path });
    return this.#unary<MediaInfo>('OpenMedia', (o, cb) => this.#stub.openMedia(req, new grpc.Metadata(), o, cb), options);
  }

  /** Release one OpenMedia. */
  async closeMedia(mediaId: string, options: CallOptions = {}): Promise<void> {
    const req = CloseMediaRequest.create({ mediaId });
    await this.#unary('CloseMedia', (o, cb) => this.#stub.closeMedia(req, new grpc.Metadata(), o, cb), options);
  }

  /** Packet batches of `streams` (all when empty) from `startSeconds` (absent: every stream from its first packet) to `endSeconds` (or the end). */
  readPackets(req: { mediaId: string; streams?: number[]; startSeconds?: number; endSeconds?: number; maxBatchBytes?: number },
    options: CallOptions = {}): AsyncGenerator<PacketBatch> {
    const r = ReadPacketsRequest.create({ ...req, streams: req.streams ?? [], startSeconds: req.startSeconds });
    return this.#stream('ReadPackets', (o) => this.#stub.readPackets(r, o), options);
  }

  /** Index entry batches of one stream or all. */
  getIndex(mediaId: string, streamIndex?: number, options: CallOptions = {}): AsyncGenerator<IndexEntryBatch> {
    const r = GetIndexRequest.create({ mediaId, streamIndex });
    return this.#stream('GetIndex', (o) => this.#stub.getIndex(r, o), options);
  }

  /** What the server is doing. */
  getStatus(options: CallOptions = {}): Promise<ServerStatus> {
    const req = GetStatusRequest.create();
    return this.#unary<ServerStatus>('GetStatus', (o, cb) => this.#stub.getStatus(req, new grpc.Metadata(), o, cb), options);
  }

  /** The show clock: the current state at once, then every change, and heartbeats (default every 1 s). */
  watchClock(req: { heartbeatSeconds?: number } = {}, options: CallOptions = {}): AsyncGenerator<ClockState> {
    const r = WatchClockRequest.create(req);
    return this.#stream('WatchClock', (o) => this.#stub.watchClock(r, o), options);
  }

  /**
   * Follow one player output: clock, cue events and the packets of its streams, ahead of the clock. One connection:
   * see `resilientFollow` (src/clients/resilient-follow.ts) for a Follow that reconnects and resumes.
   */
  follow(req: { output: string; leadSeconds?: number; maxBatchBytes?: number; resume?: FollowResume[]; prepare?: boolean }, options: CallOptions = {}): AsyncGenerator<FollowEvent> {
    const r = FollowRequest.create(req);
    return this.#stream('Follow', (o) => this.#stub.follow(r, o), options);
  }

  /**
   * One NTP-style exchange: the round trip and the server-minus-local wall clock offset, both in ns. Take the sample
   * with the smallest round trip of several (see {@link estimateClockOffset}).
   */
  async ping(options: CallOptions = {}): Promise<{ roundTripNs: bigint; offsetNs: bigint; serverMonotonicNs: bigint; serverUnixNs: bigint }> {
    const c1 = unixNs();
    const res = await this.#unary<PingResponse>('Ping', (o, cb) => this.#stub.ping(PingRequest.create({ clientSendUnixNs: c1 }), new grpc.Metadata(), o, cb), options);
    const c2 = unixNs();
    const s1 = res.serverReceiveUnixNs;
    const s2 = res.serverSendUnixNs;
    return { roundTripNs: (c2 - c1) - (s2 - s1), offsetNs: ((s1 - c1) + (s2 - c2)) / 2n, serverMonotonicNs: res.serverSendMonotonicNs, serverUnixNs: s2 };
  }

  /** Ping `samples` times (default 8) and keep the offset of the fastest round trip (the least queueing noise). */
  async estimateClockOffset(samples = 8, options: CallOptions = {}): Promise<{ roundTripNs: bigint; offsetNs: bigint; serverMonotonicNs: bigint; serverUnixNs: bigint }> {
    let best: Awaited<ReturnType<MediaClient['ping']>> | null = null;
    for (let i = 0; i < samples; i++) {
      const p = await this.ping(options);
      if (best === null || p.roundTripNs < best.roundTripNs) best = p;
    }
    if (best === null) throw new RangeError('samples must be at least 1');
    return best;
  }

  /** Cancel every call in progress (they reject with CANCELLED) and close the connection. Idempotent. */
  close(): void {
    for (const c of this.#live) c.cancel();
    this.#live.clear();
    this.#stub.close();
  }
}
