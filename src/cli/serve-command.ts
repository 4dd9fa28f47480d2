/**
 * `cuemux serve`: run the media server until SIGTERM/SIGINT (drain, then close; a second signal forces the exit).
 * An entry point: configures logging from the server config.
 */
import { parseArgs } from 'node:util';
import { CuemuxError } from '../common/errors';
import { configureLogging } from '../common/log-setup';
import { getLogger } from '../common/logger';
import { MediaServer } from '../server/media-server';
import { ENV_NAMES, loadConfig, type ServerConfig } from '../server/server-config';
import { ExitCode, type ExitCodeValue } from './exit-codes';
import type { CliIo } from './cli-io';
import { cuemuxVersion } from '../common/version';

const log = getLogger('serve');

/** Usage text of `cuemux serve`. */
export const SERVE_USAGE = `Usage: cuemux serve [options]

  --socket PATH          Unix socket (default $XDG_RUNTIME_DIR/cuemux/cuemux.sock or /tmp/cuemux-UID/cuemux.sock; "none" for no socket)
  --listen HOST:PORT     also listen on TCP (default: no TCP; a bare PORT means 127.0.0.1:PORT)
  --media-root DIR       serve files under DIR (repeatable; default ./media)
  --cache-dir DIR        index cache for media in read-only folders
  --config FILE          JSON file with any of the settings below (relative paths are relative to the file)
  --max-clients N        concurrent ReadPackets/GetIndex streams (default 64)
  --max-watchers N       concurrent WatchClock/Follow calls (default 64)
  --max-open-media N     media files open at once (default 256)
  --max-batch-bytes N    largest batch a client may ask for (default 8388608)
  --batch-bytes N        batch size when the client does not ask (default 524288)
  --idle-close-ms N      close a media file N ms after its last user (default 30000)
  --shutdown-grace-ms N  on SIGTERM, let streams finish this long (default 5000)
  --log-level L, --log-format text|json, --log-file FILE   (default info, text on a terminal, stderr)

Show control (OSC over UDP, see README "Show control"):
  --osc-host HOST        address the OSC port binds to (default 127.0.0.1; 0.0.0.0 for show control on another machine)
  --osc-port N           OSC UDP port (default 53100; "off" for no OSC)
  --osc-reply-port N     send replies to this port on the sender's host (default: the sender's own port)
  --osc-allow CIDR[,CIDR...]  senders allowed to send OSC (repeatable; default 127.0.0.0/8,::1: this machine only);
                         e.g. --osc-allow 192.168.1.20/32 for a console on the LAN (with --osc-host 0.0.0.0)
  --osc-rate-messages N  OSC messages per second per sender (default 2000; over it datagrams are dropped)
  --osc-rate-bytes N     OSC bytes per second per sender (default 1048576)
  --osc-max-scheduled N  timed (bundled) OSC messages waiting at once (default 1024; 24 h ahead at most)
  --max-adhoc-cues N     cues defined over OSC (not in the cue list) loaded at once (default 64)
  --max-prefetch-bytes N prefetched packets held by all armed cues (default 268435456; beyond, no prefetch)
  --cue-list FILE        load this cue list at start and apply its edits as they are saved
  --timecode-rate R      show clock timecode rate: 23.976 24 25 29.97 29.97df 30 48 50 59.94 59.94df 60 (default 25)
  --lead-seconds S       Follow: send packets this far ahead of the clock (default 0.5)
  --prefetch-seconds S   read this much of a cue at its in-point when it is loaded (default 1)
  --chase-jump-seconds S, --chase-loss-ms N, --chase-loss-policy hold|freerun, --chase-freerun-ms N
                         external timecode chase (defaults 0.25, 250, hold, 2000)
  --state-file FILE      crash recovery: the show is saved here and resumed by a server started within 30 s of an
                         unclean stop (default SOCKET.show.json; "none" to disable)

Environment: ${Object.values(ENV_NAMES).join(', ')}, CUEMUX_CONFIG.
Precedence: flags > environment > config file > defaults.
`;

const FLAG_TO_KEY: Record<string, keyof ServerConfig> = {
  socket: 'socket', listen: 'listen', 'media-root': 'mediaRoots', 'cache-dir': 'cacheDir', 'max-clients': 'maxClients', 'max-watchers': 'maxWatchers',
  'max-open-media': 'maxOpenMedia', 'max-batch-bytes': 'maxBatchBytes', 'batch-bytes': 'defaultBatchBytes',
  'idle-close-ms': 'idleCloseMs', 'shutdown-grace-ms': 'shutdownGraceMs', 'log-level': 'logLevel', 'log-format': 'logFormat',
  'log-file': 'logFile', 'osc-host': 'oscHost', 'osc-port': 'oscPort', 'osc-reply-port': 'oscReplyPort', 'cue-list': 'cueList',
  'timecode-rate': 'timecodeRate', 'lead-seconds': 'leadSeconds', 'prefetch-seconds': 'prefetchSeconds',
  'chase-jump-seconds': 'chaseJumpSeconds', 'chase-loss-ms': 'chaseLossMs', 'chase-loss-policy': 'chaseLossPolicy',
  'chase-freerun-ms': 'chaseFreerunMs', 'state-file': 'stateFile', 'osc-allow': 'oscAllow', 'osc-rate-messages': 'oscRateMessages',
  'osc-rate-bytes': 'oscRateBytes', 'osc-max-scheduled': 'oscMaxScheduled', 'max-adhoc-cues': 'maxAdHocCues',
  'max-prefetch-bytes': 'maxPrefetchBytes',
};


/** Parse `cuemux serve` arguments into a config. */
export function serveConfig(args: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args, allowPositionals: false, strict: true,
      options: {
        ...Object.fromEntries(Object.keys(FLAG_TO_KEY).map((k) => [k, { type: 'string' as const, multiple: k === 'media-root' || k === 'osc-allow' }])),
        config: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new CuemuxError('INVALID_ARGUMENT', `${(e as Error).message}\n\n${SERVE_USAGE}`);
  }
  if (parsed.values.help === true) return 'help';
  const flags: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(FLAG_TO_KEY)) {
    const v = (parsed.values as Record<string, unknown>)[flag];
    if (v !== undefined) flags[key] = v;
  }
  if (typeof flags.listen === 'string' && /^\d+$/.test(flags.listen)) flags.listen = `127.0.0.1:${flags.listen}`;
  return loadConfig(flags, parsed.values.config, env);
}

/** Run `cuemux serve <args>` until a signal stops it. */
export async function runServeCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const config = serveConfig(args);
  if (config === 'help') {
    io.out(SERVE_USAGE);
    return ExitCode.OK;
  }
  const closeLogs = configureLogging({ level: config.logLevel, format: config.logFormat, file: config.logFile });
  try {
    const server = await MediaServer.start(config, cuemuxVersion());
    const a = server.addresses;
    io.out([
      `cuemux ${cuemuxVersion()} serving media under ${config.mediaRoots.join(', ')}`,
      ...(a.socket ? [`  Unix socket: unix://${a.socket}`] : []),
      ...(a.tcp ? [`  TCP:         ${a.tcp}`] : []),
      ...(a.osc ? [`  OSC (UDP):   ${a.osc}   e.g. oscsend ${a.osc.replace(/:(\d+)$/, ' $1')} /cuemux/status`] : []),
      'Connect:',
      ...(a.socket ? [`  cuemux status --socket ${a.socket}`, `  grpcurl -plaintext -unix ${a.socket} list`] : []),
      ...(a.tcp ? [`  grpcurl -plaintext ${a.tcp} list`] : []),
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
        server.close().then(resolve, (e: unknown) => {
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
