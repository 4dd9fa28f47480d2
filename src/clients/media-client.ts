/**
 * A typed client for cuemux.v1.MediaServer over the generated stubs. Every call takes `{ signal?, timeout? }`;
 * failures are {@link MediaClientError}s carrying the gRPC code and the method.
 */
import * as grpc from '@grpc/grpc-js';
import { resolve as pathResolve } from 'node:path';
import { CuemuxError } from '../common/errors';
import { decodeFollowEvent, decodePacketBatch } from '../wire/packet-batch';
import { readCredentialFile, readSecretFile } from '../common/secret-file';
import { unixNs } from '../common/time-source';
import {
  CloseMediaRequest, FollowRequest, GetIndexRequest, GetStatusRequest, MediaServerClient, MediaServerService, OpenMediaRequest, PingRequest,
  ReadPacketsRequest, WatchClockRequest, WatchShowRequest, FollowerReport, type ClockState, type ShowState, type FollowerReportResponse, type FollowEvent, type IndexEntryBatch, type MediaInfo, type PacketBatch,
  type ServerStatus, type PingResponse, type FollowResume, GetRoleRequest, ClaimMasterRequest, type ServerRole,
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

/**
 * TLS for a TCP connection. PEM values are text or bytes (so the options cross to a worker thread by structured
 * clone). A server started with `--tls-cert`/`--tls-key` needs this; the Unix socket never uses TLS.
 */
export interface MediaClientTls {
  /** CA certificate(s) that signed the server's certificate (PEM); absent = the system's trusted roots. */
  rootCerts?: string | Uint8Array;
  /** This client's certificate (PEM), for a server that requires client certificates (`--tls-client-ca`). */
  certChain?: string | Uint8Array;
  /** The private key of {@link certChain} (PEM, unencrypted). */
  privateKey?: string | Uint8Array;
  /**
   * The name to verify in the server's certificate when it is not the host of the address (e.g. connecting to
   * 10.0.0.5 with a certificate made for `media.show`). Default: the address's host.
   */
  serverName?: string;
}

/** Options for {@link MediaClient}. */
export interface MediaClientOptions {
  /** Largest message accepted, bytes (default unlimited: the server bounds its batches). */
  maxReceiveBytes?: number;
  /** TLS (TCP addresses only); absent = plaintext, as a loopback `--listen` without TLS serves. */
  tls?: MediaClientTls;
  /**
   * Bearer token sent with every call as `authorization: Bearer <token>` (a server's `--token-file`). Needs
   * {@link tls}: a token is never sent in clear.
   */
  token?: string;
}

/** What {@link MediaClient} connects with: channel credentials and the TLS-related channel options. */
export interface ClientCredentials {
  /** TLS (+ token) or insecure credentials. */
  credentials: grpc.ChannelCredentials;
  /** `grpc.ssl_target_name_override` and `grpc.default_authority` when a server name is given; else empty. */
  channelOptions: grpc.ChannelOptions;
}

const bytes = (v: string | Uint8Array | undefined): Buffer | null => (v === undefined ? null : Buffer.from(v));

/**
 * The credentials to reach `address` with `options`: plaintext when no TLS is asked; TLS, plus the token as call
 * credentials (grpc.credentials.combineChannelCredentials) when one is given.
 *
 * @throws CuemuxError('INVALID_ARGUMENT') for a token without TLS, TLS on a Unix socket, or half a client key pair.
 */
export function clientCredentials(address: string, options: Pick<MediaClientOptions, 'tls' | 'token'>): ClientCredentials {
  const { tls, token } = options;
  if (tls === undefined) {
    if (token !== undefined) {
      throw new CuemuxError('INVALID_ARGUMENT', `a token is sent only over TLS: give the CA of the server at ${address} (tls.rootCerts, --tls-ca) or tls: {} for the system's roots`);
    }
    return { credentials: grpc.credentials.createInsecure(), channelOptions: {} };
  }
  if (targetOf(address).startsWith('unix:')) {
    throw new CuemuxError('INVALID_ARGUMENT', `${address}: the Unix socket does not use TLS or a token (its file permissions are its access control); connect without them`);
  }
  if ((tls.certChain === undefined) !== (tls.privateKey === undefined)) {
    throw new CuemuxError('INVALID_ARGUMENT', 'a client certificate needs both tls.certChain and tls.privateKey');
  }
  let credentials = grpc.credentials.createSsl(bytes(tls.rootCerts), bytes(tls.privateKey), bytes(tls.certChain));
  if (token !== undefined) {
    const header = `Bearer ${token}`;
    credentials = grpc.credentials.combineChannelCredentials(credentials, grpc.credentials.createFromMetadataGenerator((_params, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', header);
      callback(null, metadata);
    }));
  }
  const channelOptions: grpc.ChannelOptions = tls.serverName === undefined ? {}
    : { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName };
  return { credentials, channelOptions };
}

/** Files holding a client's credentials (as the CLI's `--tls-ca`, `--token-file` give them). */
export interface ClientCredentialFiles {
  /** CA certificate(s) of the server (PEM). */
  caFile?: string;
  /** Client certificate (PEM), for a server with `--tls-client-ca`. */
  certFile?: string;
  /** Its private key (PEM). */
  keyFile?: string;
  /** The bearer token (one line). */
  tokenFile?: string;
  /** The name to verify in the server's certificate (see {@link MediaClientTls.serverName}). */
  serverName?: string;
}

/**
 * Read credential files into {@link MediaClientOptions} `tls` and `token`. Any TLS file or a token turns TLS on
 * (a token alone: TLS with the system's roots).
 *
 * @throws CuemuxError naming the file: NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT (not PEM, empty, not a file).
 */
export function loadClientCredentials(files: ClientCredentialFiles): Pick<MediaClientOptions, 'tls' | 'token'> {
  const pem = (file: string | undefined, option: string, kind: RegExp, secret = false): Buffer | undefined => {
    if (file === undefined) return undefined;
    const buf = readCredentialFile(file, { option, secret });
    if (!kind.test(buf.toString('latin1'))) throw new CuemuxError('INVALID_ARGUMENT', `${option} ${file}: not a PEM file (expected "-----BEGIN ...-----")`, { path: file });
    return buf;
  };
  const rootCerts = pem(files.caFile, '--tls-ca', /-----BEGIN CERTIFICATE-----/);
  const certChain = pem(files.certFile, '--tls-client-cert', /-----BEGIN CERTIFICATE-----/);
  const privateKey = pem(files.keyFile, '--tls-client-key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/, true);
  const token = files.tokenFile === undefined ? undefined : readSecretFile(files.tokenFile, { option: '--token-file', minLength: 1 });
  const anyTls = rootCerts !== undefined || certChain !== undefined || privateKey !== undefined || files.serverName !== undefined || token !== undefined;
  return {
    ...(anyTls ? { tls: { rootCerts, certChain, privateKey, serverName: files.serverName } } : {}),
    ...(token !== undefined ? { token } : {}),
  };
}

/** A connection to a cuemux server. */
export class MediaClient {
  readonly #stub: MediaServerClient;
  /** Calls in progress, cancelled by close(). */
  readonly #live = new Set<{ cancel(): void }>();

  /**
   * @param address `unix:///abs/path.sock`, a socket path, or `host:port` (see {@link targetOf}).
   * @param options TLS and token for a TCP server started with them; limits.
   * @throws CuemuxError('INVALID_ARGUMENT') for credentials that cannot be used (see {@link clientCredentials}).
   */
  constructor(address: string, options: MediaClientOptions = {}) {
    const { credentials, channelOptions } = clientCredentials(address, options);
    this.#stub = new FastMediaServerClient(targetOf(address), credentials, {
      ...channelOptions,
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? -1,
      // A larger flow-control window raises streaming throughput a lot (measured with grpc-js 1.14 between two processes:
      // 1 MB messages 200-470 MB/s, the best with an 8 MB window).
      'grpc-node.flow_control_window': 8 << 20,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // A restarted server must get its players back at once: grpc-js's default reconnect backoff (1 s, then x1.6 up
      // to 120 s) kept a player 1.5 s without pictures after a server SIGKILL and restart (player-show test); 100 ms
      // doubling to 1 s tries a few times a second while the server is down, which a Unix socket or LAN does not mind.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
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

  /** A follower server's report to its master: the master's cues it does not play. */
  async reportFollower(report: FollowerReport, options: CallOptions = {}): Promise<void> {
    const req = FollowerReport.create(report);
    await this.#unary<FollowerReportResponse>('ReportFollower', (o, cb) => this.#stub.reportFollower(req, new grpc.Metadata(), o, cb), options);
  }

  /** Main/backup failover: the server's role (master, backup or follower), its term and its master. */
  async getRole(options: CallOptions = {}): Promise<ServerRole> {
    return this.#unary<ServerRole>('GetRole', (o, cb) => this.#stub.getRole(GetRoleRequest.create(), new grpc.Metadata(), o, cb), options);
  }

  /** Main/backup failover: tell the server that `address` is the master with `term`; its role after the claim. */
  async claimMaster(req: { term: bigint; address: string; showId: string }, options: CallOptions = {}): Promise<ServerRole> {
    return this.#unary<ServerRole>('ClaimMaster', (o, cb) => this.#stub.claimMaster(ClaimMasterRequest.create(req), new grpc.Metadata(), o, cb), options);
  }

  /** The whole show state (a follower server's feed): at once, after every change, and heartbeats (default every 1 s). */
  watchShow(req: { heartbeatSeconds?: number } = {}, options: CallOptions = {}): AsyncGenerator<ShowState> {
    const r = WatchShowRequest.create(req);
    return this.#stream('WatchShow', (o) => this.#stub.watchShow(r, o), options);
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
