/**
 * What every reference player is built on: it follows one output of a cuemux server (reconnecting and resuming
 * across server restarts), keeps the show clock and the cues' segments, and decodes the packets it receives with
 * one decoder per stream and segment pass, so a presenter (audio or video) only has to pick what is due at each
 * instant. Decoding happens as soon as packets arrive, i.e. up to the lead window ahead of the clock.
 */
import { performance } from 'node:perf_hooks';
import { getLogger } from '../common/logger';
import { openDecoder } from '../ffmpeg/decoder';
import { loadFfmpeg } from '../ffmpeg/native';
import { openAudioResampler } from '../ffmpeg/resampler';
import type { AudioResampler, DecodedAudioFrame, DecodedFrame, Decoder } from '../ffmpeg/types';
import type { ClockState, CueLoaded, CuePreroll, CueRearmed, CueStarted, FollowPackets, Packet, StreamInfo } from '../generated/cuemux/v1/media_server';
import type { MediaClient } from '../clients/media-client';
import { resilientFollow } from '../clients/resilient-follow';
import { decoderConfigFromStreamInfo, decoderThreadsFor, isIntraOnlyVideo } from './decoder-config';
import { clockOf } from './cue-timeline';
import { IntraSkip } from './intra-skip';
import { LiveLead } from './live-lead';
import { PrepQueue, type PrepTurn } from './prep-queue';
import { endsBefore, FollowerBase, type OutputFollowerOptions } from './follower';
import type { FollowEventSource } from './follow-relay';
import { errorMessage } from '../common/errors';

const log = getLogger('player');

/** The decoding state of one stream of one cue, for one segment pass in one generation. */
interface Slot {
  /** Segment and generation it decodes for (0 while it is a preroll's). */
  segment: number;
  generation: bigint;
  /** The preroll (CuePreroll number) it decodes until a segment adopts it; 0 once it is a segment's. */
  preroll: number;
  stream: number;
  info: StreamInfo;
  /** Operations of this slot, in order. */
  chain: Promise<void>;
  decoder: Decoder | null;
  resampler: AudioResampler | null;
  /** Media seconds of the resampler's first output sample; null until the first frame. */
  audioOrigin: number | null;
  /** Samples the resampler has given so far. */
  audioOut: number;
  /** Set when the slot is dropped: its work stops and nothing more is emitted. */
  dropped: boolean;
  /** Set once the segment's last packets were seen: a later batch of the same slot would be a server bug. */
  drained: boolean;
  /** Intra-only video: its skipping while a segment's decoding catches up (see #open); null otherwise. */
  skip: IntraSkip | null;
}

/** A cue this output knows of. */
interface CueTrack {
  loaded: CueLoaded;
  streams: Map<number, StreamInfo>;
  /** Decoding slots by stream index. */
  slots: Map<number, Slot>;
  /** Slots still draining their last frames after their segment's `last` batch. */
  draining: Set<Slot>;
  /** The cue's preroll being prepared (decoders by stream) until a segment adopts it, or null. */
  prepared: Prepared | null;
  /**
   * Its latest segments' places on the clock (CueStarted), by segment: packets ending before a segment's first media
   * instant are unshown.
   */
  starts: Map<number, CueStarted>;
}

/** Segments whose first media instant a cue keeps (a loop adds one a pass). */
const KEEP_STARTS = 8;

/**
 * A preroll's packet waits while a playing cue's decoder has packets waiting and its pictures cover less than this
 * past the clock (s): the lead a segment started at an unarmed GO waits for before its first picture too (see
 * VideoPlayer's CATCH_UP_LEAD_SECONDS). See live-lead.ts.
 */
const LIVE_LEAD_SECONDS = 0.25;

/**
 * Longest a preroll waits in all for the playing cues' decoders, ms: about a GO's catch-up; then it goes on beside
 * them. Why a budget a preroll and not a wait a packet: with 1 s a packet, a decoder that stayed a little under
 * {@link LIVE_LEAD_SECONDS} ahead on a loaded machine (bench:go under --trace-gc) kept a fresh player's prerolls
 * crawling for 2.5 s, and three armed GOs found their cues not prepared (one never in sync).
 */
