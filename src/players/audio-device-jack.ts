/**
 * The JACK device of `play-audio --device jack[:CLIENT_NAME]`, through cuemux's addon (native/jack, built at
 * `npm ci` against Debian's libjack-jackd2-dev). The server is $JACK_DEFAULT_SERVER's, or JACK's default one; the
 * client is never allowed to start a server itself. `play-audio --device pipewire[:CLIENT_NAME]` is the same client
 * through PipeWire's libjack (the addon built again against Debian's pipewire-jack: native/pipewire), a JACK client
 * of the PipeWire graph: PipeWire's cycle times and port latencies, the quantum as the period.
 *
 * Timing: each JACK cycle reports its first frame and the time of its start (jack_get_cycle_times, JACK's DLL), and
 * the offset of JACK's clock to CLOCK_MONOTONIC measured in that cycle (jack2 counts on CLOCK_MONOTONIC_RAW, which
 * drifts against CLOCK_MONOTONIC by the NTP correction). A frame written for device frame f leaves the device at
 * start(f) + the playback latency JACK reports for the output ports (the maximum of the range: JACK's convention for
 * alignment; with the dummy or an ALSA driver in its default asynchronous mode: two periods plus the driver's -O).
 */
import * as path from 'node:path';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { DeviceClock, loadAddon, type AudioDevice, type AudioDeviceDescription, type DeviceCycle, type OpenDeviceOptions } from './audio-device';
import { AudioDeviceBase, type DeviceCounters } from './audio-device-base';

const log = getLogger('play-audio');

/** Fields of one cycle record of {@link JackClient.drain}. */
export const CYCLE_FIELDS = 9;

/** The addon's client (native/jack/cuemux_jack.cc). */
export interface JackClient {
  activate(): void;
  connect(source: string, destination: string): boolean;
  ports(which: 'physical-playback' | 'physical-capture' | 'all'): string[];
  latency(port?: string, mode?: 'playback' | 'capture'): { min: number; max: number };
  info(): { name: string; sampleRate: number; bufferSize: number; ringFrames: number; monoOffsetNs: number; outputs: string[]; inputs: string[] };
  write(frame: number, samples: Float32Array): number;
  /** Cycle records, {@link CYCLE_FIELDS} numbers each: frame, usecs, nextUsecs, periodUsecs, nframes, underrunFrames, captureIndex, monoOffsetNs, wokeNs (CLOCK_MONOTONIC when the client's process callback began; usecs is JACK's DLL estimate of the cycle's start). */
  drain(): Float64Array;
  readCapture(): { index: number; samples: Float32Array };
  stats(): { cycles: number; underrunFrames: number; underrunCycles: number; xruns: number; droppedCycleRecords: number; droppedCaptureFrames: number; readFrame: number; writeEnd: number; shutdown: boolean };
  close(): void;
}

/** Options of a {@link JackClient}. */
export interface JackClientOptions {
  name: string;
  /** Server name; default $JACK_DEFAULT_SERVER or JACK's default. */
  server?: string;
  outputs?: number;
  inputs?: number;
  /** Output ring, frames (rounded up to a power of two; default 2^17). */
  ringFrames?: number;
  /** Capture ring, frames (default 2^20). */
  captureFrames?: number;
  /** Called on the JS thread after cycles (coalesced). */
  onCycle?: () => void;
}

/** The addon's path: built by scripts/build-addons.js jack. */
export const JACK_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'jack', 'build', 'Release', 'cuemux_jack.node');

/**
 * The same addon linked to PipeWire's libjack (Debian pipewire-jack; scripts/build-addons.js pipewire): a JACK
 * client of the PipeWire graph, as under `pw-jack`, for `--device pipewire`.
 */
export const PIPEWIRE_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'pipewire', 'build', 'Release', 'cuemux_pipewire.node');

/** Which libjack: JACK's own (jackd) or PipeWire's. */
export type JackFlavour = 'jack' | 'pipewire';

/** The flavour this process loaded: both libraries are libjack.so.0, and a process can hold only one. */
let loaded: JackFlavour | null = null;

/**
 * Load the addon of `flavour` (default JACK's); an INTERNAL CuemuxError when it is not built, a WRONG_STATE one when
 * this process already loaded the other flavour (the dynamic linker would reuse that libjack).
 */
export function jackAddon(flavour: JackFlavour = 'jack'): { JackClient: new (options: JackClientOptions) => JackClient } {
  if (loaded !== null && loaded !== flavour) throw new CuemuxError('WRONG_STATE', `this process already plays through ${loaded === 'jack' ? 'JACK\'s' : 'PipeWire\'s'} libjack: it cannot also load ${flavour === 'jack' ? 'JACK\'s' : 'PipeWire\'s'}`);
  const addon = flavour === 'jack'
    ? loadAddon<{ JackClient: new (options: JackClientOptions) => JackClient }>(JACK_ADDON, 'the JACK addon', 'libjack-jackd2-dev')
    : loadAddon<{ JackClient: new (options: JackClientOptions) => JackClient }>(PIPEWIRE_ADDON, 'the PipeWire (JACK API) addon', 'pipewire-jack and libjack-jackd2-dev');
  loaded = flavour;
  return addon;
}

/** Where a flavour's server is, for messages: $JACK_DEFAULT_SERVER or PipeWire's socket. */
function serverName(flavour: JackFlavour): string {
  return flavour === 'jack' ? process.env.JACK_DEFAULT_SERVER ?? 'default' : process.env.PIPEWIRE_REMOTE ?? 'pipewire-0';
}

