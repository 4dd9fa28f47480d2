/**
 * `cuemux play-audio --device pipewire` against a real PipeWire daemon (Debian pipewire 0.3.65, headless: no session
 * manager, no D-Bus; its Dummy-Driver drives the graph at PIPEWIRE_LATENCY's 256 frames at 48 kHz), through
 * PipeWire's JACK API (the JACK addon linked to pipewire-jack's libjack). A recorder in the same graph, in a process
 * of its own (test/support/pipewire-recorder.ts: this process holds JACK's libjack), takes what the player's ports
 * give each cycle with the cycle's frame time and start instant; the check is the JACK test's
 * (test/support/audio-device-check.ts): each consumed sample is FFmpeg's sample for the show clock at its departure
 * (cycle start + the output latency the player reports).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkConsumed, ffmpegSamples } from './support/audio-device-check';
import type { Recording } from './support/jack-recorder';
import { chirpWav } from './support/media';
import type { SavedRecording } from './support/pipewire-recorder';
import { d, firstAudioSeconds, killAll, mediaStart, s, Show, spawnPlayer, stopPlayer, waitPrepared } from './support/show-check';
import { waitFor } from './support/wait';
import { PIPEWIRE_ADDON } from '../src/players/audio-device-jack';
import { readSyncLog } from '../src/players/sync-log';

const RATE = 48000;
const PERIOD = 256;
const CHANNELS = 2;
const PLAYER = 'cuemux-test-pw-player';

describe('play-audio --device pipewire (a real PipeWire daemon, headless, its JACK API)', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;
  let daemon: ChildProcess | null = null;
  let daemonLog = '';
  let dir = '';
  const saved = { runtime: process.env.PIPEWIRE_RUNTIME_DIR, latency: process.env.PIPEWIRE_LATENCY };

  before(async function () {
    const skip = (reason: string): never => {
      process.stdout.write(`      (skipped: ${reason})\n`);
      this.skip();
    };
    if (spawnSync('pipewire', ['--version']).error !== undefined) skip('pipewire is not installed (scripts/setup.sh installs pipewire and pipewire-jack)');
    if (!fs.existsSync(PIPEWIRE_ADDON)) skip(`the PipeWire addon is not built (${PIPEWIRE_ADDON}: scripts/build-addons.js pipewire; needs pipewire-jack)`);
    // A daemon of the test's own: its socket in a private runtime directory, which the players are told of.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cuemux-pw-'));
    fs.chmodSync(dir, 0o700);
    const d = spawn('pipewire', [], { env: { ...process.env, PIPEWIRE_RUNTIME_DIR: dir, XDG_RUNTIME_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon = d;
    d.stdout?.setEncoding('utf8').on('data', (x: string) => { daemonLog += x; });
    d.stderr?.setEncoding('utf8').on('data', (x: string) => { daemonLog += x; });
    const up = await waitFor('pipewire\'s socket', () => (fs.existsSync(path.join(dir, 'pipewire-0')) ? 'up' : d.exitCode !== null ? 'exited' : undefined), 15_000, 20).catch(() => 'timeout');
    if (up !== 'up') skip(`pipewire cannot start here (${up}): ${daemonLog.trim().split('\n').slice(-3).join(' | ')}`);
    process.env.PIPEWIRE_RUNTIME_DIR = dir;
    process.env.PIPEWIRE_LATENCY = `${PERIOD}/${RATE}`;
  });

  after(async function () {
    for (const [k, v] of [['PIPEWIRE_RUNTIME_DIR', saved.runtime], ['PIPEWIRE_LATENCY', saved.latency]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const d = daemon;
    if (d !== null && d.exitCode === null && d.signalCode === null) {
      const gone = new Promise((r) => d.once('exit', r));
      d.kill('SIGTERM');
      await gone;
    }
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  it('every sample the device consumed is FFmpeg\'s sample for the show clock at its departure (PipeWire cycle time + latency)', async function () {
    const wav = await chirpWav();
    const [ref, first, start] = await Promise.all([ffmpegSamples(wav, CHANNELS), firstAudioSeconds(wav), mediaStart(wav)]);
    const CUE = { in: 2.0, out: 5.0 };
    show = await Show.start({ 'chirp.wav': wav }, children, 'pipewire');
    const sh = show;
    await sh.osc('/cuemux/cue/load', [s('J'), s('chirp.wav'), { type: 'f', value: CUE.in }, { type: 'f', value: CUE.out }]);
    await sh.osc('/cuemux/clock/play');
    const sync = sh.file('sync.jsonl');
    const p = spawnPlayer(['play-audio', '--socket', sh.socket, '--output', 'audio', '--channels', String(CHANNELS), '--device', `pipewire:${PLAYER}`, '--sync-log', sync]);
    children.push(p.child);
    await sh.followers(['audio'], [p]);
    await waitPrepared(p, ['J']);
    // The recorder, connected to the player's ports.
    const out = sh.file('recording');
    const rec = spawn(process.execPath, [path.join(__dirname, 'support', 'pipewire-recorder.js'), out, 'cuemux-test-pw-recorder',
      ...Array.from({ length: CHANNELS }, (_, k) => `${PLAYER}:out_${k + 1}`)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(rec);
    let said = '';
    rec.stdout?.setEncoding('utf8').on('data', (x: string) => { said += x; });
    const recExit = new Promise((r) => rec.once('exit', r));
    await waitFor('the recorder', () => said.includes('recording'), 20_000);
    const clock = await sh.clockState();
    const P = Show.positionAt(clock, process.hrtime.bigint()) + 0.8;
    try {
      await sh.osc('/cuemux/cue/go', [s('J'), d(P)]);
      await sh.clockPast(P + (CUE.out - CUE.in) + 0.3);
    } finally {
      rec.kill('SIGTERM');
      await recExit;
    }
    await stopPlayer(p, 'play-audio');
    const savedRec = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as SavedRecording;
    const bytes = fs.readFileSync(`${out}.f32`);
    const recording: Recording = {
      cycles: savedRec.cycles.map((c) => ({ ...c, monoNs: BigInt(c.monoNs) })), firstIndex: savedRec.firstIndex,
      samples: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4),
    };
    const err = p.stderr();
    const open = err.split('\n').find((l) => l.includes('audio device pipewire'));
    assert.ok(open !== undefined, `no device line in the player's log:\n${err.slice(-2000)}`);
    const dev = JSON.parse(open.slice(open.indexOf('{'))) as { sampleRate: number; periodFrames: number; latencyFrames: { min: number; max: number }; client: string };
    assert.equal(dev.sampleRate, RATE);
    assert.equal(dev.periodFrames, PERIOD, 'the player runs at the graph\'s quantum');
    assert.equal(dev.client, PLAYER);
    const statsLine = err.split('\n').reverse().find((l) => l.startsWith('cuemux play-audio: {'));
    assert.ok(statsLine !== undefined, err.slice(-2000));
    const stats = JSON.parse(statsLine.slice('cuemux play-audio: '.length)) as { slewedPeriods: number; xruns: number; device: { underrunFrames: number; xruns: number } };

    const inIdx = Math.round((start + CUE.in - first) * RATE);
    const outIdx = Math.round((start + CUE.out - first) * RATE);
    const lines = (await readSyncLog(sync)).filter((l) => l.extra.cue === 'J');
    const r = checkConsumed({
      recording, ref, channels: CHANNELS, rate: RATE, period: PERIOD, clock, goPosition: P, inIdx, outIdx,
      departureAfterCycleNs: dev.latencyFrames.max * 1e9 / RATE, lines, jackFrame: (f) => f, // one graph, one frame counter
    });
    const report = `${r.compared} cue samples consumed over ${recording.cycles.length} cycles; offset (samples) histogram {${r.histogram}}; `
      + `${r.compared - r.interpolated - r.silentInCue} bit-exact, ${r.interpolated} in ${stats.slewedPeriods} slewed periods; `
      + `${r.silentInCue} silent (device underruns ${stats.device.underrunFrames} frames, player xruns ${stats.xruns}); `
      + `first sample off by ${String(r.firstFrameOff)}; latency ${dev.latencyFrames.max} frames`;
    process.stdout.write(`      (${report})\n`);
    assert.deepEqual(r.wrong, [], report);
    assert.equal(r.offByMore, 0, `samples off by more than one period: ${report}`);
    assert.equal(r.offEarly, 0, 'the device played only silence outside the cue');
    assert.ok(r.compared >= 0.9 * (outIdx - inIdx) - 2 * PERIOD, `only ${r.compared} of the cue's ${outIdx - inIdx} samples were consumed`);
    assert.ok(r.silentInCue <= stats.device.underrunFrames, `${r.silentInCue} cue samples were silent, but the device counted ${stats.device.underrunFrames} underrun frames`);
    assert.deepEqual(r.unexplainedInterpolated, [], `cycles not bit-exact though no slewed period covers them: ${report}`);
    assert.ok(r.firstFrameOff !== null && Math.abs(r.firstFrameOff) <= 1, `the cue's first sample left ${String(r.firstFrameOff)} samples from its clock time`);
  });
});
