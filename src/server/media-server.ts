/**
 * The media server: cuemux.v1.MediaServer plus grpc.health.v1 and server reflection, on a Unix socket (default) and
 * optionally TCP (with TLS and a bearer token when configured: grpc-security.ts; the socket never needs them).
 * close() is idempotent and cascades: health NOT_SERVING, new calls refused, running streams get a grace period,
 * then everything is cancelled, media closed and the socket file removed.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CuemuxError, isCuemuxError, errorMessage } from '../common/errors';
import { acquireFileLock, type FileLock } from '../common/file-lock';
import { getLogger } from '../common/logger';
import { MediaServerService, type FollowerReport, type ServerStatus, type ShowState } from '../generated/cuemux/v1/media_server';
import { encodeFollowEvent, encodePacketBatch } from '../wire/packet-batch';
import { CueListFolders } from './cue-list-access';
import { MediaRegistry } from './media-registry';
import { MediaRoots } from './media-roots';
import { MediaService } from './media-service';
import { OscControl } from './osc-control';
import { CueListFile } from '../show/cue-list-file';
import { ShowStateFile } from '../show/show-state';
import { Show } from '../show/show';
import { isLoopbackListen, type ServerConfig } from './server-config';
import { loadTcpSecurity } from './grpc-security';
import { readSecretFile } from '../common/secret-file';
import { MIN_OSC_SECRET_LENGTH } from './osc-access';
import { checkSocketFolder, prepareSocketPath } from './socket-file';
import { installFramedSend } from '../wire/grpc-framed-send';
import { loadFfmpeg } from '../ffmpeg/native';
import { ShowMirror } from './show-mirror';
import { FollowerReports } from './show-watch';
import { Failover, type PeerCalls } from './failover';
import { addLazyReflection } from './lazy-reflection';
import { ClockQuality, type ClockOffsetPolicy, type ClockSample } from './clock-quality';

const log = getLogger('media-server');

/** The .proto files, shipped with the package, for reflection. */
const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');
const SERVICE_NAME = 'cuemux.v1.MediaServer';

/** Where the server listens. */
export interface ServerAddresses {
  /** Unix socket path, or null. */
  socket: string | null;
  /** TCP `host:port` actually bound (the real port when 0 was asked), or null. */
  tcp: string | null;
  /** OSC show-control UDP `host:port` bound, or null. */
  osc: string | null;
}

/** The show and its control surfaces, owned by the server. */
class ShowHost {
  readonly show: Show;
  osc: OscControl | null = null;
  state: ShowStateFile | null = null;
  /** A follower server's mirror of its master's show, and what stops its feed. */
  mirror: { mirror: ShowMirror; stop: AbortController; done: Promise<void> } | null = null;
  /** A follower's measure of its wall-clock offset to the master (null without --follow, or without a ping). */
  clockQuality: ClockQuality | null = null;
  /** What followers of this server report they do not play. */
  readonly followerReports: FollowerReports;
  /** Main/backup failover: this server's role and term (every server has one: a plain server is a master of term 0). */
  failover: Failover | null = null;
  #cueList: CueListFile | null = null;

  constructor(show: Show) {
    this.show = show;
    this.followerReports = new FollowerReports(show);
  }

  /** Load (and watch) a cue list file; the previous file stops being watched once the new one is in effect. */
  async loadCueList(file: string): Promise<{ path: string; cues: number }> {
    const next = await CueListFile.load(file, this.show);
    this.#cueList?.close();
    this.#cueList = next;
    return { path: next.path, cues: this.show.cueList.cues.length };
  }

  /** Cue list file state for status replies. */
  statusExtra(): Record<string, unknown> {
    return {
      cueListFile: this.#cueList ? { path: this.#cueList.path, reloads: this.#cueList.reloads, lastError: this.#cueList.lastError } : null,
      ...(this.mirror === null ? { followers: this.followerReports.list() } : { follower: { ...this.mirror.mirror.status(), clock: this.clockQuality?.status() ?? null } }),
      ...(this.failover === null ? {} : { role: roleJson(this.failover) }),
    };
  }

