/**
 * The reference audio player (`cuemux play-audio`). It plays into an audio device model: a sample clock of
 * `sampleRate` Hz on CLOCK_MONOTONIC (optionally off by `devicePpm`, as a real crystal is) that presents period k
 * at instant t_k. Each period is rendered `writeAheadNs` before t_k from the decoded, converted audio of every cue on
 * the output (mixed), so that the sample presented at each device instant is the one the show clock asks for then:
 * - a cue starts on the exact sample where the clock reaches its segment (sample-accurate start);
 * - while the device and the clock agree, samples are copied unchanged (bit-exact FFmpeg output);
 * - small drift (device crystal, a chased clock's rate) is absorbed by slewing the read rate by at most `maxSlew`;
 * - only a discontinuity (new generation, new segment) or an error beyond `relocateSeconds` relocates.
 * The sync log records, per period and cue, the device instant, the clock time at which the presented sample is due
 * (`pts_seconds`) and the clock position at that instant (`clock_seconds`).
 *
 * With a real device (`device`, e.g. JACK) the model's clock is replaced by the device's: each device cycle wakes the
 * player, which renders the periods the device will take next (up to `writeAheadNs` ahead) for the device frames they
 * will occupy. A period's device instant is then when its first frame *leaves* the device: the device's cycle time
 * for that frame plus the output latency it reports ({@link AudioDevice.departureNs}). Rendering is the same as for
 * the model, so the same copy / slew / relocate rules keep the device in step with the show clock.
 */
import { getLogger } from '../common/logger';
import { clockRunning, type ClockAt } from '../clients/clock-position';
import type { ClockState } from '../generated/cuemux/v1/media_server';
import type { AudioDevice, DeviceCycle } from './audio-device';
import type { AudioSink } from './audio-sinks';
import { CueTimeline } from './cue-timeline';
import type { FollowerSource, TimedAudio } from './follower';
import type { SyncLog } from './sync-log';
import { tickInstant, TickScheduler } from './tick-scheduler';

const log = getLogger('play-audio');

/** Options of {@link AudioPlayer}. */
export interface AudioPlayerOptions {
  /** Device sample rate, Hz (the follower must convert to it). */
  sampleRate: number;
  /** Device channels (the follower must convert to them). */
  channels: number;
  /** Samples per channel per period (e.g. 480 = 10 ms at 48 kHz). */
  periodFrames: number;
  /** Where periods go. */
  sinks: AudioSink[];
  /** One JSON line per period and playing cue, or null. */
  syncLog: SyncLog | null;
  /** The show position of a clock state at an instant (play-command maps it locally or through the Ping offset). */
  clockAt: ClockAt;
  /** Device crystal error in parts per million (default 0): >0 = the device runs slow against CLOCK_MONOTONIC. */
  devicePpm?: number;
  /** How long before its device instant a period is rendered, ns (default 20 ms: the device buffer). */
  writeAheadNs?: bigint;
  /** An error beyond this relocates instead of slewing, s (default 0.02). */
  relocateSeconds?: number;
  /** Largest read-rate deviation while slewing, as a fraction (default 0.005 = 0.5 %, inaudible for speech/music cues). */
  maxSlew?: number;
  /**
   * A real device to play on (its clock replaces the model's; `sampleRate` and `periodFrames` must be the device's,
   * `devicePpm` 0). The sinks still get every period. Default none.
   */
  device?: AudioDevice | null;
}

/** Counters of an {@link AudioPlayer}. */
export interface AudioPlayerStats {
  /** Periods rendered. */
  periods: number;
  /** Periods in which at least one cue played. */
  playing: number;
  /** Samples (per channel) a cue needed that had not been decoded yet (played as silence). */
  underrunSamples: number;
  /** Relocations of a running voice (error beyond `relocateSeconds`). */
  relocations: number;
  /** Periods rendered with a slewed (non-unity) read rate. */
  slewedPeriods: number;
  /** Periods missed because the process was held up past the write-ahead (the device played silence). */
  xruns: number;
  /** Frames a real device played as silence because they were not written in time (0 without a device). */
  deviceUnderrunFrames: number;
}

