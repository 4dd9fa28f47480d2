/**
 * Main/backup failover (`cuemux serve --backup-of HOST:PORT`): the server's role (master, backup or follower), its
 * failover term, the takeover when the master falls silent, and standing down when a newer master claims.
 *
 * - A backup mirrors its master (WatchShow, heartbeats every takeover-ms / 3) and, as any follower, serves its own
 *   players that mirror (Follow: the backup machine's projector plays its own copy on the master's clock, and goes on
 *   without a reconnect when the backup takes over); it refuses WatchShow (follower servers watch the master). When no
 *   state has come for `takeoverMs` it takes over: term = the highest term seen + 1; the mirror stops and the show
 *   goes on from where it is (the clock's last anchors, same generation; the cues' runs), now its own (ends,
 *   auto-follow, the master's cue list); show control (OSC, gRPC) is accepted; players given a list come to it.
 * - A master that took over tells its old master (its peer) at once (ClaimMaster: a main that was only busy, not
 *   dead, stands down one round trip later instead of taking show control it would lose), then keeps asking it for
 *   its role. A peer that comes back as master with a lower term (a restarted main, or the far side of a healed
 *   partition) is told so and stands down: it becomes the backup of this master. A peer with a newer term makes this
 *   master stand down itself. A server that stood down refuses show control naming the new master.
 * - Between two masters the higher term wins; equal terms (never made by one pair, but cheap to settle): the lower
 *   address. So at most one master stays, the newer one, and each change is said in the log and in the role's reason.
 */
import { errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { SilenceTimer } from '../common/silence-timer';
import { unixNs } from '../common/time-source';
import type { ClaimMasterRequest, ServerRole, ShowState } from '../generated/cuemux/v1/media_server';
import { parseCueDefinition } from '../show/cue-definition';
import type { CueList, Show } from '../show/show';

const log = getLogger('failover');

/** A server's role in a main/backup pair (or a follower's feed). */
export type RoleName = 'master' | 'backup' | 'follower';

/** How often a master asks its peer for its role, in ms (a restarted main stands down within about this long). */
const PEER_POLL_MS = 250;

/** Deadline of one GetRole or ClaimMaster to the peer, in ms (a LAN answers in under 1 ms). */
const PEER_CALL_MS = 1000;

/** What the failover calls on other servers (made by `cuemux serve` from src/clients: the server layer has none). */
export interface PeerCalls {
  /** GetRole of the server at `address`. */
  role(address: string, timeoutMs: number): Promise<ServerRole>;
  /** ClaimMaster on the server at `address`; its role after the claim. */
  claim(address: string, request: ClaimMasterRequest, timeoutMs: number): Promise<ServerRole>;
}

/** What the failover does to the server it runs in. */
export interface FailoverActions {
  /** Mirror the show of `master` from now on; the server passes every state it applies to {@link Failover.onState}. */
  follow(master: string): void;
  /** Stop mirroring (the feed is cancelled, no more states are applied). */
  unfollow(): Promise<void>;
  /** End the running Follow and WatchShow calls: their clients go to the master. */
  endWatchers(): void;
}

/** Options of {@link Failover}. */
export interface FailoverOptions {
  /** The show of this server. */
  show: Show;
  /** The role at start: "master" (a server of its own), "backup" (--backup-of) or "follower" (--follow). */
  role: RoleName;
  /** The master at start (backup, follower), else null. */
  master: string | null;
  /** Where the other server of the pair reaches this one (its --listen, else unix:SOCKET), once it listens. */
  address: () => string;
  /** A backup takes over when its master has sent nothing for this long, in ms (--takeover-ms, default 300). */
  takeoverMs: number;
  /** Calls to other servers; null: this server never claims (no peer calls: no --backup-of nor --follow). */
  peers: PeerCalls | null;
  /** What a role change does to the server. */
  actions: FailoverActions;
}

/** True when master (termA, addressA) wins over master (termB, addressB): the higher term, then the lower address. */
export function wins(termA: bigint, addressA: string, termB: bigint, addressB: string): boolean {
  return termA > termB || (termA === termB && addressA < addressB);
}

/** The cue list a master sent in its ShowState (cue_list_json), or null without one. */
function sentCueList(state: ShowState | null): CueList | null {
  if (state === null || state.cueListJson === '') return null;
  const raw = JSON.parse(state.cueListJson) as unknown;
  if (!Array.isArray(raw)) throw new Error('cue_list_json is not a JSON array');
  return { path: state.cueListPath, cues: raw.map((c, i) => parseCueDefinition(c, `the master's cue list, cues[${i}]`, null)) };
}

/** The role, term and takeover of one server. */
export class Failover {
  readonly #o: FailoverOptions;
  #role: RoleName;
  #term = 0n;
  #master: string | null;
  #since = unixNs();
  #reason: string;
  /** The server a master watches for a rival (its old master after a takeover), or null. */
  #peer: string | null = null;
  #lastState: ShowState | null = null;
  #lastStateAtMs = 0;
  #largestGapMs = 0;
  #loggedGapMs = 0;
  /** A backup's watch of its master's states. */
  #silence: SilenceTimer | null = null;
  #poll: NodeJS.Timeout | null = null;
  /** A role change in progress (takeover or standing down): one at a time. */
  #changing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: FailoverOptions) {
    this.#o = options;
    this.#role = options.role;
    this.#master = options.master;
    this.#reason = options.role === 'master' ? 'started as a server of its own'
      : `started as the ${options.role} of ${options.master ?? '?'}`;
  }

  /** Start: a backup or follower mirrors its master. */
  start(): void {
    if (this.#role !== 'master' && this.#master !== null) this.#o.actions.follow(this.#master);
  }

  /** The role now (GetRole, GetStatus, ShowState.role). */
  describe(): ServerRole {
    return { role: this.#role, term: this.#term, master: this.#master ?? '', address: this.#o.address(), sinceUnixNs: this.#since, reason: this.#reason };
  }

  /** The role's name now. */
  get role(): RoleName {
    return this.#role;
  }

  /** The failover term now. */
  get term(): bigint {
    return this.#term;
  }

  /** Why WatchShow is refused here (a backup: follower servers watch the master), or null when served. */
  refusal(): string | null {
    if (this.#role !== 'backup') return null;
    return `this server is the backup of the master ${this.#master ?? '?'} (failover term ${this.#term}): watch the master; this server takes over if the master falls silent`;
  }

  /**
   * The longest time between two states of the master this backup or follower has received, in ms (0 before two):
   * how close the master's heartbeats (every takeover-ms / 3) came to a takeover under the machines' load.
   */
  get largestGapMs(): number {
    return this.#largestGapMs;
  }

  /** The master show control must go to (backup, follower), or null when this server takes it. */
  controlledBy(): { role: RoleName; master: string } | null {
    return this.#role === 'master' ? null : { role: this.#role, master: this.#master ?? '?' };
  }

  /** A state of the master was received (the mirror applies it): its term is carried; a backup's silence watch restarts. */
  onState(state: ShowState): void {
    if (this.#closed || this.#role === 'master') return;
    if (state.term > this.#term) this.#term = state.term;
    const now = Date.now();
    if (this.#lastState !== null) this.#noteGap(now - this.#lastStateAtMs);
    this.#lastState = state;
    this.#lastStateAtMs = now;
    if (this.#role !== 'backup') return;
    this.#armSilence();
    this.#silence?.touch();
  }

  /** A backup's watch of its master's states: silent for takeoverMs, the master is asked, then taken over from. */
  #armSilence(): void {
    if (this.#silence !== null || this.#closed) return;
    this.#silence = new SilenceTimer(this.#o.takeoverMs, () => {
      this.#silence = null;
      void this.#change(() => this.#takeOver());
    });
  }

  /** ClaimMaster: `request.address` says it is the master with `request.term`. Answers this server's role after it. */
  async claim(request: ClaimMasterRequest): Promise<ServerRole> {
    if (request.address === this.#o.address()) return this.describe();
    const newer = this.#role === 'master' ? wins(request.term, request.address, this.#term, this.#o.address()) : request.term >= this.#term;
    if (newer && !(this.#role !== 'master' && this.#master === request.address && this.#term === request.term)) {
      await this.#change(() => this.#standDown(request.address, request.term,
        `${request.address} claimed to be the master with the newer term ${request.term} (this server had ${this.#term}, ${this.#role})`));
    }
    return this.describe();
  }

  /**
   * A gap between two states of the master: a new largest one is logged (info; a warning past half of --takeover-ms),
   * so a run under load says how near it came to a takeover nobody caused. The log lines are few: each is a new maximum.
   */
  #noteGap(gapMs: number): void {
    if (gapMs <= this.#largestGapMs) return;
    this.#largestGapMs = gapMs;
    // Logged when a quarter above the last one logged (not every millisecond more).
    if (gapMs < this.#loggedGapMs * 1.25) return;
    this.#loggedGapMs = gapMs;
    const fields = { gapMs, takeoverMs: this.#o.takeoverMs, role: this.#role };
    const message = `largest gap between the master's states so far: ${gapMs} ms (--takeover-ms ${this.#o.takeoverMs})`;
    if (this.#role === 'backup' && gapMs > this.#o.takeoverMs / 2) log.warn(message, fields);
    else log.info(message, fields);
  }

  /** Role changes run one at a time, in order. */
  #change(f: () => Promise<void>): Promise<void> {
    this.#changing = this.#changing.then(() => (this.#closed ? undefined : f())).catch((e: unknown) => {
      log.error('a failover role change failed', { error: errorMessage(e) });
    });
    return this.#changing;
  }

  async #takeOver(): Promise<void> {
    if (this.#role !== 'backup' || this.#lastState === null) return;
    const silentMs = Date.now() - this.#lastStateAtMs;
    if (silentMs < this.#o.takeoverMs) return; // a state came meanwhile
    const old = this.#master ?? '?';
    if (await this.#answers(old, silentMs)) {
      if (Date.now() - this.#lastStateAtMs >= this.#o.takeoverMs) this.#armSilence();
      return;
    }
    if (this.#role !== 'backup' || this.#closed) return;
    await this.#o.actions.unfollow();
    let list: CueList | null = null;
    try {
      list = sentCueList(this.#lastState);
    } catch (e) {
      log.error(`the master's cue list could not be taken over: GO without a cue id and auto-follow need a cue list loaded here (${errorMessage(e)})`);
    }
    this.#term += 1n;
    this.#set('master', null, `took over: the master ${old} was silent for ${silentMs} ms`);
    this.#o.show.setMirrored(false, list);
    log.warn(`TAKEOVER: the master ${old} has been silent for ${silentMs} ms (--takeover-ms ${this.#o.takeoverMs}): this server is now the master `
      + `(failover term ${this.#term}); the show goes on from its last state; show control goes here`, { term: String(this.#term), oldMaster: old });
    this.#watchPeer(old);
  }

  /**
   * Whether the silent master still answers GetRole as master within another takeoverMs. Its stream can fall silent
   * while it lives: on a loaded machine (measured on this 2-vCPU VM at load average ~20: gaps of 305-778 ms between
   * heartbeats sent every 100 ms) a master's process or its stream is held, while a fresh call still gets through.
   * A dead server process answers at once (connection refused: the takeover is not delayed); a dead machine or a cut
   * link not at all (the takeover comes takeoverMs later: at most twice --takeover-ms after the last state).
   */
  async #answers(master: string, silentMs: number): Promise<boolean> {
    const peers = this.#o.peers;
    if (peers === null || master === '?') return false;
    const t0 = Date.now();
    try {
      const r = await peers.role(master, this.#o.takeoverMs);
      if (r.role !== 'master') return false;
      log.warn(`the master ${master} sent nothing for ${silentMs} ms (--takeover-ms ${this.#o.takeoverMs}) but answers GetRole as master `
        + `(in ${Date.now() - t0} ms): no takeover (a busy master, not a dead one)`, { master, term: String(r.term), silentMs });
      return true;
    } catch {
      return false;
    }
  }

  async #standDown(master: string, term: bigint, why: string): Promise<void> {
    const was = this.#role;
    this.#stopPoll();
    this.#silence?.stop();
    this.#silence = null;
    if (was !== 'master') await this.#o.actions.unfollow();
    this.#term = term;
    this.#lastState = null;
    this.#set(was === 'follower' ? 'follower' : 'backup', master, `${was === 'master' ? 'stood down' : 'moved'}: ${why}`);
    if (was === 'master') {
      this.#o.show.setMirrored(true);
      // Players and followers go to the master: nothing of this show is theirs any more.
      this.#o.actions.endWatchers();
      log.warn(`STANDING DOWN: ${why}: this server is now the backup of ${master} (failover term ${term}); show control and players go to the master`,
        { master, term: String(term) });
    } else {
      log.warn(`now the ${this.#role} of ${master}: ${why}`, { master, term: String(term) });
    }
    this.#o.actions.follow(master);
  }

  #set(role: RoleName, master: string | null, reason: string): void {
    this.#role = role;
    this.#master = master;
    this.#reason = reason;
    this.#since = unixNs();
  }

  /** A master asks `peer` its role every PEER_POLL_MS: a rival master with a lower term is claimed; a newer one wins. */
  #watchPeer(peer: string): void {
    const peers = this.#o.peers;
    this.#stopPoll();
    this.#peer = peer;
    if (peers === null) return;
    const round = async (): Promise<void> => {
      if (this.#role !== 'master' || this.#closed) return;
      let r: ServerRole;
      try {
        r = await peers.role(peer, PEER_CALL_MS);
      } catch {
        return; // down or unreachable: asked again
      }
      if (this.#role !== 'master' || this.#closed) return;
      if (r.role === 'master' && wins(r.term, r.address, this.#term, this.#o.address())) {
        await this.#change(() => this.#standDown(peer, r.term, `${peer} is the master with the newer term ${r.term} (this server had ${this.#term})`));
        return;
      }
      if (r.role !== 'master' && r.master === this.#o.address() && r.term === this.#term) return; // our backup: all is well
      log.warn(`${peer} is ${r.role} with failover term ${r.term}${r.master === '' ? '' : ` of ${r.master}`}: telling it this server is the master (term ${this.#term})`);
      const after = await peers.claim(peer, { term: this.#term, address: this.#o.address(), showId: this.#o.show.clock.showId }, PEER_CALL_MS);
      if (after.role === 'master' && wins(after.term, after.address, this.#term, this.#o.address())) {
        await this.#change(() => this.#standDown(peer, after.term, `${peer} is the master with the newer term ${after.term} (this server had ${this.#term})`));
      }
    };
    const loop = (delayMs: number): void => {
      this.#poll = setTimeout(() => {
        round().catch((e: unknown) => log.debug('peer role check failed', { peer, error: errorMessage(e) })).finally(() => {
          if (this.#role === 'master' && !this.#closed && this.#peer === peer) loop(PEER_POLL_MS);
        });
      }, delayMs);
      this.#poll.unref();
    };
    // The first round at once: a peer that was only busy (its heartbeats held by load) and still takes show control
    // stands down one round trip after the takeover, not up to PEER_POLL_MS later.
    loop(0);
  }

  #stopPoll(): void {
    if (this.#poll !== null) clearTimeout(this.#poll);
    this.#poll = null;
    this.#peer = null;
  }

  /** Stop every timer (the server closes the mirror and the show itself). Idempotent. */
  close(): void {
    this.#closed = true;
    this.#stopPoll();
    this.#silence?.stop();
    this.#silence = null;
  }
}