  /** Follower and backup servers: apply every ShowState of `source` to the show until close (a fatal error is logged). */
  startMirror(master: string, source: FollowSource, name: string, clock: { maxOffsetMs: number; policy: ClockOffsetPolicy }): void {
    const ping = source.ping;
    const quality = ping === undefined ? null
      : new ClockQuality({ master, self: name, maxOffsetNs: BigInt(Math.round(clock.maxOffsetMs * 1e6)), policy: clock.policy, ping });
    this.clockQuality = quality;
    const mirror = new ShowMirror(this.show, master, { name, report: source.report }, quality);
    quality?.start(() => mirror.remap());
    const stop = new AbortController();
    const done = (async () => {
      try {
        for await (const state of source.states(stop.signal, (connected) => mirror.setConnected(connected))) {
          // The failover first: a backup's silence watch restarts at every state, applied or not yet.
          this.failover?.onState(state);
          void mirror.push(state);
        }
      } catch (e) {
        mirror.setConnected(false);
        log.error(`cannot follow the master ${master}: ${errorMessage(e)}; this follower shows nothing new until it is restarted with a working --follow`, { master });
      }
    })();
    this.mirror = { mirror, stop, done };
  }

  /** Stop mirroring (a backup that takes over or moves to another master). Idempotent. */
  async stopMirror(): Promise<void> {
    const m = this.mirror;
    if (m === null) return;
    this.mirror = null;
    // The clock is this server's own from now on (a takeover), or another master's (measured anew).
    this.clockQuality?.close();
    this.clockQuality = null;
    m.stop.abort();
    m.mirror.close();
    await m.done;
  }

  async close(): Promise<void> {
    this.failover?.close();
    await this.stopMirror();
    await this.osc?.close();
    // The last state is saved (marked clean) while the cues are still there.
    await this.state?.close();
    this.#cueList?.close();
    this.show.close();
  }
}

function bind(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/**
 * One grpc.Server with every service (cuemux.v1, health, reflection). The Unix socket and TCP each get their own:
 * grpc-js interceptors belong to a server, not to a port, and the TCP listener's token check must never apply to the
 * socket (its file permissions are its control) nor be skippable there by a call that looks local. Both serve the
 * same MediaService, so limits, status and media are shared.
 */
function makeGrpcServer(service: MediaService, health: HealthImplementation, interceptors: grpc.ServerInterceptor[]): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': 1 << 20,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    interceptors,
  });
  server.addService({
    ...MediaServerService,
    readPackets: { ...MediaServerService.readPackets, responseSerialize: encodePacketBatch },
    follow: { ...MediaServerService.follow, responseSerialize: encodeFollowEvent },
  }, service.implementation);
  health.addToServer(server);
  // Reflection describes every service served, health included, so grpcurl/grpc_cli need no .proto files; it is
  // built on its first call (lazy-reflection.ts: ~300 ms per server start otherwise).
  addLazyReflection(server, REFLECTION_PROTOS);
  return server;
}

const REFLECTION_PROTOS = {
  files: [path.join(PROTO_DIR, 'cuemux', 'v1', 'media_server.proto'), healthProtoPath],
  includeDirs: [PROTO_DIR, path.dirname(healthProtoPath)],
};

/**
 * A follower's feed: the master's ShowStates across reconnects until `signal` aborts (src/clients/watch-show.ts;
 * the server does not import the clients' layer: `cuemux serve` passes it in). `onConnection` says when it delivers.
 */
export interface FollowSource {
  /** The master's states until `signal` aborts; `onConnection` says when the stream delivers. */
  states: (signal: AbortSignal, onConnection: (connected: boolean) => void) => AsyncIterable<ShowState>;
  /** Send the master a ReportFollower (what this follower does not play). */
  report: (report: FollowerReport) => Promise<void>;
  /** One Ping to the master (MediaClient.ping), for the clock quality (src/server/clock-quality.ts); absent = not measured. */
  ping?: (options: { timeout: number; signal: AbortSignal }) => Promise<ClockSample>;
}

/** How this server reaches other cuemux servers (made by `cuemux serve` from src/clients). */
export interface PeerLink extends PeerCalls {
  /** The feed of the master at `address` (`--follow` may name several: the feed goes to whichever is master). */
  source(address: string): FollowSource;
}

/** What {@link MediaServer.start} takes besides the config. */
export interface MediaServerOptions {
  /**
   * Other servers: the master's feed with config.follow or config.backupOf (required then); without either, a
   * master that a newer one claims (failover) joins it through this. Absent: such a master cannot stand down (it
   * says so in its log) and no feed can start.
   */
  peers?: PeerLink;
}

