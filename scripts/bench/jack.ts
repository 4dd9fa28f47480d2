/**
 * A JACK server of the benchmark's own (jackd on its `dummy` driver: no sound card needed, cycles timed by the
 * machine's clock as a card's interrupts would time them), and a recorder: a JACK client of cuemux's addon with input
 * ports, which takes in every cycle exactly what the clients connected to it put out, with the cycle's first frame and
 * start instant (jack_get_cycle_times, mapped to CLOCK_MONOTONIC in the cycle). What a player wrote is thereby read
 * back from the JACK graph, not from the player.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CYCLE_FIELDS, jackAddon, type JackClient } from '../../src/players/audio-device-jack';
import { killChild } from '../../test/support/wait';

/** A running jackd. */
export interface JackServer {
  /** Its name ($JACK_DEFAULT_SERVER for its clients). */
  name: string;
  child: ChildProcess;
  /** Whether it runs with real-time scheduling (it falls back to none where refused). */
  realtime: boolean;
  /** SIGTERM it and wait. */
  stop(): Promise<void>;
}

async function tryJackd(name: string, rate: number, period: number, realtime: boolean): Promise<JackServer | string> {
  const child = spawn('jackd', [...(realtime ? [] : ['--no-realtime']), '-n', name, '-d', 'dummy', '-r', String(rate), '-p', String(period)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (x: string) => { log += x; });
  child.stderr?.setEncoding('utf8').on('data', (x: string) => { log += x; });
  const { JackClient: Client } = jackAddon();
  // Its socket first (jack2: /dev/shm/jack_NAME_UID_0): a client probing before it exists makes libjack print errors.
  const socket = `/dev/shm/jack_${name}_${process.getuid?.() ?? 0}_0`;
  for (let i = 0; i < 500 && !existsSync(socket) && child.exitCode === null; i++) await sleep(20);
  for (let i = 0; i < 150 && child.exitCode === null; i++) {
    try {
      new Client({ name: 'cuemux-bench-probe', server: name, outputs: 1 }).close();
      return { name, child, realtime, stop: () => killChild(child, 'SIGTERM') };
    } catch {
      await sleep(100);
    }
  }
  await killChild(child, 'SIGTERM');
  return log.trim().split('\n').slice(-3).join(' | ');
}

/** Start jackd `name` on the dummy driver (real-time scheduling where allowed); rejects with its last words. */
export async function startJackd(name: string, rate: number, period: number): Promise<JackServer> {
  const rt = await tryJackd(name, rate, period, true);
  if (typeof rt !== 'string') return rt;
  const plain = await tryJackd(name, rate, period, false);
  if (typeof plain !== 'string') return plain;
  throw new Error(`jackd (dummy driver) does not start: ${plain}`);
}

/** One JACK cycle the recorder ran. */
export interface RecordedCycle {
  /** The cycle's first frame. */
  frame: number;
  /** CLOCK_MONOTONIC instant of its start, ns. */
  monoNs: bigint;
  frames: number;
  /** Index of its first frame in {@link Recording.samples} (frames), or -1 when the capture ring overflowed. */
  at: number;
}

/** What a recorder took: its cycles and the frames of all its inputs, interleaved. */
export interface Recording {
  cycles: RecordedCycle[];
  samples: Float32Array;
  inputs: number;
}

/** A recorder client on server `server` with `inputs` input ports (see the file's comment). */
export class JackRecorder {
  readonly #client: JackClient;
  readonly #cycles: Array<{ frame: number; monoNs: bigint; frames: number; captureIndex: number }> = [];
  readonly #chunks: Float32Array[] = [];
  #firstIndex = -1;
  #closed = false;
  readonly #timer: NodeJS.Timeout;
  readonly inputs: number;

  constructor(name: string, server: string, inputs: number) {
    const { JackClient: Client } = jackAddon();
    this.inputs = inputs;
    // A capture ring of 2^21 frames (44 s): drained every 50 ms.
    this.#client = new Client({ name, server, inputs, captureFrames: 1 << 21 });
    this.#client.activate();
    this.#timer = setInterval(() => this.#drain(), 50);
  }

  /** Every port of the server. */
  ports(): string[] {
    return this.#client.ports('all');
  }

  /** The playback latency JACK reports for `port`, frames ([min, max]). */
  latency(port: string): { min: number; max: number } {
    return this.#client.latency(port, 'playback');
  }

  /** Connect `source` to input k (0-based). */
  connect(source: string, k: number): void {
    this.#client.connect(source, this.#client.info().inputs[k]);
  }

  /** JACK's own xrun count since the recorder started. */
  get xruns(): number {
    return this.#client.stats().xruns;
  }

  #drain(): void {
    const c = this.#client.drain();
    for (let i = 0; i + CYCLE_FIELDS <= c.length; i += CYCLE_FIELDS) {
      this.#cycles.push({ frame: c[i], monoNs: BigInt(Math.round(c[i + 1] * 1000 + c[i + 7])), frames: c[i + 4], captureIndex: c[i + 6] });
    }
    const r = this.#client.readCapture();
    if (this.#firstIndex < 0) this.#firstIndex = r.index;
    this.#chunks.push(r.samples);
  }

  /** Close the client (what it took is dropped). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#client.close();
  }

  /** Stop recording, close the client and return what it took. */
  stop(): Recording {
    if (this.#closed) throw new Error('the JACK recorder was closed');
    clearInterval(this.#timer);
    this.#drain();
    const dropped = this.#client.stats().droppedCaptureFrames;
    this.close();
    if (dropped > 0) throw new Error(`the JACK recorder lost ${dropped} frames (its capture ring overflowed)`);
    const total = this.#chunks.reduce((n, c) => n + c.length, 0);
    const samples = new Float32Array(total);
    let at = 0;
    for (const c of this.#chunks.splice(0)) {
      samples.set(c, at);
      at += c.length;
    }
    const frames = total / this.inputs;
    const cycles = this.#cycles.map((c) => {
      const i = c.captureIndex < 0 ? -1 : c.captureIndex - this.#firstIndex;
      return { frame: c.frame, monoNs: c.monoNs, frames: c.frames, at: i >= 0 && i + c.frames <= frames ? i : -1 };
    });
    return { cycles, samples, inputs: this.inputs };
  }
}
