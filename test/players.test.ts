/**
 * The reference players in process against a real server and real OSC: what they decode equals FFmpeg's decode,
 * the video composer presents at every tick the frame whose span covers the clock (checked against ffmpeg's own
 * frame hashes, not the player's claims), and the audio player's device output is FFmpeg's samples, started on the
 * right sample, with sync kept by slewing when the device clock drifts.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { md5, slope } from './support/check';
import { framemd5Decode, type FrameMd5 } from './support/ffmpeg-reference';
import { checkRenderedPeriods, ffmpegSamples, wavSamples } from './support/audio';
import { minuteClip } from './support/media';
import { OscPeer, type Reply } from './support/osc';
import { startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { readTicks } from './support/show-check';
import { waitFor } from './support/wait';
import { AudioPlayer } from '../src/players/audio-player';
import { openAudioSink } from '../src/players/audio-sinks';
import { OutputFollower } from '../src/players/output-follower';
import type { TimedFrameRaw } from '../src/players/follower';
import { readSyncLog, SyncLog, type SyncRecord } from '../src/players/sync-log';
import { openVideoSink } from '../src/players/video-sinks';
import { VideoPlayer } from '../src/players/video-player';
import { WorkerFollower } from '../src/players/worker-follower';
import type { CueStarted, CueStopped } from '../src/generated/cuemux/v1/media_server';
import { clockPositionAt } from '../src/clients/clock-position';

function ok(r: Reply): unknown {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r.data;
}

/** The seconds of a framemd5 line's pts. */
const secondsOf = (f: FrameMd5): number => (f.pts ?? 0) * f.timeBase.num / f.timeBase.den;

