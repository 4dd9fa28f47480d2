/**
 * A recorder of what JACK ports give (cuemux's JACK addon with input ports, of jackd or of PipeWire's graph): every
 * cycle's frames with the cycle's frame time and start instant. Free of mocha, so a child process can use it too
 * (pipewire-recorder.ts).
 */
import { CYCLE_FIELDS, jackAddon, type JackClient, type JackFlavour } from '../../src/players/audio-device-jack';

/** What the recorder took: per cycle its first frame, start instant and where its frames are in `samples`. */
export interface Recording {
  cycles: {
    frame: number;
    /** The cycle's start as JACK's DLL estimates it (jack_get_cycle_times), CLOCK_MONOTONIC ns. */
    monoNs: bigint;
    /** When the recorder's process callback began, CLOCK_MONOTONIC ns (the cycle as it ran, after the driver woke). */
    wokeNs: bigint;
    /** CLOCK_MONOTONIC − JACK's clock at the cycle, ns (jackd's clock is CLOCK_MONOTONIC_RAW). */
    monoOffsetNs: number;
    frames: number;
    captureIndex: number;
  }[];
  samples: Float32Array;
  firstIndex: number;
}

/**
 * A JACK client `name` (of jackd, or of PipeWire's graph) with `inputs` input ports, connected to `sources` (none:
 * connect later), keeping every cycle until stop().
 */
export function startRecorder(sources: string[], name = 'cuemux-test-recorder', inputs = sources.length, flavour: JackFlavour = 'jack'): { client: JackClient; stop: () => Recording } {
  const { JackClient: Client } = jackAddon(flavour);
  const cycles: Recording['cycles'] = [];
  const chunks: Float32Array[] = [];
  let firstIndex = -1;
  const client = new Client({ name, inputs });
  const drain = (): void => {
    const c = client.drain();
    for (let i = 0; i + CYCLE_FIELDS <= c.length; i += CYCLE_FIELDS) {
      cycles.push({ frame: c[i], monoNs: BigInt(Math.round(c[i + 1] * 1000 + c[i + 7])), wokeNs: BigInt(c[i + 8]), monoOffsetNs: c[i + 7], frames: c[i + 4], captureIndex: c[i + 6] });
    }
    const r = client.readCapture();
    if (firstIndex < 0) firstIndex = r.index;
    chunks.push(r.samples);
  };
  client.activate();
  const ins = client.info().inputs;
  sources.forEach((src, k) => client.connect(src, ins[k]));
  const timer = setInterval(drain, 50);
  return {
    client,
    stop: () => {
      clearInterval(timer);
      drain();
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const samples = new Float32Array(total);
      let at = 0;
      for (const c of chunks) {
        samples.set(c, at);
        at += c.length;
      }
      return { cycles, samples, firstIndex };
    },
  };
}
