/**
 * One Follow call: a player output's view of the show. It relays the clock and the cue events of cues that route
 * streams to this output, and feeds each started cue's packets ahead of the clock within the lead window: a packet
 * whose decode time maps to clock position c is sent once the clock reaches c − lead. A clock discontinuity restarts
 * every feed from the new position under the new generation; a stop, pause or unload ends the cue's feed. Each feed
 * waits only on this call's backpressure, so a slow player never delays another.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import { CuemuxError, isCuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import type { IndexEntry } from '../index-store/media-index';
import { cuePrerollFrame, followPacketsFrame, framedFollowEvent, framedMessage, type FollowPacketsFrame } from '../wire/packet-batch';
import { FollowEvent, type FollowRequest, type FollowResume } from '../generated/cuemux/v1/media_server';
import type { CueRun, CueSegment, LoadedCue } from '../show/loaded-cue';
import type { CueEvent, Show } from '../show/show';
import type { MediaRegistry } from './media-registry';
import { callEnded, clockStateMessage, heartbeatMs } from './clock-watch';
import { giveSpareFrame, takeSpareFrame, writeWithBackpressure, type ClientRecord } from './packet-stream';
import { BUFFER_SLACK as FRAME_SLACK } from './stream-memory';
import { framedSendActive } from '../wire/grpc-framed-send';
import type { PacketReader } from '../media/packet-reader';
import { mediaInfoOf } from './media-info';
import type { ClockSnapshot } from '../show/show-clock';
import { FeedPlan, type Planned } from './feed-plan';
import { prerollOrder } from './preroll-order';
import { PrerollWrites } from './preroll-writes';
import { WriteTurns, type TurnKind } from './write-turns';

const log = getLogger('follow');

/** Follow settings of the server. */
export interface FollowOptions {
  /** Lead window when the request sets none, in seconds. */
  defaultLeadSeconds: number;
  /** Batch size when the request sets none, in bytes. */
  defaultBatchBytes: number;
  /** Largest batch a request may ask for, in bytes. */
  maxBatchBytes: number;
}

/** Largest lead a player may ask for, in seconds (bounds the memory a Follow call can make the server hold). */
const MAX_LEAD_SECONDS = 10;

/** Fixed per-packet overhead counted against the batch size, in bytes (as ReadPackets). */
const PACKET_OVERHEAD = 48;

/**
 * Bound of a feed's first batch, in bytes (at least one packet): GO → first packet is what a show feels, and a full
 * 1 MiB batch costs milliseconds to serialise, send and parse before the player sees its keyframe.
 */
const FIRST_BATCH_BYTES = 64 << 10;

/**
 * Largest batch of a message that is not a segment's first, in bytes (or the request's batch size when smaller; one
 * packet always goes): what a GO may find in flight ahead of it. A 1080p DNxHD 36 picture is one batch of 190 KB.
 */
const QUEUED_BATCH_BYTES = 128 << 10;

/** A feed starting this close after a cue's in-point starts at the in-point (from the prefetch), in seconds. */
const PREFETCH_SLACK_SECONDS = 0.1;

/**
 * Media past a cue's in-point that its preroll carries, in seconds: enough packets that a decoder with reordering
 * (B-pyramids hold 3-4 frames) or frame threads (one frame per thread) has given the in-point frame, and the first
 * ticks after a GO have their frames before the feed's first batch is decoded. At 25 fps that is 6 frames.
 */
export const PREROLL_AHEAD_SECONDS = 0.25;

/**
 * How long after an unprepared cue's segment starts (or a cue stops) its next preroll is sent, in ms: not while the
 * player's decoder catches up with the clock after an unarmed GO, and early enough for a GO that restarts the cue. A
 * segment that adopted a preroll (an armed GO, a loop's next pass) has its next one sent at once (see #feed).
 */
const PREROLL_RENEW_MS = 1000;