/** The failover role for OSC /cuemux/status (JSON-ready). */
function roleJson(f: Failover): Record<string, unknown> {
  const r = f.describe();
  return { role: r.role, term: Number(r.term), master: r.master, address: r.address, since: new Date(Number(r.sinceUnixNs / 1_000_000n)).toISOString(), reason: r.reason };
}

/** A running cuemux media server. */
export class MediaServer {
  /** Where it listens. */
  readonly addresses: ServerAddresses;
  /** The Unix socket's server and the TCP listener's (one server when there is one listener). */
  readonly #servers: grpc.Server[];
  readonly #service: MediaService;
  readonly #registry: MediaRegistry;
  readonly #showHost: ShowHost;
  readonly #health: HealthImplementation;
  readonly #config: ServerConfig;
  #closing: Promise<void> | null = null;

  readonly #socketLock: FileLock | null;

  private constructor(servers: grpc.Server[], service: MediaService, registry: MediaRegistry, showHost: ShowHost, health: HealthImplementation,
    config: ServerConfig, addresses: ServerAddresses, socketLock: FileLock | null) {
    this.#socketLock = socketLock;
    this.#showHost = showHost;
    this.#servers = servers;
    this.#service = service;
    this.#registry = registry;
    this.#health = health;
    this.#config = config;
    this.addresses = addresses;
  }