/** One cue segment's audio, decoded and converted, as a contiguous sample stream. */
interface Voice {
  cueId: string;
  segment: number;
  generation: bigint;
  /** The preroll it holds until a segment adopts it (then 0): not played before. */
  preroll: number;
  /** Media time of voice sample 0, s. */
  firstSeconds: number;
  /** Interleaved samples from voice sample `bufStart` on. */
  buf: Float32Array;
  bufStart: number;
  /** Voice samples (per channel) held in `buf`. */
  bufLen: number;
  /** Read position at the next period's first sample, in voice samples (fractional while slewing); null before the start. */
  pos: number | null;
}

/** A voice's key: cue, segment and generation, or the cue's preroll (one per cue), and the stream. */
function voiceKey(v: { cueId: string; segment: number; generation: bigint; preroll: number }, stream: string): string {
  return v.preroll !== 0 ? `${v.cueId}\0preroll\0${stream}` : `${v.cueId}\0${v.segment}\0${v.generation}\0${stream}`;
}

/** Plays an output's audio into sinks at the device's pace. */
export class AudioPlayer {
  readonly #o: Required<Omit<AudioPlayerOptions, 'syncLog' | 'device'>> & { syncLog: SyncLog | null; device: AudioDevice | null };
  readonly #timeline = new CueTimeline();
  readonly #voices = new Map<string, Voice>();
  #clock: ClockState | null = null;
  #ticker: TickScheduler | null = null;
  #deviceStartNs = 0n;
  #lastPeriod = -1;
  /** Device frame of the next period to render (real device), null before the first cycle. */
  #nextFrame: number | null = null;
  #stopped = false;
  /**
   * Samples a voice keeps behind its read position: the write-ahead and two periods (a resume reads again from where
   * the clock stopped, which the periods written ahead of the stop had passed).
   */
  readonly #keptBehind: number;
  readonly #stats: AudioPlayerStats = { periods: 0, playing: 0, underrunSamples: 0, relocations: 0, slewedPeriods: 0, xruns: 0, deviceUnderrunFrames: 0 };

