/**
 * The ALSA device of `play-audio --device alsa:NAME`, through cuemux's addon (native/alsa, built at `npm ci` against
 * Debian's libasound2-dev; no npm binding reports ALSA's delay and status timestamps: see the addon's header). NAME is
 * an ALSA PCM name: `hw:0`, `plughw:1,0`, `default`, or one of alsa-lib's user-space plugins (`jack`, `pulse`, ...).
 *
 * Timing: the addon's thread writes one period at a time when the device has room, and reads snd_pcm_status just
 * before each write: its timestamp T (CLOCK_MONOTONIC) and its delay D say that device frame W − D (W: frames written
 * so far) leaves the device at T. Those pairs, fitted by a {@link DeviceClock}, map every device frame to the instant
 * it leaves: the output latency is in D (ALSA's own figure for the device: its buffer plus what the driver adds).
 * The pairs are read after the thread wakes, so each is late by that wake-up (55-180 µs measured here with
 * SCHED_FIFO, through the jack plugin, median 117 µs), and by milliseconds while the player starts: the line
 * follows the least delayed of the recent readings (DeviceClock's late-only fit).
 *
 * Through alsa-lib's `jack` plugin (libasound2-plugins) the pointer moves a whole JACK period when the plugin copies
 * that period at the start of a JACK cycle, and D ends at the JACK graph: ALSA then reports each frame leaving one
 * period (minus the wake-up) before JACK takes it, and knows nothing of JACK's own playback latency. Play to JACK
 * with `--device jack` (it reads JACK's cycle times and port latencies); the jack plugin is the tests' ALSA device.
 */
import * as path from 'node:path';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { DeviceClock, loadAddon, type AudioDevice, type AudioDeviceDescription, type DeviceCycle, type OpenDeviceOptions } from './audio-device';
import { AudioDeviceBase, type DeviceCounters } from './audio-device-base';

const log = getLogger('play-audio');

/** Fields of one record of {@link AlsaPcm.drain}. */
export const ALSA_RECORD_FIELDS = 6;

/** The addon's PCM (native/alsa/cuemux_alsa.cc). */
export interface AlsaPcm {
  start(): void;
  info(): { name: string; pcm: string; type: string; format: string; sampleRate: number; channels: number; periodFrames: number; bufferFrames: number; ringFrames: number; rtPriority: number };
  write(frame: number, samples: Float32Array): number;
  /** Records, {@link ALSA_RECORD_FIELDS} numbers each: frame, frames, statusNs (0 before the device runs), delay, underrunFrames, xrun. */
  drain(): Float64Array;
  stats(): { periods: number; underrunFrames: number; underrunPeriods: number; xruns: number; droppedRecords: number; readFrame: number; writeEnd: number; failed: boolean; stalled: boolean; error: string };
  close(): void;
}

/** Options of an {@link AlsaPcm}. */
export interface AlsaPcmOptions {
  /** ALSA PCM name. */
  device: string;
  channels: number;
  /** Asked rate, Hz (default 48000; the device's nearest is taken, without ALSA's resampler). */
  rate?: number;
  /** Asked period, frames (default 256). */
  periodFrames?: number;
  /** Periods in the device's buffer (default 3). */
  periods?: number;
  /** Output ring, frames (rounded up to a power of two; default 2^17). */
  ringFrames?: number;
  /** SCHED_FIFO priority of the device thread, 0 for none (default 0). */
  rtPriority?: number;
  /** Called on the JS thread after periods were written (coalesced). */
  onCycle?: () => void;
}

/** The addon's path: built by scripts/build-addons.js alsa. */
export const ALSA_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'alsa', 'build', 'Release', 'cuemux_alsa.node');

/** Load the addon; an INTERNAL CuemuxError when it is not built. */
export function alsaAddon(): { AlsaPcm: new (options: AlsaPcmOptions) => AlsaPcm } {
  return loadAddon(ALSA_ADDON, 'the ALSA addon', 'libasound2-dev');
}

/**
 * A status read more than this after the fitted line is a late wake-up, not a moved timeline: ALSA says an xrun
 * itself (the record's flag). 20 ms: past the longest hold-up of the thread measured here under load (steal).
 */
const JUMP_NS = 20_000_000;

class AlsaDevice extends AudioDeviceBase {
  readonly #pcm: AlsaPcm;
  #stalled = false;

  constructor(pcm: AlsaPcm, description: AudioDeviceDescription) {
    // Status readings are late by the thread's wake-up: the line goes through the least delayed ones, over 512
    // periods (2.7 s at 256 frames, 48 kHz), so that a second of a starved thread (all readings late) does not move it.
    super(description, new DeviceClock(description.sampleRate, 512, true));
    this.#pcm = pcm;
  }

