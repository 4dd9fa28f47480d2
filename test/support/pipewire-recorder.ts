/**
 * A recorder in PipeWire's graph, in a process of its own (the test's process holds JACK's libjack, and a process can
 * load only one libjack.so.0): `node pipewire-recorder.js OUT NAME SOURCE...` waits for the SOURCE ports, connects
 * its input ports to them, says `recording` on stdout, and on SIGTERM writes what it took: OUT.json (the cycles and
 * the first capture index) and OUT.f32 (the interleaved samples). See startRecorder (audio-device-check.ts).
 */
import * as fs from 'node:fs';
import { startRecorder } from './jack-recorder';
import { jackAddon } from '../../src/players/audio-device-jack';

/** What OUT.json holds (bigint instants as strings). */
export interface SavedRecording {
  cycles: { frame: number; monoNs: string; wokeNs: string; monoOffsetNs: number; frames: number; captureIndex: number }[];
  firstIndex: number;
}

async function main(): Promise<void> {
  const [out, name, ...sources] = process.argv.slice(2);
  const { JackClient: Client } = jackAddon('pipewire');
  const probe = new Client({ name: `${name}-probe`, inputs: 1 });
  while (!sources.every((p) => probe.ports('all').includes(p))) await new Promise((resolve) => setTimeout(resolve, 20));
  probe.close();
  const rec = startRecorder(sources, name, sources.length, 'pipewire');
  process.stdout.write('recording\n');
  process.once('SIGTERM', () => {
    const r = rec.stop();
    rec.client.close();
    const saved: SavedRecording = { cycles: r.cycles.map((c) => ({ ...c, monoNs: String(c.monoNs), wokeNs: String(c.wokeNs) })), firstIndex: r.firstIndex };
    fs.writeFileSync(`${out}.json`, JSON.stringify(saved));
    fs.writeFileSync(`${out}.f32`, Buffer.from(r.samples.buffer, r.samples.byteOffset, r.samples.byteLength));
    process.exit(0);
  });
}

void main();