/** A preroll sent on this call and not adopted yet. */
interface SentPreroll {
  /** The loaded cue it prepares (a re-armed cue is a new object: its old preroll is not adopted). */
  cue: LoadedCue;
  /** Its number (CuePreroll.preroll). */
  number: number;
  /** Entry numbers of its packets: a segment that adopts it does not send them again. */
  numbers: ReadonlySet<number>;
  /** Media time (s) of its earliest packet (decode time): when a segment adopting it has its first packets due. */
  firstSeconds: number;
  /** Resolves true once its last message is written, false when the call ended or it was replaced first. */
  sent: Promise<boolean>;
  /** Its first message is being written (it waited for the prerolls queued before it). */
  started: boolean;
  /** Stops sending it (replaced, unloaded). */
  ctl: AbortController;
}

/**
 * A failed feed as [domain code, message naming the file]: a system error reading the file (EIO, ESTALE...) is the
 * file's damage as far as the player can tell; anything else that is not a domain error is a bug of ours.
 */
function feedFailure(e: unknown, mediaPath: string): [string, string] {
  if (isCuemuxError(e)) return [e.code, e.message];
  const text = errorMessage(e);
  const system = e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
  return system ? ['MEDIA_DAMAGED', `${mediaPath}: reading the file failed: ${text}`] : ['INTERNAL', `${mediaPath}: ${text}`];
}

/** Validate a Follow request; returns [lead seconds, batch bytes]. */
export function checkFollowRequest(req: FollowRequest, o: FollowOptions): [number, number] {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(req.output)) {
    throw new CuemuxError('INVALID_ARGUMENT', `output must be a name of 1-64 letters, digits, ".", "_" or "-", got ${JSON.stringify(req.output)}`);
  }
  const lead = req.leadSeconds === undefined || req.leadSeconds === 0 ? o.defaultLeadSeconds : req.leadSeconds;
  if (!(lead > 0 && lead <= MAX_LEAD_SECONDS)) throw new CuemuxError('INVALID_ARGUMENT', `lead_seconds must be above 0 and at most ${MAX_LEAD_SECONDS}, got ${lead}`);
  const batch = req.maxBatchBytes === undefined || req.maxBatchBytes === 0 ? o.defaultBatchBytes : req.maxBatchBytes;
  if (batch > o.maxBatchBytes) throw new CuemuxError('RESOURCE_EXHAUSTED', `max_batch_bytes ${batch} is above this server's limit of ${o.maxBatchBytes} bytes`);
  return [lead, batch];
}

/** Run one Follow call until the player goes away (or the server ends it). */
export class FollowSession {
  readonly #call: ServerWritableStream<FollowRequest, FollowEvent>;
  readonly #show: Show;
  readonly #registry: MediaRegistry;
  readonly #client: ClientRecord;
  readonly #output: string;
  readonly #lead: number;
  readonly #batchBytes: number;
  /** Running feeds by cue id. */
  readonly #feeds = new Map<string, AbortController>();
  /** Highest segment announced (CueStarted) per cue, so a restarted feed does not repeat it. */
  readonly #announced = new Map<string, number>();
  /** Where a reconnecting player goes on, per cue (used once, by the first feed of that cue that matches). */
  readonly #resume = new Map<string, FollowResume>();
  /** Writers of batches waiting for their turn (see FLIGHT_BYTES in write-turns.ts), in arrival order. */
  readonly #turns: WriteTurns;
  /** The player prepares armed cues (FollowRequest.prepare). */
  readonly #prepare: boolean;
  /** Prerolls sent and not adopted, by cue id. */
  readonly #prerolls = new Map<string, SentPreroll>();
  /** Next preroll number. */
  #nextPreroll = 1;
  /** Timers sending a cue's next preroll, by cue id. */
  readonly #renewals = new Map<string, NodeJS.Timeout>();
  /** Prerolls are written one after another, a re-armed cue's first (see onRearmed in run). */
  readonly #prerollWrites = new PrerollWrites<SentPreroll>();

  constructor(call: ServerWritableStream<FollowRequest, FollowEvent>, show: Show, registry: MediaRegistry, client: ClientRecord, lead: number, batchBytes: number) {
    this.#call = call;
    this.#show = show;
    this.#registry = registry;
    this.#client = client;
    this.#turns = new WriteTurns(() => client.bytesQueued);
    this.#output = call.request.output;
    this.#lead = lead;
    this.#batchBytes = batchBytes;
    for (const r of call.request.resume) this.#resume.set(r.cueId, r);
    this.#prepare = call.request.prepare;
  }

