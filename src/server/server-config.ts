/**
 * Server settings: embedded defaults, then a JSON config file, then CUEMUX_* environment variables, then flags.
 * Every setting is documented in README.md ("cuemux serve").
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CuemuxError, errorMessage } from '../common/errors';
import type { LogLevel } from '../common/logger';
import { DEFAULT_GROWING_WAIT_MS } from '../index-store/growing-index';
import { defaultCacheDir } from '../index-store/index-location';
import { parseTimecodeRate } from '../show/timecode';
import { DEFAULT_MAX_ADHOC_CUES, DEFAULT_MAX_PREFETCH_BYTES } from '../show/show';
import { AllowList, isLoopbackHost, parseAllowList } from './osc-access';
import { DEFAULT_OSC_PRIORITY } from './osc-priority';
import { DEFAULT_OSC_BUDGETS } from './osc-endpoint';
import { CLOCK_OFFSET_POLICIES, type ClockOffsetPolicy } from './clock-quality';

/** Everything `cuemux serve` can be told. */
export interface ServerConfig {
  /** Unix socket path; null for none. Default `$XDG_RUNTIME_DIR/cuemux/cuemux.sock` (else the OS temp folder). */
  socket: string | null;
  /**
   * TCP `HOST:PORT` (port 0 = any free port); null (default) for no TCP. A host other than loopback (127.0.0.0/8,
   * ::1, localhost) needs {@link tlsCert}, {@link tlsKey} and {@link tokenFile}, or {@link insecureListen}.
   */
  listen: string | null;
  /** PEM certificate (chain) the TCP listener presents; with {@link tlsKey} it turns TLS on (default none). */
  tlsCert: string | undefined;
  /** PEM private key (unencrypted) of {@link tlsCert} (default none). */
  tlsKey: string | undefined;
  /** PEM CA certificate(s) of the clients: TCP clients must present a certificate it signed (mutual TLS; default none). */
  tlsClientCa: string | undefined;
  /** File holding the bearer token every call over TCP must carry (needs TLS; default none). The Unix socket needs none. */
  tokenFile: string | undefined;
  /**
   * Accept `--listen` on a non-loopback address without TLS and a token (default false): the show API is then open,
   * unencrypted, to anyone who can reach the port. Logged as a warning at every start.
   */
  insecureListen: boolean;
  /** Folders whose files may be served. Default `./media`. */
  mediaRoots: string[];
  /** Index cache folder for media in read-only folders. */
  cacheDir: string;
  /** Concurrent ReadPackets/GetIndex streams (default 64). */
  maxClients: number;
  /** Concurrent WatchClock/Follow calls, a limit of their own (default 64). */
  maxWatchers: number;
  /** Media files open at once (default 256). */
  maxOpenMedia: number;
  /** Largest batch a client may ask for, in bytes (default 2 MiB). */
  maxBatchBytes: number;
  /** Batch size when the client does not ask, in bytes (default 512 KiB). */
  defaultBatchBytes: number;
  /**
   * Message-buffer memory all ReadPackets/Follow calls together may pin, in bytes (default 128 MiB): each call
   * reserves three batches plus 4 KiB each when it starts, and one that does not fit is refused (RESOURCE_EXHAUSTED).
   */
  maxStreamMemory: number;
  /** Close a media file this long after its last user went away, in ms (default 30000). */
  idleCloseMs: number;
  /**
   * Growing media (files still being copied or rendered), in ms (default 5000): a file without a fresh index that
   * changes within this long is indexed as it grows, readers at its written end wait for more, and it counts as
   * complete once it has not changed for this long (then its index is completed and written as a normal `.idx`).
   */
  growingWaitMs: number;
  /** How long to let streams finish on SIGTERM before cancelling them, in ms (default 5000). */
  shutdownGraceMs: number;
  /** Log level (default info). */
  logLevel: LogLevel;
  /** Log format: text on a TTY, json otherwise (default). */
  logFormat: 'text' | 'json' | undefined;
  /** Log file (default stderr). */
  logFile: string | undefined;
  /** Address the OSC (UDP) show-control port binds to (default 127.0.0.1: only this machine may drive the show). */
  oscHost: string;
  /** OSC UDP port (default 53100; 0 = any free port); null ("off") for no OSC. */
  oscPort: number | null;
  /** Send OSC replies to this port on the sender's host instead of the sender's own port (default null). */
  oscReplyPort: number | null;
  /** Sender networks (CIDR) allowed to send OSC; null (default) = loopback only (127.0.0.0/8, ::1). */
  oscAllow: string[] | null;
  /**
   * File holding the OSC shared secret (default none): a sender that is not on this machine must first send
   * `/cuemux/connect <secret>` (QLab's passcode); loopback senders never need it.
   */
  oscSecretFile: string | undefined;
  /** An OSC connection (`/cuemux/connect`) lasts this long after the sender's last message, in ms (default 28800000: 8 h). */
  oscConnectIdleMs: number;
  /** OSC messages per second per sender (token bucket, one second of burst; default 2000). */
  oscRateMessages: number;
  /** OSC datagram bytes per second per sender (token bucket, one second of burst; default 1048576). */
  oscRateBytes: number;
  /** Most OSC messages waiting for their bundle time (default 1024). */
  oscMaxScheduled: number;
  /**
   * SCHED_FIFO priority of the OSC thread, 0..99 (default 5; 0: normal scheduling). Not permitted (no CAP_SYS_NICE,
   * no LimitRTPRIO): a warning, and the thread runs at normal priority.
   */
  oscPriority: number;
  /** Most ad-hoc cues (defined over OSC, not in the cue list) loaded at once (default 64). */
  maxAdHocCues: number;
  /** Most bytes of prefetched packets held by all armed cues (default 268435456); beyond, a cue loads without one. */
  maxPrefetchBytes: number;
  /** Timecode rate of the show clock (default "25"; e.g. "29.97df"). */
  timecodeRate: string;
  /** Follow lead window when a player sets none, in seconds (default 0.5). */
  leadSeconds: number;
  /** Packets read ahead at a cue's in-point when it is loaded, in seconds (default 1). */
  prefetchSeconds: number;
  /** Cue list file loaded at start and watched for edits (default none). */
  cueList: string | undefined;
  /** Chasing external timecode: a difference above this is a jump, in seconds (default 0.25). */
  chaseJumpSeconds: number;
  /** Chasing: no timecode for this long means it is lost, in ms (default 250). */
  chaseLossMs: number;
  /** Chasing: on loss, `hold` (stop where it is) or `freerun` (run on for chaseFreerunMs, then stop). Default hold. */
  chaseLossPolicy: 'hold' | 'freerun';
  /** Chasing: how long `freerun` runs on after a loss, in ms (default 2000). */
  chaseFreerunMs: number;
  /**
   * Show state file for crash recovery; undefined (default) = `<socket>.show.json` beside the socket (none without a
   * socket); null ("none") = no crash recovery.
   */
  stateFile: string | null | undefined;
  /**
   * Follower server: mirror the show of the master cuemux at `HOST:PORT` (its --listen) or `unix:PATH` (its socket),
   * playing this server's own media; show control then goes to the master only. Several, comma-separated (a main and
   * its backup): the one that is master (GetRole), moving when it changes. Null (default): a server of its own.
   */
  follow: string | null;
  /**
   * Backup server (main/backup failover): mirror the show of the main at `HOST:PORT` (its --listen) or `unix:PATH`, as
   * a follower does, and take over as the master when the main has sent nothing for {@link takeoverMs}. Its TLS and
   * token are --follow-tls-ca / --follow-token-file. Null (default): not a backup.
   */
  backupOf: string | null;
  /** With {@link backupOf}: take over when the main has been silent this long, in ms (default 300). */
  takeoverMs: number;
  /** With {@link follow} over TCP: TLS, trusting this PEM CA for the master's --tls-cert (default none: plaintext, or the system's CAs with a token). */
  followTlsCa: string | undefined;
  /** With {@link follow} over TCP: the master's bearer token (its --token-file) (default none). */
  followTokenFile: string | undefined;
  /** With {@link follow}: the wall clocks of follower and master may differ by this much, in ms (default 1; fractions allowed). */
  maxClockOffsetMs: number;
  /**
   * With {@link follow}: beyond {@link maxClockOffsetMs}, `warn` (play on shifted), `correct` (default: map the
   * master's clock by the measured offset) or `refuse` (play no cue). See src/server/clock-quality.ts.
   */
  clockOffsetPolicy: ClockOffsetPolicy;
  /**
   * HTTP (`/media`, `/preview`, the operator page) on `HOST:PORT` (port 0 = any free port); null (default) for none.
   * A host other than loopback needs {@link httpAllow} naming who may connect and {@link tokenFile} (the bearer token
   * those clients must send); loopback clients need neither.
   */
  http: string | null;
  /** HTTP clients (CIDR) allowed besides this machine; null (default) = loopback only (127.0.0.0/8, ::1). */
  httpAllow: string[] | null;
}

