/**
 * `cuemux play-audio --device alsa:NAME` against a real ALSA PCM with a real clock. This machine has no sound card
 * (no /proc/asound), so the PCM is alsa-lib's user-space `jack` plugin (Debian libasound2-plugins), defined in a
 * configuration file of the test's own (ALSA_CONFIG_PATH), on a real JACK server (jackd, dummy driver): the plugin
 * hands each JACK cycle a period of the player's ALSA buffer, and a recorder (cuemux's JACK addon) connected to the
 * plugin's ports takes exactly those frames with the cycle's frame time and start instant.
 *
 * What ALSA reports for this PCM: the plugin moves its pointer a whole period when it copies that period at the start
 * of a JACK cycle, so ALSA's status (delay at a timestamp) says each frame leaves one period before JACK takes it,
 * late by the player thread's wake-up. So a sample the player scheduled for clock time t is taken by JACK at
 * t + one period − the wake-up. The check (test/support/audio-device-check.ts): every consumed sample is FFmpeg's
 * decode of the media at the show clock's position at (its cycle's start − one period), within 1 ms (the issue's
 * departure target), and the player's sync log agrees. A cycle's start is the dummy driver's schedule (anchor + n
 * periods of JACK's clock, placed by the recorder's earliest wake-up), not JACK's cycle time: that is a DLL following
 * the driver's late wake-ups, ms after the schedule for seconds after a disturbance (onDriverSchedule).
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertConsumed, checkConsumed, chirpCueShow, consumedReport, goChirpCue, guardReport, JackdServer, onDriverSchedule, playerReport, timelineMoves, withoutCycles } from './support/audio-device-check';
import { startRecorder, type Recording } from './support/jack-recorder';
import { killAll, Show, spawnPlayer, stopPlayer, waitPrepared } from './support/show-check';
import { ALSA_ADDON } from '../src/players/audio-device-alsa';

const RATE = 48000;
const PERIOD = 256;
const CHANNELS = 2;
const RECORDER = 'cuemux-test-alsa-recorder';
/** The ALSA PCM of the test's configuration: the jack plugin, its ports connected to the recorder at start. */
const PCM = 'cuemuxtest';

/** alsa-lib's jack plugin, where Debian puts it. */
function jackPlugin(): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu/alsa-lib', '/usr/lib/aarch64-linux-gnu/alsa-lib', '/usr/lib/alsa-lib', '/usr/lib64/alsa-lib']) {
    const f = path.join(dir, 'libasound_module_pcm_jack.so');
    if (fs.existsSync(f)) return f;
  }
  return null;
}