  /** Periods whose status carried a timestamp (the device ran): the clock's points. */
  get clockPoints(): number {
    return this.clock.size;
  }

  protected counters(): DeviceCounters {
    const s = this.#pcm.stats();
    return { cycles: s.periods, underrunFrames: s.underrunFrames, underrunCycles: s.underrunPeriods, xruns: s.xruns };
  }

  /** Called by the addon on the JS thread: absorb the records, then tell the player about the latest period. */
  periods(): void {
    if (this.closed) return;
    const d = this.#pcm.drain();
    let last: DeviceCycle | null = null;
    let under = 0;
    for (let i = 0; i + ALSA_RECORD_FIELDS <= d.length; i += ALSA_RECORD_FIELDS) {
      const [frame, frames, statusNs, delay, underrun, xrun] = d.subarray(i, i + ALSA_RECORD_FIELDS);
      if (statusNs > 0) {
        // Device frame frame − delay leaves the device at statusNs. After an xrun the timeline starts again.
        if (xrun !== 0) log.warn('the ALSA device ran dry (xrun): the frame-to-time mapping starts again', { frame, xruns: this.#pcm.stats().xruns });
        const jump = this.clock.add(frame - delay, BigInt(statusNs), xrun !== 0 ? 0 : JUMP_NS);
        if (jump !== 0 && xrun === 0) log.warn('the ALSA device\'s timeline moved: the frame-to-time mapping starts again', { frame, jumpUs: jump / 1000 });
        if (this.latency.max === 0 || delay < this.latency.min) this.latency.min = delay;
        if (delay > this.latency.max) this.latency.max = delay;
      }
      under += underrun;
      last = { frame, frames, monoNs: BigInt(statusNs), underrunFrames: underrun };
    }
    this.underrun(under, 'ALSA');
    const s = this.#pcm.stats();
    if (!this.lost && s.failed) {
      this.lost = true;
      log.error(`the ALSA device failed (${s.error}): no more audio from this player`, { device: this.description.name });
    }
    if (s.stalled !== this.#stalled) {
      this.#stalled = s.stalled;
      if (s.stalled) log.error('the ALSA device took no frames for a second (its server or driver stopped?): no audio until it runs again', { device: this.description.name });
      else log.warn('the ALSA device runs again', { device: this.description.name });
    }
    if (last !== null && this.clock.size >= 2) this.onCycle?.(last);
  }

  departureNs(frame: number): bigint {
    return this.clock.monoNs(frame);
  }

  protected writeFrames(frame: number, samples: Float32Array): number {
    return this.#pcm.write(frame, samples);
  }

  protected release(): void {
    this.#pcm.close();
  }
}

/**
 * Open ALSA PCM `name` for playback with `channels` channels at the asked rate (else 48 kHz; the device's nearest is
 * taken), start its thread and wait for a few timestamped periods. Rejects with a CuemuxError when the addon is not
 * built, the PCM does not open or refuses the format, or it runs no periods.
 */
export async function openAlsaDevice(name: string, options: OpenDeviceOptions): Promise<AudioDevice> {
  if (options.connect.length > 0) throw new CuemuxError('INVALID_ARGUMENT', `--device-connect is for JACK ports, not --device alsa:${name} (route ALSA in its configuration)`);
  const { AlsaPcm: Pcm } = alsaAddon();
  let device: AlsaDevice | null = null;
  let pcm: AlsaPcm;
  try {
    pcm = new Pcm({ device: name, channels: options.channels, rate: options.sampleRate, rtPriority: options.rtPriority ?? 0, onCycle: () => device?.periods() });
  } catch (e) {
    throw new CuemuxError('WRONG_STATE', `ALSA: ${errorMessage(e)}`, { cause: e });
  }
  try {
    const info = pcm.info();
    device = new AlsaDevice(pcm, {
      kind: 'alsa', name, server: `${info.type} "${info.pcm}", ${info.format}`, sampleRate: info.sampleRate, periodFrames: info.periodFrames,
      channels: options.channels, bufferFrames: info.ringFrames, ports: [],
    });
    pcm.start();
    // The buffer fills (silence), the device starts, then a few timestamped periods give the clock.
    const d = device;
    const until = Date.now() + 2000;
    while (d.clockPoints < 4 && !pcm.stats().failed && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
    const s = pcm.stats();
    if (d.clockPoints < 4) throw new CuemuxError('WRONG_STATE', `ALSA: the PCM "${name}" runs no periods${s.failed ? ` (${s.error})` : ''} (is its server running?)`);
    const rt = pcm.info().rtPriority;
    if ((options.rtPriority ?? 0) > 0 && rt === 0) log.warn('the ALSA device thread runs without SCHED_FIFO (not allowed): periods may be late under load', { asked: options.rtPriority });
    return device;
  } catch (e) {
    pcm.close();
    throw e;
  }
}