/**
 * The default Unix socket: $XDG_RUNTIME_DIR/cuemux/cuemux.sock, else <tmp>/cuemux-<uid>/cuemux.sock (a folder per
 * user, so nobody else's folder in /tmp can hold our socket).
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR)) return path.join(env.XDG_RUNTIME_DIR, 'cuemux', 'cuemux.sock');
  return path.join(os.tmpdir(), `cuemux-${process.getuid?.() ?? 'user'}`, 'cuemux.sock');
}

/** The embedded defaults. */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  return {
    socket: defaultSocketPath(env),
    listen: null,
    tlsCert: undefined,
    tlsKey: undefined,
    tlsClientCa: undefined,
    tokenFile: undefined,
    insecureListen: false,
    mediaRoots: [path.resolve('media')],
    cacheDir: defaultCacheDir(env),
    maxClients: 64,
    maxWatchers: 64,
    maxOpenMedia: 256,
    // 2 MiB (was 8): a stalled client pins about three batches plus ~6 MB of HTTP/2 buffers (measured: 16 stalled
    // clients at the ceiling grew the server by 488 MB at 8 MiB, 193 MB at 2 MiB); a larger single packet still goes alone.
    maxBatchBytes: 2 << 20,
    // Memory and throughput: a call holds up to three batches (npm run bench:serve measured 512 KiB against 1 MiB).
    defaultBatchBytes: 512 << 10,
    maxStreamMemory: 128 << 20,
    idleCloseMs: 30_000,
    growingWaitMs: DEFAULT_GROWING_WAIT_MS,
    shutdownGraceMs: 5_000,
    logLevel: 'info',
    logFormat: undefined,
    logFile: undefined,
    oscHost: '127.0.0.1',
    oscPort: DEFAULT_OSC_PORT,
    oscReplyPort: null,
    oscAllow: null,
    oscSecretFile: undefined,
    // A show day: a console idle through an interval must not find its GO refused. A console restarted (or a server
    // restarted) connects again; senders that cannot, send /cuemux/connect in the same bundle as each command.
    oscConnectIdleMs: 8 * 3600 * 1000,
    oscRateMessages: DEFAULT_OSC_BUDGETS.messagesPerSecond,
    oscRateBytes: DEFAULT_OSC_BUDGETS.bytesPerSecond,
    oscMaxScheduled: 1024,
    oscPriority: DEFAULT_OSC_PRIORITY,
    maxAdHocCues: DEFAULT_MAX_ADHOC_CUES,
    maxPrefetchBytes: DEFAULT_MAX_PREFETCH_BYTES,
    timecodeRate: '25',
    leadSeconds: 0.5,
    prefetchSeconds: 1,
    cueList: undefined,
    chaseJumpSeconds: 0.25,
    chaseLossMs: 250,
    chaseLossPolicy: 'hold',
    chaseFreerunMs: 2000,
    stateFile: undefined,
    follow: null,
    backupOf: null,
    takeoverMs: 300,
    followTlsCa: undefined,
    followTokenFile: undefined,
    maxClockOffsetMs: 1,
    // correct: a show runs on, on the master's timeline as measured (± half a LAN round trip, ~0.1 ms), rather than
    // dark (refuse) or visibly out of step (warn); the log still says loudly that the clocks need chrony or PTP.
    clockOffsetPolicy: 'correct',
    http: null,
    httpAllow: null,
  };
}

