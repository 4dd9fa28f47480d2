/**
 * `cuemux play-audio --device jack` against a real JACK server (jackd on its dummy driver, a server of its own, named
 * through JACK_DEFAULT_SERVER), a real `cuemux serve` and OSC. A recorder (cuemux's JACK addon with input ports, in
 * this process) is connected to the player's output ports: in every JACK cycle it takes exactly what the device
 * consumes from the player, with the cycle's frame time and start instant (jack_get_cycle_times, mapped to
 * CLOCK_MONOTONIC) — so each consumed sample has a device frame and a departure instant: its cycle's start, plus its
 * offset in the cycle, plus the playback latency JACK reports for the device's playback port.
 *
 * The check, sample for sample: each consumed sample of the cue is FFmpeg's decode of the media at the show clock's
 * position at its departure instant. For each JACK cycle the offset (in samples) between where the cue's samples
 * departed and where the clock put them is found by exact comparison with FFmpeg's decode; no sample may be off by
 * more than one period (target: all within ±1 sample). Nothing here measures wall-clock time: both sides' clock
 * mappings (the recorder's from JACK, the player's sync log) are compared, on CLOCK_MONOTONIC.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { chirpWav } from './support/media';
import { d, firstAudioSeconds, killAll, mediaStart, s, Show, spawnPlayer, stopPlayer, waitPrepared } from './support/show-check';
import { waitFor } from './support/wait';
import { CYCLE_FIELDS, JACK_ADDON, jackAddon, type JackClient } from '../src/players/audio-device-jack';
import { DeviceClock, parseDeviceSpec } from '../src/players/audio-device';
import { readSyncLog } from '../src/players/sync-log';

const RATE = 48000;
const PERIOD = 256;
const CHANNELS = 2;
const PLAYER = 'cuemux-test-player';

/** FFmpeg's decode of `file`'s first audio stream at 48 kHz, `channels` interleaved float32 (its own up/down-mix). */
async function ffmpegSamples(file: string, channels: number): Promise<Float32Array> {
  const { stdout } = await promisify(execFile)('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:a:0', '-af', 'aresample=48000', '-ac', String(channels), '-f', 'f32le', '-'],
    { encoding: 'buffer', maxBuffer: 1 << 30 });
  const b = Buffer.from(stdout);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

/** What the recorder took: per cycle its first frame, start instant and where its frames are in `samples`. */
interface Recording {
  cycles: { frame: number; monoNs: bigint; frames: number; captureIndex: number }[];
  samples: Float32Array;
  firstIndex: number;
}

