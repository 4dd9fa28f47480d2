/**
 * The option table of `cuemux serve`: its parser and `--help` are made from it. Each option names the server setting
 * it sets (src/server/server-config.ts); the defaults and environment variables shown come from there, so they cannot
 * drift. Numeric flags are checked here by the one CLI number parser (same message style as every command);
 * server-config checks the merged settings again (config file, environment), with its own messages.
 */
import { defaultConfig, ENV_NAMES, type ServerConfig } from '../server/server-config';
import type { CommandSpec, NumberRule, OptionSpec } from './options';

/** An option of `cuemux serve` and the server setting it sets. */
export interface ServeOptionSpec extends OptionSpec {
  /** The ServerConfig key (config file name; environment variable from ENV_NAMES). */
  key?: keyof ServerConfig;
}

const COUNT: NumberRule = { kind: 'integer', min: 1 };
const BYTES: NumberRule = { kind: 'integer', min: 1, unit: 'bytes' };
const MS_POSITIVE: NumberRule = { kind: 'integer', min: 1, unit: 'ms' };
const MS: NumberRule = { kind: 'integer', min: 0, unit: 'ms' };

/** The default of setting `key` as the help shows it. */
function defaultOf(key: keyof ServerConfig): () => string {
  return () => {
    const v = defaultConfig()[key];
    if (v === null || v === undefined) return 'none';
    if (v === false) return 'off';
    if (Array.isArray(v)) return v.join(',');
    return String(v);
  };
}

function setting(key: keyof ServerConfig, o: Omit<ServeOptionSpec, 'key'>): ServeOptionSpec {
  return { default: defaultOf(key), ...o, key, help: `${o.help} (env ${ENV_NAMES[key]})` };
}

const SHOW = 'Show control (OSC over UDP, see README "Show control")';
const FOLLOW = 'Several machines (see README "Several machines")';
const HTTP = 'HTTP: media, preview and the operator page (see README "HTTP")';