/** True for `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`: where another cuemux server is reached. */
function isServerAddress(v: string): boolean {
  return /^unix:.+/.test(v) || /^[\w.-]+:\d{1,5}$/.test(v) || /^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(v);
}

/** The default OSC port: next to QLab's 53000, so show-control presets that talk to QLab need only a new port. */
export const DEFAULT_OSC_PORT = 53100;

type Partialish = { [K in keyof ServerConfig]?: unknown };

const NUMERIC: Array<keyof ServerConfig> = ['maxClients', 'maxWatchers', 'maxOpenMedia', 'maxBatchBytes', 'defaultBatchBytes', 'maxStreamMemory', 'idleCloseMs', 'growingWaitMs', 'shutdownGraceMs',
  'chaseLossMs', 'chaseFreerunMs', 'oscRateMessages', 'oscRateBytes', 'oscMaxScheduled', 'maxAdHocCues', 'maxPrefetchBytes', 'oscConnectIdleMs', 'takeoverMs'];
/** Settings that are file paths (resolved against the config file's folder or the working directory). */
const FILES: Array<keyof ServerConfig> = ['cacheDir', 'cueList', 'tlsCert', 'tlsKey', 'tlsClientCa', 'tokenFile', 'oscSecretFile', 'followTlsCa', 'followTokenFile'];
/** Settings in seconds (positive numbers, fractions allowed). */
const SECONDS: Array<keyof ServerConfig> = ['leadSeconds', 'prefetchSeconds', 'chaseJumpSeconds'];
const PORTS: Array<keyof ServerConfig> = ['oscPort', 'oscReplyPort'];

