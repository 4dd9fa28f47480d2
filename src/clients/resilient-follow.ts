/**
 * Follow that survives the server going away: when the stream ends with UNAVAILABLE (server stopping, restarting or
 * unreachable) it reconnects with exponential backoff and asks the server to go on from the next packet it needs
 * (FollowRequest.resume), so the player sees every packet of its cues exactly once. Events the server repeats on a
 * new connection (CueLoaded, CueStarted of a segment already seen) are not passed on again, and a cue that was
 * unloaded while the player was away gets its CueUnloaded (at the new call's first clock heartbeat).
 *
 * Given several servers (a main and its backup), it follows the master among them (server-choice.ts): a backup's
 * refusal or a lost server sends it to whichever answers GetRole as master. The backup that took over has the main's
 * show id, segments and generations, so the player resumes there exactly as on a restarted server.
 */
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FollowEvent, FollowResume, MediaInfo } from '../generated/cuemux/v1/media_server';
import { MediaClientError, type CallOptions, type MediaClient } from './media-client';
import { findMaster, isNotMaster, nextServer, surveyRoles } from './server-choice';

/** Options of {@link resilientFollow}. */
export interface ResilientFollowOptions {
  /** The output to follow. */
  output: string;
  /** Lead window in seconds (server default when absent). */
  leadSeconds?: number;
  /** Ask for the prerolls of armed cues (FollowRequest.prepare; default false). */
  prepare?: boolean;
  /** First reconnect delay in ms, doubled up to `maxBackoffMs`. Default 50. */
  initialBackoffMs?: number;
  /** Longest reconnect delay in ms. Default 250 (a restarted server is back within a second; players must be too). */
  maxBackoffMs?: number;
  /** Called before each reconnect attempt with the error that ended the stream and the attempt number (from 1). */
  onReconnect?: (error: MediaClientError, attempt: number) => void;
  /** With several servers: called when the follow moves to another one (its index in the list). */
  onServer?: (index: number) => void;
}

/** What is known of one cue, to resume and to drop repeats. */
interface CueSeen {
  /** The cue's media as {@link mediaKey} names it. */
  media: string;
  lastSegment: number;
  resume: FollowResume | null;
  /** The latest preroll received on this call (CuePreroll) and its entries; prerolls do not outlive their call. */
  preroll: { number: number; entries: Set<bigint> } | null;
  /**
   * Entries of the preroll a segment (of a generation) adopted, until a batch of another one: a resumed feed sends
   * every entry from the resume point on, and some of those the player already decoded from the preroll (a preroll is
   * a prefix per stream). Kept by segment, not by resume point: the adopting batch may carry no packets.
   */
  adopted: { segment: number; generation: bigint; entries: ReadonlySet<bigint> } | null;
}

/**
 * With several servers, how often a follow asks them their roles, in ms: a player that reached a backup (a backup
 * serves its own machine's players the mirrored show) while the master did not answer (its channel still backing off
 * after a partition healed: the failover test's players stayed on the stood-down master) moves to the master once it
 * answers. One GetRole per server per period: nothing on a LAN.
 */
const MASTER_CHECK_MS = 1000;

/** The status codes after which a new Follow may succeed (RESOURCE_EXHAUSTED: the server is at its client limit). */
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.RESOURCE_EXHAUSTED]);

/**
 * Follow `options.output` on `client` (or on the master of several servers) forever (until `callOptions.signal` aborts
 * or a non-retryable error), across reconnects. Throws MediaClientError for errors a retry cannot fix (e.g.
 * INVALID_ARGUMENT for a bad output name).
 */