describe('play-audio --device alsa (alsa-lib\'s jack plugin on a real JACK server, dummy driver)', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;
  const jackd = new JackdServer(`cuemux-test-alsa-${process.pid}-${Date.now()}`, RATE, PERIOD);
  const savedConfig = process.env.ALSA_CONFIG_PATH;
  let confDir = '';

  before(async function () {
    const skip = (reason: string): never => {
      process.stdout.write(`      (skipped: ${reason})\n`);
      this.skip();
    };
    if (!fs.existsSync(ALSA_ADDON)) skip(`the ALSA addon is not built (${ALSA_ADDON}: scripts/build-addons.js alsa)`);
    if (jackPlugin() === null) skip('alsa-lib\'s jack plugin is not installed (scripts/setup.sh installs libasound2-plugins)');
    const why = await jackd.start();
    if (why !== null) skip(why);
    // alsa-lib's own configuration, then the test's PCM (the players inherit the variable).
    confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cuemux-alsa-'));
    const conf = path.join(confDir, 'asound.conf');
    fs.writeFileSync(conf, `pcm.${PCM} {\n  type jack\n  name "cuemux-test-alsa"\n  playback_ports {\n`
      + Array.from({ length: CHANNELS }, (_, k) => `    ${k} "${RECORDER}:in_${k + 1}"\n`).join('') + '  }\n}\n');
    process.env.ALSA_CONFIG_PATH = `/usr/share/alsa/alsa.conf:${conf}`;
  });

  after(async function () {
    if (savedConfig === undefined) delete process.env.ALSA_CONFIG_PATH;
    else process.env.ALSA_CONFIG_PATH = savedConfig;
    if (confDir !== '') fs.rmSync(confDir, { recursive: true, force: true });
    await jackd.stop();
  });

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  it('a PCM that does not exist, and --device-connect, are refused naming what is wrong', async function () {
    const bad = spawnPlayer(['play-audio', '--socket', '/nonexistent/cuemux.sock', '--device', 'alsa:cuemux-no-such-pcm', '--rt-priority', '0', '--nice', '0']);
    children.push(bad.child);
    assert.notEqual(await bad.exited, 0);
    assert.match(bad.stderr(), /cannot open ALSA PCM "cuemux-no-such-pcm" for playback/);
    const connect = spawnPlayer(['play-audio', '--socket', '/nonexistent/cuemux.sock', '--device', `alsa:${PCM}`, '--device-connect', 'system:playback_1', '--rt-priority', '0', '--nice', '0']);
    children.push(connect.child);
    assert.notEqual(await connect.exited, 0);
    assert.match(connect.stderr(), /--device-connect is for JACK ports, not --device alsa:cuemuxtest/);
  });

  it('every sample the ALSA device handed on is FFmpeg\'s sample for the show clock at the departure ALSA reported', async function () {
    const c = await chirpCueShow(children, 'alsa', CHANNELS, RATE);
    show = c.show;
    // The recorder first: the plugin connects its ports to the recorder's when the player's PCM starts.
    const rec = startRecorder([], RECORDER, CHANNELS);
    let recording: Recording;
    let went: Awaited<ReturnType<typeof goChirpCue>>;
    let serverXruns = 0;
    const p = spawnPlayer(['play-audio', '--socket', c.show.socket, '--output', 'audio', '--channels', String(CHANNELS), '--device', `alsa:${PCM}`, '--sync-log', c.sync]);
    children.push(p.child);
    try {
      await c.show.followers(['audio'], [p]);
      await waitPrepared(p, ['J']);
      went = await goChirpCue(c);
    } finally {
      recording = rec.stop();
      serverXruns = rec.client.stats().xruns;
      rec.client.close();
    }
    await stopPlayer(p, 'play-audio');
    const { said, stats, lines } = await playerReport<{ sampleRate: number; periodFrames: number; server: string }>(p, 'alsa', c.sync);
    assert.equal(said.sampleRate, RATE, 'the plugin runs at the JACK server\'s rate');
    assert.equal(said.periodFrames, PERIOD, 'a period of the device is one JACK cycle here');
    assert.match(said.server, /IOPLUG/);

    const frameNs = 1e9 / RATE;
    // JACK's timeline must be continuous over the cue (from 0.5 s before it): ALSA's frames are JACK's plus a constant only then (the plugin
    // hides the server's xruns from ALSA, so a starved jackd moves JACK's frames under the device without it knowing).
    const moved = timelineMoves(recording, went);
    if (moved > 0) {
      process.stdout.write(`      (skipped: the JACK server's timeline moved ${moved} times during the run (${serverXruns} server xruns: this machine starved jackd), so the recorder's frames no longer map to ALSA's; the player's ${guardReport(stats)}; jackd said: ${jackd.complaints()})\n`);
      this.skip();
    }
    // Departures on the dummy driver's schedule, not JACK's DLL estimate of it (onDriverSchedule says why).
    const scheduled = onDriverSchedule(recording, RATE, went);
    if (scheduled.moved) {
      process.stdout.write(`      (skipped: the JACK server's dummy driver changed its schedule during the run (${scheduled.report}; ${serverXruns} server xruns: this machine starved jackd); the player's ${guardReport(stats)}; jackd said: ${jackd.complaints()})\n`);
      this.skip();
    }
    // ALSA's frames to JACK's: the cue's first sample (ALSA frame: the first sync line's) where the recorder saw it.
    let shift: number | null = null;
    for (const cy of recording.cycles) {
      const base = (cy.captureIndex - recording.firstIndex) * CHANNELS;
      if (cy.captureIndex < 0 || base < 0) continue;
      const i = Array.from({ length: cy.frames }, (_, j) => j).find((j) => recording.samples[base + j * CHANNELS] !== 0);
      if (i === undefined) continue;
      const a = Array.from({ length: 10 }, (_, j) => c.ref[(c.inIdx + j) * CHANNELS]).findIndex((v) => v === recording.samples[base + i * CHANNELS]);
      if (a >= 0) shift = cy.frame + i - a - Number(lines[0].extra.device_frame);
      break;
    }
    assert.ok(shift !== null, 'the recorder saw the cue\'s first samples');
    const jackShift = shift;
    // Cycles where the graph overran its period are left unjudged: the device glitched there (withoutCycles says how).
    const judged = withoutCycles(scheduled.recording, scheduled.overran);
    assert.ok(judged.leftOut <= recording.cycles.length / 10, `${scheduled.overran.length} cycles where JACK's graph overran its period (${judged.leftOut} of ${recording.cycles.length} cycles): this machine starved jackd`);
    const r = checkConsumed({
      recording: judged.recording, ref: c.ref, channels: CHANNELS, rate: RATE, period: PERIOD, clock: went.clock, goPosition: went.position, inIdx: c.inIdx, outIdx: c.outIdx,
      departureAfterCycleNs: -PERIOD * frameNs, lines, jackFrame: (f) => f + jackShift,
    });
    // The player's departures (sync log) against the driver's schedule for the same frame, less one period.
    const byFrame = new Map(scheduled.recording.cycles.map((cy) => [cy.frame, cy]));
    const mapDiffUs = lines.flatMap((l) => {
      const f = Number(l.extra.device_frame) + jackShift;
      const cy = byFrame.get(f - ((f - recording.cycles[0].frame) % PERIOD));
      return cy === undefined ? [] : [Number(l.monoNs - cy.monoNs - BigInt(Math.round((f - cy.frame - PERIOD) * frameNs))) / 1000];
    }).sort((a, b) => a - b);
    const pct = (q: number): number => mapDiffUs[Math.min(mapDiffUs.length - 1, Math.floor(q * mapDiffUs.length))];
    const report = consumedReport(r, recording.cycles.length, stats, `ALSA delay ${stats.device.latencyFrames.min}-${stats.device.latencyFrames.max} frames; JACK server xruns ${serverXruns}, graph overran ${scheduled.overran.length} cycles (${judged.leftOut} around them not judged); `
      + `sync log − (the cycle's schedule − 1 period): min ${pct(0).toFixed(1)} µs, median ${pct(0.5).toFixed(1)} µs, max ${pct(1).toFixed(1)} µs; ${scheduled.report}`);
    process.stdout.write(`      (${report})\n`);
    if (r.firstFrameOff === null && judged.leftOut > 0) {
      process.stdout.write(`      (skipped: JACK's graph overran its period at the cue's first cycle (${judged.leftOut} cycles left unjudged): this machine starved jackd)\n`);
      this.skip();
    }
    // The departure target: 1 ms (48 samples); here the error is the thread's wake-up (the least of them).
    const far = [...r.offsets].filter(([o]) => !Number.isNaN(o) && Math.abs(o) > RATE / 1000).reduce((n, [, k]) => n + k, 0);
    assert.equal(far, 0, `samples more than 1 ms from the departure ALSA reported: ${report}`);
    assertConsumed(r, c, stats, PERIOD, RATE / 1000, `${report}; cycles interpolated beyond the mapped slewed periods: ${r.unexplainedInterpolated.length}`, { slewsMapExactly: false });
    assert.ok(mapDiffUs.length > 0 && Math.abs(pct(0.5)) < 1000, `the player's departures differ from the driver's schedule less a period by ${pct(0.5)} µs (median)`);
  });
});