/** Environment variable for each setting. */
export const ENV_NAMES: Record<keyof ServerConfig, string> = {
  socket: 'CUEMUX_SOCKET', listen: 'CUEMUX_LISTEN', mediaRoots: 'CUEMUX_MEDIA_ROOTS', cacheDir: 'CUEMUX_CACHE_DIR',
  maxClients: 'CUEMUX_MAX_CLIENTS', maxWatchers: 'CUEMUX_MAX_WATCHERS', maxOpenMedia: 'CUEMUX_MAX_OPEN_MEDIA', maxBatchBytes: 'CUEMUX_MAX_BATCH_BYTES',
  defaultBatchBytes: 'CUEMUX_BATCH_BYTES', maxStreamMemory: 'CUEMUX_MAX_STREAM_MEMORY', idleCloseMs: 'CUEMUX_IDLE_CLOSE_MS', growingWaitMs: 'CUEMUX_GROWING_WAIT_MS', shutdownGraceMs: 'CUEMUX_SHUTDOWN_GRACE_MS',
  logLevel: 'CUEMUX_LOG_LEVEL', logFormat: 'CUEMUX_LOG_FORMAT', logFile: 'CUEMUX_LOG_FILE',
  oscHost: 'CUEMUX_OSC_HOST', oscPort: 'CUEMUX_OSC_PORT', oscReplyPort: 'CUEMUX_OSC_REPLY_PORT', oscAllow: 'CUEMUX_OSC_ALLOW',
  oscRateMessages: 'CUEMUX_OSC_RATE_MESSAGES', oscRateBytes: 'CUEMUX_OSC_RATE_BYTES', oscMaxScheduled: 'CUEMUX_OSC_MAX_SCHEDULED', oscPriority: 'CUEMUX_OSC_PRIORITY',
  maxAdHocCues: 'CUEMUX_MAX_ADHOC_CUES', maxPrefetchBytes: 'CUEMUX_MAX_PREFETCH_BYTES', timecodeRate: 'CUEMUX_TIMECODE_RATE',
  leadSeconds: 'CUEMUX_LEAD_SECONDS', prefetchSeconds: 'CUEMUX_PREFETCH_SECONDS', cueList: 'CUEMUX_CUE_LIST',
  chaseJumpSeconds: 'CUEMUX_CHASE_JUMP_SECONDS', chaseLossMs: 'CUEMUX_CHASE_LOSS_MS', chaseLossPolicy: 'CUEMUX_CHASE_LOSS_POLICY',
  chaseFreerunMs: 'CUEMUX_CHASE_FREERUN_MS', stateFile: 'CUEMUX_STATE_FILE',
  // CUEMUX_TOKEN_FILE is also what the client commands read: one file serves both ends on one machine.
  tlsCert: 'CUEMUX_TLS_CERT', tlsKey: 'CUEMUX_TLS_KEY', tlsClientCa: 'CUEMUX_TLS_CLIENT_CA', tokenFile: 'CUEMUX_TOKEN_FILE',
  insecureListen: 'CUEMUX_INSECURE_LISTEN', oscSecretFile: 'CUEMUX_OSC_SECRET_FILE', oscConnectIdleMs: 'CUEMUX_OSC_CONNECT_IDLE_MS',
  follow: 'CUEMUX_FOLLOW', backupOf: 'CUEMUX_BACKUP_OF', takeoverMs: 'CUEMUX_TAKEOVER_MS', followTlsCa: 'CUEMUX_FOLLOW_TLS_CA', followTokenFile: 'CUEMUX_FOLLOW_TOKEN_FILE',
  maxClockOffsetMs: 'CUEMUX_MAX_CLOCK_OFFSET_MS', clockOffsetPolicy: 'CUEMUX_CLOCK_OFFSET_POLICY',
  http: 'CUEMUX_HTTP', httpAllow: 'CUEMUX_HTTP_ALLOW',
};