  /** Start serving with `config`. Errors name what could not be done (socket in use, port taken, bad root...). */
  static async start(config: ServerConfig, version: string, options: MediaServerOptions = {}): Promise<MediaServer> {
    const follow = config.follow;
    const backupOf = config.backupOf;
    if (follow !== null && backupOf !== null) throw new CuemuxError('INVALID_ARGUMENT', `--follow ${follow} with --backup-of ${backupOf}: a server is a follower or a backup, not both`);
    const master = follow ?? backupOf;
    const flag = follow !== null ? '--follow' : '--backup-of';
    if (master !== null) {
      if (options.peers === undefined) throw new CuemuxError('INVALID_ARGUMENT', `${flag} ${master}: no feed to follow the master with (an embedding must pass peers)`);
      if (config.cueList !== undefined) throw new CuemuxError('INVALID_ARGUMENT', `--cue-list ${config.cueList} with ${flag} ${master}: a ${follow !== null ? 'follower' : 'backup'} takes the master's cue list; load it on the master`);
    }
    // Credential files are read and checked before anything is created or bound: a bad certificate, key or token
    // stops the start with a message naming the file, and nothing is left behind.
    const tcpSecurity = config.listen === null ? null : loadTcpSecurity(config);
    const oscSecret = config.oscSecretFile === undefined || config.oscPort === null ? null
      : readSecretFile(config.oscSecretFile, { option: '--osc-secret-file', minLength: MIN_OSC_SECRET_LENGTH });
    // FFmpeg's libraries load before the server answers anything: loaded at the first OpenMedia instead, the dlopen
    // held the event loop for one ~60 ms task (a console's thump p99 58.8 ms against 8.9 ms idle in the ENOSPC fault
    // test, where the first media opens during the attack). A binding that cannot load stops the start here, named.
    loadFfmpeg();
    const roots = await MediaRoots.create(config.mediaRoots);
    const registry = new MediaRegistry(roots, { cacheDir: config.cacheDir, maxOpenMedia: config.maxOpenMedia, idleCloseMs: config.idleCloseMs, growingWaitMs: config.growingWaitMs });
    const show = new Show({ open: (p) => registry.open(p), release: (m) => registry.release(m) }, {
      clock: { timecodeRate: config.timecodeRate }, prefetchSeconds: config.prefetchSeconds,
      maxPrefetchBytes: config.maxPrefetchBytes, maxAdHocCues: config.maxAdHocCues,
      chase: { jumpSeconds: config.chaseJumpSeconds, lossTimeoutMs: config.chaseLossMs, lossPolicy: config.chaseLossPolicy, freerunMs: config.chaseFreerunMs },
      mirrored: master !== null,
    });
    const showHost = new ShowHost(show);
    const addresses: ServerAddresses = { socket: null, tcp: null, osc: null };
    // The role exists before the first call can arrive: a backup refuses WatchShow from its first moment.
    const peers = options.peers;
    showHost.failover = new Failover({
      show, role: follow !== null ? 'follower' : backupOf !== null ? 'backup' : 'master', master,
      address: () => addresses.tcp ?? (addresses.socket === null ? '' : `unix:${addresses.socket}`), takeoverMs: config.takeoverMs, peers: peers ?? null,
      actions: {
        follow: (m) => {
          if (peers === undefined) {
            log.error(`cannot follow the master ${m}: this embedding gave the server no way to reach other servers (MediaServerOptions.peers)`);
            return;
          }
          show.setMirrored(true);
          showHost.startMirror(m, peers.source(m), `${os.hostname()} (${addresses.tcp ?? addresses.socket ?? 'no gRPC listener'})`,
            { maxOffsetMs: config.maxClockOffsetMs, policy: config.clockOffsetPolicy });
        },
        unfollow: () => showHost.stopMirror(),
        endWatchers: () => service.endWatchers(),
      },
    });
    const service = new MediaService(registry, show, {
      maxClients: config.maxClients, maxWatchers: config.maxWatchers, maxBatchBytes: config.maxBatchBytes, defaultBatchBytes: config.defaultBatchBytes, maxStreamMemory: config.maxStreamMemory, version,
      defaultLeadSeconds: config.leadSeconds,
      // GetStatus reports the cue list file as OSC's /cuemux/status does.
      statusExtra: () => showHost.statusExtra(),
      followerReports: showHost.followerReports,
      failover: showHost.failover,
      clockQuality: () => showHost.clockQuality?.status() ?? null,
    });
    // ReadPackets and Follow packets use the hand-written serializers (one copy of each payload instead of ~4), and
    // messages already framed go to HTTP/2 without grpc-js's extra copy.
    installFramedSend();
    const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
    const socketServer = config.socket === null ? null : makeGrpcServer(service, health, []);
    const tcpServer = tcpSecurity === null ? null : makeGrpcServer(service, health, tcpSecurity.interceptors);
    const servers = [socketServer, tcpServer].filter((s): s is grpc.Server => s !== null);

    let socketLock: FileLock | null = null;
    try {
      const socket = config.socket;
      if (socket !== null) {
        // Held for the server's life: two servers starting at once on one socket cannot both judge it stale and
        // replace each other's (a lock whose owner died is taken over, as for index builds).
        // The folder is checked before anything is created in it (the lock first): a folder another user controls
        // is refused untouched.
        await checkSocketFolder(path.dirname(socket));
        socketLock = await acquireFileLock(`${socket}.lock`, { timeoutMs: 2_000, subject: socket, activity: 'cuemux server' }).catch((e: unknown) => {
          throw isCuemuxError(e, 'LOCK_TIMEOUT')
            ? new CuemuxError('RESOURCE_EXHAUSTED', `${socket}: another cuemux server is running or starting on this socket; stop it or choose another --socket`, { path: socket })
            : e;
        });
        await prepareSocketPath(socket);
      }
      // The show is restored before the first call can arrive: grpc-js serves calls as soon as it is bound, and a
      // player reconnecting after a crash would otherwise meet an empty show on a fresh clock, drop its cues, and be
      // sent the restored ones from where it asked to resume, mid-GOP, into new decoders.
      // A follower keeps no state file: after a restart it takes the master's show again from the master.
      const stateFile = master !== null ? null : config.stateFile === undefined ? (socket === null ? null : `${socket}.show.json`) : config.stateFile;
      if (stateFile !== null) showHost.state = await ShowStateFile.open(stateFile, show, { loadCueList: (file) => showHost.loadCueList(file) });
      // The configured cue list wins over the one a restored show was using.
      if (config.cueList !== undefined) await showHost.loadCueList(config.cueList);
      // Show control loads cue lists from these folders only (the configured list and a restored show's are trusted).
      const cueListFolders = await CueListFolders.create([...config.mediaRoots,
        ...(config.cueList === undefined ? [] : [path.dirname(config.cueList)]), ...(stateFile === null ? [] : [path.dirname(stateFile)])]);
      if (socketServer !== null && socket !== null) {
        await bind(socketServer, `unix://${socket}`);
        addresses.socket = socket;
        await fsp.chmod(socket, 0o660);
      }
      if (tcpServer !== null && tcpSecurity !== null && config.listen !== null) {
        const listen = config.listen;
        const at = listen.lastIndexOf(':');
        const host = listen.slice(0, at);
        const port = await bind(tcpServer, listen, tcpSecurity.credentials).catch((e: unknown) => {
          throw new CuemuxError('RESOURCE_EXHAUSTED', `cannot listen on ${listen}: ${errorMessage(e)}`);
        });
        addresses.tcp = `${host}:${port}`;
        const security = { tls: tcpSecurity.tls, clientCertificates: tcpSecurity.mutualTls, token: tcpSecurity.token };
        if (!isLoopbackListen(listen) && !(tcpSecurity.tls && tcpSecurity.token)) {
          // Only with --insecure-listen (the config refuses it otherwise): loud, at every start.
          log.warn(`INSECURE: gRPC listens on ${addresses.tcp}, reachable from the network, ${tcpSecurity.tls ? 'with TLS but' : 'without TLS and'} `
            + 'without a token (--insecure-listen): anyone who can reach this port can drive the show and read every served file'
            + `${tcpSecurity.tls ? '' : ', and everything crosses the network in clear'}. Add --tls-cert, --tls-key and --token-file `
            + '(README "Security and limits")', security);
        } else {
          log.info(`gRPC over TCP on ${addresses.tcp}`, security);
        }
      }
      if (config.oscPort !== null) {
        showHost.osc = await OscControl.start(show, {
          host: config.oscHost, port: config.oscPort, replyPort: config.oscReplyPort, allow: config.oscAllow,
          budgets: { messagesPerSecond: config.oscRateMessages, bytesPerSecond: config.oscRateBytes }, maxScheduled: config.oscMaxScheduled,
          priority: config.oscPriority, loadCueList: async (file) => showHost.loadCueList(await cueListFolders.check(file)), statusExtra: () => showHost.statusExtra(),
          secret: oscSecret, connectIdleMs: config.oscConnectIdleMs, master: () => showHost.failover?.controlledBy() ?? null,
        });
        const a = showHost.osc.address;
        addresses.osc = `${a.host}:${a.port}`;
      }
    } catch (e) {
      await showHost.close();
      for (const s of servers) s.forceShutdown();
      if (addresses.socket) await fsp.rm(addresses.socket, { force: true });
      await socketLock?.release();
      await registry.close();
      throw e;
    }
    showHost.failover.start();
    log.info('serving', { socket: addresses.socket, tcp: addresses.tcp, osc: addresses.osc, mediaRoots: roots.list, cacheDir: config.cacheDir });
    return new MediaServer(servers, service, registry, showHost, health, config, addresses, socketLock);
  }