/** A JACK client with input ports connected to `sources`, keeping every cycle it runs until stop(). */
function startRecorder(sources: string[]): { client: JackClient; stop: () => Recording } {
  const { JackClient: Client } = jackAddon();
  const cycles: Recording['cycles'] = [];
  const chunks: Float32Array[] = [];
  let firstIndex = -1;
  const client = new Client({ name: 'cuemux-test-recorder', inputs: sources.length });
  const drain = (): void => {
    const c = client.drain();
    for (let i = 0; i + CYCLE_FIELDS <= c.length; i += CYCLE_FIELDS) {
      cycles.push({ frame: c[i], monoNs: BigInt(Math.round(c[i + 1] * 1000 + c[i + 7])), frames: c[i + 4], captureIndex: c[i + 6] });
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

describe('audio devices: specs and the device clock', function () {
  it('parses device specs (jack[:CLIENT], alsa:NAME, pipewire) and fits a device clock through jittered cycle times', function () {
    assert.deepEqual(parseDeviceSpec('jack'), { kind: 'jack', clientName: 'cuemux' });
    assert.deepEqual(parseDeviceSpec('jack:foh'), { kind: 'jack', clientName: 'foh' });
    assert.deepEqual(parseDeviceSpec('alsa:hw:1'), { kind: 'alsa', name: 'hw:1' });
    assert.throws(() => parseDeviceSpec('alsa'), /alsa:NAME/);
    assert.throws(() => parseDeviceSpec('coreaudio'), /jack\[:CLIENT_NAME\]/);
    // Cycles of 256 frames every 5333.33 µs, 10 ppm slow, with ±10 µs of jitter: the line is within 1 µs.
    const c = new DeviceClock(RATE);
    const ns = (k: number): number => (k * PERIOD * 1e9 / RATE) * (1 + 10e-6);
    for (let k = 0; k < 600; k++) c.add(1000 + k * PERIOD, 5_000_000_000n + BigInt(Math.round(ns(k) + (k % 2 === 0 ? 10_000 : -10_000))));
    const k = 700;
    assert.ok(Math.abs(Number(c.monoNs(1000 + k * PERIOD) - 5_000_000_000n) - ns(k)) < 1000);
    assert.ok(Math.abs(c.frameNs / (1e9 / RATE) - 1 - 10e-6) < 1e-6);
    // The timeline moves by 3 ms (a server xrun): the line starts again there instead of averaging both sides.
    const f600 = 1000 + 600 * PERIOD;
    const jump = c.add(f600, c.monoNs(f600) + 3_000_000n);
    assert.ok(Math.abs(jump - 3_000_000) < 1000, `jump ${jump} ns`);
    assert.ok(Math.abs(Number(c.monoNs(f600 + PERIOD) - c.monoNs(f600)) - PERIOD * c.frameNs) < 1000);
    c.add(f600 + PERIOD, c.monoNs(f600 + PERIOD));
    assert.equal(c.size, 2);
  });
});

describe('play-audio --device jack (a real JACK server, dummy driver)', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];
  let jackd: ChildProcess | null = null;
  let jackdLog = '';
  let show: Show | null = null;
  const server = `cuemux-test-${process.pid}-${Date.now()}`;
  const savedServerEnv = process.env.JACK_DEFAULT_SERVER;

  /** Start jackd (real-time scheduling or not); resolves with 'up', or why it did not come up. */
  async function startJackd(realtime: boolean): Promise<string> {
    jackdLog = '';
    const j = spawn('jackd', [...(realtime ? [] : ['--no-realtime']), '-n', server, '-d', 'dummy', '-r', String(RATE), '-p', String(PERIOD)], { stdio: ['ignore', 'pipe', 'pipe'] });
    jackd = j;
    j.stdout?.setEncoding('utf8').on('data', (x: string) => { jackdLog += x; });
    j.stderr?.setEncoding('utf8').on('data', (x: string) => { jackdLog += x; });
    const gone = (): boolean => j.exitCode !== null || j.signalCode !== null;
    // Up when a client can open; if jackd exits (no shared memory, no /dev/shm...), this machine cannot run JACK.
    // (Its banner first: a client probing before the socket exists makes libjack print errors.)
    await waitFor('jackd\'s banner', () => jackdLog.includes('self-connect-mode') || gone(), 10_000, 20).catch(() => undefined);
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

  before(async function () {
    const skip = (reason: string): never => {
      process.stdout.write(`      (skipped: ${reason})\n`);
      this.skip();
    };
    if (spawnSync('jackd', ['--version']).error !== undefined) skip('jackd is not installed (scripts/setup.sh installs jackd2)');
    if (!fs.existsSync(JACK_ADDON)) skip(`the JACK addon is not built (${JACK_ADDON}: scripts/build-addons.js jack)`);
    process.env.JACK_DEFAULT_SERVER = server;
    // Real-time scheduling as a show runs it; a machine that refuses it still runs JACK without.
    let up = await startJackd(true);
    if (up !== 'up') {
      await stopJackd();
      up = await startJackd(false);
    }
    if (up !== 'up') skip(`jackd cannot start here (${up}): ${jackdLog.trim().split('\n').slice(-3).join(' | ')}`);
  });

  async function stopJackd(): Promise<void> {
    const j = jackd;
    jackd = null;
    if (j === null || j.exitCode !== null || j.signalCode !== null) return;
    const gone = new Promise((r) => j.once('exit', r));
    j.kill('SIGTERM');
    await gone;
  }

  after(async function () {
    if (savedServerEnv === undefined) delete process.env.JACK_DEFAULT_SERVER;
    else process.env.JACK_DEFAULT_SERVER = savedServerEnv;
    await stopJackd();
  });

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  it('the addon\'s ring: frames written for device frame F are consumed at F exactly; silence before the first write is no underrun, a gap after it is', async function () {
    const { JackClient: Client } = jackAddon();
    const player = new Client({ name: 'cuemux-test-ring', outputs: 2 });
    try {
      player.activate();
      const outs = player.info().outputs;
      const rec = startRecorder(outs);
      // The device's current frame, then a ramp 0.1 s ahead of it: 1000 frames, channel 2 the negative.
      await waitFor('a few cycles', () => player.stats().cycles > 4, 5000);
      const c = player.drain();
      const now = c[c.length - CYCLE_FIELDS] + c[c.length - CYCLE_FIELDS + 4];
      const at = now + RATE / 10 + 17; // not on a period boundary
      const ramp = new Float32Array(2000);
      for (let i = 0; i < 1000; i++) [ramp[2 * i], ramp[2 * i + 1]] = [(i + 1) / 1000, -(i + 1) / 1000];
      assert.equal(player.write(at, ramp), 1000);
      assert.throws(() => player.write(at, ramp), /before the end of the previous write/);
      await waitFor('the ramp played and 0.1 s more', () => player.stats().readFrame > at + 1000 + RATE / 10, 10_000);
      const r = rec.stop();
      rec.client.close();
      // Where the recorder saw the ramp, by device frame.
      const frameOf = (captured: number): number | null => {
        const cy = r.cycles.find((y) => y.captureIndex >= 0 && captured >= y.captureIndex - r.firstIndex && captured < y.captureIndex - r.firstIndex + y.frames);
        return cy === undefined ? null : cy.frame + (captured - (cy.captureIndex - r.firstIndex));
      };
      const nonZero: number[] = [];
      for (let i = 0; i < r.samples.length / 2; i++) if (r.samples[2 * i] !== 0) nonZero.push(i);
      assert.equal(nonZero.length, 1000, 'the ramp, and nothing else');
      assert.equal(frameOf(nonZero[0]), at, 'its first frame consumed at the frame it was written for');
      for (const [k, i] of nonZero.entries()) {
        assert.equal(r.samples[2 * i], Math.fround((k + 1) / 1000));
        assert.equal(r.samples[2 * i + 1], -r.samples[2 * i]);
        assert.equal(frameOf(i), at + k);
      }
      // Before the ramp: silence the player never asked for (no underrun); after it: frames it did not write.
      const st = player.stats();
      assert.ok(st.underrunFrames >= RATE / 10 && st.underrunFrames <= st.readFrame - (at + 1000), `${st.underrunFrames} underrun frames`);
      process.stdout.write(`      (ramp of 1000 frames consumed from device frame ${at} exactly; ${st.underrunFrames} underrun frames after it)\n`);
    } finally {
      player.close();
    }
  });

  it('--device-connect names the ports of each channel (crossed here), and the player says so at start', async function () {
    // No server at this socket: the player opens its device, says so, and waits for the server.
    const p = spawnPlayer(['play-audio', '--socket', '/nonexistent/cuemux.sock', '--channels', '2', '--device', 'jack:cuemux-test-crossed',
      '--device-connect', 'system:playback_2', '--device-connect', 'system:playback_1', '--rt-priority', '0', '--nice', '0']);
    children.push(p.child);
    const line = await waitFor('the device line', () => p.stderr().split('\n').find((l) => l.includes('audio device jack')), 20_000);
    const said = JSON.parse(line.slice(line.indexOf('{'))) as { ports: string[] };
    assert.deepEqual(said.ports, ['cuemux-test-crossed:out_1 -> system:playback_2', 'cuemux-test-crossed:out_2 -> system:playback_1']);
    // JACK's own view of the graph (jack_lsp -c: each port, then its connections indented).
    const lsp = spawnSync('jack_lsp', ['-c'], { encoding: 'utf8', env: process.env }).stdout;
    assert.match(lsp, /^cuemux-test-crossed:out_1\n\s+system:playback_2$/m);
    assert.match(lsp, /^cuemux-test-crossed:out_2\n\s+system:playback_1$/m);
    await stopPlayer(p, 'play-audio');
    // A port that does not exist is refused, naming it.
    const bad = spawnPlayer(['play-audio', '--socket', '/nonexistent/cuemux.sock', '--device', 'jack:cuemux-test-bad', '--device-connect', 'nowhere:in_1',
      '--rt-priority', '0', '--nice', '0']);
    children.push(bad.child);
    assert.notEqual(await bad.exited, 0);
    assert.match(bad.stderr(), /cannot connect cuemux-test-bad:out_1 to nowhere:in_1/);
  });

  it('every sample the device consumed is FFmpeg\'s sample for the show clock at its departure (device frame time + JACK latency)', async function () {
    const wav = await chirpWav();
    const [ref, first, start] = await Promise.all([ffmpegSamples(wav, CHANNELS), firstAudioSeconds(wav), mediaStart(wav)]);
    const CUE = { in: 2.0, out: 5.0 };
    show = await Show.start({ 'chirp.wav': wav }, children, 'jack');
    const sh = show;
    await sh.osc('/cuemux/cue/load', [s('J'), s('chirp.wav'), { type: 'f', value: CUE.in }, { type: 'f', value: CUE.out }]);
    await sh.osc('/cuemux/clock/play');
    const sync = sh.file('sync.jsonl');
    const p = spawnPlayer(['play-audio', '--socket', sh.socket, '--output', 'audio', '--channels', String(CHANNELS), '--device', `jack:${PLAYER}`,
      '--sync-log', sync]); // SCHED_FIFO for the thread JACK wakes, as at a show (root here; else the player says so)
    children.push(p.child);
    await sh.followers(['audio'], [p]);
    await waitPrepared(p, ['J']);
    const { JackClient: Client } = jackAddon();
    const probe = new Client({ name: 'cuemux-test-ports', inputs: 1 });
    const outs = Array.from({ length: CHANNELS }, (_, k) => `${PLAYER}:out_${k + 1}`);
    await waitFor('the player\'s JACK ports', () => outs.every((o) => probe.ports('all').includes(o)), 10_000);
    // The device's own figure: the playback latency of the port the player's first channel is connected to.
    const playbackLatency = probe.latency('system:playback_1', 'playback');
    probe.close();
    const rec = startRecorder(outs);
    let recording: Recording;
    const clock = await sh.clockState();
    const P = Show.positionAt(clock, process.hrtime.bigint()) + 0.8;
    try {
      await sh.osc('/cuemux/cue/go', [s('J'), d(P)]);
      await sh.clockPast(P + (CUE.out - CUE.in) + 0.3);
    } finally {
      recording = rec.stop();
      rec.client.close();
    }
    await stopPlayer(p, 'play-audio');
    const err = p.stderr();

    // What the player said at start: the device, its rate, period and latency.
    const open = err.split('\n').find((l) => l.includes('audio device jack'));
    assert.ok(open !== undefined, `no device line in the player's log:\n${err.slice(-2000)}`);
    const said = JSON.parse(open.slice(open.indexOf('{'))) as { sampleRate: number; periodFrames: number; latencyFrames: { min: number; max: number }; client: string };
    assert.equal(said.sampleRate, RATE);
    assert.equal(said.periodFrames, PERIOD);
    assert.equal(said.client, PLAYER);
    assert.equal(said.latencyFrames.max, playbackLatency.max, 'the player departs samples at the latency JACK reports for the playback port');
    const statsLine = err.split('\n').reverse().find((l) => l.startsWith('cuemux play-audio: {'));
    assert.ok(statsLine !== undefined, err.slice(-2000));
    const stats = JSON.parse(statsLine.slice('cuemux play-audio: '.length)) as { deviceUnderrunFrames: number; xruns: number; slewedPeriods: number; device: { underrunFrames: number; xruns: number } };

    // Each consumed frame: its departure (cycle start + offset in the cycle, on JACK's own cycle times; + latency),
    // the clock there, and the cue sample the clock asks for.
    const inIdx = Math.round((start + CUE.in - first) * RATE);
    const outIdx = Math.round((start + CUE.out - first) * RATE);
    const frameNs = 1e9 / RATE;
    const latencyNs = playbackLatency.max * frameNs;
    let compared = 0;
    let silentInCue = 0;
    let interpolated = 0; // samples of slewed periods (not bit-exact)
    let offEarly = 0; // non-zero before the cue's span (a period of margin)
    const offsets = new Map<number, number>(); // offset (samples) → samples
    const wrong: string[] = [];
    const { samples, firstIndex } = recording;
    for (const cy of recording.cycles) {
      if (cy.captureIndex < 0) continue;
      const base = (cy.captureIndex - firstIndex) * CHANNELS;
      if (base < 0 || base + cy.frames * CHANNELS > samples.length) continue;
      // The cue samples the clock asks for at each frame of the cycle (index into FFmpeg's decode), or -1 outside.
      const want: number[] = [];
      for (let i = 0; i < cy.frames; i++) {
        const t = cy.monoNs + BigInt(Math.round(i * frameNs + latencyNs));
        const k = inIdx + Math.round((Show.positionAt(clock, t) - P) * RATE);
        want.push(k >= inIdx && k < outIdx ? k : -1);
      }
      const inCue = want.filter((k) => k >= 0).length;
      if (inCue === 0) {
        // Outside the cue (one period of margin for the edges): the device played silence.
        const k0 = inIdx + Math.round((Show.positionAt(clock, cy.monoNs + BigInt(Math.round(latencyNs))) - P) * RATE);
        if (k0 < inIdx - 2 * PERIOD || k0 > outIdx + PERIOD) {
          for (let j = 0; j < cy.frames * CHANNELS; j++) if (samples[base + j] !== 0) offEarly++;
        }
        continue;
      }
      if (inCue < cy.frames) continue; // the cycle with the cue's first or last sample: its edges are checked below
      compared += inCue;
      if (samples.subarray(base, base + cy.frames * CHANNELS).every((v) => v === 0)) {
        silentInCue += inCue;
        continue;
      }
      // The offset (samples) at which this cycle's samples equal FFmpeg's, on every channel, nearest first.
      let found: number | null = null;
      for (let m = 0; m <= 2 * RATE && found === null; m++) {
        for (const off of m === 0 ? [0] : [m, -m]) {
          let ok = true;
          for (let i = 0; i < cy.frames && ok; i++) {
            for (let ch = 0; ch < CHANNELS && ok; ch++) ok = samples[base + i * CHANNELS + ch] === ref[(want[i] + off) * CHANNELS + ch];
          }
          if (ok) {
            found = off;
            break;
          }
        }
      }
      if (found === null) {
        // A slewed period (the player interpolates while it catches up with the clock) is not bit-exact: its offset is
        // the nearest d at which every sample lies between FFmpeg's samples k+d and k+d+1 (a linear interpolation).
        const between = (off: number): boolean => {
          for (let i = 0; i < cy.frames; i++) {
            for (let ch = 0; ch < CHANNELS; ch++) {
              const a = ref[(want[i] + off) * CHANNELS + ch];
              const b = ref[(want[i] + off + 1) * CHANNELS + ch];
              const x = samples[base + i * CHANNELS + ch];
              if (!(x >= Math.min(a, b) - 1e-7 && x <= Math.max(a, b) + 1e-7)) return false;
            }
          }
          return true;
        };
        let best: number | null = null;
        for (let m = 0; m <= PERIOD && best === null; m++) best = [m, -m].find((off) => between(off)) ?? null;
        if (best !== null) {
          interpolated += inCue;
          offsets.set(best, (offsets.get(best) ?? 0) + inCue);
        } else {
          if (wrong.length < 10) wrong.push(`cycle at frame ${cy.frame}: its samples are nowhere in FFmpeg's decode within 2 s, nor interpolated between them within a period`);
          offsets.set(Number.NaN, (offsets.get(Number.NaN) ?? 0) + inCue);
        }
      } else {
        offsets.set(found, (offsets.get(found) ?? 0) + inCue);
      }
    }
    // The first sample of the cue: the first non-zero consumed frame leaves at the clock's in-point.
    let firstFrameOff: number | null = null;
    for (const cy of recording.cycles) {
      const base = (cy.captureIndex - firstIndex) * CHANNELS;
      if (cy.captureIndex < 0 || base < 0) continue;
      const i = Array.from({ length: cy.frames }, (_, j) => j).find((j) => samples[base + j * CHANNELS] !== 0);
      if (i === undefined) continue;
      const t = cy.monoNs + BigInt(Math.round(i * frameNs + latencyNs));
      const k = inIdx + Math.round((Show.positionAt(clock, t) - P) * RATE);
      // The chirp's first sample is 0 (sin 0): the first non-zero one is the cue's second or a later one.
      const at = Array.from({ length: 10 }, (_, j) => ref[(inIdx + j) * CHANNELS]).findIndex((v) => v === samples[base + i * CHANNELS]);
      firstFrameOff = at < 0 ? null : k - (inIdx + at);
      break;
    }

    // The player's sync log maps device frames to departures too: both sides agree.
    const lines = (await readSyncLog(sync)).filter((r) => r.extra.cue === 'J');
    // (Each line's device frame through the recorder's cycle that took the frame its latency later.)
    const byFrame = new Map(recording.cycles.map((cy) => [cy.frame, cy]));
    const mapDiffUs = lines.flatMap((r) => {
      const f = Number(r.extra.device_frame) + playbackLatency.max;
      const cy = byFrame.get(f - ((f - recording.cycles[0].frame) % PERIOD));
      return cy === undefined ? [] : [Number(r.monoNs - cy.monoNs - BigInt(Math.round((f - cy.frame) * frameNs))) / 1000];
    });
    const maxMapDiffUs = Math.max(...mapDiffUs.map(Math.abs));

    const histogram = [...offsets].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${Number.isNaN(o) ? 'unmatched' : `${o}`}: ${n}`).join(', ');
    const offByMore = [...offsets].filter(([o]) => Number.isNaN(o) || Math.abs(o) > PERIOD).reduce((n, [, c]) => n + c, 0);
    const report = `${compared} cue samples consumed over ${recording.cycles.length} cycles; offset (samples) histogram {${histogram}}; `
      + `${compared - interpolated - silentInCue} bit-exact, ${interpolated} in ${stats.slewedPeriods} slewed periods; `
      + `${silentInCue} silent (device underruns ${stats.device.underrunFrames} frames, player xruns ${stats.xruns}, JACK xruns ${stats.device.xruns}); `
      + `${err.split('\n').filter((l) => l.includes('JACK timeline moved')).length} device timeline jumps; first sample off by ${String(firstFrameOff)}; latency ${playbackLatency.max} frames; sync log vs JACK cycle times: max ${maxMapDiffUs.toFixed(1)} µs`;
    process.stdout.write(`      (${report})\n`);
    assert.deepEqual(wrong, [], report);
    assert.equal(offByMore, 0, `samples off by more than one period: ${report}`);
    assert.equal(offEarly, 0, 'the device played only silence outside the cue');
    assert.ok(compared >= 0.9 * (outIdx - inIdx) - 2 * PERIOD, `only ${compared} of the cue's ${outIdx - inIdx} samples were consumed`);
    assert.ok(silentInCue <= stats.device.underrunFrames, `${silentInCue} cue samples were silent, but the device counted ${stats.device.underrunFrames} underrun frames`);
    assert.equal(stats.deviceUnderrunFrames, stats.device.underrunFrames);
    assert.ok(interpolated <= stats.slewedPeriods * PERIOD, `${interpolated} samples not bit-exact, but the player slewed ${stats.slewedPeriods} periods`);
    assert.ok(firstFrameOff !== null && Math.abs(firstFrameOff) <= 1, `the cue's first sample left ${String(firstFrameOff)} samples from its clock time`);
    assert.ok(lines.length > 0 && maxMapDiffUs < PERIOD * frameNs / 1000, `the player's departures differ from JACK's cycle times by up to ${maxMapDiffUs} µs`);
  });
});
