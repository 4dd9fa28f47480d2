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
import { spawnSync, type ChildProcess } from 'node:child_process';
import { assertConsumed, checkConsumed, chirpCueShow, consumedReport, goChirpCue, JackdServer, playerReport, playerTimelineBreaks, withoutXrunCycles } from './support/audio-device-check';
import { startRecorder, type Recording } from './support/jack-recorder';
import { killAll, Show, spawnPlayer, stopPlayer, waitPrepared } from './support/show-check';
import { waitFor } from './support/wait';
import { CYCLE_FIELDS, jackAddon } from '../src/players/audio-device-jack';
import { DeviceClock, parseDeviceSpec } from '../src/players/audio-device';

const RATE = 48000;
const PERIOD = 256;
const CHANNELS = 2;
const PLAYER = 'cuemux-test-player';

describe('audio devices: specs and the device clock', function () {
  it('parses device specs (jack[:CLIENT], alsa:NAME, pipewire) and fits a device clock through jittered cycle times', function () {
    assert.deepEqual(parseDeviceSpec('jack'), { kind: 'jack', clientName: 'cuemux' });
    assert.deepEqual(parseDeviceSpec('jack:foh'), { kind: 'jack', clientName: 'foh' });
    assert.deepEqual(parseDeviceSpec('alsa:hw:1'), { kind: 'alsa', name: 'hw:1' });
    assert.throws(() => parseDeviceSpec('alsa'), /alsa:NAME/);
    assert.deepEqual(parseDeviceSpec('pipewire'), { kind: 'pipewire', name: 'cuemux' });
    assert.deepEqual(parseDeviceSpec('pipewire:foh'), { kind: 'pipewire', name: 'foh' });
    assert.throws(() => parseDeviceSpec('coreaudio'), /jack\[:CLIENT_NAME\], alsa:NAME or pipewire\[:NAME\]/);
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

  it('a late-only device clock (ALSA status readings) goes through the least delayed readings, not their mean, and shrugs off a few early ones', function () {
    // Readings late by a wake-up of 50-250 µs (a fixed pseudo-random sequence); `early`: 3 % of them 2 ms early (a
    // device catching up after a stall). Returns how late each line is at a later frame, ns: [late-only, plain].
    const truth = (k: number): number => 7_000_000_000 + k * PERIOD * 1e9 / RATE;
    const fit = (early: boolean): [number, number] => {
      const late = new DeviceClock(RATE, 512, true);
      const plain = new DeviceClock(RATE, 512);
      let x = 12345;
      for (let k = 0; k < 600; k++) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        const at = BigInt(Math.round(truth(k) + (early && k % 33 === 5 ? -2_000_000 : 50_000 + (x % 200_000))));
        // (A jump threshold as the ALSA device's: 2 ms off the line is no moved timeline.)
        late.add(k * PERIOD, at, 20_000_000);
        plain.add(k * PERIOD, at, 20_000_000);
      }
      return [Number(late.monoNs(650 * PERIOD)) - truth(650), Number(plain.monoNs(650 * PERIOD)) - truth(650)];
    };
    // Late by about the wake-ups' 10th percentile (70 µs; 20 µs more for the slope's error at 50 periods on), where the
    // plain fit is late by their mean (150 µs).
    const [late, plain] = fit(false);
    assert.ok(late >= 0 && late <= 90_000 && plain > 120_000, `late-only fit ${late} ns late, plain ${plain} ns`);
    // A few early readings: the line stays on the late ones (the least of all would put it 2 ms early).
    const [lateE] = fit(true);
    assert.ok(lateE >= 0 && lateE <= 90_000, `late-only fit ${lateE} ns late with early readings`);
  });

  it('a late-only device clock is not tilted by a start whose readings were late by milliseconds (a player starting)', function () {
    // The first 240 periods' readings late by 4 ms falling to none (the player's start loading the machine), then by a
    // wake-up of 50-250 µs; a GO 400 periods (2.1 s) after the device started. A least-squares slope through them is
    // low, and its line early at the GO's frames by milliseconds (a CI run: the cue's first sample 219 samples early).
    const truth = (k: number): number => 9_000_000_000 + k * PERIOD * 1e9 / RATE;
    const late = new DeviceClock(RATE, 512, true);
    let x = 777;
    for (let k = 0; k < 400; k++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const start = k < 240 ? 4_000_000 * (1 - k / 240) : 0;
      late.add(k * PERIOD, BigInt(Math.round(truth(k) + start + 50_000 + (x % 200_000))), 20_000_000);
    }
    for (const k of [400, 450, 900]) {
      const off = Number(late.monoNs(k * PERIOD)) - truth(k);
      // Late by about the wake-ups' 10th percentile (70 µs), give or take the slope's error over the extrapolation.
      assert.ok(off >= -50_000 && off <= 150_000, `at period ${k}, the line is ${off} ns late (negative: early)`);
    }
  });
});

describe('play-audio --device jack (a real JACK server, dummy driver)', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;
  const jackd = new JackdServer(`cuemux-test-${process.pid}-${Date.now()}`, RATE, PERIOD);

  before(async function () {
    const why = await jackd.start();
    if (why !== null) {
      process.stdout.write(`      (skipped: ${why})\n`);
      this.skip();
    }
  });

  after(async function () {
    await jackd.stop();
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
    const c = await chirpCueShow(children, 'jack', CHANNELS, RATE);
    show = c.show;
    const p = spawnPlayer(['play-audio', '--socket', c.show.socket, '--output', 'audio', '--channels', String(CHANNELS), '--device', `jack:${PLAYER}`,
      '--sync-log', c.sync]); // SCHED_FIFO for the thread JACK wakes, as at a show (root here; else the player says so)
    children.push(p.child);
    await c.show.followers(['audio'], [p]);
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
    let went: Awaited<ReturnType<typeof goChirpCue>>;
    try {
      went = await goChirpCue(c);
    } finally {
      recording = rec.stop();
      rec.client.close();
    }
    await stopPlayer(p, 'play-audio');
    // What the player said at start: the device, its rate, period and latency.
    const { said, stats, lines } = await playerReport<{ sampleRate: number; periodFrames: number; latencyFrames: { min: number; max: number }; client: string }>(p, 'jack', c.sync);
    assert.equal(said.sampleRate, RATE);
    assert.equal(said.periodFrames, PERIOD);
    assert.equal(said.client, PLAYER);
    assert.equal(said.latencyFrames.max, playbackLatency.max, 'the player departs samples at the latency JACK reports for the playback port');

    // Each consumed frame: its departure (cycle start + offset in the cycle, on JACK's own cycle times; + latency).
    const frameNs = 1e9 / RATE;
    // Cycles at a server xrun (this VM starves jackd now and then) are left unjudged: the device itself glitched there.
    const judged = withoutXrunCycles(recording, RATE, 2, playerTimelineBreaks(p.stderr()));
    assert.ok(judged.leftOut <= recording.cycles.length / 10, `${judged.xrunCycles} JACK timeline breaks (${judged.leftOut} of ${recording.cycles.length} cycles): this machine starved jackd`);
    const r = checkConsumed({
      recording: judged.recording, ref: c.ref, channels: CHANNELS, rate: RATE, period: PERIOD, clock: went.clock, goPosition: went.position, inIdx: c.inIdx, outIdx: c.outIdx,
      departureAfterCycleNs: playbackLatency.max * frameNs, lines, jackFrame: (f) => f, // the recorder counts JACK's frames too
    });

    // The player's sync log maps device frames to departures too: both sides agree.
    // (Each line's device frame through the recorder's cycle that took the frame its latency later.)
    const byFrame = new Map(judged.recording.cycles.filter((cy) => cy.captureIndex >= 0).map((cy) => [cy.frame, cy]));
    const mapDiffUs = lines.flatMap((l) => {
      const f = Number(l.extra.device_frame) + playbackLatency.max;
      const cy = byFrame.get(f - ((f - recording.cycles[0].frame) % PERIOD));
      return cy === undefined ? [] : [Number(l.monoNs - cy.monoNs - BigInt(Math.round((f - cy.frame) * frameNs))) / 1000];
    });
    const maxMapDiffUs = Math.max(...mapDiffUs.map(Math.abs));

    const report = consumedReport(r, recording.cycles.length, stats, `${p.stderr().split('\n').filter((l) => l.includes('JACK timeline moved')).length} device timeline jumps; `
      + `latency ${playbackLatency.max} frames; sync log vs JACK cycle times: max ${maxMapDiffUs.toFixed(1)} µs; JACK timeline breaks ${judged.xrunCycles} (${judged.leftOut} cycles around them not judged)`);
    process.stdout.write(`      (${report})\n`);
    if (r.firstFrameOff === null && judged.leftOut > 0) {
      // The cycle with the cue's first sample was at a JACK timeline break (left unjudged): its start cannot be judged.
      process.stdout.write(`      (skipped: a JACK timeline break at the cue's first cycle (${judged.xrunCycles} breaks, ${judged.leftOut} cycles left unjudged): this machine starved jackd)\n`);
      this.skip();
    }
    assertConsumed(r, c, stats, PERIOD, 1, report);
    assert.ok(mapDiffUs.length >= lines.length / 2, `only ${mapDiffUs.length} of ${lines.length} sync-log lines map to a judged JACK cycle`);
    assert.ok(lines.length > 0 && maxMapDiffUs < PERIOD * frameNs / 1000, `the player's departures differ from JACK's cycle times by up to ${maxMapDiffUs} µs`);
  });
});
