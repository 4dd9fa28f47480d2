/**
 * The check of a real audio device shared by test/audio-device*.test.ts: a recorder (cuemux's JACK addon with input
 * ports) takes, in every JACK cycle, exactly what the device under test handed to JACK, with the cycle's frame time
 * and start instant; {@link checkConsumed} then compares each consumed sample with FFmpeg's decode of the media at the
 * show clock's position at the sample's departure. Nothing here measures wall-clock time.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { chirpWav } from './media';
import { d, firstAudioSeconds, mediaStart, s, Show, type PlayerProcess } from './show-check';
import { waitFor } from './wait';
import type { Recording } from './jack-recorder';
import { JACK_ADDON, jackAddon } from '../../src/players/audio-device-jack';
import { readSyncLog, type SyncRecord } from '../../src/players/sync-log';
import type { ClockState } from '../../src/generated/cuemux/v1/media_server';

/** FFmpeg's decode of `file`'s first audio stream at `rate` Hz, `channels` interleaved float32 (its own up/down-mix). */
export async function ffmpegSamples(file: string, channels: number, rate = 48000): Promise<Float32Array> {
  const { stdout } = await promisify(execFile)('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:a:0', '-af', `aresample=${rate}`, '-ac', String(channels), '-f', 'f32le', '-'],
    { encoding: 'buffer', maxBuffer: 1 << 30 });
  const b = Buffer.from(stdout);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

/**
 * A jackd of the test's own on the dummy driver (real-time scheduling when the machine allows it), named through
 * JACK_DEFAULT_SERVER for this process and its children while it runs.
 */
export class JackdServer {
  #jackd: ChildProcess | null = null;
  #log = '';
  readonly #savedEnv = process.env.JACK_DEFAULT_SERVER;

  constructor(readonly name: string, readonly rate: number, readonly period: number) {}

  /** Start it; null when up, else why it cannot run here (the caller skips, saying so). */
  async start(): Promise<string | null> {
    if (spawnSync('jackd', ['--version']).error !== undefined) return 'jackd is not installed (scripts/setup.sh installs jackd2)';
    if (!fs.existsSync(JACK_ADDON)) return `the JACK addon is not built (${JACK_ADDON}: scripts/build-addons.js jack)`;
    process.env.JACK_DEFAULT_SERVER = this.name;
    // Real-time scheduling as a show runs it; a machine that refuses it still runs JACK without.
    let up = await this.#start(true);
    if (up !== 'up') {
      await this.#kill();
      up = await this.#start(false);
    }
    return up === 'up' ? null : `jackd cannot start here (${up}): ${this.#log.trim().split('\n').slice(-3).join(' | ')}`;
  }

  /** jackd's last `lines` lines of output that say something went wrong (xruns, late clients), joined with " | ". */
  complaints(lines = 4): string {
    return this.#log.split('\n').filter((l) => /xrun|error|\blate\b|not finished|timeout/i.test(l)).slice(-lines).join(' | ');
  }

