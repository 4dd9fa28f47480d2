/**
 * Show control over OSC: routes /cuemux/... messages to the show and answers every one in QLab's style, with
 * /cuemux/reply/<address> carrying a JSON string {"address", "status": "ok"|"error", "data"|"error"}. A bundle's
 * timetag is the time the action refers to (a GO in a bundle for 20:00:00.250 starts the cue at the clock position
 * of that instant, even if the timer ran a millisecond late). Subscribers (/cuemux/updates 1) get clock and cue
 * changes pushed. Nothing a sender does can crash the server: every failure becomes an error reply and a log line.
 * With a shared secret (`--osc-secret-file`), senders not on this machine first send `/cuemux/connect <secret>`, as
 * QLab's passcode asks; until then every other message gets a PERMISSION_DENIED reply saying so.
 *
 * The socket and everything that judges a datagram run on the OSC thread (osc-thread.ts, osc-worker.ts): the
 * allow-list, budgets, decoding, bundle timing, the secret, unknown addresses, `/cuemux/thump` (while this thread
 * beats its heartbeat) and the reply limits. This thread runs the show's commands and queries and builds their replies.
 */
import { CuemuxError, errorMessage, isCuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { monoNs, unixToMonoNs } from '../common/time-source';
import { parseCueDefinition } from '../show/cue-definition';
import type { CueEvent, Show } from '../show/show';
import { snapshotTimecode, type ClockSnapshot } from '../show/show-clock';
import { parseTimePosition } from '../show/timecode';
import { RateLimitedLog } from '../common/rate-limited-log';
import { AllowList, isLoopbackHost, LOOPBACK_ALLOW, OscConnections, type SenderBudgetOptions } from './osc-access';
import { argBoolean, argNumber, argString, argTimeOrString } from './osc-args';
import type { OscPeer, OscRequest } from './osc-endpoint';
import { errorReply, MAX_REPLIES_PER_DATAGRAM, REPLY_JSON_BYTES, type ReplyBody } from './osc-reply';
import { OscThread } from './osc-thread';

export { MAX_REPLIES_PER_DATAGRAM, MAX_REPLY_BYTES } from './osc-reply';

const log = getLogger('osc');

/** OSC control settings. */
export interface OscControlOptions {
  /** Address to bind (default in the server config: 127.0.0.1). */
  host: string;
  /** UDP port (0 = any free port). */
  port: number;
  /** Reply to this port on the sender's host instead of the sender's port; null = the sender's port. */
  replyPort: number | null;
  /** Load a cue list file into the show and watch it; resolves with what status shows of it. */
  loadCueList: (path: string) => Promise<{ path: string; cues: number }>;
  /** Extra status fields (e.g. the cue list file's last reload error). */
  statusExtra?: () => Record<string, unknown>;
  /** Sender networks allowed (CIDR list); null or absent = loopback only (127.0.0.0/8, ::1), the default. */
  allow?: readonly string[] | null;
  /** Per-sender budgets (default 2000 messages/s, 1 MiB/s). */
  budgets?: SenderBudgetOptions;
  /** Most timed messages waiting for their bundle time (default 1024). */
  maxScheduled?: number;
  /** SCHED_FIFO priority of the OSC thread, 0..99 (0: normal scheduling; default 5, see osc-priority.ts). */
  priority?: number;
  /**
   * Shared secret (QLab's passcode): a sender not on this machine must send `/cuemux/connect <secret>` before any
   * other command. Null or absent (default): senders the allow-list admits need nothing more.
   */
  secret?: string | null;
  /** A connection lasts this long after the sender's last message, in ms (default 8 h). */
  connectIdleMs?: number;
  /**
   * Follower and backup servers (`--follow`, `--backup-of`): the master now and what this server is to it (asked at
   * every command: a backup that takes over answers null from then on). Commands are then refused with an error reply
   * naming the master (show control talks to the master only); queries (status, thump, updates, connect) are answered.
   */
  master?: () => { role: string; master: string } | null;
}

/** Default time an OSC connection lasts after the sender's last message, in ms: a show day (see server-config). */
const DEFAULT_CONNECT_IDLE_MS = 8 * 3600 * 1000;

/** Addresses a sender that is not connected may send when a secret is set. */
const CONNECT = '/cuemux/connect';
const DISCONNECT = '/cuemux/disconnect';
/** What a follower server answers; every other address is show control, for the master only. */
const FOLLOWER_ANSWERS: ReadonlySet<string> = new Set(['/cuemux/status', '/cuemux/thump', '/cuemux/updates', CONNECT, DISCONNECT]);

/** Most update subscribers at once (each costs a datagram per change). */
const MAX_SUBSCRIBERS = 32;

/** A subscriber that sent nothing (e.g. no /cuemux/thump) for this long is dropped, as QLab does, in ms. */
const SUBSCRIPTION_TTL_MS = 61_000;

/** A bundle time more than this late is not trusted (a sender with a wrong clock): the action runs "now". */
const MAX_LATE_NS = 1_000_000_000n;

type Handler = (req: OscRequest, at: bigint) => unknown;

/** The reply to a show-control command (an OSC reply's JSON without its address): its data, or the error and its code. */
export type ControlReply = { status: 'ok'; data: unknown } | { status: 'error'; error: string; code: string };

/** The OSC show-control port. */
export class OscControl {
  #thread!: OscThread;
  readonly #show: Show;
  readonly #options: OscControlOptions;
  readonly #subscribers = new Map<string, { peer: OscPeer; lastSeenMs: number }>();
  readonly #routes: Map<string, Handler>;
  readonly #onClock: (s: ClockSnapshot) => void;
  readonly #onCue: (ev: CueEvent) => void;
  #closing: Promise<void> | null = null;
  readonly #warnings = new RateLimitedLog();
  /**
   * The secret's settings (its most connections and idle time, for status); null when no secret is set. The
   * connections themselves are the OSC thread's, which checks every message against them.
   */
  readonly #connections: OscConnections | null;

  private constructor(show: Show, options: OscControlOptions, connections: OscConnections | null) {
    this.#show = show;
    this.#options = options;
    this.#connections = connections;
    this.#routes = this.#makeRoutes();
    // The JSON is built only for subscribers: a GO's cue event reaches these listeners before the Follow calls'.
    this.#onClock = (s) => this.#push('/cuemux/update/clock', () => clockJson(s));
    this.#onCue = (ev) => this.#push('/cuemux/update/cue', () => cueEventJson(ev));
  }

  #attach(thread: OscThread): void {
    this.#thread = thread;
    thread.on('request', (req) => this.#handle(req));
    thread.on('seen', (keys) => {
      const now = Date.now();
      for (const k of keys) {
        const sub = this.#subscribers.get(k);
        if (sub !== undefined) sub.lastSeenMs = now;
      }
    });
    thread.on('unsubscribe', (key) => {
      if (this.#subscribers.delete(key)) this.#subscribersChanged();
    });
    this.#show.clock.on('change', this.#onClock);
    this.#show.on('cue', this.#onCue);
  }

  /** Bind the OSC port and start routing. */
  static async start(show: Show, options: OscControlOptions): Promise<OscControl> {
    const allow = options.allow ?? LOOPBACK_ALLOW;
    // Checked before binding: a bad secret or idle time is a start-up error.
    const connections = options.secret === null || options.secret === undefined ? null
      : new OscConnections({ secret: options.secret, idleMs: options.connectIdleMs ?? DEFAULT_CONNECT_IDLE_MS });
    const control = new OscControl(show, options, connections);
    const endpoint = await OscThread.start({
      host: options.host, port: options.port, allow, budgets: options.budgets, maxScheduled: options.maxScheduled,
      secret: options.secret ?? null, connectIdleMs: options.connectIdleMs ?? DEFAULT_CONNECT_IDLE_MS,
      replyPort: options.replyPort, routes: [...control.#routes.keys()], priority: options.priority,
    }).catch((e: unknown) => {
      if (isCuemuxError(e, 'INVALID_ARGUMENT')) throw e;
      throw new CuemuxError('RESOURCE_EXHAUSTED', `cannot open the OSC port ${options.host}:${options.port}: ${errorMessage(e)}; choose another --osc-port or "off"`);
    });
    if (!isLoopbackHost(options.host)) {
      if (options.allow === null || options.allow === undefined) {
        log.warn(`OSC listens on ${options.host}:${endpoint.address.port} but only this machine may send (the default --osc-allow `
          + `${LOOPBACK_ALLOW.join(',')}): show control on the LAN is ignored. Allow a console with e.g. --osc-allow 192.168.1.20/32 `
          + '(OSC has no authentication: allow only the consoles\' addresses or a show network, never the Internet)');
      } else if (!new AllowList(allow).loopbackOnly && connections === null) {
        // Started anyway, not refused: a console at a /32 on a dedicated show network is the setup the README has
        // long documented, and many consoles send fixed OSC strings but cannot hold a /cuemux/connect handshake
        // across a server restart. The warning says what the secret would add.
        log.warn(`OSC show control is open to ${allow.join(',')} on ${options.host}:${endpoint.address.port}: anyone who can send from `
          + 'those addresses can drive the show (no --osc-secret-file: senders need no /cuemux/connect)');
      } else if (!new AllowList(allow).loopbackOnly) {
        log.info(`OSC show control is open to ${allow.join(',')} on ${options.host}:${endpoint.address.port}; senders not on this machine `
          + `must first send ${CONNECT} <secret> (--osc-secret-file)`);
      }
    }
    if (connections !== null && (isLoopbackHost(options.host) || new AllowList(allow).loopbackOnly)) {
      log.info(`--osc-secret-file is set but only this machine may send OSC (${isLoopbackHost(options.host) ? `--osc-host ${options.host}` : `--osc-allow ${allow.join(',')}`}): `
        + 'senders on this machine never need the secret');
    }
    control.#attach(endpoint);
    return control;
  }

  /** The bound address (the real port when 0 was asked). */
  get address(): { host: string; port: number } {
    return this.#thread.address;
  }

  /** Update subscribers. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  #makeRoutes(): Map<string, Handler> {
    const show = this.#show;
    const clock = show.clock;
    const optId = (req: OscRequest): string | undefined => argString(req, 0, 'cue id', { optional: true });
    const ids = (list: Array<{ id: string }>): string[] => list.map((c) => c.id);
    const position = (req: OscRequest, i: number, name: string): number => parseTimePosition(argTimeOrString(req, i, name), clock.snapshot.timecodeRate);
    return new Map<string, Handler>([
      ['/cuemux/clock/play', (req, at) => {
        if (req.args.length > 0) clock.locate(position(req, 0, 'position'), at);
        clock.play(at);
        return clockJson(clock.snapshot);
      }],
      ['/cuemux/clock/stop', (_req, at) => {
        clock.stop(at);
        return clockJson(clock.snapshot);
      }],
      ['/cuemux/clock/locate', (req, at) => {
        clock.locate(position(req, 0, 'position'), at);
        return clockJson(clock.snapshot);
      }],
      ['/cuemux/clock/rate', (req, at) => {
        clock.setRate(argNumber(req, 0, 'rate'), at);
        return clockJson(clock.snapshot);
      }],
      ['/cuemux/clock/fps', (req) => {
        clock.setTimecodeRate(argTimeOrString(req, 0, 'timecode rate'));
        return clockJson(clock.snapshot);
      }],
      ['/cuemux/clock/timecode', (req, at) => {
        show.chaser.feed(position(req, 0, 'timecode'), at);
        return null; // a bridge sends one per frame: the reply stays small
      }],
      ['/cuemux/cue/load', async (req) => {
        const id = argString(req, 0, 'cue id');
        let def;
        if (req.args.length > 1) {
          const second = argString(req, 1, 'media path or cue JSON');
          const where = `OSC ${req.address}`;
          const rate = clock.snapshot.timecodeRate;
          if (second.trimStart().startsWith('{')) {
            let raw: unknown;
            try {
              raw = JSON.parse(second) as unknown;
            } catch (e) {
              throw new CuemuxError('INVALID_ARGUMENT', `${where}: cue JSON is not valid: ${errorMessage(e)}`);
            }
            def = parseCueDefinition({ ...(raw as object), id }, where, rate);
          } else {
            def = parseCueDefinition({
              id, media: second, in: argTimeOrString(req, 2, 'in', { optional: true }), out: argTimeOrString(req, 3, 'out', { optional: true }),
              loop: argBoolean(req, 4, 'loop', { optional: true }),
            }, where, rate);
          }
        }
        const cue = await show.load(id, def);
        return { id: cue.id, media: cue.media.path, state: cue.state, outputs: Object.fromEntries(cue.outputs) };
      }],
      ['/cuemux/cue/go', async (req, at) => {
        const id = optId(req);
        const clockSeconds = req.args.length > 1 ? position(req, 1, 'timecode') : undefined;
        const cue = await show.go(id, { at, clockSeconds });
        return { id: cue.id, clockSeconds: cue.run?.clockSeconds ?? null, standby: show.playhead };
      }],
      ['/cuemux/cue/stop', (req, at) => ({ stopped: ids(show.stop(optId(req), { at })) })],
      ['/cuemux/cue/pause', (req, at) => ({ paused: ids(show.pause(optId(req), { at })) })],
      ['/cuemux/cue/resume', (req, at) => ({ resumed: ids(show.resume(optId(req), { at })) })],
      ['/cuemux/cue/unload', (req, at) => ({ unloaded: show.unload(optId(req), { at }) })],
      ['/cuemux/cue/standby', (req) => {
        show.standBy(argString(req, 0, 'cue id'));
        return { standby: show.playhead };
      }],
      ['/cuemux/cuelist/load', async (req) => this.#options.loadCueList(argString(req, 0, 'cue list path'))],
      ['/cuemux/status', (req) => this.#status(argNumber(req, 0, 'page (the "next" of the previous reply)', { optional: true }) ?? 0)],
      ['/cuemux/thump', () => 'thump'],
      // Answered by the OSC thread, which holds the connections (a message reaches this thread only once its sender is
      // allowed): listed here so every address the server knows is in one table.
      [CONNECT, () => { throw new CuemuxError('WRONG_STATE', `${CONNECT} is answered by the OSC thread`); }],
      [DISCONNECT, () => { throw new CuemuxError('WRONG_STATE', `${DISCONNECT} is answered by the OSC thread`); }],
      ['/cuemux/updates', (req) => {
        const on = argBoolean(req, 0, '1 (subscribe) or 0 (unsubscribe)', { optional: true }) ?? true;
        const peer = this.#replyPeer(req.from);
        const key = `${peer.address}:${peer.port}`;
        if (!on) {
          this.#subscribers.delete(key);
        } else if (!this.#subscribers.has(key)) {
          this.#expireSubscribers();
          if (this.#subscribers.size >= MAX_SUBSCRIBERS) {
            throw new CuemuxError('RESOURCE_EXHAUSTED', `already ${MAX_SUBSCRIBERS} update subscribers; unsubscribe one with /cuemux/updates 0`);
          }
          this.#subscribers.set(key, { peer, lastSeenMs: Date.now() });
        }
        this.#subscribersChanged();
        return { subscribed: on };
      }],
    ]);
  }

  /**
   * Status from cue `from` on: everything but the loaded cues, then as many cues as fit in one reply
   * ({@link MAX_REPLY_BYTES}); `next` is the `from` of the next page, null on the last.
   */
  #status(from: number): Record<string, unknown> {
    if (!Number.isInteger(from) || from < 0) {
      throw new CuemuxError('INVALID_ARGUMENT', `/cuemux/status: the page must be a whole number >= 0 (the "next" of the previous reply), got ${from}`);
    }
    const full = this.#show.status();
    const e = this.#thread;
    const base: Record<string, unknown> = {
      ...full, ...(this.#options.statusExtra?.() ?? {}), updateSubscribers: this.#subscribers.size,
      osc: {
        allow: e.allowList, dropped: { ...e.counters }, scheduled: e.scheduled, scheduledBytes: e.scheduledBytes,
        maxRepliesPerDatagram: MAX_REPLIES_PER_DATAGRAM, repliesNotSent: e.repliesNotSent,
        connections: this.#connections === null ? null
          : { count: e.connections, max: this.#connections.max, idleSeconds: this.#connections.idleMs / 1000 },
        thread: { realtimePriority: e.priority.realtime, priorityProblem: e.priority.problem, restarts: e.restarts, busySleeps: e.dutySleeps },
      },
      budgets: { adHocCues: this.#show.adHocBudget, prefetch: this.#show.prefetchBudget },
      cues: [], cueCount: full.cues.length, page: from, next: null,
    };
    const file = base.cueListFile as { lastError?: unknown } | null | undefined;
    if (file && typeof file.lastError === 'string' && file.lastError.length > 1000) {
      base.cueListFile = { ...file, lastError: `${file.lastError.slice(0, 1000)}…` };
    }
    // What boundedReply lets through, less the envelope around the data ({"address":...,"status":"ok","data":}) and
    // room for the "repliesCapped" note of a bundle's 16th reply: a page filled to a looser budget was refused whole
    // as too big (64 loaded 1080p cues did it).
    const budget = REPLY_JSON_BYTES - Buffer.byteLength(JSON.stringify({ address: '/cuemux/status', status: 'ok', data: null })) + 4 - 160;
    const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));
    let size = bytes(base);
    if (size > budget) {
      // A long cue list: its ids are summarised (the cue list file has them all).
      const list = full.cueList;
      const ids: string[] = [];
      let used = bytes({ ...base, cueList: { ...list, cues: [], count: list.cues.length, truncated: true } });
      for (const id of list.cues) {
        const n = bytes(id) + 1;
        if (used + n > budget / 2) break;
        ids.push(id);
        used += n;
      }
      base.cueList = { ...list, cues: ids, count: list.cues.length, truncated: true };
      size = used;
    }
    const cues: unknown[] = [];
    let i = from;
    for (; i < full.cues.length; i++) {
      let entry: unknown = full.cues[i];
      let n = bytes(entry) + 1;
      if (n > budget / 2) {
        // One cue too big to show whole (a very long name or path): its id and state.
        const c = full.cues[i];
        entry = { id: c.id.slice(0, 200), state: c.state, truncated: true };
        n = bytes(entry) + 1;
      }
      if (size + n > budget) break;
      cues.push(entry);
      size += n;
    }
    base.cues = cues;
    base.next = i < full.cues.length ? i : null;
    return base;
  }

  #replyPeer(from: OscPeer): OscPeer {
    return this.#options.replyPort === null ? from : { address: from.address, port: this.#options.replyPort };
  }

  /** The monotonic instant an action refers to: its bundle's time, else now. */
  #actionTime(req: OscRequest): bigint {
    const now = monoNs();
    if (req.timetagUnixNs === null) return now;
    const at = unixToMonoNs(req.timetagUnixNs);
    if (now - at > MAX_LATE_NS) {
      log.warn('OSC bundle more than 1 s late: acting now (is the sender\'s clock right?)', { address: req.address, lateMs: Number(now - at) / 1e6 });
      return now;
    }
    return at < now ? at : now;
  }

  /** Drop subscribers silent for longer than the TTL (their ports may belong to someone else by now). */
  #expireSubscribers(): void {
    const limit = Date.now() - SUBSCRIPTION_TTL_MS;
    let dropped = false;
    for (const [key, s] of this.#subscribers) {
      if (s.lastSeenMs >= limit) continue;
      this.#subscribers.delete(key);
      dropped = true;
      log.info('OSC update subscriber dropped: nothing heard from it for 61 s (send /cuemux/thump to stay subscribed)', { peer: key });
    }
    if (dropped) this.#subscribersChanged();
  }

  /** The OSC thread reports messages it answers itself (thump...) from these, to keep their subscriptions alive. */
  #subscribersChanged(): void {
    this.#thread.subscribers([...this.#subscribers.keys()]);
  }

  async #handle(req: OscRequest): Promise<void> {
    this.#reply(req, await this.#run(req, true));
  }

  /**
   * Run a show-control command that came by another surface (the HTTP operator page) through the same routes, checks
   * and logging as an OSC message, and resolve with the reply an OSC sender would get (without its envelope's
   * address). `from` names the sender in log lines; the surface has admitted it with its own access rules, so no OSC
   * connection (secret) is asked for. Commands run "now" (no bundle time). Never rejects: a failure is an error reply.
   */
  dispatch(address: string, args: ReadonlyArray<string | number | boolean | null>, from: OscPeer): Promise<ControlReply> {
    // The OSC type each JSON value would have been sent as: a number as a double, so no precision is lost.
    const types = args.map((a) => (a === null ? 'N' : typeof a === 'string' ? 's' : typeof a === 'number' ? 'd' : a ? 'T' : 'F')).join('');
    return this.#run({ address, args: [...args], types, from, timetagUnixNs: null, late: false }, false);
  }

  async #run(req: OscRequest, overOsc: boolean): Promise<ControlReply> {
    const route = this.#routes.get(req.address);
    try {
      if (overOsc) {
        // The OSC thread has admitted the sender (allow-list, connection, budgets); a message keeps its updates alive.
        const seen = this.#replyPeer(req.from);
        const sub = this.#subscribers.get(`${seen.address}:${seen.port}`);
        if (sub !== undefined) sub.lastSeenMs = Date.now();
      }
      if (route === undefined) {
        throw new CuemuxError('NOT_FOUND', `unknown OSC address ${req.address} (known: ${[...this.#routes.keys()].join(' ')})`);
      }
      const master = this.#options.master?.() ?? null;
      if (master !== null && !FOLLOWER_ANSWERS.has(req.address)) {
        throw new CuemuxError('WRONG_STATE', `${req.address} refused: this server is a ${master.role} of the master ${master.master}; send show control to the master`);
      }
      const data = await route(req, this.#actionTime(req));
      return { status: 'ok', data };
    } catch (e) {
      return errorReply(e, req, this.#warnings, log);
    }
  }

  #reply(req: OscRequest, body: ReplyBody): void {
    // After this turn of the event loop: a GO's first packets are on their way to the players (HTTP/2 writes go out
    // at the turn's end) before the reply is built and sent. Every reply takes this path, so they keep their order.
    // The OSC thread caps replies per datagram and bounds their size.
    setImmediate(() => this.#thread.reply(req, body));
  }

  #push(address: string, data: () => unknown): void {
    if (this.#subscribers.size === 0) return;
    this.#expireSubscribers();
    const json = JSON.stringify({ address, status: 'ok', data: data() });
    this.#thread.push(address, json, [...this.#subscribers.values()].map((s) => s.peer));
  }

  /** Stop listening and pushing (idempotent). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#show.clock.off('change', this.#onClock);
      this.#show.off('cue', this.#onCue);
      this.#subscribers.clear();
      await this.#thread.close();
    })();
    return this.#closing;
  }
}

/** The clock as OSC replies and updates show it. */
function clockJson(s: ClockSnapshot): Record<string, unknown> {
  return {
    generation: s.generation, state: s.state, source: s.source, rate: s.rate, positionSeconds: s.positionSeconds,
    timecode: snapshotTimecode(s), timecodeRate: s.timecodeRate.name, anchorUnixNs: String(s.anchorUnixNs),
  };
}

function cueEventJson(ev: CueEvent): Record<string, unknown> {
  const base = { id: ev.cue.id, event: ev.type, state: ev.cue.state };
  if (ev.type === 'stopped') return { ...base, reason: ev.reason, clockSeconds: ev.clockSeconds, mediaSeconds: ev.mediaSeconds };
  if (ev.type === 'started') return { ...base, clockSeconds: ev.cue.run?.clockSeconds, mediaSeconds: ev.cue.run?.mediaSeconds };
  return base;
}
