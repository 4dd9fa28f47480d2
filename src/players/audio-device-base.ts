/**
 * What every real audio device of `play-audio --device` shares (audio-device-jack.ts, audio-device-alsa.ts): its
 * {@link DeviceClock}, the player's cycle callback, the counters kept after close, the reported latency, and the
 * underrun warnings. A kind adds how it reads its addon's records, its departures, and how it writes and closes.
 */
import { getLogger } from '../common/logger';
import type { AudioDevice, AudioDeviceDescription, AudioDeviceStats, DeviceClock, DeviceCycle } from './audio-device';

const log = getLogger('play-audio');

/** The addon's counters, as {@link AudioDeviceStats} has them. */
export type DeviceCounters = Omit<AudioDeviceStats, 'latencyFrames' | 'lost'>;

/** The shared part of a real device; see the module comment. */
export abstract class AudioDeviceBase implements AudioDevice {
  readonly description: AudioDeviceDescription;
  protected readonly clock: DeviceClock;
  /** The player's callback, from start() until close(). */
  protected onCycle: ((c: DeviceCycle) => void) | null = null;
  /** Output latency the device reports, frames (see AudioDeviceStats.latencyFrames). */
  protected latency = { min: 0, max: 0 };
  protected closed = false;
  /** Set once the device's server or driver went away for good. */
  protected lost = false;
  #underrunEvents = 0;
  /** The counters when closed. */
  #final: AudioDeviceStats | null = null;

  constructor(description: AudioDeviceDescription, clock: DeviceClock) {
    this.description = description;
    this.clock = clock;
  }

  /** The addon's counters now. */
  protected abstract counters(): DeviceCounters;
  /** Queue frames in the addon (see AudioDevice.write). */
  protected abstract writeFrames(frame: number, samples: Float32Array): number;
  /** Stop and release the addon's device (once). */
  protected abstract release(): void;
  abstract departureNs(frame: number): bigint;

  get frameNs(): number {
    return this.clock.frameNs;
  }

  get stats(): AudioDeviceStats {
    if (this.#final !== null) return { ...this.#final, latencyFrames: { ...this.#final.latencyFrames } };
    return { ...this.counters(), latencyFrames: { ...this.latency }, lost: this.lost };
  }

  start(onCycle: (cycle: DeviceCycle) => void): void {
    this.onCycle = onCycle;
  }

  write(frame: number, samples: Float32Array): number {
    return this.closed ? 0 : this.writeFrames(frame, samples);
  }

  close(): void {
    if (this.closed) return;
    this.#final = this.stats;
    this.closed = true;
    this.onCycle = null;
    this.release();
  }

  /**
   * `frames` were played as silence since the last records because the player had not written them: said at the
   * first such event and every 100th (a warning per period would flood the log of a stalled player).
   */
  protected underrun(frames: number, device: string): void {
    if (frames <= 0) return;
    this.#underrunEvents++;
    if (this.#underrunEvents === 1 || this.#underrunEvents % 100 === 0) {
      const s = this.counters();
      log.warn(`${device} played silence: the player had not written these frames in time (underrun)`, {
        frames, underrunFramesTotal: s.underrunFrames, underrunCycles: s.underrunCycles, events: this.#underrunEvents,
      });
    }
  }
}