  /** Stop it and restore JACK_DEFAULT_SERVER. Idempotent. */
  async stop(): Promise<void> {
    if (this.#savedEnv === undefined) delete process.env.JACK_DEFAULT_SERVER;
    else process.env.JACK_DEFAULT_SERVER = this.#savedEnv;
    await this.#kill();
  }

  /** Start jackd (real-time scheduling or not); resolves with 'up', or why it did not come up. */
  async #start(realtime: boolean): Promise<string> {
    this.#log = '';
    const j = spawn('jackd', [...(realtime ? [] : ['--no-realtime']), '-n', this.name, '-d', 'dummy', '-r', String(this.rate), '-p', String(this.period)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#jackd = j;
    j.stdout?.setEncoding('utf8').on('data', (x: string) => { this.#log += x; });
    j.stderr?.setEncoding('utf8').on('data', (x: string) => { this.#log += x; });
    const gone = (): boolean => j.exitCode !== null || j.signalCode !== null;
    // Up when a client can open; if jackd exits (no shared memory, no /dev/shm...), this machine cannot run JACK.
    // (Its banner first: a client probing before the socket exists makes libjack print errors.)
    await waitFor('jackd\'s banner', () => this.#log.includes('self-connect-mode') || gone(), 10_000, 20).catch(() => undefined);
    const { JackClient: Client } = jackAddon();
    return waitFor('jackd to accept clients', () => {
      if (gone()) return 'exited';
      try {
        new Client({ name: 'cuemux-test-probe', outputs: 1 }).close();
        return 'up';
      } catch {
        return undefined;
      }
    }, 15_000, 100).catch(() => 'timeout');
  }

  async #kill(): Promise<void> {
    const j = this.#jackd;
    this.#jackd = null;
    if (j === null || j.exitCode !== null || j.signalCode !== null) return;
    const gone = new Promise((r) => j.once('exit', r));
    j.kill('SIGTERM');
    await gone;
  }
}

/** The player's largest read-rate deviation while slewing (AudioPlayerOptions.maxSlew's default). */
const MAX_SLEW = 0.005;

/** What {@link checkConsumed} compares. */
export interface ConsumedCheck {
  recording: Recording;
  /** FFmpeg's decode (interleaved). */
  ref: Float32Array;
  channels: number;
  rate: number;
  /** JACK frames per cycle. */
  period: number;
  /** The clock, and the clock position at which the cue went. */
  clock: ClockState;
  goPosition: number;
  /** Indexes (frames) in `ref` of the cue's in- and out-point. */
  inIdx: number;
  outIdx: number;
  /** A frame the recorder's cycle starts at leaves the device this much later (JACK: the playback latency), ns. */
  departureAfterCycleNs: number;
  /** The player's sync log lines of the cue. */
  lines: SyncRecord[];
  /** Recorder (JACK) frame of the player's device frame `f`. */
  jackFrame: (f: number) => number;
}

/** What {@link checkConsumed} found. */
export interface ConsumedResult {
  /** Cue samples in cycles wholly in the cue. */
  compared: number;
  /** Of them, played as silence, and interpolated (a slewed period: not bit-exact). */
  silentInCue: number;
  interpolated: number;
  /** Recorder cycles with interpolated samples that no slewed period of the player's sync log overlaps. */
  unexplainedInterpolated: number[];
  /** Non-zero samples before the cue's span (a period of margin). */
  offEarly: number;
  /** Offset (samples: consumed sample index − the index the clock asks for) → samples; NaN: unmatched. */
  offsets: Map<number, number>;
  /** Cycles whose samples are nowhere in FFmpeg's decode (at most 10). */
  wrong: string[];
  /** The cue's first non-zero consumed sample: its offset from the clock's ask, samples (null: not found). */
  firstFrameOff: number | null;
  /** Samples off by more than one period, or unmatched. */
  offByMore: number;
  histogram: string;
}

/**
 * For each recorder cycle wholly in the cue, the offset (in samples) at which its samples equal FFmpeg's decode
 * for the clock's position at each sample's departure (bit-exact, or, for a slewed period, linearly interpolated
 * between two neighbouring FFmpeg samples); and which interpolated cycles a slewed period can explain: a period
 * the sync log marks slewed covers device frames [device_frame, device_frame + samples), and only the recorder
 * cycles overlapping such a span can hold interpolated samples (after a slew the player snaps back to the sample
 * grid, and a period that does not is logged as slewed too).
 */
export function checkConsumed(c: ConsumedCheck): ConsumedResult {
  const { recording, ref, channels: CH, rate, period: PERIOD, clock, goPosition: P, inIdx, outIdx } = c;
  const frameNs = 1e9 / rate;
  const latencyNs = c.departureAfterCycleNs;
  let compared = 0;
  let silentInCue = 0;
  let interpolated = 0;
  let offEarly = 0;
  const interpolatedCycles: number[] = [];
  const offsets = new Map<number, number>();
  const wrong: string[] = [];
  const { samples, firstIndex } = recording;
  const askAt = (t: bigint): number => inIdx + Math.round((Show.positionAt(clock, t) - P) * rate);
  for (const cy of recording.cycles) {
    if (cy.captureIndex < 0) continue;
    const base = (cy.captureIndex - firstIndex) * CH;
    if (base < 0 || base + cy.frames * CH > samples.length) continue;
    // The cue samples the clock asks for at each frame of the cycle (index into FFmpeg's decode), or -1 outside.
    const want: number[] = [];
    for (let i = 0; i < cy.frames; i++) {
      const k = askAt(cy.monoNs + BigInt(Math.round(i * frameNs + latencyNs)));
      want.push(k >= inIdx && k < outIdx ? k : -1);
    }
    const inCue = want.filter((k) => k >= 0).length;
    if (inCue === 0) {
      // Outside the cue (one period of margin for the edges): the device played silence.
      const k0 = askAt(cy.monoNs + BigInt(Math.round(latencyNs)));
      if (k0 < inIdx - 2 * PERIOD || k0 > outIdx + PERIOD) {
        for (let j = 0; j < cy.frames * CH; j++) if (samples[base + j] !== 0) offEarly++;
      }
      continue;
    }
    if (inCue < cy.frames) continue; // the cycle with the cue's first or last sample: its edges are checked below
    compared += inCue;
    if (samples.subarray(base, base + cy.frames * CH).every((v) => v === 0)) {
      silentInCue += inCue;
      continue;
    }
    const at = (i: number, ch: number): number => samples[base + i * CH + ch];
    // The offset (samples) at which this cycle's samples equal FFmpeg's, on every channel, nearest first.
    let found: number | null = null;
    for (let m = 0; m <= 2 * rate && found === null; m++) {
      for (const off of m === 0 ? [0] : [m, -m]) {
        let ok = true;
        for (let i = 0; i < cy.frames && ok; i++) for (let ch = 0; ch < CH && ok; ch++) ok = at(i, ch) === ref[(want[i] + off) * CH + ch];
        if (ok) {
          found = off;
          break;
        }
      }
    }
    if (found !== null) {
      offsets.set(found, (offsets.get(found) ?? 0) + inCue);
      continue;
    }
    // A slewed period (the player interpolates while it catches up with the clock) is not bit-exact: its offset is
    // the nearest d at which every sample lies between FFmpeg's samples k+d' and k+d'+1 (a linear interpolation),
    // d' drifting from d by at most what the slew moves in a period (0.5 % of it, rounded up).
    const drift = Math.ceil(cy.frames * MAX_SLEW);
    const between = (off: number): boolean => {
      for (let i = 0; i < cy.frames; i++) {
        let ok = false;
        for (let e = -drift; e <= drift && !ok; e++) {
          ok = true;
          for (let ch = 0; ch < CH && ok; ch++) {
            const a = ref[(want[i] + off + e) * CH + ch];
            const b = ref[(want[i] + off + e + 1) * CH + ch];
            ok = at(i, ch) >= Math.min(a, b) - 1e-7 && at(i, ch) <= Math.max(a, b) + 1e-7;
          }
        }
        if (!ok) return false;
      }
      return true;
    };
    let best: number | null = null;
    for (let m = 0; m <= PERIOD && best === null; m++) best = [m, -m].find((off) => between(off)) ?? null;
    if (best !== null) {
      interpolated += inCue;
      interpolatedCycles.push(cy.frame);
      offsets.set(best, (offsets.get(best) ?? 0) + inCue);
    } else {
      if (wrong.length < 10) wrong.push(`cycle at frame ${cy.frame}: its samples are nowhere in FFmpeg's decode within 2 s, nor interpolated between them within a period`);
      offsets.set(Number.NaN, (offsets.get(Number.NaN) ?? 0) + inCue);
    }
  }
  // The recorder frames the player's slewed periods cover.
  const slewed = c.lines.filter((r) => Number(r.extra.slew) !== 0).map((r) => {
    const from = c.jackFrame(Number(r.extra.device_frame));
    return [from, from + Number(r.extra.samples)] as const;
  });
  const unexplainedInterpolated = interpolatedCycles.filter((f) => !slewed.some(([a, b]) => a < f + PERIOD && b > f));

  // The first sample of the cue: the first non-zero consumed frame leaves at the clock's in-point.
  let firstFrameOff: number | null = null;
  for (const cy of recording.cycles) {
    const base = (cy.captureIndex - firstIndex) * CH;
    if (cy.captureIndex < 0 || base < 0) continue;
    const i = Array.from({ length: cy.frames }, (_, j) => j).find((j) => samples[base + j * CH] !== 0);
    if (i === undefined) continue;
    const k = askAt(cy.monoNs + BigInt(Math.round(i * frameNs + latencyNs)));
    // The chirp's first sample is 0 (sin 0): the first non-zero one is the cue's second or a later one.
    const at = Array.from({ length: 10 }, (_, j) => ref[(inIdx + j) * CH]).findIndex((v) => v === samples[base + i * CH]);
    firstFrameOff = at < 0 ? null : k - (inIdx + at);
    break;
  }
  const histogram = [...offsets].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${Number.isNaN(o) ? 'unmatched' : `${o}`}: ${n}`).join(', ');
  const offByMore = [...offsets].filter(([o]) => Number.isNaN(o) || Math.abs(o) > PERIOD).reduce((n, [, k]) => n + k, 0);
  return { compared, silentInCue, interpolated, unexplainedInterpolated, offEarly, offsets, wrong, firstFrameOff, offByMore, histogram };
}

/** A show whose cue J plays chirp.wav from 2 s to 5 s of the media, the clock running; FFmpeg's decode of it. */
export interface ChirpCueShow {
  show: Show;
  ref: Float32Array;
  /** Indexes (frames) in `ref` of the cue's in- and out-point. */
  inIdx: number;
  outIdx: number;
  /** The sync log path to give the player. */
  sync: string;
}

const CUE = { in: 2.0, out: 5.0 };

/** Start a `cuemux serve` with chirp.wav, load cue J and run the clock (`label` names its scratch folders). */
export async function chirpCueShow(children: ChildProcess[], label: string, channels: number, rate: number): Promise<ChirpCueShow> {
  const wav = await chirpWav();
  const [ref, first, start] = await Promise.all([ffmpegSamples(wav, channels, rate), firstAudioSeconds(wav), mediaStart(wav)]);
  const show = await Show.start({ 'chirp.wav': wav }, children, label);
  await show.osc('/cuemux/cue/load', [s('J'), s('chirp.wav'), { type: 'f', value: CUE.in }, { type: 'f', value: CUE.out }]);
  await show.osc('/cuemux/clock/play');
  return {
    show, ref, inIdx: Math.round((start + CUE.in - first) * rate), outIdx: Math.round((start + CUE.out - first) * rate), sync: show.file('sync.jsonl'),
  };
}

/** GO cue J at the clock position 0.8 s from now and wait until it ended (0.3 s after); the clock and that position. */
export async function goChirpCue(c: ChirpCueShow): Promise<{ clock: ClockState; position: number }> {
  const clock = await c.show.clockState();
  const position = Show.positionAt(clock, process.hrtime.bigint()) + 0.8;
  await c.show.osc('/cuemux/cue/go', [s('J'), d(position)]);
  await c.show.clockPast(position + (CUE.out - CUE.in) + 0.3);
  return { clock, position };
}

/** CLOCK_MONOTONIC ns half a second before the cue GO'd at `went` started: where the recorder's cycles are judged from. */
function halfSecondBeforeCue(went: { clock: ClockState; position: number }): bigint {
  return went.clock.anchorMonotonicNs + BigInt(Math.round(((went.position - went.clock.positionSeconds) / went.clock.rate - 0.5) * 1e9));
}

/**
 * Cycles of the recording, from 0.5 s before the cue's GO on, whose frame is not the one after the cycle before (the
 * device's timeline repeated or skipped frames): where there are any, its frames no longer map to its cycle times.
 */
export function timelineMoves(recording: Recording, went: { clock: ClockState; position: number }): number {
  const cueNs = halfSecondBeforeCue(went);
  return recording.cycles.filter((cy, i) => i > 0 && cy.monoNs > cueNs && cy.frame !== recording.cycles[i - 1].frame + recording.cycles[i - 1].frames).length;
}

/**
 * The recording with the cycles at a JACK server's xrun left unjudged (their captureIndex -1): a cycle whose first
 * frame or start does not follow the one before (the frame counter moved, or JACK's cycle time jumped by more than a
 * quarter period, as jackd's ResetFrameTime does at an xrun), and `margin` cycles either side. At such a cycle the
 * device itself glitched: JACK's cycle time restarts from the late wake-up and the frames it took are not on a
 * timeline anyone could have scheduled for. `playerBreaks`: JACK frames at which the player itself saw the timeline move
 * (its "JACK timeline moved" log lines, see {@link playerTimelineBreaks}): the cycle holding each is treated alike (a
 * CI run under load: the player saw 18 moves where the recorder saw 5 breaks, and two cycles beside unseen ones held
 * samples from neither side of the move). Returns how many cycles were left out.
 */
export function withoutXrunCycles(recording: Recording, rate: number, margin = 2, playerBreaks: readonly number[] = []): { recording: Recording; leftOut: number; xrunCycles: number } {
  const frameNs = 1e9 / rate;
  const cy = recording.cycles;
  const at: number[] = [];
  let xrunCycles = 0;
  for (let i = 1; i < cy.length; i++) {
    const expectNs = cy[i - 1].frames * frameNs;
    const seen = playerBreaks.some((f) => f >= cy[i].frame && f < cy[i].frame + cy[i].frames);
    const moved = seen || cy[i].frame !== cy[i - 1].frame + cy[i - 1].frames || Math.abs(Number(cy[i].monoNs - cy[i - 1].monoNs) - expectNs) > expectNs / 4;
    if (!moved) continue;
    xrunCycles++;
    at.push(i - 1, i); // the cycles either side of the break, and `margin` beyond
  }
  return { ...withoutCycles(recording, at, margin), xrunCycles };
}

/** The JACK frames of a player's "JACK timeline moved" log lines (audio-device-jack.ts), from its stderr. */
export function playerTimelineBreaks(stderr: string): number[] {
  return stderr.split('\n').filter((l) => l.includes('JACK timeline moved')).flatMap((l) => {
    const m = /"frame":(\d+)/.exec(l);
    return m === null ? [] : [Number(m[1])];
  });
}

/**
 * The recording with each cycle's start on the dummy driver's schedule rather than JACK's estimate of it. jackd's
 * dummy driver (JackTimedDriver) sleeps to anchor + n periods on JACK's clock and wakes late by the machine's
 * scheduling; JACK's cycle time (jack_get_cycle_times) is a DLL following those late wake-ups (JackFrameTimer: the
 * average, settling over seconds after a disturbance: a CI run had it 1.2 ms after the schedule at the median and 2.5
 * ms at the start of the cue). A cycle never runs before its schedule, so the schedule is the line at the nominal rate
 * (the driver counts periods of its clock) through the earliest of the recorder's wake-ups, on JACK's clock, from 0.5
 * s before the cue (`went`, as timelineMoves) to the end. That line is late by the least of the recorder's own delay
 * (it runs after the driver and the clients before it in the graph: tens of µs), well inside the 1 ms judged. The
 * earliest wake-up of each half is reported; a difference between them, or a lasting step up of the earliest wake-ups
 * (the driver re-anchored after a wake-up later than a period, or JACK's clock is not the nominal rate), returns
 * `moved` so the caller can skip. `overran`: indices of the cycles (from 0.5 s before the cue) whose recorder woke
 * more than a period after the schedule, see {@link withoutCycles}.
 */
export function onDriverSchedule(recording: Recording, rate: number, went: { clock: ClockState; position: number }): { recording: Recording; report: string; moved: boolean; overran: number[] } {
  const frameNs = 1e9 / rate;
  const cueNs = halfSecondBeforeCue(went);
  const from = recording.cycles.findIndex((cy) => cy.monoNs > cueNs);
  const used = from < 0 ? [] : recording.cycles.slice(from);
  if (used.length < 2) return { recording, report: 'too few cycles to place the driver\'s schedule', moved: true, overran: [] };
  const f0 = used[0].frame;
  // Wake-up on JACK's clock less the frames' nominal time: the schedule's anchor plus this cycle's lateness.
  const late = (cy: Recording['cycles'][number]): number => Number(cy.wokeNs) - cy.monoOffsetNs - (cy.frame - f0) * frameNs;
  const half = Math.floor(used.length / 2);
  const floor1 = Math.min(...used.slice(0, half).map(late));
  const floor2 = Math.min(...used.slice(half).map(late));
  const anchor = Math.min(floor1, floor2);
  // A re-anchored driver (after a wake-up later than a period) moves every later cycle's schedule: a lasting step up
  // of the earliest wake-ups, seen as the least of all chunks (~0.25 s each) from some chunk on above the least of
  // those before it (a single chunk whose wake-ups were all late is not a step: a later one comes back down).
  const chunk = Math.max(1, Math.round(0.25e9 / (used[0].frames * frameNs)));
  const floors: number[] = [];
  for (let i = 0; i < used.length; i += chunk) floors.push(Math.min(...used.slice(i, i + chunk).map(late)));
  let step = 0;
  for (let k = 1; k < floors.length; k++) step = Math.max(step, Math.min(...floors.slice(k)) - Math.min(...floors.slice(0, k)));
  const cycles = recording.cycles.map((cy) => ({ ...cy, monoNs: BigInt(Math.round(anchor + (cy.frame - f0) * frameNs + cy.monoOffsetNs)) }));
  const dll = used.map((cy, i) => Number(cy.monoNs - cycles[from + i].monoNs) / 1000).sort((a, b) => a - b);
  const wake = used.map((cy) => late(cy) - anchor).sort((a, b) => a - b);
  const q = (d: number[], x: number): string => (d[Math.min(d.length - 1, Math.floor(x * d.length))] / (d === wake ? 1000 : 1)).toFixed(0);
  const moved = Math.abs(floor2 - floor1) > 200_000 || step > 200_000;
  // The recorder runs last in the graph: woken more than a period after its cycle's schedule, the graph did not finish
  // that cycle in time (what jackd counts as an xrun), and the buffers the recorder read may be half written.
  const overran = used.flatMap((cy, i) => (late(cy) - anchor > cy.frames * frameNs ? [from + i] : []));
  const report = `the driver's schedule from the recorder's earliest wake-ups (halves differ by ${((floor2 - floor1) / 1000).toFixed(0)} µs, lasting step ${(step / 1000).toFixed(0)} µs); `
    + `recorder's wake-up after it: median ${q(wake, 0.5)} µs, p90 ${q(wake, 0.9)}, max ${q(wake, 1)}; JACK's cycle time (DLL) − schedule: min ${q(dll, 0)} µs, median ${q(dll, 0.5)}, max ${q(dll, 1)}`;
  return { recording: { ...recording, cycles }, report, moved, overran };
}

/**
 * The recording with the cycles at `indices`, and `margin` cycles either side, left unjudged (captureIndex -1): for
 * JACK timeline breaks ({@link withoutXrunCycles}) and cycles where the graph overran its period (see
 * {@link onDriverSchedule}). A CI run (JACK server xruns 3, the
 * recorder woken 8.2 ms after a 5.3 ms period's schedule once) had one cycle through alsa-lib's jack plugin whose samples
 * were neither FFmpeg's nor between two of them, with the player's periods all on time (0 player or device xruns).
 */
export function withoutCycles(recording: Recording, indices: readonly number[], margin = 2): { recording: Recording; leftOut: number } {
  const out = new Set<number>();
  for (const i of indices) for (let j = Math.max(0, i - margin); j <= Math.min(recording.cycles.length - 1, i + margin); j++) out.add(j);
  return { recording: { ...recording, cycles: recording.cycles.map((c, i) => (out.has(i) ? { ...c, captureIndex: -1 } : c)) }, leftOut: out.size };
}

/** The player's status line at exit, as far as these tests read it. */
export interface DevicePlayerStats {
  deviceUnderrunFrames: number;
  xruns: number;
  slewedPeriods: number;
  device: { underrunFrames: number; xruns: number; latencyFrames: { min: number; max: number } };
  /** The presenting thread's real-time guard (absent when the player ran without SCHED_FIFO). */
  rtGuard?: { demotions: number; demotedMs: number; longestDemotedMs: number };
}

/** What the player's real-time guard did, for a test's output: "real-time guard: 0 demotions". */
export function guardReport(stats: DevicePlayerStats): string {
  const g = stats.rtGuard;
  return g === undefined ? 'no real-time guard' : `real-time guard: ${g.demotions} demotions${g.demotions > 0 ? ` (${g.demotedMs.toFixed(1)} ms, longest ${g.longestDemotedMs.toFixed(1)} ms)` : ''}`;
}

/** What a stopped player said: its device line at start (kind `kind`), its status line at exit, its cue-J sync log. */
export async function playerReport<T>(p: PlayerProcess, kind: string, sync: string): Promise<{ said: T; stats: DevicePlayerStats; lines: SyncRecord[] }> {
  const err = p.stderr();
  const open = err.split('\n').find((l) => l.includes(`audio device ${kind}`));
  assert.ok(open !== undefined, `no device line in the player's log:\n${err.slice(-2000)}`);
  const statsLine = err.split('\n').reverse().find((l) => l.startsWith('cuemux play-audio: {'));
  assert.ok(statsLine !== undefined, err.slice(-2000));
  const lines = (await readSyncLog(sync)).filter((r) => r.extra.cue === 'J');
  assert.ok(lines.length > 0, 'the player logged the cue');
  return { said: JSON.parse(open.slice(open.indexOf('{'))) as T, stats: JSON.parse(statsLine.slice('cuemux play-audio: '.length)) as DevicePlayerStats, lines };
}

/** The figures of a check, for the test's output and its failure messages; `more` is appended. */
export function consumedReport(r: ConsumedResult, cycles: number, stats: DevicePlayerStats, more: string): string {
  return `${r.compared} cue samples consumed over ${cycles} cycles; offset (samples) histogram {${r.histogram}}; `
    + `${r.compared - r.interpolated - r.silentInCue} bit-exact, ${r.interpolated} in ${stats.slewedPeriods} slewed periods; `
    + `${r.silentInCue} silent (device underruns ${stats.device.underrunFrames} frames, player xruns ${stats.xruns}, device xruns ${stats.device.xruns}); `
    + `first sample off by ${String(r.firstFrameOff)}; ${guardReport(stats)}; ${more}`;
}

/**
 * The assertions every device shares: no cycle unmatched, none off by more than a period, silence outside the cue,
 * nearly all the cue consumed, silent cue samples only where the device counted underruns, interpolated samples only
 * where a slewed period covers them (unless `slewsMapExactly` is false: a device whose frames map to the recorder's
 * only approximately), and the cue's first sample within `firstBound` samples of its clock time.
 */
export function assertConsumed(r: ConsumedResult, c: ChirpCueShow, stats: DevicePlayerStats, period: number, firstBound: number, report: string,
  options: { slewsMapExactly?: boolean } = {}): void {
  assert.deepEqual(r.wrong, [], report);
  assert.equal(r.offByMore, 0, `samples off by more than one period: ${report}`);
  assert.equal(r.offEarly, 0, 'the device played only silence outside the cue');
  assert.ok(r.compared >= 0.9 * (c.outIdx - c.inIdx) - 2 * period, `only ${r.compared} of the cue's ${c.outIdx - c.inIdx} samples were consumed`);
  assert.ok(r.silentInCue <= stats.device.underrunFrames, `${r.silentInCue} cue samples were silent, but the device counted ${stats.device.underrunFrames} underrun frames`);
  assert.equal(stats.deviceUnderrunFrames, stats.device.underrunFrames);
  // Interpolated samples only in the cycles a period the player logged as slewed covers (not a count of periods
  // times a period: after a server xrun the device's cycles and the player's periods no longer align).
  // Checked where the sync log's device frames map to the recorder's exactly (JACK, PipeWire). Through alsa-lib's jack
  // plugin they do not (its pointer moves a period at a time; the offsets spread over 2-9 samples), and 2 runs of 6
  // had cycles interpolated that no mapped slewed period reached: the samples are still FFmpeg's or between two of them.
  if (options.slewsMapExactly ?? true) assert.deepEqual(r.unexplainedInterpolated, [], `cycles not bit-exact though no slewed period covers them: ${report}`);
  assert.ok(r.firstFrameOff !== null && Math.abs(r.firstFrameOff) <= firstBound, `the cue's first sample left ${String(r.firstFrameOff)} samples from its clock time`);
}
