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
    // At every tick inside the cue's clock span, the hash log shows ffmpeg's frame for the media time of the clock.
    const ticks = (await fsp.readFile(hashFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { clock_seconds: number; md5: string | null });
    const frames = [...refVideo].sort((a, b) => secondsOf(a) - secondsOf(b));
    let inside = 0;
    let wrong = 0;
    for (const t of ticks) {
      const m = started.mediaSeconds + (t.clock_seconds - started.clockSeconds);
      if (m < started.mediaSeconds || m >= started.endMediaSeconds) continue;
      inside++;
      const expected = frames.filter((f) => secondsOf(f) <= m + 1e-9).pop();
      if (t.md5 !== expected?.md5) wrong++;
    }
    assert.ok(inside >= 140, `${inside} ticks inside a 3 s cue at 50 ticks/s`);
    assert.equal(wrong, 0, `${wrong} of ${inside} ticks showed another frame than the one covering the clock`);
    // The sync log says the same: the presented span covers the clock, and ticks outside the cue show nothing.
    const sync = await readSyncLog(syncFile);
    assert.equal(sync.length, ticks.length);
    for (const r of sync) {
      if (r.ptsSeconds === null) continue;
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
    const ctl = new AbortController();
    const running = follower.run(ctl.signal);
    player.start();
    let most = 0;
    const sampler = setInterval(() => { most = Math.max(most, player.queuedPictures); }, 20);
    try {
      ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'L' }, { type: 's', value: JSON.stringify({ media: 'clip.mp4', in: 1, out: 3, loop: true }) }]));
      ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'T' }, { type: 's', value: 'clip.mp4' }, { type: 'f', value: 30 }, { type: 'f', value: 34 }]));
      ok(await osc('/cuemux/clock/play'));
      const at = async (dt: number): Promise<number> => (ok(await osc('/cuemux/status')) as { clock: { positionSeconds: number } }).clock.positionSeconds + dt;
      ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'L' }, { type: 'd', value: await at(0.3) }]));
      await new Promise((r) => setTimeout(r, 1000));
      const tAt = await at(0.3);
      ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'T' }, { type: 'd', value: tAt }]));
      await new Promise((r) => setTimeout(r, 5500)); // T's 4 s, and a second of the loop alone after it
    } finally {
      clearInterval(sampler);
      player.stop();
      ctl.abort();
      await running;
      await sink.close();
    }
    const frames = [...refVideo].sort((a, b) => secondsOf(a) - secondsOf(b));
    const frameAt = (m: number): string | undefined => frames.filter((f) => secondsOf(f) <= m + 1e-9).pop()?.md5;
    const ticks = (await fsp.readFile(hashFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { clock_seconds: number; md5: string | null });
    const t = (starts.get('T') ?? [])[0];
    assert.ok(t !== undefined && (starts.get('L') ?? []).length >= 3, 'the loop made passes during T');
    let onTop = 0;
    let loopAfter = 0;
    for (const k of ticks) {
      if (k.clock_seconds >= t.clockSeconds && k.clock_seconds < t.clockSeconds + 4) {
        assert.equal(k.md5, frameAt(30 + k.clock_seconds - t.clockSeconds), `T on top at clock ${k.clock_seconds}`);
        onTop++;
      } else if (k.clock_seconds >= t.clockSeconds + 4.1) {
        const pass = (starts.get('L') ?? []).filter((s) => s.clockSeconds <= k.clock_seconds).pop();
        if (pass !== undefined && k.md5 === frameAt(pass.mediaSeconds + k.clock_seconds - pass.clockSeconds)) loopAfter++;
      }
    }
    assert.ok(onTop >= 190, `${onTop} ticks of T`);
    assert.ok(loopAfter >= 30, `the loop shows again after T (${loopAfter} ticks)`);
    // Under T, the loop holds its current picture and what is decoded ahead (0.5 s), not a pass of frames.
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
    assert.ok(samples >= 0.9 * n && samples <= n, `${samples} of the cue's ${n} samples rendered (${player.stats.xruns} periods missed)`);
    if (player.stats.xruns === 0) assert.equal(samples, n);
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
    await playCue(follower, { id: 'D1', in: 20, out: 27 });
    player.stop();
    await log.close();
    const sync: SyncRecord[] = (await readSyncLog(syncFile)).filter((r) => r.extra.cue === 'D1');
    const err = sync.map((r) => (r.ptsSeconds as number) - r.clockSeconds);
    const t = sync.map((r) => Number(r.monoNs - sync[0].monoNs) / 1e9);
    const worst = Math.max(...err.map(Math.abs));
    const drift = slope(t, err);
    // Without the slew the error would grow by 400 µs per second (2.8 ms over the cue).
    assert.ok(worst <= 0.001, `max |pts − clock| ${(worst * 1e3).toFixed(3)} ms`);
    assert.ok(Math.abs(drift) < 20e-6, `drift ${(drift * 1e6).toFixed(1)} µs/s`);
    assert.ok(player.stats.slewedPeriods > sync.length / 2, `${player.stats.slewedPeriods} slewed periods`);
    assert.equal(player.stats.relocations, 0);
  });
});
