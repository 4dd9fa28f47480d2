/**
 * Real audio devices for `cuemux play-audio --device SPEC`. A device runs on its own clock: it takes one period of
 * frames per cycle and says, per cycle, which frame it took and when (on CLOCK_MONOTONIC). The player writes each
 * period for the device frames it chooses, so that every sample *leaves the device* (its output latency included)
 * when the show clock asks for it; see {@link AudioDevice.departureNs}.
 *
 * SPEC is `KIND[:ARG]`: `jack[:CLIENT_NAME]` (src/players/audio-device-jack.ts, native/jack), `alsa:NAME`
 * (src/players/audio-device-alsa.ts, native/alsa) and `pipewire[:NAME]` (src/players/open-audio-device.ts).
 */
import { CuemuxError } from '../common/errors';

/**
 * Load one of cuemux's addons (native/NAME, built by scripts/build-addons.js); an INTERNAL CuemuxError naming the
 * Debian package it builds against when it is not built. `what`: e.g. "the ALSA addon".
 */
export function loadAddon<T>(file: string, what: string, debianPackage: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as T;
  } catch (e) {
    throw new CuemuxError('INTERNAL', `${what} is not built (${file}): run scripts/setup.sh (installs ${debianPackage} and builds it)`, { cause: e });
  }
}

/** A parsed `--device` spec. */
export type AudioDeviceSpec =
  | { kind: 'jack'; clientName: string }
  | { kind: 'alsa'; name: string }
  | { kind: 'pipewire'; name: string };

/**
 * Parse `jack[:CLIENT]`, `alsa:NAME` or `pipewire[:CLIENT]` (a JACK client of PipeWire's graph; CLIENT defaults to
 * `defaultClientName` for both). Throws an INVALID_ARGUMENT {@link CuemuxError} for
 * another kind or a missing ALSA name.
 */
export function parseDeviceSpec(spec: string, defaultClientName = 'cuemux'): AudioDeviceSpec {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? '' : spec.slice(colon + 1);
  if (kind === 'jack') {
    // JACK truncates client names beyond jack_client_name_size() - 1 (63 bytes).
    if (Buffer.byteLength(arg) > 63) throw new CuemuxError('INVALID_ARGUMENT', `--device ${spec}: a JACK client name has at most 63 bytes`);
    return { kind, clientName: arg === '' ? defaultClientName : arg };
  }
  if (kind === 'alsa') {
    if (arg === '') throw new CuemuxError('INVALID_ARGUMENT', `--device ${spec}: expected alsa:NAME (e.g. alsa:hw:0 or alsa:default)`);
    return { kind, name: arg };
  }
  if (kind === 'pipewire') {
    if (Buffer.byteLength(arg) > 63) throw new CuemuxError('INVALID_ARGUMENT', `--device ${spec}: a client name has at most 63 bytes`);
    return { kind, name: arg === '' ? defaultClientName : arg };
  }
  throw new CuemuxError('INVALID_ARGUMENT', `--device "${spec}": expected jack[:CLIENT_NAME], alsa:NAME or pipewire[:NAME]`);
}

/** What a device is, as opened; logged at start. */
export interface AudioDeviceDescription {
  /** `jack`, `alsa`, ... */
  kind: AudioDeviceSpec['kind'];
  /** The device's name as the system knows it (the JACK client name: JACK renames a taken one). */
  name: string;
  /** Where it runs (JACK: the server name, $JACK_DEFAULT_SERVER or `default`; ALSA: the PCM's type, name and sample format). */
  server: string;
  /** The device's sample rate, Hz: the player converts to it. */
  sampleRate: number;
  /** Frames per device period (JACK's buffer size; ALSA's period size). */
  periodFrames: number;
  /** Output channels (ports). */
  channels: number;
  /** Frames the player may write ahead of the device (its buffer): a write-ahead must stay well under it. */
  bufferFrames: number;
  /** The output ports, and the ports each is connected to (JACK; none for ALSA). */
  ports: { name: string; connections: string[] }[];
}

/** One device period, as the device reports it (after the fact). */
export interface DeviceCycle {
  /** The period's first frame (device frame numbers count from the device's start, 64-bit). */
  frame: number;
  /** Frames in the period. */
  frames: number;
  /** CLOCK_MONOTONIC instant of the period's start, ns (before the output latency). */
  monoNs: bigint;
  /** Frames of this period the device played as silence because the player had not written them. */
  underrunFrames: number;
}

/** Counters and measures of a device; a snapshot. */
export interface AudioDeviceStats {
  /** Periods the device ran. */
  cycles: number;
  /** Frames played as silence because the player had not written them in time (an underrun). */
  underrunFrames: number;
  /** Periods with at least one such frame. */
  underrunCycles: number;
  /** The server's or driver's own xruns (JACK's xrun callback; ALSA: the device ran dry, EPIPE). */
  xruns: number;
  /**
   * Output latency the device reports, frames. JACK: [min, max] over the connected ports; departures use max. ALSA:
   * the range of snd_pcm_status's delay before each write (its buffer and the driver's delay); departures use each.
   */
  latencyFrames: { min: number; max: number };
  /** True once the server went away (the device plays nothing more). */
  lost: boolean;
}

