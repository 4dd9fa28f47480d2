/**
 * Show control over OSC: routes /cuemux/... messages to the show and answers every one in QLab's style, with
 * /cuemux/reply/<address> carrying a JSON string {"address", "status": "ok"|"error", "data"|"error"}. A bundle's
 * timetag is the time the action refers to (a GO in a bundle for 20:00:00.250 starts the cue at the clock position
 * of that instant, even if the timer ran a millisecond late). Subscribers (/cuemux/updates 1) get clock and cue
 * changes pushed. Nothing a sender does can crash the server: every failure becomes an error reply and a log line.
 */
import { CuemuxError, isCuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { monoNs, unixToMonoNs } from '../common/time-source';
import { parseCueDefinition } from '../show/cue-definition';
import type { CueEvent, Show } from '../show/show';
import { snapshotTimecode, type ClockSnapshot } from '../show/show-clock';
import { parseTimePosition } from '../show/timecode';
import {
  argBoolean, argNumber, argString, argTimeOrString, OscEndpoint, replyAddress, type OscPeer, type OscRequest,
} from './osc-endpoint';

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
}

/** Most update subscribers at once (each costs a datagram per change). */
const MAX_SUBSCRIBERS = 32;

/** A subscriber that sent nothing (e.g. no /cuemux/thump) for this long is dropped, as QLab does, in ms. */
const SUBSCRIPTION_TTL_MS = 61_000;

/** A bundle time more than this late is not trusted (a sender with a wrong clock): the action runs "now". */
const MAX_LATE_NS = 1_000_000_000n;

type Handler = (req: OscRequest, at: bigint) => unknown;

/** The OSC show-control port. */
export class OscControl {
  readonly #endpoint: OscEndpoint;
  readonly #show: Show;
  readonly #options: OscControlOptions;
  readonly #subscribers = new Map<string, { peer: OscPeer; lastSeenMs: number }>();
  readonly #routes: Map<string, Handler>;
  readonly #onClock: (s: ClockSnapshot) => void;
  readonly #onCue: (ev: CueEvent) => void;
  #closing: Promise<void> | null = null;

  private constructor(endpoint: OscEndpoint, show: Show, options: OscControlOptions) {
    this.#endpoint = endpoint;
    this.#show = show;
    this.#options = options;
    this.#routes = this.#makeRoutes();
    endpoint.on('request', (req) => this.#handle(req));
    endpoint.on('invalid', (error, from, address) => {
      log.warn('OSC message refused', { from: `${from.address}:${from.port}`, error: error.message });
      this.#reply(from, address ?? '/cuemux/invalid', { status: 'error', error: error.message, code: error.code });
    });
    // The JSON is built only for subscribers: a GO's cue event reaches these listeners before the Follow calls'.
    this.#onClock = (s) => this.#push('/cuemux/update/clock', () => clockJson(s));
    this.#onCue = (ev) => this.#push('/cuemux/update/cue', () => cueEventJson(ev));
    show.clock.on('change', this.#onClock);
    show.on('cue', this.#onCue);
  }

  /** Bind the OSC port and start routing. */
  static async start(show: Show, options: OscControlOptions): Promise<OscControl> {
    const endpoint = await OscEndpoint.open({ host: options.host, port: options.port }).catch((e: unknown) => {
      throw new CuemuxError('RESOURCE_EXHAUSTED', `cannot open the OSC port ${options.host}:${options.port}: ${e instanceof Error ? e.message : String(e)}; choose another --osc-port or "off"`);
    });
    return new OscControl(endpoint, show, options);
  }

  /** The bound address (the real port when 0 was asked). */
  get address(): { host: string; port: number } {
    return this.#endpoint.address;
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
              throw new CuemuxError('INVALID_ARGUMENT', `${where}: cue JSON is not valid: ${e instanceof Error ? e.message : String(e)}`);
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
      ['/cuemux/status', () => ({ ...show.status(), ...(this.#options.statusExtra?.() ?? {}), updateSubscribers: this.#subscribers.size })],
      ['/cuemux/thump', () => 'thump'],
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
        return { subscribed: on };
      }],
    ]);
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
    for (const [key, s] of this.#subscribers) {
      if (s.lastSeenMs >= limit) continue;
      this.#subscribers.delete(key);
      log.info('OSC update subscriber dropped: nothing heard from it for 61 s (send /cuemux/thump to stay subscribed)', { peer: key });
    }
  }

  async #handle(req: OscRequest): Promise<void> {
    const seen = this.#replyPeer(req.from);
    const sub = this.#subscribers.get(`${seen.address}:${seen.port}`);
    if (sub !== undefined) sub.lastSeenMs = Date.now();
    const route = this.#routes.get(req.address);
    try {
      if (route === undefined) {
        throw new CuemuxError('NOT_FOUND', `unknown OSC address ${req.address} (known: ${[...this.#routes.keys()].join(' ')})`);
      }
      const data = await route(req, this.#actionTime(req));
      this.#reply(req.from, req.address, { status: 'ok', data });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      const code = isCuemuxError(e) ? e.code : 'INTERNAL';
      if (code === 'INTERNAL') log.error('OSC command failed', { address: req.address, error: e instanceof Error ? e.stack : error });
      else log.warn('OSC command refused', { address: req.address, from: `${req.from.address}:${req.from.port}`, error });
      this.#reply(req.from, req.address, { status: 'error', error, code });
    }
  }

  #reply(from: OscPeer, address: string, body: Record<string, unknown>): void {
    // After this turn of the event loop: a GO's first packets are on their way to the players (HTTP/2 writes go out
    // at the turn's end) before the reply is built and sent. Every reply takes this path, so they keep their order.
    setImmediate(() => {
      this.#send(this.#replyPeer(from), replyAddress(address), JSON.stringify({ address, ...body }));
    });
  }

  #push(address: string, data: () => unknown): void {
    if (this.#subscribers.size === 0) return;
    this.#expireSubscribers();
    const json = JSON.stringify({ address, status: 'ok', data: data() });
    for (const s of this.#subscribers.values()) this.#send(s.peer, address, json);
  }

  #send(to: OscPeer, address: string, json: string): void {
    this.#endpoint.send(to, address, [{ type: 's', value: json }]).catch((e: unknown) => {
      if (isCuemuxError(e, 'CLOSED')) return;
      log.warn('OSC reply not sent', { to: `${to.address}:${to.port}`, address, error: e instanceof Error ? e.message : String(e) });
    });
  }

  /** Stop listening and pushing (idempotent). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#show.clock.off('change', this.#onClock);
      this.#show.off('cue', this.#onCue);
      this.#subscribers.clear();
      await this.#endpoint.close();
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