  constructor(follower: FollowerSource, options: AudioPlayerOptions) {
    this.#o = { devicePpm: 0, writeAheadNs: 20_000_000n, relocateSeconds: 0.02, maxSlew: 0.005, ...options, device: options.device ?? null };
    this.#keptBehind = Math.ceil((Number(this.#o.writeAheadNs) * this.#o.sampleRate) / 1e9) + 2 * this.#o.periodFrames;
    if (!Number.isInteger(this.#o.devicePpm) || Math.abs(this.#o.devicePpm) > 10_000) throw new RangeError(`device ppm must be an integer within ±10000, got ${this.#o.devicePpm}`);
    const d = this.#o.device?.description;
    if (d !== undefined && (d.sampleRate !== this.#o.sampleRate || d.periodFrames !== this.#o.periodFrames || d.channels !== this.#o.channels || this.#o.devicePpm !== 0)) {
      throw new RangeError(`the player must run at the device's format (${d.sampleRate} Hz, ${d.periodFrames}-frame periods, ${d.channels} channels, no modelled ppm)`);
    }
    if (d !== undefined && (Number(this.#o.writeAheadNs) * d.sampleRate) / 1e9 + 2 * d.periodFrames > d.bufferFrames / 2) {
      throw new RangeError(`a write-ahead of ${Number(this.#o.writeAheadNs) / 1e6} ms does not fit the device's buffer of ${d.bufferFrames} frames`);
    }
    follower.on('clock', (s) => {
      const before = this.#clock;
      this.#clock = s;
      // A preroll holds no clock time: a discontinuity leaves it.
      for (const [k, v] of this.#voices) if (v.preroll === 0 && v.generation < s.generation) this.#voices.delete(k);
      // A stop or a resume keeps the generation (the position goes on from where it stood), and the voices with their
      // samples: each is placed again, to the sample, at its next period. The periods written ahead of a stop played
      // on past it: without this the error at the resume (up to the write-ahead and a period, 30 ms) would count as
      // a relocation, or be slewed away over seconds.
      if (before !== null && before.generation === s.generation && clockRunning(before) !== clockRunning(s)) {
        for (const v of this.#voices.values()) v.pos = null;
      }
    });
    follower.on('loaded', (c) => {
      // Loaded again (re-armed): its old preroll is gone.
      for (const [k, v] of this.#voices) if (v.cueId === c.cueId && v.preroll !== 0) this.#voices.delete(k);
    });
    // Preroll numbers belong to a Follow call: a new call's prerolls replace every one held.
    follower.on('reconnect', () => {
      for (const [k, v] of this.#voices) if (v.preroll !== 0) this.#voices.delete(k);
    });
    follower.on('adopted', (a) => {
      // The preroll's samples (in-point and decoder pre-roll) are the segment's: it starts on its first period.
      for (const [k, v] of [...this.#voices]) {
        if (v.cueId !== a.cueId || v.preroll === 0) continue;
        this.#voices.delete(k);
        if (v.preroll !== a.preroll) continue;
        v.segment = a.segment;
        v.generation = a.generation;
        v.preroll = 0;
        this.#voices.set(voiceKey(v, k.slice(k.lastIndexOf('\0') + 1)), v);
      }
    });
    follower.on('started', (s) => this.#timeline.started(s));
    follower.on('stopped', (s) => this.#timeline.stopped(s));
    follower.on('unloaded', (id) => {
      this.#timeline.unloaded(id);
      for (const [k, v] of this.#voices) if (v.cueId === id) this.#voices.delete(k);
    });
    follower.on('audio', (a) => this.#add(a));
  }

  /** Counters so far. */
  get stats(): Readonly<AudioPlayerStats> {
    return { ...this.#stats, deviceUnderrunFrames: this.#o.device?.stats.underrunFrames ?? 0 };
  }

  /** Start the device: its first period is presented `writeAheadNs` from now (the model), or at its next cycle. */
  start(): void {
    const o = this.#o;
    if (o.device !== null) {
      const device = o.device;
      device.start((c) => this.#deviceCycle(device, c));
      return;
    }
    this.#deviceStartNs = process.hrtime.bigint() + o.writeAheadNs;
    // Periods per second of the device: sampleRate / (periodFrames · (1 + ppm·10⁻⁶)), as an exact rational.
    const rate = { num: o.sampleRate * 1_000_000, den: o.periodFrames * (1_000_000 + o.devicePpm) };
    this.#ticker = new TickScheduler({ startNs: this.#deviceStartNs - o.writeAheadNs, rate, spinNs: 0n, skipLateNs: o.writeAheadNs },
      (n) => {
        if (n !== this.#lastPeriod + 1 && this.#lastPeriod >= 0) this.#xrun(this.#lastPeriod + 1, n, tickInstant(this.#deviceStartNs, rate, this.#lastPeriod + 1));
        this.#lastPeriod = n;
        this.#period(n, tickInstant(this.#deviceStartNs, rate, n));
      });
    this.#ticker.start();
  }

  /** Stop the device (sinks, log and a real device are the caller's to close). Idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#ticker?.stop();
  }

  /**
   * A real device finished a cycle (frames before `c.frame + c.frames` are taken): render the periods it takes next,
   * up to the write-ahead, each for the device frames it will occupy and for the instant its first frame leaves.
   */
  #deviceCycle(device: AudioDevice, c: DeviceCycle): void {
    if (this.#stopped) return;
    const o = this.#o;
    const P = o.periodFrames;
    const taken = c.frame + c.frames;
    const ahead = Math.max(P, Math.ceil((Number(o.writeAheadNs) * o.sampleRate) / 1e9));
    let frame = this.#nextFrame ?? taken;
    if (frame < taken) {
      // Periods the device took before they were written (it played silence: counted by the device as underruns).
      const missed = Math.ceil((taken - frame) / P);
      this.#xrun(this.#lastPeriod + 1, this.#lastPeriod + 1 + missed, device.departureNs(frame));
      this.#lastPeriod += missed;
      frame += missed * P;
    }
    for (; frame < taken + ahead; frame += P) this.#period(++this.#lastPeriod, device.departureNs(frame), frame);
    this.#nextFrame = frame;
  }

  /**
   * Periods were missed (the process was held up longer than the write-ahead): the device played silence for them,
   * as a real one does on an xrun. Every cue restarts on the sample the clock asks for at the next period.
   */
  #xrun(from: number, to: number, atNs: bigint): void {
    const periods = to - from;
    this.#stats.xruns += periods;
    for (const v of this.#voices.values()) v.pos = null;
    log.warn('audio periods missed: the player was held up past its write-ahead (xrun)', { periods, writeAheadMs: Number(this.#o.writeAheadNs) / 1e6 });
    // The device timeline goes on: the sinks get the silence the device played, so a recording stays aligned.
    const silence = new Float32Array(this.#o.periodFrames * this.#o.channels);
    // At most 10 s of it: after a suspended machine the timeline is lost anyway, and the sinks' queues are bounded.
    const count = Math.min(periods, Math.ceil((10 * this.#o.sampleRate) / this.#o.periodFrames));
    for (const sink of this.#o.sinks) for (let k = 0; k < count; k++) sink.write(silence, { monoNs: atNs, ptsSeconds: null, clockSeconds: Number.NaN });
  }

  #add(a: TimedAudio): void {
    if (a.preroll === 0) {
      if (this.#clock !== null && a.generation < this.#clock.generation) return;
      // Segments still on the timeline only (a drain may outlive an unload); each stream is its own voice (mixed).
      if (this.#timeline.window(a.cueId, a.segment) === undefined) return;
    }
    const key = voiceKey(a, String(a.stream));
    const ch = this.#o.channels;
    let v = this.#voices.get(key);
    if (v !== undefined && v.preroll !== a.preroll) {
      this.#voices.delete(key); // a new preroll replaces the cue's older one
      v = undefined;
    }
    if (v === undefined) {
      v = { cueId: a.cueId, segment: a.segment, generation: a.generation, preroll: a.preroll, firstSeconds: a.mediaSeconds, buf: new Float32Array(0), bufStart: 0, bufLen: 0, pos: null };
      this.#voices.set(key, v);
    }
    const n = a.samples.length / ch;
    // Voice sample index of the block's first sample: blocks of one voice are contiguous.
    const blockStart = v.bufStart + v.bufLen;
    // Keep what is still to be read, and #keptBehind samples before it. After an underrun the read position may be
    // past what arrived: the late samples are skipped, sync comes first.
    const keepFrom = Math.min(blockStart + n, Math.max(v.bufStart, v.pos === null ? v.bufStart : Math.floor(v.pos) - this.#keptBehind));
    const oldKeep = Math.max(0, blockStart - keepFrom);
    const newSkip = Math.max(0, keepFrom - blockStart);
    const total = oldKeep + n - newSkip;
    const next = total * ch > v.buf.length ? new Float32Array(Math.max(total * ch, v.buf.length * 2)) : v.buf;
    if (oldKeep > 0) next.set(v.buf.subarray((keepFrom - v.bufStart) * ch, v.bufLen * ch), 0);
    next.set(a.samples.subarray(newSkip * ch), oldKeep * ch);
    v.buf = next;
    v.bufStart = keepFrom;
    v.bufLen = total;
  }

  /** Render period `n`, which the device presents at `atNs` (a real device: from its frame `deviceFrame` on). */
  #period(n: number, atNs: bigint, deviceFrame?: number): void {
    const o = this.#o;
    const ch = o.channels;
    const P = o.periodFrames;
    const out = new Float32Array(P * ch);
    const s = this.#clock;
    const rate = s !== null && clockRunning(s) ? s.rate : 0;
    const c0 = s === null ? 0 : o.clockAt(s, atNs);
    const sampleNs = (1e9 * (1 + o.devicePpm * 1e-6)) / o.sampleRate;
    /** Clock seconds advanced per device sample. */
    const adv = (rate * sampleNs) / 1e9;
    let firstPts: number | null = null;
    let played = false;
    if (adv > 0) {
      for (const [key, v] of this.#voices) {
        if (v.preroll !== 0) continue; // prepared, not on the clock yet
        const w = this.#timeline.window(v.cueId, v.segment);
        if (w === undefined) continue;
        if (c0 >= w.endClockSeconds) {
          this.#voices.delete(key); // its span is over (ended, stopped or paused)
          continue;
        }
        // The device samples nearest to the segment's start and end instants: the in-point sample lands on the
        // first, so the start is exact to the sample (±half a sample in time).
        const i0 = Math.max(0, Math.round((w.clockSeconds - c0) / adv));
        const i1 = Math.min(P, Math.round((w.endClockSeconds - c0) / adv));
        if (i0 >= i1) continue;
        const sr = o.sampleRate;
        // Voice position the clock asks for at this period's first sample, and the advance per sample.
        const want0 = (w.mediaSeconds + (c0 - w.clockSeconds) - v.firstSeconds) * sr;
        const perSample = adv * sr;
        const wantAtI0 = want0 + i0 * perSample;
        if (v.pos === null) {
          v.pos = Math.round(wantAtI0); // the start lands on a whole sample: sample-accurate
        } else if (Math.abs(v.pos - wantAtI0) > o.relocateSeconds * sr) {
          this.#stats.relocations++;
          log.info('relocating: the error exceeds the slew range', { cue: v.cueId, errorSeconds: (v.pos - wantAtI0) / sr });
          v.pos = Math.round(wantAtI0);
        }
        // Back within half a sample of the clock after a slew, at unit speed: snap to the sample grid, so samples
        // are copied unchanged again instead of interpolated for the rest of the run.
        if (Math.abs(perSample - 1) < 1e-9 && !Number.isInteger(v.pos) && Math.abs(Math.round(v.pos) - wantAtI0) <= 0.5) v.pos = Math.round(v.pos);
        const start = v.pos;
        const target = want0 + P * perSample;
        let step = (target - start) / (P - i0);
        if (Number.isInteger(start) && Math.abs(perSample - 1) < 1e-9 && Math.abs(start + (P - i0) - target) <= 0.5) {
          step = 1; // device and clock agree within half a sample: copy samples unchanged
        } else {
          step = Math.min(perSample * (1 + o.maxSlew), Math.max(perSample * (1 - o.maxSlew), step));
          this.#stats.slewedPeriods++;
        }
        // Decoded samples the voice held ahead of this period's read position (negative: behind it), logged to tell
        // audio that arrived late (a starved decoder or feed) from audio that arrived but was misplaced.
        const ahead = v.bufStart + v.bufLen - start;
        const missing = this.#render(v, out, i0, i1, start, step);
        const pts = w.clockSeconds + (v.firstSeconds + start / sr - w.mediaSeconds);
        firstPts ??= pts;
        played = true;
        o.syncLog?.record(atNs + BigInt(Math.round(i0 * sampleNs)), pts, c0 + i0 * adv, {
          cue: v.cueId, segment: v.segment, media_seconds: v.firstSeconds + start / sr, samples: i1 - i0, underrun: missing, ahead: Math.round(ahead), slew: step === 1 ? 0 : step / perSample - 1,
          device_sample: n * P + i0,
          ...(deviceFrame === undefined ? {} : { device_frame: deviceFrame + i0, device_underrun_frames: o.device?.stats.underrunFrames ?? 0 }),
        });
        v.pos = start + (P - i0) * step;
        if (i1 < P) this.#voices.delete(key);
      }
    }
    this.#stats.periods++;
    if (played) this.#stats.playing++;
    const info = { monoNs: atNs, ptsSeconds: firstPts, clockSeconds: c0 };
    if (deviceFrame !== undefined) o.device?.write(deviceFrame, out);
    for (const sink of o.sinks) sink.write(out, info);
  }

  /**
   * Mix samples [i0, i1) of the period from voice position `start`, advancing `step` voice samples per sample.
   * Returns how many were not decoded yet (left silent).
   */
  #render(v: Voice, out: Float32Array, i0: number, i1: number, start: number, step: number): number {
    let missing = 0;
    const ch = this.#o.channels;
    const b = v.buf;
    for (let i = i0; i < i1; i++) {
      const x = start + (i - i0) * step;
      const k = Math.floor(x);
      const f = x - k;
      const j = k - v.bufStart;
      if (j < 0 || j + (f > 0 ? 1 : 0) >= v.bufLen) {
        missing++;
        continue;
      }
      const a = j * ch;
      const o = i * ch;
      if (f === 0) {
        for (let c = 0; c < ch; c++) out[o + c] += b[a + c];
      } else {
        for (let c = 0; c < ch; c++) out[o + c] += b[a + c] + (b[a + ch + c] - b[a + c]) * f;
      }
    }
    this.#stats.underrunSamples += missing;
    return missing;
  }
}