/** An open audio device. */
export interface AudioDevice {
  /** What was opened. */
  readonly description: AudioDeviceDescription;
  /**
   * Start calling `onCycle` on the JS thread after the device's periods (with the latest one when several
   * passed). The player then writes the frames the device will take next.
   */
  start(onCycle: (cycle: DeviceCycle) => void): void;
  /**
   * CLOCK_MONOTONIC instant, ns, at which device frame `frame` leaves the device: the start of the period that takes it
   * (the device's cycle times, fitted over the last seconds to smooth their jitter), plus its offset in the period,
   * plus the output latency the device reports. Valid once a cycle was reported.
   */
  departureNs(frame: number): bigint;
  /** Length of one device frame on CLOCK_MONOTONIC, ns (the device crystal as measured). */
  readonly frameNs: number;
  /**
   * Queue interleaved float32 frames to be played from device frame `frame` on (after the previous write's end; a
   * gap is silence). Returns the frames taken: fewer when the device's buffer is full. Never blocks.
   */
  write(frame: number, samples: Float32Array): number;
  /** A snapshot of the counters. */
  readonly stats: AudioDeviceStats;
  /** Stop and release the device. Idempotent. */
  close(): void;
}

/**
 * Frame → CLOCK_MONOTONIC mapping of a device: a least-squares line through the (frame, start instant) of its last
 * `window` cycles. A device's own period times jitter by microseconds (JACK's are its DLL's estimates, in whole µs);
 * the line keeps that jitter out of the player's schedule, and follows the crystal's drift within the window.
 */
export class DeviceClock {
  readonly #window: number;
  readonly #frames: number[] = [];
  readonly #times: number[] = [];
  #anchorFrame = 0;
  #anchorNs = 0n;
  #slope = 0;
  #intercept = 0;

  readonly #lateOnly: boolean;
  /** Late-only readings added since the last fit. */
  #sinceFit = 0;

  /**
   * `nominalRate`: frames per second until two cycles are known; `window`: cycles fitted. `lateOnly`: the instants
   * are readings that are late (a thread's wake-up after the device moved, as ALSA's status timestamps are), but
   * for a few: the line then follows the least delayed of the recent readings, see #fitLowerEnvelope (default false:
   * the instants jitter both ways, as JACK's DLL estimates do, and a least-squares line goes through them).
   */
  constructor(readonly nominalRate: number, window = 128, lateOnly = false) {
    this.#window = window;
    this.#slope = 1e9 / nominalRate;
    this.#lateOnly = lateOnly;
  }

  /** Cycles recorded so far (at most the window). */
  get size(): number {
    return this.#frames.length;
  }

  /** ns per frame as fitted. */
  get frameNs(): number {
    return this.#slope;
  }