const LIVE_WAIT_MS = 500;

/** A preroll being prepared. */
interface Prepared {
  preroll: number;
  /** Its decoders, by stream. */
  slots: Map<number, Slot>;
  /** The lane it waits in (see OutputFollower.#prepQueues). */
  queue: PrepQueue;
  /** Its turn: its decoding starts when the turn does (see PrepQueue); finished once its packets are decoded or it is dropped. */
  turn: PrepTurn;
  /** It has waited once for the cues on the clock (see #onPreroll). */
  waited: boolean;
  /** What is left of its wait for the playing cues' decoders to get ahead (ms, see LIVE_WAIT_MS). */
  liveWaitMs: number;
}

/** Follows an output and decodes its packets. One per player process. */
export class OutputFollower extends FollowerBase {
  readonly #source: FollowEventSource;
  readonly #options: OutputFollowerOptions;
  readonly #cues = new Map<string, CueTrack>();
  /**
   * Prerolls are prepared one at a time per lane, in the order the server sends them (likely next GO first: src/server/preroll-order.ts), so the
   * next GO's cue is not ready last of all; one adopted by a GO or re-armed starts at once. Two lanes: a preroll of
   * pictures that each decode on their own (intra-only video; audio) costs only its length, 0.25 s of media (7
   * pictures of 1080p25 DNxHD: about 28 ms of CPU here), while a long-GOP one decodes from its keyframe (up to a GOP:
   * 50 pictures of 1080p H.264, which took 4 s beside a catching-up cue on bench:go): one of those no longer holds
   * the cheap ones back (bench:go on b1970a4: a fresh player's DNxHD cues, queued behind an H.264 one, unprepared at
   * their GOs 1.4 and 2.5 s after it connected, 27 and 11 ticks late).
   */
  readonly #prepQueues = { short: new PrepQueue(), long: new PrepQueue() };
  /**
   * Prerolls named by a CueRearmed before they arrived, by cue id: prepared at once when they come, not after the
   * prerolls waiting (the server writes a re-armed cue's preroll first, and says so before it).
   */
  readonly #firstPrerolls = new Map<string, number>();
  /** The playing cues' video decoders: how far ahead they are, and whether one needs the CPU first. */
  readonly #lead = new LiveLead();

  /**
   * `client`: the server, or several (a main and its backup: the one that is master is followed, see resilientFollow),
   * or where the Follow stream's events come from (a decode worker's: the follow thread's relay, follow-relay.ts).
   * `presented`: a presenting thread's {@link FollowerBase.presented} memory, when this follower runs in its worker.
   */
  constructor(client: MediaClient | readonly MediaClient[] | FollowEventSource, options: OutputFollowerOptions, presented?: SharedArrayBuffer) {
    super(presented);
    this.#source = typeof client === 'function' ? client : (o, signal) => resilientFollow(client, o, { signal });
    this.#options = options;
  }