function fromEnv(env: NodeJS.ProcessEnv): Partialish {
  const out: Partialish = {};
  for (const [key, name] of Object.entries(ENV_NAMES) as Array<[keyof ServerConfig, string]>) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    out[key] = key === 'mediaRoots' ? v.split(path.delimiter).filter(Boolean) : v;
  }
  return out;
}

/** Validate and merge layers (later wins) into a config; `where` names each layer in error messages. */
export function mergeConfig(base: ServerConfig, layers: Array<{ where: string; values: Partialish }>): ServerConfig {
  const out: ServerConfig = { ...base };
  for (const { where, values } of layers) {
    for (const [key, raw] of Object.entries(values) as Array<[keyof ServerConfig, unknown]>) {
      if (raw === undefined) continue;
      if (!(key in base)) throw new CuemuxError('INVALID_ARGUMENT', `${where}: unknown setting "${key}"`);
      const bad = (what: string): CuemuxError => new CuemuxError('INVALID_ARGUMENT', `${where}: ${key} ${what}, got ${JSON.stringify(raw)}`);
      if (NUMERIC.includes(key)) {
        const n = Number(raw);
        if (!Number.isInteger(n) || n < (key === 'shutdownGraceMs' || key === 'idleCloseMs' ? 0 : 1)) throw bad('must be a whole number');
        (out as unknown as Record<string, unknown>)[key] = n;
      } else if (SECONDS.includes(key)) {
        const n = Number(raw);
        const max = key === 'leadSeconds' ? 10 : 30;
        if (raw === '' || !Number.isFinite(n) || n < 0 || n > max || (n === 0 && key !== 'prefetchSeconds')) throw bad(`must be a number of seconds above 0 and at most ${max}`);
        (out as unknown as Record<string, unknown>)[key] = n;
      } else if (PORTS.includes(key)) {
        const n = Number(raw);
        if (raw === null || raw === 'off' || raw === 'none') (out as unknown as Record<string, unknown>)[key] = null;
        else if (raw === '' || !Number.isInteger(n) || n < 0 || n > 65535 || (n === 0 && key === 'oscReplyPort')) throw bad('must be a UDP port (0-65535) or "off"');
        else (out as unknown as Record<string, unknown>)[key] = n;
      } else if (key === 'timecodeRate') {
        if (typeof raw !== 'string' && typeof raw !== 'number') throw bad('must be a timecode rate');
        try {
          out.timecodeRate = parseTimecodeRate(raw).name;
        } catch (e) {
          throw bad(`is not a timecode rate (${errorMessage(e)})`);
        }
      } else if (key === 'oscPriority') {
        const n = Number(raw);
        if (raw === '' || raw === null || !Number.isInteger(n) || n < 0 || n > 99) throw bad('must be a SCHED_FIFO priority, a whole number from 0 (normal scheduling) to 99');
        out.oscPriority = n;
      } else if (key === 'maxClockOffsetMs') {
        const n = Number(raw);
        if (raw === '' || raw === null || !Number.isFinite(n) || n <= 0 || n > 60_000) throw bad('must be a number of ms above 0 and at most 60000');
        out.maxClockOffsetMs = n;
      } else if (key === 'clockOffsetPolicy') {
        if (!CLOCK_OFFSET_POLICIES.includes(raw as ClockOffsetPolicy)) throw bad('must be warn, correct or refuse');
        out.clockOffsetPolicy = raw as ClockOffsetPolicy;
      } else if (key === 'chaseLossPolicy') {
        if (raw !== 'hold' && raw !== 'freerun') throw bad('must be hold or freerun');
        out.chaseLossPolicy = raw;
      } else if (key === 'mediaRoots') {
        const list = Array.isArray(raw) ? raw : [raw];
        if (list.length === 0 || !list.every((r) => typeof r === 'string' && r !== '')) throw bad('must be a list of folders');
        out.mediaRoots = (list as string[]).map((r) => path.resolve(r));
      } else if (key === 'stateFile') {
        if (raw !== null && typeof raw !== 'string') throw bad('must be a file path or "none"');
        out.stateFile = raw === null || raw === 'none' ? null : raw === '' ? undefined : path.resolve(raw);
      } else if (key === 'follow' || key === 'backupOf') {
        if (raw !== null && typeof raw !== 'string') throw bad('must be HOST:PORT, unix:PATH or "none"');
        const v = raw === null || raw === '' || raw === 'none' ? null : raw;
        // --follow takes a main and its backup (comma-separated); --backup-of one main.
        const list = v === null ? [] : key === 'follow' ? v.split(',') : [v];
        if (!list.every(isServerAddress)) throw bad(`must be HOST:PORT (the master's --listen) or unix:PATH (its socket)${key === 'follow' ? ', or several comma-separated' : ''}`);
        out[key] = v;
      } else if (key === 'socket' || key === 'listen' || key === 'http') {
        if (raw !== null && typeof raw !== 'string' && !(key === 'http' && typeof raw === 'number')) throw bad('must be a string or null');
        const v = raw === '' || raw === 'none' ? null : String(raw);
        // --http PORT: this machine only, as --listen PORT.
        out[key] = key === 'socket' && v !== null ? path.resolve(v) : key === 'http' && v !== null && /^\d+$/.test(v) ? `127.0.0.1:${v}` : v;
      } else if (key === 'oscAllow' || key === 'httpAllow') {
        // A string (comma-separated), or a list of strings; repeated flags give a list.
        const list = (Array.isArray(raw) ? raw : [raw]) as unknown[];
        if (list.length === 0 || !list.every((r) => typeof r === 'string')) throw bad('must be CIDRs, e.g. "192.168.1.0/24,127.0.0.1"');
        try {
          out[key] = parseAllowList(list.join(','));
        } catch (e) {
          throw bad(errorMessage(e));
        }
      } else if (key === 'logLevel') {
        if (typeof raw !== 'string' || !['error', 'warn', 'info', 'debug'].includes(raw)) throw bad('must be error, warn, info or debug');
        out.logLevel = raw as LogLevel;
      } else if (key === 'insecureListen') {
        if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') out.insecureListen = true;
        else if (raw === false || raw === 'false' || raw === '0' || raw === 'no') out.insecureListen = false;
        else throw bad('must be true or false');
      } else if (key === 'logFormat') {
        if (raw !== 'text' && raw !== 'json') throw bad('must be text or json');
        out.logFormat = raw;
      } else {
        if (typeof raw !== 'string') throw bad('must be a string');
        if (raw === '' && FILES.includes(key)) throw bad('must be a file path');
        (out as unknown as Record<string, unknown>)[key] = FILES.includes(key) ? path.resolve(raw) : raw;
      }
    }
  }
  if (out.listen !== null && !/^(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}$/.test(out.listen)) {
    throw new CuemuxError('INVALID_ARGUMENT', `listen must be HOST:PORT (e.g. 127.0.0.1:50051), got "${out.listen}"`);
  }
  if (out.http !== null && !/^(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}$/.test(out.http)) {
    throw new CuemuxError('INVALID_ARGUMENT', `http must be HOST:PORT or PORT (e.g. 127.0.0.1:8080), got "${out.http}"`);
  }
  checkHttpAccess(out);
  if (out.socket === null && out.listen === null) throw new CuemuxError('INVALID_ARGUMENT', 'nothing to listen on: give a --socket or --listen');
  checkTcpSecurity(out);
  if (out.defaultBatchBytes > out.maxBatchBytes) out.defaultBatchBytes = out.maxBatchBytes;
  return out;
}