/** Every option of `cuemux serve`, in help order. */
export const SERVE_OPTIONS: readonly ServeOptionSpec[] = [
  setting('socket', { name: 'socket', arg: 'PATH', help: 'Unix socket to listen on; "none" for no socket' }),
  setting('listen', { name: 'listen', arg: 'HOST:PORT', help: 'also listen on TCP (a bare PORT means 127.0.0.1:PORT); other than loopback it needs --tls-cert, --tls-key and --token-file', default: 'no TCP' }),
  setting('tlsCert', { name: 'tls-cert', arg: 'FILE', help: 'TLS on TCP: the PEM certificate (chain) the server presents, with --tls-key', default: 'none' }),
  setting('tlsKey', { name: 'tls-key', arg: 'FILE', help: 'the PEM private key (unencrypted) of --tls-cert', default: 'none' }),
  setting('tlsClientCa', { name: 'tls-client-ca', arg: 'FILE', help: 'mutual TLS: TCP clients must present a certificate signed by this PEM CA', default: 'none' }),
  setting('tokenFile', { name: 'token-file', arg: 'FILE', help: 'every call over TCP must carry "authorization: Bearer TOKEN" with the token in FILE (needs TLS; the Unix socket needs none)', default: 'none' }),
  setting('insecureListen', { name: 'insecure-listen', type: 'boolean', help: 'accept a non-loopback --listen without TLS and a token: anyone who reaches the port drives the show (closed show networks only; warned at start)', default: undefined }),
  setting('mediaRoots', { name: 'media-root', arg: 'DIR', multiple: true, help: 'serve files under DIR', default: () => `${defaultConfig().mediaRoots.join(',')} (./media)` }),
  setting('cacheDir', { name: 'cache-dir', arg: 'DIR', help: 'index cache for media in read-only folders' }),
  { name: 'config', arg: 'FILE', help: 'JSON file with any of these settings by their config name, e.g. {"maxClients": 8}; relative paths are relative to the file (env CUEMUX_CONFIG)' },
  setting('maxClients', { name: 'max-clients', arg: 'N', help: 'concurrent ReadPackets/GetIndex streams', number: COUNT }),
  setting('maxWatchers', { name: 'max-watchers', arg: 'N', help: 'concurrent WatchClock/Follow calls', number: COUNT }),
  setting('maxOpenMedia', { name: 'max-open-media', arg: 'N', help: 'media files open at once', number: COUNT }),
  setting('maxBatchBytes', { name: 'max-batch-bytes', arg: 'N', help: 'largest packet batch a client may ask for', number: BYTES }),
  setting('defaultBatchBytes', { name: 'batch-bytes', arg: 'N', help: 'packet batch size when the client does not ask', number: BYTES }),
  setting('maxStreamMemory', { name: 'max-stream-memory', arg: 'N', help: 'buffer memory all packet streams together may pin (each reserves 3 batches; one that does not fit is refused)', number: BYTES }),
  setting('idleCloseMs', { name: 'idle-close-ms', arg: 'N', help: 'close a media file this long after its last user', number: MS }),
  setting('growingWaitMs', { name: 'growing-wait-ms', arg: 'N', help: 'a file being written (copied, rendered) is indexed as it grows and readers wait at its written end; it counts as complete once still this long', number: MS_POSITIVE }),
  setting('shutdownGraceMs', { name: 'shutdown-grace-ms', arg: 'N', help: 'on SIGTERM, let streams finish this long', number: MS }),
  setting('logLevel', { name: 'log-level', arg: 'L', help: 'error, warn, info or debug' }),
  setting('logFormat', { name: 'log-format', arg: 'F', help: 'text or json', default: 'text on a terminal, else json' }),
  setting('logFile', { name: 'log-file', arg: 'FILE', help: 'write the log to FILE', default: 'stderr' }),
  setting('oscHost', { name: 'osc-host', arg: 'HOST', group: SHOW, help: 'address the OSC port binds to (0.0.0.0 for show control from another machine)' }),
  setting('oscPort', { name: 'osc-port', arg: 'N', group: SHOW, help: 'OSC UDP port (0 = any free port)', number: { kind: 'integer', min: 0, max: 65535, words: ['off', 'none'] } }),
  setting('oscReplyPort', {
    name: 'osc-reply-port', arg: 'N', group: SHOW, help: "send replies to this port on the sender's host", default: "the sender's own port",
    number: { kind: 'integer', min: 1, max: 65535, words: ['off', 'none'] },
  }),
  setting('oscAllow', {
    name: 'osc-allow', arg: 'CIDR[,CIDR...]', multiple: true, group: SHOW, default: '127.0.0.0/8,::1 (this machine only)',
    help: 'senders allowed to send OSC, e.g. --osc-allow 192.168.1.20/32 for a console on the LAN (with --osc-host 0.0.0.0)',
  }),
  setting('oscSecretFile', {
    name: 'osc-secret-file', arg: 'FILE', group: SHOW, default: 'none',
    help: 'shared secret: senders not on this machine must first send /cuemux/connect SECRET (as QLab\'s passcode)',
  }),
  setting('oscConnectIdleMs', { name: 'osc-connect-idle-ms', arg: 'N', group: SHOW, help: 'a /cuemux/connect lasts this long after the sender\'s last message', number: MS_POSITIVE }),
  setting('oscRateMessages', { name: 'osc-rate-messages', arg: 'N', group: SHOW, help: 'OSC messages per second per sender (over it datagrams are dropped)', number: COUNT }),
  setting('oscRateBytes', { name: 'osc-rate-bytes', arg: 'N', group: SHOW, help: 'OSC bytes per second per sender', number: BYTES }),
  setting('oscMaxScheduled', { name: 'osc-max-scheduled', arg: 'N', group: SHOW, help: 'timed (bundled) OSC messages waiting at once (24 h ahead at most)', number: COUNT }),
  setting('oscPriority', {
    name: 'osc-priority', arg: 'N', group: SHOW, number: { kind: 'integer', min: 0, max: 99 },
    help: 'SCHED_FIFO priority of the OSC thread, so a console is answered at once on a busy machine (0: normal scheduling; not permitted: a warning, normal scheduling)',
  }),
  setting('maxAdHocCues', { name: 'max-adhoc-cues', arg: 'N', group: SHOW, help: 'cues defined over OSC (not in the cue list) loaded at once', number: COUNT }),
  setting('maxPrefetchBytes', { name: 'max-prefetch-bytes', arg: 'N', group: SHOW, help: 'prefetched packets held by all armed cues (beyond, no prefetch)', number: BYTES }),
  setting('cueList', { name: 'cue-list', arg: 'FILE', group: SHOW, help: 'load this cue list at start and apply its edits as they are saved', default: 'none' }),
  setting('timecodeRate', { name: 'timecode-rate', arg: 'R', group: SHOW, help: 'show clock timecode rate: 23.976 24 25 29.97 29.97df 30 48 50 59.94 59.94df 60' }),
  setting('leadSeconds', { name: 'lead-seconds', arg: 'S', group: SHOW, help: 'Follow: send packets this far ahead of the clock', number: { kind: 'number', min: 0, minExclusive: true, max: 10, unit: 'seconds' } }),
  setting('prefetchSeconds', { name: 'prefetch-seconds', arg: 'S', group: SHOW, help: "read this much of a cue at its in-point when it is loaded", number: { kind: 'number', min: 0, max: 30, unit: 'seconds' } }),
  setting('chaseJumpSeconds', {
    name: 'chase-jump-seconds', arg: 'S', group: SHOW, help: 'external timecode chase: a difference above this is a jump',
    number: { kind: 'number', min: 0, minExclusive: true, max: 30, unit: 'seconds' },
  }),
  setting('chaseLossMs', { name: 'chase-loss-ms', arg: 'N', group: SHOW, help: 'chase: no timecode for this long means it is lost', number: MS_POSITIVE }),
  setting('chaseLossPolicy', { name: 'chase-loss-policy', arg: 'P', group: SHOW, help: 'chase: on loss, hold (stop where it is) or freerun (run on, then stop)' }),
  setting('chaseFreerunMs', { name: 'chase-freerun-ms', arg: 'N', group: SHOW, help: 'chase: how long freerun runs on after a loss', number: MS_POSITIVE }),
  setting('stateFile', {
    name: 'state-file', arg: 'FILE', group: SHOW, default: 'SOCKET.show.json',
    help: 'crash recovery: the show is saved here and resumed by a server started within 30 s of an unclean stop; "none" to disable',
  }),
  setting('follow', {
    name: 'follow', arg: 'HOST:PORT', group: FOLLOW, default: 'none (a server of its own)',
    help: 'follower server: mirror the show (clock, cues, cue list) of the master cuemux at HOST:PORT (its --listen) or unix:PATH, playing '
      + 'this server\'s own copies of the media (same relative paths under --media-root); show control goes to the master. A main and its '
      + 'backup: both, comma-separated (the follower moves to whichever is master)',
  }),
  setting('backupOf', {
    name: 'backup-of', arg: 'HOST:PORT', group: FOLLOW, default: 'none (not a backup)',
    help: 'backup server: mirror the main cuemux at HOST:PORT as --follow does, and take over as the master (clock and cues go on, '
      + 'show control and players come here) when the main has been silent for --takeover-ms',
  }),
  setting('takeoverMs', { name: 'takeover-ms', arg: 'N', group: FOLLOW, help: 'with --backup-of: take over when the main has sent nothing for this long', number: MS_POSITIVE }),
  setting('followTlsCa', { name: 'follow-tls-ca', arg: 'FILE', group: FOLLOW, help: 'with --follow/--backup-of over TCP, and for joining a newer master after a failover: TLS, trusting this CA (PEM) for the other server\'s --tls-cert', default: 'none' }),
  setting('followTokenFile', { name: 'follow-token-file', arg: 'FILE', group: FOLLOW, help: 'with --follow/--backup-of over TCP, and for joining a newer master after a failover: the bearer token of the other server\'s --token-file (needs TLS)', default: 'none' }),
  setting('maxClockOffsetMs', {
    name: 'max-clock-offset-ms', arg: 'MS', group: FOLLOW, number: { kind: 'number', min: 0, minExclusive: true, max: 60_000, unit: 'ms' },
    help: 'with --follow: the follower measures its wall-clock offset to the master (Ping, best of 8, every 5 s); beyond this it says loudly that the clocks are not disciplined',
  }),
  setting('clockOffsetPolicy', {
    name: 'clock-offset-policy', arg: 'P', group: FOLLOW,
    help: 'with --follow, beyond --max-clock-offset-ms: warn (play on shifted), correct (map the master\'s clock by the measured offset) or refuse (play no cue)',
  }),
  setting('http', {
    name: 'http', arg: 'HOST:PORT', group: HTTP, default: 'no HTTP',
    help: 'serve GET /media/PATH (byte ranges), /preview/PATH (fragmented MP4) and the operator page on HOST:PORT (a bare PORT means '
      + '127.0.0.1:PORT); other than loopback it needs --http-allow and --token-file',
  }),
  setting('httpAllow', {
    name: 'http-allow', arg: 'CIDR[,CIDR...]', multiple: true, group: HTTP, default: '127.0.0.0/8,::1 (this machine only)',
    help: 'HTTP clients allowed besides this machine; they must send "Authorization: Bearer TOKEN" (the token of --token-file)',
  }),
];

/** `cuemux serve`. */
export const SERVE: CommandSpec = {
  command: 'serve', synopsis: '[options]',
  summary: 'Run the media server until SIGTERM/SIGINT (it drains, then closes; a second signal forces the exit).',
  options: SERVE_OPTIONS,
  footer: `Environment: ${Object.values(ENV_NAMES).join(', ')}, CUEMUX_CONFIG.
Precedence: flags > environment > config file > defaults.`,
};