export async function* resilientFollow(client: MediaClient | readonly MediaClient[], options: ResilientFollowOptions, callOptions: Pick<CallOptions, 'signal'> = {}): AsyncGenerator<FollowEvent> {
  const clients = Array.isArray(client) ? client as readonly MediaClient[] : [client as MediaClient];
  let current = clients.length > 1 ? (await findMaster(clients, { signal: callOptions.signal })) ?? 0 : 0;
  if (clients.length > 1) options.onServer?.(current);
  const seen = new Map<string, CueSeen>();
  let generation: bigint | null = null;
  let showId: string | null = null;
  let attempt = 0;
  const initial = options.initialBackoffMs ?? 50;
  const max = options.maxBackoffMs ?? 250;
  for (;;) {
    const resume = [...seen.values()].map((c) => c.resume).filter((r): r is FollowResume => r !== null).map((r) => ({ ...r, showId: showId ?? '' }));
    for (const c of seen.values()) c.preroll = null;
    // A new call opens with a snapshot: the clock, then CueLoaded of every cue now loaded on the output, before
    // any other ClockState. Cues known from the last call that the snapshot leaves out were unloaded meanwhile.
    let clocks = 0;
    const announced = new Set<string>();
    let anew = false;
    // With several servers: this call ends when another one answers as the master with a higher term (see MASTER_CHECK_MS).
    const call = new AbortController();
    const stopCall = (): void => call.abort();
    callOptions.signal?.addEventListener('abort', stopCall, { once: true });
    // Aborted while the last server was chosen (the listener above is then never called).
    if (callOptions.signal?.aborted) {
      callOptions.signal.removeEventListener('abort', stopCall);
      return;
    }
    const move: { to: number | null } = { to: null };
    if (clients.length > 1) {
      void (async () => {
        while (!call.signal.aborted) {
          await sleep(MASTER_CHECK_MS, undefined, { signal: call.signal }).catch(() => undefined);
          if (call.signal.aborted) return;
          const { master: m, roles } = await surveyRoles(clients, { signal: call.signal }).catch(() => ({ master: null, roles: [] }));
          // Only away from a server that answered, and not as the master of as high a term (one that did not answer
          // in time may be the master whose GetRole was slow; if it is gone, its stream ends and the reconnect moves).
          const here = roles[current];
          const there = m === null ? null : roles[m];
          const leave = here !== null && here !== undefined && there !== null && there !== undefined && (here.role !== 'master' || here.term < there.term);
          if (m !== null && m !== current && leave && !call.signal.aborted) {
            move.to = m;
            call.abort();
          }
        }
      })();
    }
    try {
      for await (const e of clients[current].follow({ output: options.output, leadSeconds: options.leadSeconds, resume, prepare: options.prepare }, { signal: call.signal })) {
        const other = e.event?.$case === 'clock' && clocks === 0 && generation !== null
          // Another show (a clean restart, or another server): its cues and segments are new. A server that tells its
          // show id says so exactly; one from before show ids says so by a lower generation.
          && (e.event.value.showId !== '' && showId !== null && showId !== '' ? e.event.value.showId !== showId : e.event.value.generation < generation);
        if (other && e.event?.$case === 'clock') {
          // Forget the old show's cues.
          for (const id of [...seen.keys()]) yield { event: { $case: 'unloaded', value: { cueId: id } } };
          seen.clear();
          generation = e.event.value.generation;
          showId = e.event.value.showId;
          // This call asked to resume where the old server was: the new one would go on from there, mid-GOP, into
          // decoders that now start afresh. Ask again, from each cue's keyframe.
          if (resume.length > 0) {
            anew = true;
            break;
          }
        }
        if (e.event?.$case === 'clock') {
          generation = e.event.value.generation;
          showId = e.event.value.showId;
        }
        if (e.event?.$case === 'loaded') announced.add(e.event.value.cueId);
        if (e.event?.$case === 'clock' && ++clocks === 2) {
          for (const id of [...seen.keys()]) {
            if (announced.has(id)) continue;
            seen.delete(id);
            yield { event: { $case: 'unloaded', value: { cueId: id } } };
          }
        }
        const out = filter(e, seen);
        if (out !== null) {
          attempt = 0;
          yield out;
        }
      }
      if (anew) continue;
      if (move.to === null) return; // the server ended the stream normally (it never does today): stop following
    } catch (e) {
      if (callOptions.signal?.aborted) return;
      if (move.to === null) {
        // A backup refuses until it takes over: it is the master a moment later, or names the one to go to.
        if (!(e instanceof MediaClientError) || !(RETRYABLE.has(e.code) || isNotMaster(e))) throw e;
        attempt++;
        options.onReconnect?.(e, attempt);
        // With several servers the next try asks each its role first (cheap on a LAN): no backoff beyond the first, so
        // a player finds a backup that has just taken over within its lead window (bench: held ticks after a failover).
        const delay = e.code === grpc.status.RESOURCE_EXHAUSTED ? max : clients.length > 1 ? initial : Math.min(max, initial * 2 ** (attempt - 1));
        // timers/promises removes its abort listener with the wait: a player waiting hours must not pile one up.
        await sleep(delay, undefined, { signal: callOptions.signal }).catch(() => undefined);
        if (callOptions.signal?.aborted) return;
        const next = await nextServer(clients, current, callOptions.signal);
        if (next !== current) options.onServer?.(next);
        current = next;
        continue;
      }
    } finally {
      callOptions.signal?.removeEventListener('abort', stopCall);
      call.abort();
    }
    const to = move.to;
    if (to === null) return;
    // Another server is the master: go on there, in a new call resumed as after a reconnect (prerolls are per call).
    options.onReconnect?.(new MediaClientError('Follow', Object.assign(new Error('moved'), {
      code: grpc.status.UNAVAILABLE, details: `not the master: server ${to} of the list answers as the master with a newer term, following it`, metadata: new grpc.Metadata(),
    })), 1);
    current = to;
    options.onServer?.(current);
  }
}