/** The host part of `HOST:PORT` / `[V6]:PORT`, without brackets. */
export function listenHost(listen: string): string {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** True when `--listen HOST:PORT` is reachable only from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackListen(listen: string): boolean {
  return isLoopbackHost(listenHost(listen));
}

/**
 * The TCP listener's security settings agree with each other and with `--listen`: checked with the config, before
 * any file is read or anything bound. Deny by default: a non-loopback `--listen` needs TLS and a token (or the
 * explicit `--insecure-listen`). TLS files and a token without `--listen` are ignored (CUEMUX_TOKEN_FILE is also the
 * client commands' variable: a shell set up for clients must still start a socket-only server).
 */
function checkTcpSecurity(c: ServerConfig): void {
  if (c.listen === null) return;
  const tls = c.tlsCert !== undefined && c.tlsKey !== undefined;
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) {
    throw new CuemuxError('INVALID_ARGUMENT', `TLS needs both --tls-cert and --tls-key (got only ${c.tlsCert === undefined ? '--tls-key' : '--tls-cert'})`);
  }
  if (c.tlsClientCa !== undefined && !tls) {
    throw new CuemuxError('INVALID_ARGUMENT', '--tls-client-ca (client certificates) needs TLS: add --tls-cert FILE --tls-key FILE');
  }
  if (c.tokenFile !== undefined && !tls) {
    throw new CuemuxError('INVALID_ARGUMENT', `--token-file ${c.tokenFile} needs TLS on --listen ${c.listen}: without it the token crosses the network `
      + 'in clear; add --tls-cert FILE --tls-key FILE');
  }
  if (isLoopbackListen(c.listen) || c.insecureListen || (tls && c.tokenFile !== undefined)) return;
  const missing = [...(tls ? [] : ['--tls-cert FILE --tls-key FILE (encryption)']), '--token-file FILE (authentication)'];
  throw new CuemuxError('INVALID_ARGUMENT', `--listen ${c.listen} is not a loopback address: anyone who can reach it could drive the show and `
    + `read its media${tls ? '' : ', unencrypted'}. Add ${missing.join(' and ')} (see README "Security and limits"), listen on 127.0.0.1, or, `
    + 'on a closed show network only, accept the risk with --insecure-listen');
}

