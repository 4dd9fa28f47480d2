/**
 * `cuemux serve`: run the media server until SIGTERM/SIGINT (drain, then close; a second signal forces the exit).
 * An entry point: configures logging from the server config.
 */
import { configureLogging } from '../common/log-setup';
import { getLogger } from '../common/logger';
import type { MediaServer as MediaServerType, PeerLink } from '../server/media-server';
import type { MediaClient } from '../clients/media-client';
import type { HttpRoutes, HttpServer } from '../http/http-server';
import { loadConfig, type ServerConfig } from '../server/server-config';
import { ExitCode, type ExitCodeValue } from './exit-codes';
import type { CliIo } from './cli-io';
import { cuemuxVersion } from '../common/version';
import { cliCommand } from './invocation';
import { helpText, parseCommand } from './options';
import { SERVE, SERVE_OPTIONS } from './serve-options';

const log = getLogger('serve');

/** Usage text of `cuemux serve`, made from its option table. */
export function serveUsage(): string {
  return helpText(SERVE);
}

/** Parse `cuemux serve` arguments into a config (`'help'` for -h/--help). */
export function serveConfig(args: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig | 'help' {
  const parsed = parseCommand(SERVE, args);
  if (parsed === 'help') return 'help';
  const flags: Record<string, unknown> = {};
  for (const o of SERVE_OPTIONS) {
    if (o.key === undefined || !parsed.has(o.name)) continue;
    if (o.type === 'boolean') {
      flags[o.key] = parsed.flag(o.name);
      continue;
    }
    const raw = parsed.string(o.name);
    // Numbers are checked here, in the message style of every command; words such as "off" pass to the config.
    flags[o.key] = o.multiple === true ? parsed.strings(o.name) : o.number !== undefined && !(o.number.words ?? []).includes(raw ?? '') ? parsed.number(o.name) : raw;
  }
  if (typeof flags.listen === 'string' && /^\d+$/.test(flags.listen)) flags.listen = `127.0.0.1:${flags.listen}`;
  return loadConfig(flags, parsed.string('config'), env);
}

/** How to reach the TCP listener, as printed at start: with the TLS and token options it needs. */
function tcpConnectLines(tcp: string, config: ServerConfig): string[] {
  if (config.tlsCert === undefined) return [`  ${cliCommand()} status --target ${tcp}`, `  grpcurl -plaintext ${tcp} list`];
  const token = config.tokenFile === undefined ? '' : ` --token-file ${config.tokenFile}`;
  const header = config.tokenFile === undefined ? '' : ` -H "authorization: Bearer $(cat ${config.tokenFile})"`;
  return [`  ${cliCommand()} status --target ${tcp} --tls-ca CA.pem${token}   (CA.pem: the CA that signed ${config.tlsCert})`,
    `  grpcurl -cacert CA.pem${header} ${tcp} list`];
}

/**
 * How this server reaches other cuemux servers: the master's feed (`--follow`, several: the master among them;
 * `--backup-of`), and the failover's GetRole and ClaimMaster. One client per address (TLS and token from
 * --follow-tls-ca / --follow-token-file over TCP), made when first needed, closed with the server.
 */
async function peerLink(config: ServerConfig): Promise<{ peers: PeerLink; close: () => void }> {
  // Loaded only to serve, as the server itself (gRPC).
  const { loadClientCredentials, MediaClient: Client } = await import('../clients/media-client');
  const { resilientWatchShow } = await import('../clients/watch-show');
  const clients = new Map<string, MediaClient>();
  const client = (address: string): MediaClient => {
    let c = clients.get(address);
    if (c === undefined) {
      const credentials = address.startsWith('unix:') ? {} : loadClientCredentials({ caFile: config.followTlsCa, tokenFile: config.followTokenFile });
      c = new Client(address, credentials);
      clients.set(address, c);
    }
    return c;
  };
  // Credentials are checked at start (a bad file stops the start, naming it), not at the first failover.
  if (config.followTlsCa !== undefined || config.followTokenFile !== undefined) loadClientCredentials({ caFile: config.followTlsCa, tokenFile: config.followTokenFile });
  // A backup hears from its master three times per --takeover-ms (one late heartbeat is not a takeover). Any server can
  // become a backup (a master that stands down), so every feed asks for that (and at least the follower's 0.25 s).
  const heartbeatSeconds = Math.min(0.25, Math.max(0.01, config.takeoverMs / 3000));
  const peers: PeerLink = {
    source: (address) => {
      const targets = address.split(',').map(client);
      // The server the feed is on (several: the master among them), for Ping (clock quality) and reports.
      let current = 0;
      return {
        states: (signal, onConnection) => resilientWatchShow(targets.length === 1 ? targets[0] : targets, {
          heartbeatSeconds,
          onServer: (i) => { current = i; },
          onConnection: (connected, error) => {
            onConnection(connected);
            if (!connected) log.warn(`the master ${address} is not reachable: retrying`, { error: error?.message });
          },
        }, signal),
        report: (report) => targets[current].reportFollower(report, { timeout: 2000 }),
        ping: (options) => targets[current].ping(options),
      };
    },
    role: (address, timeoutMs) => client(address).getRole({ timeout: timeoutMs }),
    claim: (address, request, timeoutMs) => client(address).claimMaster(request, { timeout: timeoutMs }),
  };
  return { peers, close: () => { for (const c of clients.values()) c.close(); } };
}

/**
 * The HTTP listener of `server` when the config asks for one (--http), with every route set: the media and preview
 * routes, and any other set added to the list here.
 */
async function startHttpListener(server: MediaServerType, config: ServerConfig): Promise<HttpServer | null> {
  if (config.http === null) return null;
  // Loaded only with --http.
  const { startHttp } = await import('../http/http-server');
  return startHttp(server, config, [...await httpRouteSets()]);
}

/** The route sets of the HTTP listener (src/http): one import each, so a new set is one line here. */
async function httpRouteSets(): Promise<HttpRoutes[]> {
  const { mediaRoutes } = await import('../http/media-routes');
  const { previewRoutes } = await import('../http/preview-routes');
  const { registerOperatorRoutes } = await import('../http/operator-routes');
  return [mediaRoutes, previewRoutes, (app, ctx) => registerOperatorRoutes(app, ctx)];
}

/** Run `cuemux serve <args>` until a signal stops it. */
export async function runServeCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const config = serveConfig(args);
  if (config === 'help') {
    io.out(serveUsage());
    return ExitCode.OK;
  }
  const closeLogs = configureLogging({ level: config.logLevel, format: config.logFormat, file: config.logFile });
  // Listening from the very start: a signal that comes while the server starts (its OSC thread may already answer a
  // console) stops it once it is up, with the usual drain, instead of killing it half-started.
  const stopSignal = stopSignals(closeLogs);
  try {
    // Loaded only to serve: `serve --help` and a bad flag answer without loading FFmpeg and gRPC.
    const { MediaServer } = await import('../server/media-server');
    const link = await peerLink(config);
    let server: MediaServerType;
    let http: HttpServer | null;
    try {
      server = await MediaServer.start(config, cuemuxVersion(), { peers: link.peers });
    } catch (e) {
      link.close();
      throw e;
    }
    try {
      http = await startHttpListener(server, config);
    } catch (e) {
      await server.close(0);
      link.close();
      throw e;
    }
    const a = server.addresses;
    io.out([
      `cuemux ${cuemuxVersion()} serving media under ${config.mediaRoots.join(', ')}`,
      ...(a.socket ? [`  Unix socket: unix://${a.socket}`] : []),
      ...(a.tcp ? [`  TCP:         ${a.tcp}`] : []),
      ...(config.follow !== null ? [`  Follower of: ${config.follow} (show control goes to the master)`] : []),
      ...(config.backupOf !== null ? [`  Backup of:   ${config.backupOf} (takes over when it is silent for ${config.takeoverMs} ms; show control goes to the master)`] : []),
      ...(http !== null ? [`  HTTP:        http://${http.address}/   e.g. curl -r 0-99 http://${http.address}/media/FILE`] : []),
      ...(a.osc ? [`  OSC (UDP):   ${a.osc}   e.g. oscsend ${a.osc.replace(/:(\d+)$/, ' $1')} /cuemux/status`] : []),
      'Connect:',
      // Pasted as is: in a checkout `cuemux` is not on the PATH (npm start runs node bin/cuemux.js).
      ...(a.socket ? [`  ${cliCommand()} status --socket ${a.socket}`, `  grpcurl -plaintext -unix ${a.socket} list`] : []),
      ...(a.tcp ? tcpConnectLines(a.tcp, config) : []),
      '  players: proto/cuemux/v1/media_server.proto (service cuemux.v1.MediaServer)',
      'Stop with Ctrl-C (SIGINT) or SIGTERM.',
      '',
    ].join('\n'));
    const sig = await stopSignal.first;
    log.info(`${sig}: draining and closing`);
    // HTTP first: its responses read media that the server's close closes.
    try {
      await (http?.close(config.shutdownGraceMs) ?? Promise.resolve()).finally(() => server.close()).finally(() => link.close());
    } catch (e) {
      log.error('close failed', { error: String(e) });
    }
    return ExitCode.OK;
  } finally {
    stopSignal.dispose();
    await closeLogs();
  }
}

/**
 * SIGTERM and SIGINT for `serve`, handled from the call on: `first` resolves with the first signal (the caller then
 * drains and closes); a second signal exits at once with FAILURE, after flushing the logs (at most 500 ms).
 */
function stopSignals(closeLogs: () => Promise<void>): { first: Promise<NodeJS.Signals>; dispose: () => void } {
  let signals = 0;
  let resolveFirst: (sig: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => { resolveFirst = resolve; });
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn(`second ${sig}: exiting now`);
      // Flush the log (a file or a pipe) before exiting, but never let a stuck transport delay the exit.
      setTimeout(() => process.exit(ExitCode.FAILURE), 500).unref();
      void closeLogs().finally(() => process.exit(ExitCode.FAILURE));
      return;
    }
    resolveFirst(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    first,
    dispose: () => {
      // A second signal during the drain still exits at once: removed only when serve returns.
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