/**
 * What identifies a cue's media to a player: its id on one server; across a main and its backup (whose ids differ when
 * their media roots do: an id is made from the path), everything a decoder is made from and every packet count —
 * a backup plays the cue only when its file has the master's fingerprint. The same key: the player keeps its
 * decoders and goes on from its resume point, mid-GOP, on the other server.
 */
function mediaKey(m: MediaInfo | undefined): string {
  if (m === undefined) return '';
  return JSON.stringify({ ...m, mediaId: '', path: '' }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
}

/** The event to pass on, or null for a repeat; updates what is known of the cues. */
function filter(e: FollowEvent, seen: Map<string, CueSeen>): FollowEvent | null {
  const ev = e.event;
  switch (ev?.$case) {
    case 'loaded': {
      const known = seen.get(ev.value.cueId);
      const media = mediaKey(ev.value.media);
      if (known !== undefined && known.media === media) return null;
      seen.set(ev.value.cueId, { media, lastSegment: -1, resume: null, preroll: null, adopted: null });
      return e;
    }
    case 'started': {
      const c = seen.get(ev.value.cueId);
      if (c === undefined) return e;
      if (ev.value.segment <= c.lastSegment) return null;
      c.lastSegment = ev.value.segment;
      return e;
    }
    case 'preroll': {
      const c = seen.get(ev.value.cueId);
      if (c === undefined) return e;
      if (c.preroll?.number !== ev.value.preroll) c.preroll = { number: ev.value.preroll, entries: new Set() };
      for (const p of ev.value.packets) c.preroll.entries.add(p.entry);
      return e;
    }
    case 'packets': {
      const c = seen.get(ev.value.cueId);
      if (c === undefined) return e;
      const r = c.resume;
      const same = r !== null && r.segment === ev.value.segment && r.generation === ev.value.generation;
      if (ev.value.preroll !== 0) {
        c.adopted = c.preroll?.number === ev.value.preroll ? { segment: ev.value.segment, generation: ev.value.generation, entries: c.preroll.entries } : null;
        c.preroll = null;
      } else if (c.adopted !== null && (c.adopted.segment !== ev.value.segment || c.adopted.generation !== ev.value.generation)) {
        c.adopted = null;
      }
      const adopted = c.adopted?.entries;
      const fresh = same ? ev.value.packets.filter((p) => p.entry >= r.nextEntry && adopted?.has(p.entry) !== true) : ev.value.packets;
      // An all-repeated batch still carries its segment's end (`last`): the player must drain its decoders; and the
      // adoption of a preroll (the GO of a prepared cue, sent without packets): the player shows its in-point then.
      if (fresh.length === 0) return ev.value.last || ev.value.preroll !== 0 ? { event: { $case: 'packets', value: { ...ev.value, packets: [] } } } : null;
      const last = fresh[fresh.length - 1].entry;
      c.resume = { cueId: ev.value.cueId, segment: ev.value.segment, generation: ev.value.generation, nextEntry: last + 1n, showId: '' };
      return fresh.length === ev.value.packets.length ? e : { event: { $case: 'packets', value: { ...ev.value, packets: fresh } } };
    }
    case 'stopped':
      if (seen.has(ev.value.cueId)) (seen.get(ev.value.cueId) as CueSeen).resume = null;
      return e;
    case 'unloaded':
      seen.delete(ev.value.cueId);
      return e;
    default:
      return e;
  }
}
