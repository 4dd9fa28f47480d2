/**
 * The master side of follower servers: the whole show as one ShowState message (clock, cue list, every loaded cue
 * with its exact run and numbering), and the WatchShow stream (the state at once, again after every change —
 * coalesced — and as a heartbeat). Level-triggered: a follower needs only the latest message, so a reconnect or a
 * lost message costs nothing but the wait for the next one.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { FollowerReport, ServerRole, ShowState, ShowStatus, WatchShowRequest } from '../generated/cuemux/v1/media_server';
import { getLogger } from '../common/logger';
import { unixNs } from '../common/time-source';
import type { LoadedCue } from '../show/loaded-cue';
import type { Show } from '../show/show';
import { cueDefinitionJson } from '../show/show-state';
import { callEnded, clockStateMessage, heartbeatMs } from './clock-watch';

const log = getLogger('show-watch');

/** Changes within this many ms go out as one message (a GO changes the clock, a cue and the playhead at once). */
const COALESCE_MS = 2;

/** The identity of a cue's media file as sent to followers: "SIZE:SHA256HEX" of the index fingerprint. */
export function mediaFingerprint(cue: LoadedCue): string {
  const id = cue.media.index.identity;
  return `${id.size}:${id.sampleHash.toString('hex')}`;
}

/**
 * Watches one show for WatchShow: remembers where each cue's last run ended (the clock position of its last stop,
 * pause or end), which the cue itself forgets, so followers stop their copies at the same position.
 */
export class ShowWatch {
  readonly #show: Show;
  readonly #stoppedAt = new WeakMap<LoadedCue, { clockSeconds: number; reason: string }>();
  readonly #role: () => ServerRole | undefined;

  /** `role`: this server's failover role, sent with every state (its term is ShowState.term). */
  constructor(show: Show, role: () => ServerRole | undefined = () => undefined) {
    this.#show = show;
    this.#role = role;
    show.on('cue', (ev) => {
      if (ev.type === 'stopped') this.#stoppedAt.set(ev.cue, { clockSeconds: ev.clockSeconds, reason: ev.reason });
    });
  }

  /** The show now, as one message, with this server's failover role and term. */
  message(): ShowState {
    const show = this.#show;
    const st = show.status();
    const role = this.#role();
    const list = show.cueList.cues;
    return {
      showId: show.clock.showId, term: role?.term ?? 0n, role,
      // A backup that takes over goes on with this list (ids alone would not let it GO the next cue).
      cueListJson: list.length === 0 ? '' : JSON.stringify(list.map((d) => cueDefinitionJson(d))),
      clock: clockStateMessage(show.clock.snapshot, show.clock.showId),
      cueListPath: st.cueList.path, cueIds: st.cueList.cues, playhead: st.cueList.playhead ?? undefined,
      cues: show.cues.map((c) => ({
        id: c.id, definitionJson: JSON.stringify(cueDefinitionJson(c.def)), state: c.state,
        run: c.run === null ? undefined : { clockSeconds: c.run.clockSeconds, mediaSeconds: c.run.mediaSeconds, id: c.run.id },
        numbering: c.numbering, pausedMediaSeconds: c.state === 'paused' && c.pausedMedia !== null ? c.pausedMedia : undefined,
        mediaFingerprint: mediaFingerprint(c), stoppedClockSeconds: this.#stoppedAt.get(c)?.clockSeconds, stoppedReason: this.#stoppedAt.get(c)?.reason ?? '',
      })),
      sentUnixNs: unixNs(),
    };
  }

  /** Run one WatchShow call until the client goes away. */
  async serve(call: ServerWritableStream<WatchShowRequest, ShowState>): Promise<void> {
    const show = this.#show;
    let timer: NodeJS.Timeout | null = null;
    const send = (): void => {
      if (!call.cancelled && !call.destroyed) call.write(this.message());
    };
    // States are small: written without waiting for 'drain' (a stalled follower buffers a few; keepalive ends it).
    const onChange = (): void => {
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        send();
      }, COALESCE_MS);
    };
    show.clock.on('change', onChange);
    show.on('cue', onChange);
    show.on('cuelist', onChange);
    const heartbeat = setInterval(send, heartbeatMs(call.request.heartbeatSeconds));
    heartbeat.unref();
    send();
    try {
      await callEnded(call);
    } finally {
      show.clock.off('change', onChange);
      show.off('cue', onChange);
      show.off('cuelist', onChange);
      clearInterval(heartbeat);
      if (timer !== null) clearTimeout(timer);
    }
  }
}

/** A follower not heard from for this long is forgotten, in ms (followers report every 2 s). */
const FOLLOWER_REPORT_TTL_MS = 10_000;

/** The master's side of ReportFollower: what each follower does not play, for status. */
export class FollowerReports {
  readonly #show: Show;
  readonly #reports = new Map<string, { report: FollowerReport; atMs: number }>();

  constructor(show: Show) {
    this.#show = show;
  }

  /** Take a follower's report (a report about another show is ignored: the follower has not caught up yet). */
  take(report: FollowerReport): void {
    if (report.showId !== this.#show.clock.showId) return;
    const name = report.follower.slice(0, 200);
    const known = this.#reports.get(name);
    const said = (r: FollowerReport | undefined): string => JSON.stringify(r?.refused ?? []);
    if (said(known?.report) !== said(report) && report.refused.length > 0) {
      log.warn(`follower ${name} does not play ${report.refused.length} cue(s): its media is not the master's`,
        { follower: name, cues: report.refused.map((c) => `${c.cueId}: ${c.reason}`.slice(0, 300)) });
    }
    this.#reports.set(name, { report: { ...report, follower: name, refused: report.refused.slice(0, 64) }, atMs: Date.now() });
    if (this.#reports.size > 64) this.#reports.delete(this.#reports.keys().next().value as string);
  }

  /** Followers heard from lately and what each does not play. */
  list(): Array<{ follower: string; refused: FollowerReport['refused'] }> {
    const now = Date.now();
    for (const [k, v] of this.#reports) if (now - v.atMs > FOLLOWER_REPORT_TTL_MS) this.#reports.delete(k);
    return [...this.#reports.values()].map((v) => ({ follower: v.report.follower, refused: v.report.refused }));
  }

  /** The same as cue problems (GetStatus), during "follower NAME". */
  problems(): ShowStatus['problems'] {
    return this.list().flatMap((f) => f.refused.map((c) => ({
      cueId: c.cueId, during: `follower ${f.follower}`, message: `not played on the follower ${f.follower}: ${c.reason}`, unixNs: unixNs(),
    })));
  }
}