  /**
   * Record a cycle: its first frame started at `monoNs`. Returns the jump (ns) when the cycle is more than
   * `jumpNs` off the line — the device's timeline moved (an xrun of the server, a driver restart): the fit then starts
   * again from this cycle, so no mix of before and after skews it — else 0.
   */
  add(frame: number, monoNs: bigint, jumpNs = 500_000): number {
    let jump = 0;
    if (this.#frames.length >= 2) {
      const off = Number(monoNs - this.monoNs(frame));
      if (Math.abs(off) > jumpNs) {
        jump = off;
        this.#frames.length = 0;
        this.#times.length = 0;
      }
    }
    if (this.#frames.length === 0) {
      this.#anchorFrame = frame;
      this.#anchorNs = monoNs;
    }
    this.#frames.push(frame - this.#anchorFrame);
    this.#times.push(Number(monoNs - this.#anchorNs));
    if (this.#frames.length > this.#window) {
      this.#frames.shift();
      this.#times.shift();
    }
    const n = this.#frames.length;
    if (this.#lateOnly) {
      // Refitted at every 4th reading once the window has 64: the fit sorts the window (138 µs per add at 512 points
      // against 45 µs for least squares, measured on a loaded machine), and a line four periods old is off by far less
      // than a microsecond. The jump check above needs only the line as it is.
      if (n < 64 || ++this.#sinceFit >= 4 || jump !== 0) {
        this.#sinceFit = 0;
        this.#fitLowerEnvelope();
      }
      return jump;
    }
    const line = leastSquares(this.#frames, this.#times);
    // A device crystal is within a few hundred ppm; a wild fit (a suspended machine) keeps the last slope.
    if (n >= 8 && Math.abs(line.slope * this.nominalRate / 1e9 - 1) < 0.01) this.#slope = line.slope;
    this.#intercept = line.meanT - this.#slope * line.meanF;
    return jump;
  }

  /**
   * The line of late-only readings. Their lateness is not steady: a player starting up (or a loaded machine) reads its
   * device late by milliseconds for a second or two, then by its wake-up alone. A least-squares slope through such a
   * window is tilted, and the line it gives is off by milliseconds where the player schedules (a CI run: 4.7 ms early
   * at a GO 2 s after the start; simulated with a 4 ms start falling to 0 over 240 periods: 2.0 ms early). So: the
   * slope through the least delayed reading of each eighth of the window (its 10th percentile), the eighths above the
   * line through them left out twice (a quarter each time), taken only when the rest lie on it within 100 µs and held
   * within ±300 ppm of the nominal rate (a sound card's crystal is within ±100 ppm by its datasheet), else the nominal
   * rate; the line then goes through the 10th percentile of the newest quarter's readings (at least 16), so what the
   * machine did seconds ago does not place it, and a wrong slope costs its error times the half second from there to
   * the frames being written (30 µs at 100 ppm). The 10th percentile, not the least: a device catching up after a
   * stall (a JACK server's dummy driver runs its late cycles back to back) gives a few readings earlier than its
   * schedule.
   */
  #fitLowerEnvelope(): void {
    const n = this.#frames.length;
    const nominal = 1e9 / this.nominalRate;
    const q10 = (values: number[]): number => values.sort((x, y) => x - y)[Math.floor(values.length / 10)];
    let slope = nominal;
    if (n >= 16) {
      // Each eighth's least delayed reading (10th percentile of its residuals to the nominal line).
      let points: { f: number; t: number }[] = [];
      for (let k = 0; k < 8; k++) {
        const from = Math.floor((k * n) / 8);
        const to = Math.floor(((k + 1) * n) / 8);
        const byResidual = this.#frames.slice(from, to).map((f, i) => ({ f, t: this.#times[from + i], r: this.#times[from + i] - nominal * f })).sort((a, b) => a.r - b.r);
        points.push(byResidual[Math.floor(byResidual.length / 10)]);
      }
      const fit = (ps: readonly { f: number; t: number }[]): { slope: number; intercept: number } => {
        const l = leastSquares(ps.map((p) => p.f), ps.map((p) => p.t));
        const sl = Number.isNaN(l.slope) ? 0 : l.slope;
        return { slope: sl, intercept: l.meanT - sl * l.meanF };
      };
      for (let round = 0; round < 2; round++) {
        const line = fit(points);
        points = points.map((p) => ({ p, r: p.t - (line.intercept + line.slope * p.f) })).sort((a, b) => a.r - b.r)
          .slice(0, Math.ceil(points.length * 0.75)).map((x) => x.p);
      }
      // Taken only when those readings lie on a line (within a wake-up's spread): else they are still the start's.
      const line = fit(points);
      const spread = Math.max(...points.map((p) => Math.abs(p.t - (line.intercept + line.slope * p.f))));
      if (spread <= ON_LINE_NS) slope = Math.min(nominal * (1 + CRYSTAL_PPM / 1e6), Math.max(nominal * (1 - CRYSTAL_PPM / 1e6), line.slope));
    }
    this.#slope = slope;
    const newest = Math.min(n, Math.max(16, Math.floor(n / 4)));
    const residuals: number[] = [];
    for (let i = n - newest; i < n; i++) residuals.push(this.#times[i] - slope * this.#frames[i]);
    this.#intercept = q10(residuals);
  }

  /** CLOCK_MONOTONIC instant of device frame `frame`'s start, ns. */
  monoNs(frame: number): bigint {
    return this.#anchorNs + BigInt(Math.round(this.#intercept + this.#slope * (frame - this.#anchorFrame)));
  }
}

/** How far a late-only device clock's slope may be from the nominal rate, ppm (see DeviceClock#fitLowerEnvelope). */
const CRYSTAL_PPM = 300;
/** How near its line the least delayed readings of a late-only device clock must be for its slope to be taken, ns. */
const ON_LINE_NS = 100_000;

/** The least-squares slope of t over f, and the means it goes through (slope NaN when every f is the same). */
function leastSquares(fs: readonly number[], ts: readonly number[]): { slope: number; meanF: number; meanT: number } {
  const n = fs.length;
  let meanF = 0;
  let meanT = 0;
  for (let i = 0; i < n; i++) {
    meanF += fs[i];
    meanT += ts[i];
  }
  meanF /= n;
  meanT /= n;
  let sff = 0;
  let sft = 0;
  for (let i = 0; i < n; i++) {
    const df = fs[i] - meanF;
    sff += df * df;
    sft += df * (ts[i] - meanT);
  }
  return { slope: sff > 0 ? sft / sff : Number.NaN, meanF, meanT };
}

/** Options of openAudioDevice (open-audio-device.ts). */
export interface OpenDeviceOptions {
  /** Output channels (ports). */
  channels: number;
  /**
   * Ports to connect output channel k to: entry k (comma-separated names connect one channel to several), `[]` for
   * the system's playback ports (channel k to the k-th), `['none']` for none. JACK only.
   */
  connect: string[];
  /** Sample rate to ask for, Hz (ALSA; JACK runs at the server's). Default 48000. */
  sampleRate?: number;
  /** SCHED_FIFO priority of a device thread of cuemux's own (ALSA; JACK's is jackd's), 0 for none. Default 0. */
  rtPriority?: number;
}