  /** The show (clock, cues, cue list). */
  get show(): Show {
    return this.#showHost.show;
  }

  /** The server's open media (every file is opened through it: the HTTP routes use it as gRPC does). */
  get registry(): MediaRegistry {
    return this.#registry;
  }

  /** Show control over OSC, or null when the server runs without it. */
  get osc(): OscControl | null {
    return this.#showHost.osc;
  }

  /** The status GetStatus reports. */
  status(): ServerStatus {
    return this.#service.status();
  }

  /**
   * Stop: refuse new calls (UNAVAILABLE), let running streams finish for `graceMs` (default from config), then cancel
   * them; close media; remove the socket file. Idempotent: every call returns the same promise.
   */
  close(graceMs = this.#config.shutdownGraceMs): Promise<void> {
    this.#closing ??= (async () => {
      this.#health.setStatus('', 'NOT_SERVING');
      this.#health.setStatus(SERVICE_NAME, 'NOT_SERVING');
      this.#service.beginShutdown();
      // Show control stops first: no cue may start while the server drains.
      await this.#showHost.osc?.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn('shutdown grace period over: cancelling running streams', { streams: this.#service.activeCalls });
          this.#service.cancelAll();
          for (const s of this.#servers) s.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        let running = this.#servers.length;
        for (const s of this.#servers) {
          s.tryShutdown(() => {
            if (--running > 0) return;
            clearTimeout(timer);
            resolve();
          });
        }
      });
      await this.#showHost.close();
      await this.#registry.close();
      if (this.addresses.socket) await fsp.rm(this.addresses.socket, { force: true });
      await this.#socketLock?.release();
      log.info('stopped');
    })();
    return this.#closing;
  }
}