describe('reference players (in process, real server, real OSC)', function () {
  this.timeout(120_000);
  let clip: string;
  let refVideo: FrameMd5[];
  let refAudio: FrameMd5[];
  let srv: TestServer;
  let peer: OscPeer;
  let dir: string;
  const osc = (address: string, args: Parameters<OscPeer['request']>[2] = []): Promise<Reply> => peer.request(srv.oscPort, address, args);

  before(async function () {
    clip = await minuteClip();
    [refVideo, refAudio] = await Promise.all([framemd5Decode(clip, { streams: [0] }), framemd5Decode(clip, { streams: [1] })]);
  });

  beforeEach(async function () {
    srv = await startServer({ prefetchSeconds: 1, timecodeRate: '25' });
    await copyInto(clip, srv.root, 'clip.mp4');
    peer = await OscPeer.open();
    dir = await scratchDir('players');
  });

  afterEach(async function () {
    peer.close();
    await srv.stop();
  });

  /** Follow `output` with a follower of `kind`, load `cue` on it and GO; resolves with what happened once it ended. */
  async function playCue(follower: OutputFollower, cue: { id: string; in: number; out: number }): Promise<{ started: CueStarted; stopped: CueStopped; decoded: TimedFrameRaw[] }> {
    const decoded: TimedFrameRaw[] = [];
    follower.on('decoded', (f) => decoded.push(f));
    const ctl = new AbortController();
    const running = follower.run(ctl.signal);
    const events = new Promise<{ started: CueStarted; stopped: CueStopped }>((resolve) => {
      let started: CueStarted | null = null;
      follower.on('started', (s) => { started ??= s; });
      follower.on('stopped', (s) => {
        if (started !== null && s.cueId === cue.id) resolve({ started, stopped: s });
      });
    });
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: cue.id }, { type: 's', value: 'clip.mp4' }, { type: 'f', value: cue.in }, { type: 'f', value: cue.out }]));
    ok(await osc('/cuemux/clock/play'));
    // GO 0.3 s ahead on the clock, as show control does for a synchronised start: a GO "now" cannot be presented
    // before its first packets are decoded (the first few ms of it are skipped to stay in sync).
    const { clock } = ok(await osc('/cuemux/status')) as { clock: { positionSeconds: number } };
    ok(await osc('/cuemux/cue/go', [{ type: 's', value: cue.id }, { type: 'd', value: clock.positionSeconds + 0.3 }]));
    const r = await events;
    await new Promise((resolve) => setTimeout(resolve, 300)); // the last ticks after the end
    ctl.abort();
    await running;
    return { ...r, decoded };
  }

  it('video: decoded frames equal ffmpeg framemd5, and every tick presents the frame whose span covers the clock', async function () {
    const follower = new OutputFollower(srv.client(), { output: 'video', kind: 'video' });
    const hashFile = path.join(dir, 'frames.jsonl');
    const syncFile = path.join(dir, 'video-sync.jsonl');
    const sink = await openVideoSink(`hash:${hashFile}`, { fps: { num: 50, den: 1 }, name: 'test' });
    const log = await SyncLog.open(syncFile);
    const player = new VideoPlayer(follower, { fps: { num: 50, den: 1 }, sinks: [sink], syncLog: log, clockAt: clockPositionAt });
    player.start();
    const { started, decoded } = await playCue(follower, { id: 'Q1', in: 4, out: 7 });
    player.stop();
    await Promise.all([sink.close(), log.close()]);

    // Decoding is exact: every picture equals ffmpeg's decode of the same frame.
    const byPts = new Map(refVideo.map((f) => [secondsOf(f).toFixed(6), f.md5]));
    const pictures = decoded.filter((d) => d.frame.kind === 'video');
    assert.ok(pictures.length >= 75, `${pictures.length} pictures decoded for a 3 s cue at 25 fps`);
    for (const d of pictures) {
      if (d.frame.kind !== 'video') continue;
      const t = ((d.frame.bestEffortPts ?? 0) / 12800).toFixed(6);
      assert.equal(md5(Buffer.concat(d.frame.planes)), byPts.get(t), `picture at ${t} s`);
    }
    // At every tick inside the cue's clock span, the hash log shows ffmpeg's frame for the media time of the clock,
    // or (a frame not decoded in time on a loaded machine) the picture already on screen, logged as held, or black
    // before the cue's first picture: never another frame.
    const ticks = await readTicks(hashFile, syncFile);
    assert.ok(ticks.every((t) => t.sync !== null), 'every presented tick has its sync log line');
    const frames = [...refVideo].sort((a, b) => secondsOf(a) - secondsOf(b));
    let inside = 0;
    let inSync = 0;
    const wrong: string[] = [];
    for (const t of ticks) {
      const m = started.mediaSeconds + (t.clock - started.clockSeconds);
      if (m < started.mediaSeconds || m >= started.endMediaSeconds) continue;
      inside++;
      const expected = frames.filter((f) => secondsOf(f) <= m + 1e-9).pop();
      if (t.md5 === expected?.md5) inSync++;
      else if (t.sync?.held !== true && !(t.md5 === null && inSync === 0)) wrong.push(`clock ${t.clock}: ${t.md5 ?? 'black'} for frame at ${expected === undefined ? '?' : secondsOf(expected)} s`);
    }
    assert.deepEqual(wrong, [], `ticks of ${inside} that showed another frame than the one covering the clock`);
    assert.ok(inSync > 0, `none of ${inside} ticks inside the cue showed its frame`);
    // The sync log says the same: the presented span covers the clock, and ticks outside the cue show nothing.
    const sync = await readSyncLog(syncFile);
    assert.equal(sync.length, ticks.length);
    for (const r of sync) {
      // A held tick keeps a picture whose span has passed (its frame was not decoded in time), and says so.
      if (r.ptsSeconds === null || r.extra.held === true) continue;
      assert.ok(r.ptsSeconds <= r.clockSeconds + 1e-9 && r.clockSeconds < Number(r.extra.end_seconds), JSON.stringify(r.extra));
    }
    // Tick timing is measured by bench:sync (a timing is never asserted in a test).
  });

  it('video, decoding in a worker thread: two cues on one output: the later GO is on top of a loop, which keeps only its current picture below', async function () {
    // As the CLI player runs: pictures come from the worker's pool of shared slots, held while queued.
    const follower = new WorkerFollower(srv.socket, { output: 'video', kind: 'video' });
    let pictures = 0;
    follower.on('picture', () => pictures++);
    const hashFile = path.join(dir, 'layers.jsonl');
    const sink = await openVideoSink(`hash:${hashFile}`, { fps: { num: 50, den: 1 }, name: 'test' });
    const player = new VideoPlayer(follower, { fps: { num: 50, den: 1 }, sinks: [sink], syncLog: null, clockAt: clockPositionAt });
    const starts = new Map<string, CueStarted[]>();
    follower.on('started', (s) => starts.set(s.cueId, [...(starts.get(s.cueId) ?? []), s]));
    const stops = new Map<string, CueStopped[]>();
    follower.on('stopped', (s) => stops.set(s.cueId, [...(stops.get(s.cueId) ?? []), s]));
    const ctl = new AbortController();
    const running = follower.run(ctl.signal);
    player.start();
    let most = 0;
    let sampled = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, player.queuedPictures);
      sampled++;
    }, 20);
    try {
      ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'L' }, { type: 's', value: JSON.stringify({ media: 'clip.mp4', in: 1, out: 3, loop: true }) }]));
      ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'T' }, { type: 's', value: 'clip.mp4' }, { type: 'f', value: 30 }, { type: 'f', value: 34 }]));
      ok(await osc('/cuemux/clock/play'));
      const at = async (dt: number): Promise<number> => (ok(await osc('/cuemux/status')) as { clock: { positionSeconds: number } }).clock.positionSeconds + dt;
      ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'L' }, { type: 'd', value: await at(0.3) }]));
      // The loop plays a while alone (events and clock positions, not wall time), then T goes on top of it.
      const l0 = await waitFor('the loop\'s start', () => starts.get('L')?.[0]);
      await waitFor('the clock 0.7 s into the loop', async () => (await at(0)) > l0.clockSeconds + 0.7, 60_000, 50);
      ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'T' }, { type: 'd', value: await at(0.3) }]));
      // T's 4 s, then a second of the loop alone after it.
      const tEnd = await waitFor('T\'s end', () => stops.get('T')?.[0], 60_000);
      assert.equal(tEnd.reason, 'ended');
      await waitFor('the clock 1.2 s past T\'s end', async () => (await at(0)) > tEnd.clockSeconds + 1.2, 60_000, 50);
      // The show ends: the loop stops, so no picture is still on its way to the player when it stops.
      ok(await osc('/cuemux/cue/stop', [{ type: 's', value: 'L' }]));
      await waitFor('the loop\'s stop', () => stops.get('L')?.[0], 60_000);
    } finally {
      clearInterval(sampler);
      player.stop();
      ctl.abort();
      await running;
      await sink.close();
    }
    const frames = [...refVideo].sort((a, b) => secondsOf(a) - secondsOf(b));
    const frameAt = (m: number): string | undefined => frames.filter((f) => secondsOf(f) <= m + 1e-9).pop()?.md5;
    const nameOf = (h: string | null): string => (h === null ? 'black' : `the frame at ${frames.find((f) => f.md5 === h) === undefined ? '?' : secondsOf(frames.find((f) => f.md5 === h) as FrameMd5).toFixed(2)} s`);
    const ticks = (await fsp.readFile(hashFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { clock_seconds: number; md5: string | null });
    const t = (starts.get('T') ?? [])[0];
    assert.ok(t !== undefined && (starts.get('L') ?? []).length >= 3, 'the loop made passes during T');
    // Each tick of T's span shows T's frame for the clock; each tick after it the loop's frame of its pass. A tick
    // whose frame was not decoded in time (a loaded machine) may repeat the picture of the tick before it (held),
    // never show another frame or black.
    let onTop = 0;
    let loopAfter = 0;
    const wrong: string[] = [];
    // Up to where the loop was stopped at the end (black after it is right: nothing is on).
    const lStop = (stops.get('L') ?? [])[0]?.clockSeconds ?? Infinity;
    ticks.forEach((k, i) => {
      const held = i > 0 && k.md5 === ticks[i - 1].md5;
      if (k.clock_seconds >= t.clockSeconds && k.clock_seconds < t.clockSeconds + 4) {
        if (k.md5 === frameAt(30 + k.clock_seconds - t.clockSeconds)) onTop++;
        else if (!held) wrong.push(`T at clock ${k.clock_seconds}: ${nameOf(k.md5)}, not ${nameOf(frameAt(30 + k.clock_seconds - t.clockSeconds) ?? null)}`);
      } else if (k.clock_seconds >= t.clockSeconds + 4 && k.clock_seconds < lStop) {
        const pass = (starts.get('L') ?? []).filter((s) => s.clockSeconds <= k.clock_seconds).pop();
        const want = pass === undefined ? undefined : frameAt(pass.mediaSeconds + k.clock_seconds - pass.clockSeconds);
        if (want !== undefined && k.md5 === want) loopAfter++;
        else if (!held) wrong.push(`the loop at clock ${k.clock_seconds} (T ended at ${t.clockSeconds + 4}): ${nameOf(k.md5)}, not ${nameOf(want ?? null)}; the tick before: ${nameOf(ticks[i - 1]?.md5 ?? null)}`);
      }
    });
    assert.deepEqual(wrong, [], 'ticks that showed another picture than the frame for the clock');
    assert.ok(onTop > 0, 'T was shown on top');
    assert.ok(loopAfter > 0, 'the loop shows again after T');
    // Under T, the loop holds its current picture and what is decoded ahead (0.5 s), not a pass of frames.
    assert.ok(sampled > 0 && most > 0, `the queue was observed (${sampled} samples)`);
    assert.ok(most <= 45, `at most ${most} pictures held`);
    // Every slot lent to the player came back, and slots were reused, not allocated per picture.
    const pool = follower.poolStats;
    assert.equal(pool.lent, 0, 'pictures never given back to the pool');
    assert.ok(pictures >= 200 && pool.allocations <= 60, `${pool.allocations} slots allocated for ${pictures} pictures`);
  });

  it('audio: decoded samples equal FFmpeg decode; the device output is FFmpeg\'s samples, started on the cue\'s sample', async function () {
    const follower = new OutputFollower(srv.client(), { output: 'audio', kind: 'audio', audioOutput: { sampleRate: 48000, channels: 1 } });
    const wav = path.join(dir, 'out.wav');
    const syncFile = path.join(dir, 'audio-sync.jsonl');
    const sink = await openAudioSink(`wav:${wav}`, { sampleRate: 48000, channels: 1, name: 'test' });
    const log = await SyncLog.open(syncFile);
    const player = new AudioPlayer(follower, { sampleRate: 48000, channels: 1, periodFrames: 480, sinks: [sink], syncLog: log, clockAt: clockPositionAt });
    player.start();
    const cue = { id: 'A1', in: 10.5, out: 12.5 };
    const { decoded } = await playCue(follower, cue);
    player.stop();
    await Promise.all([sink.close(), log.close()]);

    const byPts = new Map(refAudio.map((f) => [secondsOf(f).toFixed(6), f.md5]));
    // Frames that end before the in-point are decoder pre-roll (the server sends 0.1 s of it): not presented.
    const blocks = decoded.filter((d) => d.frame.kind === 'audio' && ((d.frame.pts ?? 0) + d.frame.samples) / 48000 > cue.in);
    assert.ok(blocks.length >= 90, `${blocks.length} audio frames decoded for 2 s`);
    assert.ok(decoded.length > blocks.length, 'pre-roll frames were decoded before the in-point');
    for (const d of blocks) {
      if (d.frame.kind !== 'audio') continue;
      const t = ((d.frame.pts ?? 0) / 48000).toFixed(6);
      assert.equal(md5(d.frame.data), byPts.get(t), `audio frame at ${t} s`);
    }
    // The device output is exactly FFmpeg's samples: every period the player rendered (a loaded machine may make it
    // miss some: those are silence, see xruns) holds the reference samples of its media time, unchanged.
    const ref = await ffmpegSamples(clip, 1);
    const first = secondsOf([...refAudio].sort((a, b) => secondsOf(a) - secondsOf(b))[0]);
    const out = await wavSamples(wav);
    const rendered = (await readSyncLog(syncFile)).filter((r) => r.extra.cue === cue.id);
    const n = Math.round((cue.out - cue.in) * 48000);
    assert.equal(rendered[0].extra.media_seconds, cue.in, 'the first sample presented is the in-point sample');
    const samples = checkRenderedPeriods(rendered, out, ref, first, 1);
    // How many periods a loaded machine makes the device miss is not the player's to choose: every sample rendered
    // is checked above, the periods are accounted for below, and a run that missed none rendered every sample.
    assert.ok(samples > 0 && samples <= n, `${samples} of the cue's ${n} samples rendered (${player.stats.xruns} periods missed)`);
    if (player.stats.xruns === 0 && rendered.every((r) => !(Number(r.extra.underrun) > 0))) assert.equal(samples, n);
    const last = rendered[rendered.length - 1];
    assert.ok(out.subarray(Number(last.extra.device_sample) + Number(last.extra.samples)).every((v) => v === 0), 'silence after the out-point');
    // Sample-accurate start and sync: what is presented is due at the device instant, to within half a sample.
    const sync = (await readSyncLog(syncFile)).filter((r) => r.extra.cue === cue.id);
    // Periods a loaded machine made the device miss are xruns (silence), not logged presentations.
    assert.ok(sync.length >= 195 - player.stats.xruns, `${sync.length} periods logged (${player.stats.xruns} missed)`);
    const err = sync.map((r) => Math.abs((r.ptsSeconds as number) - r.clockSeconds));
    assert.ok(Math.max(...err) <= 0.5 / 48000 + 1e-9, `max |pts − clock| ${Math.max(...err) * 1e6} µs`);
    assert.equal(player.stats.relocations, 0);
    assert.equal(player.stats.slewedPeriods, 0, 'a device in step with the clock copies samples unchanged');
  });

  it('audio: a device crystal 400 ppm slow is absorbed by slewing (|pts − clock| ≤ 1 ms, no drift)', async function () {
    const follower = new OutputFollower(srv.client(), { output: 'audio', kind: 'audio', audioOutput: { sampleRate: 48000, channels: 2 } });
    const syncFile = path.join(dir, 'drift-sync.jsonl');
    const log = await SyncLog.open(syncFile);
    const player = new AudioPlayer(follower, { sampleRate: 48000, channels: 2, periodFrames: 480, sinks: [], syncLog: log, devicePpm: 400, clockAt: clockPositionAt });
    player.start();
    await playCue(follower, { id: 'D1', in: 20, out: 24 });
    player.stop();
    await log.close();
    const sync: SyncRecord[] = (await readSyncLog(syncFile)).filter((r) => r.extra.cue === 'D1');
    const err = sync.map((r) => (r.ptsSeconds as number) - r.clockSeconds);
    const t = sync.map((r) => Number(r.monoNs - sync[0].monoNs) / 1e9);
    const worst = Math.max(...err.map(Math.abs));
    const drift = slope(t, err);
    // Without the slew the error would grow by 400 µs per second: 1.6 ms over the 4-s cue, beyond the 1 ms bound.
    assert.ok(worst <= 0.001, `max |pts − clock| ${(worst * 1e3).toFixed(3)} ms`);
    assert.ok(Math.abs(drift) < 20e-6, `drift ${(drift * 1e6).toFixed(1)} µs/s`);
    assert.ok(player.stats.slewedPeriods > sync.length / 2, `${player.stats.slewedPeriods} slewed periods`);
    assert.equal(player.stats.relocations, 0);
  });
});