  /** Follow until `signal` aborts or the server refuses the Follow for good (see {@link FollowerBase.run}). */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#options;
    // Warm start: FFmpeg is loaded before the first cue needs it (measured: the first GO of a fresh player paid for it).
    loadFfmpeg();
    this.safeEmit('ready');
    try {
      const events = this.#source({
        output: o.output, leadSeconds: o.leadSeconds, prepare: o.prepare ?? false,
        onReconnect: (e, attempt) => {
          // Preroll numbers belong to a call: the next call numbers its own from 1.
          for (const cue of this.#cues.values()) this.#dropPrepared(cue);
          this.#firstPrerolls.clear();
          this.safeEmit('reconnect', e, attempt);
        },
      }, signal);
      for await (const e of events) {
        const ev = e.event;
        switch (ev?.$case) {
          case 'clock': this.#onClock(ev.value); break;
          case 'loaded': this.#onLoaded(ev.value); break;
          case 'started': this.#onStarted(ev.value); break;
          case 'stopped':
            // A preroll not adopted yet stays: the server may still adopt it (a later GO from the in-point).
            this.#dropSlots(ev.value.cueId, false);
            this.safeEmit('stopped', ev.value);
            break;
          case 'unloaded':
            this.#dropSlots(ev.value.cueId);
            this.#cues.delete(ev.value.cueId);
            this.#firstPrerolls.delete(ev.value.cueId);
            this.safeEmit('unloaded', ev.value.cueId);
            break;
          case 'packets': this.#onPackets(ev.value); break;
          case 'preroll': this.#onPreroll(ev.value); break;
          case 'rearmed': this.#onRearmed(ev.value); break;
          case 'failed':
            // What was received plays out (drained, as after a segment's last batch); the operator must hear of the
            // rest (the server names the file).
            log.error('the server cannot feed this cue any further', { cue: ev.value.cueId, code: ev.value.code, error: ev.value.message });
            this.#drainSegment(ev.value.cueId, ev.value.segment, ev.value.generation);
            break;
          default: break;
        }
      }
    } finally {
      for (const id of this.#cues.keys()) this.#dropSlots(id);
    }
  }

  #onClock(s: ClockState): void {
    const previous = this.lastClock;
    this.lastClock = s;
    if (previous !== null && s.generation !== previous.generation) {
      // A discontinuity: the server restarts every feed from the new position, keyframe first.
      for (const cue of this.#cues.values()) {
        for (const [stream, slot] of cue.slots) {
          if (slot.generation < s.generation) {
            this.#drop(slot);
            cue.slots.delete(stream);
          }
        }
        for (const slot of cue.draining) {
          if (slot.generation < s.generation) {
            this.#drop(slot);
            cue.draining.delete(slot);
          }
        }
      }
    }
    this.safeEmit('clock', s);
  }

  #onLoaded(c: CueLoaded): void {
    const streams = new Map<number, StreamInfo>();
    for (const i of c.streams) {
      const info = c.media?.streams.find((s) => s.index === i);
      if (info !== undefined && info.codecType === this.#options.kind) streams.set(i, info);
    }
    const known = this.#cues.get(c.cueId);
    if (known !== undefined) this.#dropSlots(c.cueId);
    this.#cues.set(c.cueId, { loaded: c, streams, slots: new Map(), draining: new Set(), prepared: null, starts: new Map() });
    this.safeEmit('loaded', c);
  }

  #onStarted(c: CueStarted): void {
    const starts = this.#cues.get(c.cueId)?.starts;
    if (starts !== undefined) {
      starts.set(c.segment, c);
      for (const k of starts.keys()) if (starts.size > KEEP_STARTS) starts.delete(k);
    }
    this.safeEmit('started', c, process.hrtime.bigint());
  }

  #onPackets(b: FollowPackets): void {
    const cue = this.#cues.get(b.cueId);
    if (cue === undefined) return;
    if (this.lastClock !== null && b.generation < this.lastClock.generation) return; // planned for a timeline that is gone
    this.packets += b.packets.length;
    if (b.preroll !== 0) this.#adopt(cue, b);
    for (const p of b.packets) {
      const slot = this.#slot(cue, b, p.streamIndex);
      if (slot !== null) this.#enqueue(slot, () => this.#decode(cue, slot, p, cue.starts.get(b.segment)));
    }
    if (b.last) this.#drainSegment(b.cueId, b.segment, b.generation);
  }

  /** Decode a preroll's packets now, into decoders kept for the segment that will adopt it (see CuePreroll). */
  #onPreroll(p: CuePreroll): void {
    const cue = this.#cues.get(p.cueId);
    if (cue === undefined) return;
    this.packets += p.packets.length;
    if (cue.prepared?.preroll !== p.preroll) {
      // A new preroll replaces the cue's earlier one.
      this.#dropPrepared(cue);
      const queue = [...cue.streams.values()].every((s) => s.codecType === 'audio' || isIntraOnlyVideo(s)) ? this.#prepQueues.short : this.#prepQueues.long;
      cue.prepared = { preroll: p.preroll, slots: new Map(), queue, turn: queue.add(), waited: false, liveWaitMs: LIVE_WAIT_MS };
      if (this.#firstPrerolls.get(p.cueId) === p.preroll) queue.startNow(cue.prepared.turn);
      this.#firstPrerolls.delete(p.cueId);
    }
    const prepared = cue.prepared;
    for (const pk of p.packets) {
      let slot = prepared.slots.get(pk.streamIndex);
      if (slot === undefined) {
        const info = cue.streams.get(pk.streamIndex);
        if (info === undefined) continue;
        slot = this.#open(cue, pk.streamIndex, info, 0, 0n, p.preroll, prepared.turn.ready);
        prepared.slots.set(pk.streamIndex, slot);
      }
      const s = slot;
      this.#enqueue(s, async () => {
        // Cues on the clock first: a long-GOP preroll's packet waits for the decoding queued for them (measured: a
        // preroll's burst of a GOP from its keyframe made the playing cue's frames late). A short one (0.25 s of
        // pictures that each decode alone: 28 ms of CPU for 1080p25 DNxHD) waits once, before its first packet:
        // waiting before each, it got one packet in per batch of the playing cue's, and a fresh player's DNxHD
        // preroll took 1.75 s beside an unarmed H.264 GO (bench:go on cec45bc: unprepared at its GO, 26 ticks late).
        if (s.preroll !== 0 && !(prepared.queue === this.#prepQueues.short && prepared.waited)) {
          await this.#liveIdle();
          prepared.waited = true;
        }
        // And never while a playing cue's decoder has packets waiting and is not ahead (a GO's catch-up): live-lead.ts.
        if (s.preroll !== 0 && prepared.liveWaitMs > 0) {
          const from = performance.now();
          await this.#lead.untilAhead(() => this.#presentedNow(), LIVE_LEAD_SECONDS, prepared.liveWaitMs);
          prepared.liveWaitMs -= performance.now() - from;
        }
        await this.#decode(cue, s, pk, cue.loaded.inSeconds);
      });
    }
    if (p.last) {
      // Said once every packet of it is decoded: the in-point is ready (an operator's display, and tests, wait on it).
      const chains = [...prepared.slots.values()].map((s) => s.chain);
      void Promise.all(chains).then(() => {
        prepared.queue.finish(prepared.turn);
        if (this.#cues.get(p.cueId) === cue && [...prepared.slots.values()].every((s) => !s.dropped)) this.safeEmit('prepared', { cueId: p.cueId, preroll: p.preroll });
      });
    }
  }

  /**
   * A loaded cue was armed again (its GO is likely next): its preroll is prepared now, beside the one being prepared,
   * not after those waiting (measured: a player that had just connected to 11 loaded cues prepared them over 5 s, and
   * GOs of cues loaded again meanwhile were 14-31 ticks late).
   */
  #onRearmed(r: CueRearmed): void {
    const cue = this.#cues.get(r.cueId);
    if (cue === undefined) return;
    if (cue.prepared?.preroll === r.preroll) cue.prepared.queue.startNow(cue.prepared.turn);
    else this.#firstPrerolls.set(r.cueId, r.preroll);
  }

  /**
   * The first batch of a segment continues the cue's preroll: its decoders (and the frames they gave, announced by
   * 'adopted') become the segment's. The previous pass of the same generation drains, an older one is dropped.
   */
  #adopt(cue: CueTrack, b: FollowPackets): void {
    const prepared = cue.prepared;
    if (prepared?.preroll !== b.preroll) {
      log.error('the server continued a preroll this player does not hold: the segment starts without its first packets', { cue: b.cueId, preroll: b.preroll, held: prepared?.preroll ?? null });
      return;
    }
    cue.prepared = null;
    prepared.queue.startNow(prepared.turn); // on the clock now: not after the prerolls queued before it
    for (const [stream, slot] of prepared.slots) {
      const cur = cue.slots.get(stream);
      if (cur !== undefined) this.#retire(cue, cur, b.generation);
      slot.segment = b.segment;
      slot.generation = b.generation;
      slot.preroll = 0;
      cue.slots.set(stream, slot);
    }
    this.safeEmit('adopted', { cueId: b.cueId, preroll: b.preroll, segment: b.segment, generation: b.generation, receivedNs: process.hrtime.bigint() });
  }

  /** Resolves once the decoding queued so far for segments (not prerolls) is done. */
  #liveIdle(): Promise<unknown> {
    const chains: Promise<void>[] = [];
    for (const c of this.#cues.values()) for (const s of [...c.slots.values(), ...c.draining]) if (s.preroll === 0) chains.push(s.chain);
    return Promise.all(chains);
  }

  /** A slot that a new pass replaces: it drains when of the same generation (a loop's seam), else it is dropped. */
  #retire(cue: CueTrack, cur: Slot, generation: bigint): void {
    if (cur.generation === generation) {
      cue.draining.add(cur);
      this.#enqueue(cur, () => this.#drain(cue, cur));
    } else {
      this.#drop(cur);
    }
  }

  /** No more packets come for (segment, generation) of a cue: drain its decoders of the frames they hold back. */
  #drainSegment(cueId: string, segment: number, generation: bigint): void {
    const cue = this.#cues.get(cueId);
    if (cue === undefined) return;
    for (const [stream, slot] of cue.slots) {
      if (slot.segment !== segment || slot.generation !== generation) continue;
      slot.drained = true;
      cue.draining.add(slot);
      this.#enqueue(slot, () => this.#drain(cue, slot));
      cue.slots.delete(stream);
    }
  }

  /** The slot for packets of `stream` in batch `b`: a new pass or generation gets a new decoder. */
  #slot(cue: CueTrack, b: FollowPackets, stream: number): Slot | null {
    const info = cue.streams.get(stream);
    if (info === undefined) return null;
    const cur = cue.slots.get(stream);
    if (cur !== undefined && cur.segment === b.segment && cur.generation === b.generation) return cur;
    // The previous pass of a loop ends where this one begins: drain its last frames; an older timeline is dropped.
    if (cur !== undefined) this.#retire(cue, cur, b.generation);
    const slot = this.#open(cue, stream, info, b.segment, b.generation, 0);
    cue.slots.set(stream, slot);
    return slot;
  }

  /** A new slot whose decoder opens first in its chain, after `after` (a preroll's turn). */
  #open(cue: CueTrack, stream: number, info: StreamInfo, segment: number, generation: bigint, preroll: number, after: Promise<void> = Promise.resolve()): Slot {
    const slot: Slot = {
      segment, generation, preroll, stream, info, chain: after, decoder: null, resampler: null,
      audioOrigin: null, audioOut: 0, dropped: false, drained: false,
      // A preroll's slot has one too, for the segment that adopts it: its own packets are never skipped (#decode asks
      // only for a segment's), and a cue adopted before its preroll was decoded (a GO early after its load) catches up
      // as an unarmed one does; on time, it leaves out none (bench:go under --trace-gc: a DNxHD cue adopted unprepared
      // decoded every picture late and was never in sync).
      skip: isIntraOnlyVideo(info) ? new IntraSkip() : null,
    };
    this.#enqueue(slot, async () => {
      slot.decoder = await openDecoder(decoderConfigFromStreamInfo(info), `${cue.loaded.media?.path ?? cue.loaded.cueId} stream ${stream}`,
        // Audio decoded so that a cue started anywhere gives the continuous decode's samples (see exactStarts).
        // A preroll's decoder must give every picture it is sent before the GO (see decoderThreadsFor); a segment's
        // opened at a GO catches up with a running clock, where FFmpeg's frame threads decode pictures side by side.
        { threads: preroll !== 0 ? decoderThreadsFor(info, this.#options.decoderThreads ?? 0) : this.#options.decoderThreads ?? 0, exactStarts: true });
    });
    return slot;
  }

  /** Run `op` after the slot's earlier operations; a failure is logged and the slot goes on with the next packet. */
  #enqueue(slot: Slot, op: () => Promise<void>): void {
    // A playing cue's video decoding: prerolls wait while it is behind (see #lead).
    const live = slot.preroll === 0 && slot.info.codecType === 'video';
    if (live) this.#lead.queued(slot);
    slot.chain = slot.chain.then(async () => {
      try {
        if (slot.dropped) return;
        await op();
      } catch (e) {
        // A damaged file fails packet after packet: say so once, then every hundredth time.
        if (this.failures++ % 100 !== 0) return;
        log.warn('decoding failed', { failures: this.failures, output: this.#options.output, stream: slot.stream, segment: slot.segment, error: errorMessage(e) });
      } finally {
        if (live) this.#lead.done(slot);
      }
    });
  }

  /**
   * Decode `p`; `start`: the first instant shown (media s, a preroll's in-point) or the segment's place on the clock,
   * when known (a packet wholly before it is unshown).
   */
  async #decode(cue: CueTrack, slot: Slot, p: Packet, start?: number | CueStarted): Promise<void> {
    if (slot.decoder === null) return; // the decoder did not open (logged)
    const tb = slot.info.timeBaseNum / slot.info.timeBaseDen;
    if (slot.skip !== null && typeof start === 'object' && this.#skips(slot.skip, p, tb, start)) {
      this.presented.countSkipped();
      return;
    }
    const from = typeof start === 'object' ? start.mediaSeconds : start;
    // Pictures before the in-point that no other picture refers to are not decoded: on the bench:go H.264 (3 B-frames,
    // a keyframe every 2 s) that is 124 of 250 pictures, and decoding 250 packets took 0.6-0.7 s of CPU, not 1.34 s.
    const unshown = from !== undefined && p.pts !== undefined && Number(p.duration) > 0 && endsBefore({ mediaSeconds: Number(p.pts) * tb, durationSeconds: Number(p.duration) * tb }, from);
    const frames = await slot.decoder.decode({ data: p.data, pts: p.pts ?? null, dts: p.dts ?? null, duration: p.duration, flags: p.flags, unshown });
    await this.#emitFrames(cue, slot, frames);
  }

  /** Whether `skip`'s segment leaves packet `p` out (see IntraSkip.skips). */
  #skips(skip: IntraSkip, p: Packet, tb: number, start: CueStarted): boolean {
    const now = this.#presentedNow();
    const dur = Number(p.duration) * tb;
    if (now === null || p.pts === undefined || !(dur > 0)) return false;
    return skip.skips(clockOf(start, Number(p.pts) * tb + dur), dur, now);
  }

  /** The clock position the presenting thread is at now (null before it knows the clock). */
  #presentedNow(): number | null {
    return this.presented.clockAt(process.hrtime.bigint(), this.lastClock);
  }

  async #drain(cue: CueTrack, slot: Slot): Promise<void> {
    if (slot.decoder !== null) await this.#emitFrames(cue, slot, await slot.decoder.flush());
    if (slot.resampler !== null && !slot.dropped) {
      const rest = await slot.resampler.flush();
      this.#emitAudio(cue, slot, rest);
    }
    await this.#close(slot);
    cue.draining.delete(slot);
  }

  async #emitFrames(cue: CueTrack, slot: Slot, frames: DecodedFrame[]): Promise<void> {
    const tb = slot.info.timeBaseNum / slot.info.timeBaseDen;
    for (const frame of frames) {
      if (slot.dropped) return;
      this.safeEmit('decoded', { cueId: cue.loaded.cueId, segment: slot.segment, generation: slot.generation, preroll: slot.preroll, stream: slot.stream, frame });
      // ffmpeg presents pictures at their best-effort timestamp (pts guessed from dts when missing), audio at pts.
      const ts = frame.kind === 'video' ? frame.bestEffortPts ?? frame.pts : frame.pts ?? frame.bestEffortPts;
      if (frame.kind === 'video') {
        if (ts === null) continue; // a picture with no time cannot be placed on the clock
        const fr = slot.info.frameRateNum > 0 && slot.info.frameRateDen > 0 ? slot.info.frameRateDen / slot.info.frameRateNum : 0.04;
        const place = { mediaSeconds: ts * tb, durationSeconds: frame.duration > 0 ? frame.duration * tb : fr };
        // A preroll's pictures before the in-point (up to a GOP from its keyframe) are not handed on: in a worker,
        // each would be copied into a pool slot and posted only to be dropped by the presenter.
        if (slot.preroll !== 0 && endsBefore(place, cue.loaded.inSeconds)) continue;
        this.safeEmit('picture', {
          cueId: cue.loaded.cueId, segment: slot.segment, generation: slot.generation, preroll: slot.preroll, stream: slot.stream, frame, ...place,
        });
        const st = slot.preroll === 0 ? cue.starts.get(slot.segment) : undefined;
        if (st === undefined) continue;
        const coveredTo = clockOf(st, place.mediaSeconds + place.durationSeconds);
        this.#lead.gave(slot, coveredTo);
        if (slot.skip?.catchingUp === true) slot.skip.given(coveredTo, place.durationSeconds, this.#presentedNow());
      } else {
        await this.#convert(cue, slot, frame, ts === null ? null : ts * tb);
      }
    }
  }

  async #convert(cue: CueTrack, slot: Slot, frame: DecodedAudioFrame, seconds: number | null): Promise<void> {
    if (slot.resampler === null) {
      slot.resampler = await openAudioResampler(
        { sampleRate: frame.sampleRate, channels: frame.channels, channelLayout: frame.channelLayout, format: frame.format },
        { sampleRate: 48000, ...this.#options.audioOutput },
        `${cue.loaded.media?.path ?? cue.loaded.cueId} stream ${slot.stream} (resampler)`);
      // The resampler's output is continuous from the first frame's time on: later samples are counted from it.
      slot.audioOrigin = seconds ?? 0;
    }
    const out = await slot.resampler.convert(frame);
    if (!slot.dropped) this.#emitAudio(cue, slot, out);
  }

  #emitAudio(cue: CueTrack, slot: Slot, samples: Float32Array): void {
    const r = slot.resampler;
    if (r === null || samples.length === 0) return;
    // Counted before the emit: a listener may move the block's buffer to another thread (the decode worker does).
    const frames = samples.length / r.output.channels;
    this.safeEmit('audio', {
      cueId: cue.loaded.cueId, segment: slot.segment, generation: slot.generation, preroll: slot.preroll, stream: slot.stream, samples,
      mediaSeconds: (slot.audioOrigin ?? 0) + slot.audioOut / r.output.sampleRate,
    });
    slot.audioOut += frames;
  }

  async #close(slot: Slot): Promise<void> {
    this.#lead.forget(slot);
    const d = slot.decoder;
    const r = slot.resampler;
    slot.decoder = null;
    slot.resampler = null;
    await Promise.all([d?.close(), r?.close()]);
  }

  /** Stop a slot: pending work is skipped, nothing more is emitted, its codecs are released. */
  #drop(slot: Slot): void {
    slot.dropped = true;
    this.#lead.forget(slot);
    slot.chain = slot.chain.then(() => this.#close(slot)).catch(() => undefined);
  }

  /** Drop a cue's segment decoders, and its preroll's too unless `prepared` is false. */
  #dropSlots(cueId: string, prepared = true): void {
    const cue = this.#cues.get(cueId);
    if (cue === undefined) return;
    for (const slot of [...cue.slots.values(), ...cue.draining]) this.#drop(slot);
    cue.slots.clear();
    cue.draining.clear();
    if (prepared) this.#dropPrepared(cue);
  }

  /** Drop the cue's preroll (its decoders and frames), and give its turn to the next. */
  #dropPrepared(cue: CueTrack): void {
    if (cue.prepared === null) return;
    for (const slot of cue.prepared.slots.values()) this.#drop(slot);
    cue.prepared.queue.finish(cue.prepared.turn);
    cue.prepared = null;
  }
}