/**
 * Deny by default, as for show control: an HTTP listener reachable from other machines serves media and drives the
 * show, so it needs an allow-list naming who besides this machine may connect (--http-allow) and a bearer token they
 * must send (--token-file). Loopback clients need neither (as loopback OSC senders need no secret).
 */
function checkHttpAccess(c: ServerConfig): void {
  if (c.http === null || isLoopbackListen(c.http)) return;
  const missing = [...(c.httpAllow === null || new AllowList(c.httpAllow).loopbackOnly ? ['--http-allow CIDR (who may connect)'] : []),
    ...(c.tokenFile === undefined ? ['--token-file FILE (the bearer token they must send)'] : [])];
  if (missing.length === 0) return;
  throw new CuemuxError('INVALID_ARGUMENT', `--http ${c.http} is not a loopback address: anyone who can reach it could read the media and drive `
    + `the show. Add ${missing.join(' and ')} (see README "HTTP"), or listen on 127.0.0.1`);
}

/** Load the config from a JSON file (if given), the environment and flag values. */
export function loadConfig(flags: Partialish, configFile: string | undefined, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const layers: Array<{ where: string; values: Partialish }> = [];
  const file = configFile ?? env.CUEMUX_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CuemuxError('INVALID_ARGUMENT', `${file}: cannot read config: ${errorMessage(e)}`, { path: file });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new CuemuxError('INVALID_ARGUMENT', `${file}: a config file holds one JSON object`, { path: file });
    }
    // Relative folders in a config file are relative to the file.
    const values = parsed as Partialish;
    const dir = path.dirname(path.resolve(file));
    const rel = (v: unknown): unknown => (typeof v === 'string' && v !== '' && v !== 'none' ? path.resolve(dir, v) : v);
    if (Array.isArray(values.mediaRoots)) values.mediaRoots = values.mediaRoots.map(rel);
    else if (values.mediaRoots !== undefined) values.mediaRoots = rel(values.mediaRoots);
    for (const k of ['socket', 'logFile', 'stateFile', ...FILES] as Array<keyof ServerConfig>) if (values[k] !== undefined) values[k] = rel(values[k]);
    layers.push({ where: file, values });
  }
  layers.push({ where: 'environment', values: fromEnv(env) });
  layers.push({ where: 'command line', values: flags });
  return mergeConfig(defaultConfig(env), layers);
}