  #stopped(): boolean {
    return this.#call.cancelled || this.#call.destroyed;
  }

  /** Write a small event without waiting for backpressure (events are rare and tiny). */
  #event(event: FollowEvent['event']): void {
    if (!this.#stopped()) this.#call.write({ event });
  }

  /** Run until the call ends. */
  async run(): Promise<void> {
    const onClock = (s: ClockSnapshot, discontinuity: boolean): void => {
      this.#event({ $case: 'clock', value: clockStateMessage(s, this.#show.clock.showId) });
      if (discontinuity) for (const cue of this.#show.cues) if (this.#feeds.has(cue.id)) this.#startFeed(cue);
    };
    const onCue = (ev: CueEvent): void => this.#onCue(ev);
    // A cue loaded by an unarmed GO got its in-point read since: it can be prepared now.
    const onPrefetched = (cue: LoadedCue): void => {
      if (cue.outputs.has(this.#output) && !this.#prerolls.has(cue.id)) this.#sendPreroll(cue);
    };
    // A cue loaded again (its GO is likely next): its preroll goes before those waiting, here and at the player.
    const onRearmed = (cue: LoadedCue): void => {
      const p = this.#prerolls.get(cue.id);
      if (p === undefined || p.cue !== cue) return;
      this.#prerollWrites.first(p);
      this.#event({ $case: 'rearmed', value: { cueId: cue.id, preroll: p.number } });
    };
    this.#show.clock.on('change', onClock);
    this.#show.on('cue', onCue);
    this.#show.on('prefetched', onPrefetched);
    this.#show.on('rearmed', onRearmed);
    const heartbeat = setInterval(() => this.#event({ $case: 'clock', value: clockStateMessage(this.#show.clock.snapshot, this.#show.clock.showId) }), heartbeatMs(undefined));
    heartbeat.unref();
    try {
      this.#event({ $case: 'clock', value: clockStateMessage(this.#show.clock.snapshot, this.#show.clock.showId) });
      const loaded = this.#show.cues.filter((cue) => cue.outputs.has(this.#output));
      for (const cue of loaded) {
        this.#loaded(cue);
        if (cue.state === 'playing') this.#startFeed(cue);
      }
      // After the feeds of playing cues (a reconnecting player needs those first); the likely next GOs first.
      for (const cue of prerollOrder(this.#show, loaded)) this.#sendPreroll(cue);
      await callEnded(this.#call);
    } finally {
      clearInterval(heartbeat);
      for (const t of this.#renewals.values()) clearTimeout(t);
      this.#renewals.clear();
      for (const p of this.#prerolls.values()) p.ctl.abort();
      this.#prerolls.clear();
      this.#show.clock.off('change', onClock);
      this.#show.off('cue', onCue);
      this.#show.off('prefetched', onPrefetched);
      this.#show.off('rearmed', onRearmed);
      for (const f of this.#feeds.values()) f.abort();
      this.#feeds.clear();
      this.#turns.releaseAll();
    }
  }

  #loaded(cue: LoadedCue): void {
    const d = cue.def;
    this.#event({
      $case: 'loaded', value: {
        cueId: cue.id, media: mediaInfoOf(cue.media), streams: [...(cue.outputs.get(this.#output) ?? [])], inSeconds: cue.inMedia,
        outSeconds: d.outSeconds === null ? undefined : cue.endMedia, loop: d.loop,
      },
    });
  }

  #onCue(ev: CueEvent): void {
    const cue = ev.cue;
    if (!cue.outputs.has(this.#output)) return;
    switch (ev.type) {
      case 'loaded':
        this.#loaded(cue);
        this.#sendPreroll(cue);
        break;
      case 'started':
        this.#startFeed(cue);
        break;
      case 'stopped':
        this.#stopFeed(cue.id);
        this.#renewPreroll(cue, PREROLL_RENEW_MS);
        this.#event({ $case: 'stopped', value: { cueId: cue.id, reason: ev.reason, clockSeconds: ev.clockSeconds, mediaSeconds: ev.mediaSeconds } });
        break;
      case 'unloaded':
        this.#stopFeed(cue.id);
        this.#dropPreroll(cue.id);
        this.#announced.delete(cue.id);
        this.#event({ $case: 'unloaded', value: { cueId: cue.id } });
        break;
    }
  }

  #stopFeed(id: string): void {
    this.#feeds.get(id)?.abort();
    this.#feeds.delete(id);
  }

  /** (Re)start the feed of a playing cue from the clock's current position under the current generation. */
  #startFeed(cue: LoadedCue): void {
    this.#stopFeed(cue.id);
    const run = cue.run;
    const streams = cue.outputs.get(this.#output);
    if (run === null || cue.state !== 'playing' || streams === undefined) return;
    const ctl = new AbortController();
    this.#feeds.set(cue.id, ctl);
    const generation = this.#show.clock.snapshot.generation;
    const at = { segment: 0 };
    this.#feed(cue, run, streams, generation, ctl.signal, at).catch((e: unknown) => {
      if (ctl.signal.aborted || this.#stopped()) return;
      // A damaged file ends this cue's feed only; the call and every other feed go on, and the player is told. The
      // feed stays listed, so a clock discontinuity tries again (the damage may lie behind the new position).
      const [code, message] = feedFailure(e, cue.media.path);
      log.warn('feeding a cue failed', { cue: cue.id, output: this.#output, peer: this.#client.peer, code, error: message });
      this.#event({ $case: 'failed', value: { cueId: cue.id, segment: at.segment, generation: BigInt(generation), code, message } });
    });
  }

  /** Feed a started cue from the clock's position; `at.segment` follows the segment being fed (for a failure report). */
  async #feed(cue: LoadedCue, run: CueRun, streams: readonly number[], generation: number, signal: AbortSignal, at: { segment: number }): Promise<void> {
    const clock = this.#show.clock;
    const media = cue.media;
    this.#registry.beginCall(media);
    let reader: PacketReader | null = null;
    this.#client.mediaId = media.id;
    this.#client.streams = [...streams];
    let firstWrite = true;
    try {
      const first = cue.segmentIndexAt(run, clock.position());
      for (let k = first; ; k++) {
        const seg = cue.segment(run, k);
        if (seg === null || signal.aborted) return;
        at.segment = seg.segment;
        // CueStarted goes out in the same write as the segment's first packets when they follow at once: a separate
        // write would cost the GO a trip through the event loop (grpc-js writes one message at a time, each after
        // the previous one's callback). It is sent alone before anything the feed has to wait for.
        let announce: Buffer | null = null;
        const flushAnnounce = (): void => {
          if (announce !== null) this.#writeFramed(announce);
          announce = null;
        };
        if ((this.#announced.get(cue.id) ?? -1) < seg.segment) {
          this.#announced.set(cue.id, seg.segment);
          announce = framedMessage(FollowEvent.encode({ event: { $case: 'started', value: { cueId: cue.id, ...seg } } }).finish());
        }
        let from = Math.min(seg.endMediaSeconds, Math.max(seg.mediaSeconds, seg.mediaSeconds + (clock.position() - seg.clockSeconds)));
        // A player that reconnects names the next packet it needs: go on from there, however far the clock moved.
        const resume = this.#resume.get(cue.id);
        let skipBelow = 0;
        if (resume !== undefined && resume.segment === seg.segment && resume.generation === BigInt(generation) && (resume.showId === '' || resume.showId === this.#show.clock.showId)) {
          this.#resume.delete(cue.id);
          const n = Number(resume.nextEntry);
          if (n < media.index.packetCount) {
            const e = media.index.entry(n);
            const t = e.dts ?? e.pts;
            if (t !== null) {
              from = Math.min(from, media.index.toSeconds(e.stream, t));
              skipBelow = n;
            }
          } else if (cue.followsGrowth && media.growthState === 'growing') {
            skipBelow = n; // the player had every packet indexed so far: the plan waits for the next
          } else {
            flushAnnounce();
            continue;
          }
        }
        if (from >= seg.endMediaSeconds) {
          flushAnnounce();
          continue;
        }
        // A GO on a running clock reaches this a few µs after the cue's start: start at the in-point anyway, so the
        // packets prefetched at load go out from memory (the few extra are decoder pre-roll for the player).
        if (skipBelow === 0 && cue.prefetch !== null && seg.mediaSeconds === cue.inMedia && from - cue.inMedia < PREFETCH_SLACK_SECONDS) from = cue.inMedia;
        // A segment starting at the in-point continues the cue's preroll, when the player has it: its decoders hold
        // the in-point frame already, and the packets go on after the preroll's.
        const waiting = skipBelow === 0 && from === cue.inMedia ? this.#prerolls.get(cue.id) : undefined;
        if (waiting !== undefined && waiting.cue === cue) {
          // Adopt when the first packets are due, not at the GO: a cue placed ahead on the clock and then reached by a
          // locate (which restarts this feed) still finds its preroll.
          const due = seg.clockSeconds + (waiting.firstSeconds - seg.mediaSeconds) - this.#lead;
          if (clock.position() < due) {
            flushAnnounce();
            await clock.whenAt(due, signal);
          }
        }
        const adopt = waiting !== undefined && !signal.aborted ? await this.#adoptable(cue, signal) : null;
        if (signal.aborted) return;
        let firstOfSegment = true;
        const plan = new FeedPlan(cue, streams, from, seg.endMediaSeconds, skipBelow, adopt?.numbers);
        const queuedBatch = Math.min(this.#batchBytes, QUEUED_BATCH_BYTES);
        let limit = k === first ? FIRST_BATCH_BYTES : queuedBatch;
        if (adopt !== null) {
          // The GO of a prepared cue: the player shows its in-point once it has CueStarted and the adoption (a batch
          // naming the preroll, with no packets), written at once; the first packets after the preroll follow at once
          // too (the preroll holds only 0.25 s: with them queued behind a loop's next preroll, the follower server's
          // test held 4 ticks from 0.2 s after the GO in one run, 18 held and 33 black in another). Also when every packet of the segment was in the preroll (the batch is then
          // the last: the player drains).
          const before = announce;
          announce = null;
          if (!(await this.#writePackets(cue.id, seg, generation, [], plan.ended, before, adopt.number, 'first', signal))) return;
          // The next preroll at once, as for a loop's next pass: decoded while this GO's cue starts, not a second later
          // when the next GO may come (bench:go on ddceb56: a renewed DNxHD preroll sent 70 ms before the next GO's
          // datagram kept the player's decode worker from reading that GO for 21 ms: 3 ticks at 60 ticks/s).
          this.#renewPreroll(cue, 0);
        }
        const clockOf = (e: IndexEntry): number => {
          const t = e.dts ?? e.pts;
          return t === null ? -Infinity : seg.clockSeconds + (media.index.toSeconds(e.stream, t) - seg.mediaSeconds);
        };
        for (let next = plan.peek(); ; next = plan.peek()) {
          if (next === null) {
            if (plan.ended) break;
            // A cue on a growing file: every packet indexed so far is out; wait for the file to grow (or complete, or
            // fail: thrown, so the player gets CueFeedFailed naming the file) and plan on from there.
            flushAnnounce();
            await plan.grow(signal);
            if (signal.aborted) return;
            if (plan.peek() === null && plan.ended) {
              // Complete with nothing more for this segment: its last batch, empty, so the player drains.
              const before = announce;
              announce = null;
              if (!(await this.#writePackets(cue.id, seg, generation, [], true, before, 0, firstOfSegment ? 'first' : 'live', signal))) return;
              break;
            }
            continue;
          }
          const due = clockOf(next.e) - this.#lead;
          if (clock.position() < due) {
            flushAnnounce();
            await clock.whenAt(due, signal);
          }
          if (signal.aborted) return;
          const horizon = clock.position() + this.#lead;
          const chunk: Planned[] = [];
          let bytes = 0;
          for (let p = plan.peek(); p !== null && (chunk.length === 0 || (bytes + p.e.size + PACKET_OVERHEAD <= limit && clockOf(p.e) <= horizon)); p = plan.peek()) {
            chunk.push(p);
            bytes += p.e.size + PACKET_OVERHEAD;
            plan.take();
          }
          const missing = chunk.filter((p) => p.data === null).map((p) => p.e);
          if (missing.length > 0) {
            flushAnnounce();
            reader ??= media.reader();
            const got = await reader.read(missing);
            let i = 0;
            for (const p of chunk) if (p.data === null) p.data = got[i++];
          }
          if (signal.aborted) return;
          limit = queuedBatch;
          const before = announce;
          announce = null;
          if (!(await this.#writePackets(cue.id, seg, generation, chunk, plan.ended, before, 0, firstOfSegment ? 'first' : 'live', signal))) return;
          if (firstOfSegment && adopt === null) this.#renewPreroll(cue, PREROLL_RENEW_MS);
          firstOfSegment = false;
          const last = chunk[chunk.length - 1].e;
          const t = last.pts ?? last.dts;
          if (t !== null) this.#client.positionSeconds = media.index.toSeconds(last.stream, t);
          if (firstWrite) {
            // Let HTTP/2 put the first batch on the socket (in this loop turn's check phase) before the CPU goes
            // to the next batches: the rest of the lead window is not urgent, the first packet is.
            firstWrite = false;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        }
        flushAnnounce();
      }
    } finally {
      try {
        await reader?.close();
      } finally {
        this.#registry.endCall(media);
      }
    }
  }

  /** Write framed messages without waiting for backpressure (events are rare and small). */
  #writeFramed(frame: Buffer): void {
    if (!this.#stopped()) this.#call.write(framedFollowEvent(frame));
  }

  /**
   * Write one FollowPackets (`last`: the segment's final batch; `preroll`: the preroll it continues, 0 = none), after
   * the framed messages `before` (in the same write when the framed-send hook is active), in its turn (`kind`, see
   * write-turns.ts); false when the call ended or `signal` aborted first.
   */
  async #writePackets(cueId: string, seg: CueSegment, generation: number, chunk: Planned[], last: boolean, before: Buffer | null, preroll: number, kind: TurnKind, signal: AbortSignal): Promise<boolean> {
    const together = before !== null && framedSendActive();
    if (before !== null && !together) this.#writeFramed(before);
    const frame = followPacketsFrame({ cueId, segment: seg.segment, generation, last, preroll }, chunk, together ? before : null);
    return this.#writeBatch(frame, together ? 2 : 1, chunk, kind, signal);
  }

  /**
   * Write a laid-out batch of `messages` framed messages carrying `chunk`, in its turn (`kind`, see write-turns.ts);
   * false when the call ended or `signal` aborted while it waited (nothing written then).
   */
  async #writeBatch(frame: FollowPacketsFrame, messages: number, chunk: readonly Planned[], kind: TurnKind, signal?: AbortSignal): Promise<boolean> {
    if (!this.#stopped()) await this.#turns.take(kind);
    if (this.#stopped() || signal?.aborted === true) {
      this.#turns.next(); // its turn goes to the next writer
      return false;
    }
    // A reused buffer (back to the spares at the write callback): fresh ones would wait for a full collection.
    const buf = takeSpareFrame(frame.size, this.#batchBytes + FRAME_SLACK);
    const message = buf.subarray(0, frame.writeInto(buf));
    let bytes = 0;
    for (const p of chunk) bytes += p.e.size;
    const client = this.#client;
    client.bytesQueued += bytes;
    const ok = await writeWithBackpressure(this.#call, framedFollowEvent(message, messages), () => {
      giveSpareFrame(buf);
      client.bytesQueued -= bytes;
      this.#turns.next();
    });
    if (!ok) return false;
    client.bytesSent += bytes;
    client.packetsSent += chunk.length;
    return !this.#stopped();
  }

  /**
   * Send the preroll of a loaded cue (see CuePreroll in the proto) when the player prepares cues: the prefetched
   * packets of this output's streams up to PREROLL_AHEAD_SECONDS past the in-point, from memory. Replaces the cue's
   * earlier preroll. Nothing when the cue has no prefetch (an unarmed GO loads without one).
   */
  #sendPreroll(cue: LoadedCue): void {
    const pre = cue.prefetch;
    const streams = cue.outputs.get(this.#output);
    if (!this.#prepare || pre === null || streams === undefined || this.#stopped()) return;
    this.#dropPreroll(cue.id);
    const wanted = new Set(streams);
    const index = cue.media.index;
    const until = cue.inMedia + PREROLL_AHEAD_SECONDS;
    const planned: Planned[] = [];
    let firstSeconds = Infinity;
    for (let i = 0; i < pre.entries.length; i++) {
      const e = pre.entries[i];
      if (!wanted.has(e.stream)) continue;
      const t = e.dts ?? e.pts;
      const at = t === null ? null : index.toSeconds(e.stream, t);
      // Per stream, entries are in decode order: this keeps a prefix of each stream (not a prefix in file order: with
      // audio interleaved in chunks of a second, that would leave a stream out). A reconnecting player whose resume
      // point falls among them drops the ones it had (resilientFollow).
      if (at !== null && at > until) continue;
      planned.push({ e, data: pre.data[i] });
      if (at !== null) firstSeconds = Math.min(firstSeconds, at);
    }
    if (planned.length === 0 || firstSeconds === Infinity) return;
    const ctl = new AbortController();
    const number = this.#nextPreroll++;
    const entry: SentPreroll = { cue, number, numbers: new Set(planned.map((p) => p.e.index)), firstSeconds, sent: Promise.resolve(false), started: false, ctl };
    entry.sent = this.#prerollWrites.add(entry, () => this.#writePreroll(cue.id, number, planned, ctl.signal),
      (e) => log.warn('sending a preroll failed', { cue: cue.id, output: this.#output, error: errorMessage(e) }));
    this.#prerolls.set(cue.id, entry);
  }

  async #writePreroll(cueId: string, preroll: number, planned: readonly Planned[], signal: AbortSignal): Promise<boolean> {
    for (let i = 0; i < planned.length;) {
      const chunk: Planned[] = [];
      let bytes = 0;
      while (i < planned.length && (chunk.length === 0 || bytes + planned[i].e.size + PACKET_OVERHEAD <= Math.min(this.#batchBytes, QUEUED_BATCH_BYTES))) {
        bytes += planned[i].e.size + PACKET_OVERHEAD;
        chunk.push(planned[i++]);
      }
      if (signal.aborted || this.#stopped()) return false;
      // A playing cue's preroll (its next pass: a loop's) is as urgent as its feed; any other waits for the feeds.
      const kind = this.#show.cue(cueId)?.state === 'playing' ? 'live' : 'preroll';
      if (!(await this.#writeBatch(cuePrerollFrame({ cueId, preroll, last: i === planned.length }, chunk), 1, chunk, kind, signal))) return false;
    }
    return !signal.aborted;
  }

  /** Forget the cue's preroll (unloaded, replaced): a message of it still being written completes, no more follow. */
  #dropPreroll(cueId: string): void {
    this.#prerolls.get(cueId)?.ctl.abort();
    this.#prerolls.delete(cueId);
  }

  /**
   * The cue's preroll, once fully sent, for a segment starting at the in-point to adopt (it is then no longer
   * offered); null when there is none for this loaded cue.
   */
  async #adoptable(cue: LoadedCue, signal: AbortSignal): Promise<SentPreroll | null> {
    const p = this.#prerolls.get(cue.id);
    if (p === undefined || p.cue !== cue) return null;
    if (!p.started) {
      // Still queued behind other cues' prerolls (a player that has just connected): the segment does not wait for
      // them; it is sent whole, and a later preroll prepares the cue's next GO.
      this.#dropPreroll(cue.id);
      return null;
    }
    // Sent already, unless the GO came right after the load: then the preroll's last messages go out first.
    if (!(await p.sent) || signal.aborted || this.#prerolls.get(cue.id) !== p) return null;
    this.#prerolls.delete(cue.id);
    return p;
  }

  /**
   * Send the cue's next preroll `delayMs` from now unless it has one then (a segment adopted the last, or started
   * without one, or the cue stopped). Called once a segment's first batch is written, never before: a player holds
   * one preroll per cue, and a new one would replace the one being adopted.
   */
  #renewPreroll(cue: LoadedCue, delayMs: number): void {
    if (!this.#prepare) return;
    const pending = this.#renewals.get(cue.id);
    if (pending !== undefined && delayMs > 0) return;
    clearTimeout(pending);
    const t = setTimeout(() => {
      this.#renewals.delete(cue.id);
      if (this.#show.cues.includes(cue) && !this.#prerolls.has(cue.id)) this.#sendPreroll(cue);
    }, delayMs);
    this.#renewals.set(cue.id, t);
  }
}