/** Open a JACK client for `channels` output ports; an error from the addon becomes a CuemuxError. */
function openClient(options: JackClientOptions, flavour: JackFlavour): JackClient {
  const { JackClient: Client } = jackAddon(flavour);
  try {
    return new Client(options);
  } catch (e) {
    const server = options.server ?? serverName(flavour);
    throw new CuemuxError('WRONG_STATE', flavour === 'jack'
      ? `JACK: ${errorMessage(e)} (server "${server}"; is jackd running?)`
      : `PipeWire: ${errorMessage(e)} (remote "${server}"; is pipewire running for this user? $PIPEWIRE_RUNTIME_DIR or $XDG_RUNTIME_DIR must hold its socket)`, { cause: e });
  }
}

class JackDevice extends AudioDeviceBase {
  readonly #client: JackClient;
  #jumps = 0;

  constructor(client: JackClient, description: AudioDeviceDescription) {
    super(description, new DeviceClock(description.sampleRate));
    this.#client = client;
    this.latency = client.latency();
  }

  protected counters(): DeviceCounters {
    const s = this.#client.stats();
    return { cycles: s.cycles, underrunFrames: s.underrunFrames, underrunCycles: s.underrunCycles, xruns: s.xruns };
  }

  /** Called by the addon on the JS thread: absorb the cycles, then tell the player about the latest. */
  cycles(): void {
    if (this.closed) return;
    const d = this.#client.drain();
    let last: DeviceCycle | null = null;
    let under = 0;
    for (let i = 0; i + CYCLE_FIELDS <= d.length; i += CYCLE_FIELDS) {
      const frame = d[i];
      const monoNs = BigInt(Math.round(d[i + 1] * 1000 + d[i + 7]));
      const jump = this.clock.add(frame, monoNs);
      if (jump !== 0) {
        this.#jumps++;
        log.warn('the JACK timeline moved (a server xrun?): the frame-to-time mapping starts again', { frame, jumpUs: jump / 1000, xruns: this.#client.stats().xruns, jumps: this.#jumps });
      }
      under += d[i + 5];
      last = { frame, frames: d[i + 4], monoNs, underrunFrames: d[i + 5] };
    }
    this.underrun(under, 'JACK');
    if (!this.lost && this.#client.stats().shutdown) {
      this.lost = true;
      log.error('the JACK server went away: no more audio from this player', { client: this.description.name, server: this.description.server });
    }
    if (last === null) return;
    // The latency changes when ports are (dis)connected or the buffer size changes (a read of shared memory).
    const l = this.#client.latency();
    if (l.min !== this.latency.min || l.max !== this.latency.max) {
      if (this.onCycle !== null) log.info('JACK output latency changed', { fromFrames: this.latency, toFrames: l });
      this.latency = l;
    }
    this.onCycle?.(last);
  }

  departureNs(frame: number): bigint {
    return this.clock.monoNs(frame + this.latency.max);
  }

  protected writeFrames(frame: number, samples: Float32Array): number {
    return this.#client.write(frame, samples);
  }

  protected release(): void {
    this.#client.close();
  }
}

/**
 * Open JACK client `clientName` with `channels` output ports, activate it and connect its ports (see
 * {@link OpenDeviceOptions.connect}). Rejects with a CuemuxError when there is no server, no addon or a port to
 * connect does not exist.
 */
export async function openJackDevice(clientName: string, options: OpenDeviceOptions, flavour: JackFlavour = 'jack'): Promise<AudioDevice> {
  let device: JackDevice | null = null;
  const client = openClient({ name: clientName, outputs: options.channels, onCycle: () => device?.cycles() }, flavour);
  try {
    const info = client.info();
    client.activate();
    const connect = options.connect.flatMap((c) => c.split(',')).map((c) => c.trim()).filter((c) => c !== '');
    const ports = info.outputs.map((name) => ({ name, connections: [] as string[] }));
    if (!(connect.length === 1 && connect[0] === 'none')) {
      if (options.connect.length === 0) {
        // The system's playback ports, channel k to the k-th (none on a server without them: the ports stay free).
        const physical = client.ports('physical-playback');
        ports.forEach((p, k) => { if (k < physical.length) p.connections.push(physical[k]); });
        if (physical.length === 0) log.warn('the JACK server has no playback ports: the output ports are not connected', { ports: info.outputs });
      } else {
        // --device-connect A,B --device-connect C: channel 1 to A and B, channel 2 to C.
        options.connect.forEach((c, k) => {
          if (k < ports.length) ports[k].connections.push(...c.split(',').map((x) => x.trim()).filter((x) => x !== ''));
        });
      }
      for (const p of ports) {
        for (const to of p.connections) {
          try {
            client.connect(p.name, to);
          } catch (e) {
            throw new CuemuxError('INVALID_ARGUMENT', `JACK: cannot connect ${p.name} to ${to} (${errorMessage(e)}); ports: ${client.ports('all').join(', ')}`, { cause: e });
          }
        }
      }
    }
    device = new JackDevice(client, {
      kind: flavour, name: info.name, server: serverName(flavour), sampleRate: info.sampleRate,
      periodFrames: info.bufferSize, channels: options.channels, bufferFrames: info.ringFrames, ports,
    });
    // A few cycles, so that the clock mapping and the latency of the new connections are known (the server
    // propagates latencies after a connection: at most 1 s).
    const connected = ports.some((p) => p.connections.length > 0);
    const until = Date.now() + 1000;
    const ready = (d: JackDevice): boolean => d.stats.cycles >= 4 && (!connected || d.stats.latencyFrames.max > 0);
    while (!ready(device) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
    if (device.stats.cycles < 4) throw new CuemuxError('WRONG_STATE', `${flavour === 'jack' ? 'JACK' : 'PipeWire'}: the server "${device.description.server}" runs no cycles (is its driver stopped?)`);
    return device;
  } catch (e) {
    client.close();
    throw e;
  }
}
