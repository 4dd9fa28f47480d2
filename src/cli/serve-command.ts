/**
 * `cuemux serve`: run the media server until SIGTERM/SIGINT (drain, then close; a second signal forces the exit).
 * An entry point: configures logging from the server config.
 */
import { configureLogging } from '../common/log-setup';
import { getLogger } from '../common/logger';
import type { FollowSource, MediaServer as MediaServerType } from '../server/media-server';
import type { MediaClient } from '../clients/media-client';
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

/** `--follow`: a client of the master (its TLS and token from --follow-tls-ca / --follow-token-file) and its feed. */
async function followMaster(config: ServerConfig): Promise<{ client: MediaClient; source: FollowSource }> {
  // Loaded only to follow, as the server itself (gRPC).
  const { loadClientCredentials, MediaClient } = await import('../clients/media-client');
  const { resilientWatchShow } = await import('../clients/watch-show');
  const address = config.follow as string;
  const unix = address.startsWith('unix:');
  const credentials = unix ? {} : loadClientCredentials({ caFile: config.followTlsCa, tokenFile: config.followTokenFile });
  const client = new MediaClient(address, credentials);
  const source: FollowSource = {
    states: (signal, onConnection) => resilientWatchShow(client, {
      onConnection: (connected, error) => {
        onConnection(connected);
        if (!connected) log.warn(`the master ${address} is not reachable: retrying`, { error: error?.message });
      },
    }, signal),
    report: (report) => client.reportFollower(report, { timeout: 2000 }),
    ping: (options) => client.ping(options),
  };
  return { client, source };
}

/** Run `cuemux serve <args>` until a signal stops it. */
export async function runServeCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const config = serveConfig(args);
  if (config === 'help') {
    io.out(serveUsage());
    return ExitCode.OK;
  }
  const closeLogs = configureLogging({ level: config.logLevel, format: config.logFormat, file: config.logFile });
  try {
    // Loaded only to serve: `serve --help` and a bad flag answer without loading FFmpeg and gRPC.
    const { MediaServer } = await import('../server/media-server');
    const master = config.follow === null ? null : await followMaster(config);
    let server: MediaServerType;
    try {
      server = await MediaServer.start(config, cuemuxVersion(), master === null ? {} : { followSource: master.source });
    } catch (e) {
      master?.client.close();
      throw e;
    }
    const a = server.addresses;
    io.out([
      `cuemux ${cuemuxVersion()} serving media under ${config.mediaRoots.join(', ')}`,
      ...(a.socket ? [`  Unix socket: unix://${a.socket}`] : []),
      ...(a.tcp ? [`  TCP:         ${a.tcp}`] : []),
      ...(config.follow !== null ? [`  Follower of: ${config.follow} (show control goes to the master)`] : []),
      ...(a.osc ? [`  OSC (UDP):   ${a.osc}   e.g. oscsend ${a.osc.replace(/:(\d+)$/, ' $1')} /cuemux/status`] : []),
      'Connect:',
      // Pasted as is: in a checkout `cuemux` is not on the PATH (npm start runs node bin/cuemux.js).
      ...(a.socket ? [`  ${cliCommand()} status --socket ${a.socket}`, `  grpcurl -plaintext -unix ${a.socket} list`] : []),
      ...(a.tcp ? tcpConnectLines(a.tcp, config) : []),
      '  players: proto/cuemux/v1/media_server.proto (service cuemux.v1.MediaServer)',
      'Stop with Ctrl-C (SIGINT) or SIGTERM.',
      '',
    ].join('\n'));
    await new Promise<void>((resolve) => {
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals): void => {
        signals++;
        if (signals > 1) {
          log.warn(`second ${sig}: exiting now`);
          // Flush the log (a file or a pipe) before exiting, but never let a stuck transport delay the exit.
          setTimeout(() => process.exit(ExitCode.FAILURE), 500).unref();
          void closeLogs().finally(() => process.exit(ExitCode.FAILURE));
          return;
        }
        log.info(`${sig}: draining and closing`);
        server.close().finally(() => master?.client.close()).then(resolve, (e: unknown) => {
          log.error('close failed', { error: String(e) });
          resolve();
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    return ExitCode.OK;
  } finally {
    await closeLogs();
  }
}
