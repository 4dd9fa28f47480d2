/**
 * Loop seams and auto-follow transitions, checked against FFmpeg: a real `cuemux serve`, real `cuemux play-video` /
 * `cuemux play-audio` processes, OSC over UDP.
 *
 * Video: a looping cue with in- and out-points off the frame and GOP grid, on open-GOP H.264 and on HEVC (both in
 * Matroska), played pass after pass at 50 display ticks/s, the cue placed on the clock so that display ticks land a
 * few milliseconds after each seam (the tick phase moves by 0.5 ms per pass); every tick must show FFmpeg's frame for
 * the media time the clock maps to — after a seam, the frame covering the in-point — with no black and no other
 * frame. The same for an auto-follow chain of two cues from two files.
 *
 * Audio: a looping cue on AAC and on PCM (WAV); what play-audio's device plays from the loop's first sample on must be
 * FFmpeg's decode of [in, out), pass after pass, sample for sample: no gap or overlap at the seams.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ffmpegSamples, wavSamples } from './support/audio';
import { chirpAac, chirpWav, hevcMkv, openGopH264Mkv } from './support/media';
import {
  assertNone, checkTicks, counts, d, describeTick, firstAudioSeconds, killAll, loopSample, loopSpans, mediaStart, positionBeforeTick,
  readTicks, s, seamTicks, Show, spawnPlayer, stopPlayer, tickInstant, VideoReference, waitPrepared, type PlayerProcess, type Span,
} from './support/show-check';
import { readSyncLog } from '../src/players/sync-log';

/** Display ticks per second of the video player, and the period in ns. */
const FPS = 50;
const PERIOD_NS = 20_000_000n;
/**
 * Passes of each loop: 3, so 2 seams. The tick phase moves 0.5 ms per pass, and the first pass starts
 * {@link FIRST_TICK_AFTER_MS} before a tick so that these two seams are the hardest ones 5 passes used to reach
 * (the first tick 1.2 and 0.7 ms after the seam); the seams at 2.2 and 1.7 ms proved nothing the nearer ones do not
 * (-2.4 s a test).
 */
const PASSES = 3;
/** play-audio's period at 48 kHz (its default 10 ms). */
const PERIOD_SAMPLES = 480;

/**
 * Loop points: in 18 ms into a frame, out 18.5 ms into one, so the pass is 1.2005 s: 60 display periods and 0.5 ms.
 * With the first pass starting 1.7 ms before a tick, the first tick after each later seam comes 1.2 and 0.7 ms
 * after it (and the tick before lands in the last, partial frame of the pass or just before it).
 * H.264: the in-point frame (pts 1.96) is a leading B-frame of the open GOP whose I-frame is at 2.0 (decoded after
 * it, from references of the GOP before); the pass crosses that I-frame. HEVC: the pass ends 18.5 ms into the CRA
 * keyframe at 6.0, whose leading picture (5.96) is decoded after it.
 */
const H264_LOOP = { in: 1.978, out: 3.1785 };
const HEVC_LOOP = { in: 4.818, out: 6.0185 };
const FIRST_TICK_AFTER_MS = 1.7;

describe('loop seams and auto-follow (players against FFmpeg)', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  /** A play-video at 50 ticks/s (hash sink and sync log), once it follows and ticks; then the instant of one tick. */
  async function videoPlayer(sh: Show, name: string): Promise<{ p: PlayerProcess; stop: () => Promise<void>; hash: string; sync: string; tickNs: bigint; stderr: () => string }> {
    const hash = sh.file(`${name}-frames.jsonl`);
    const sync = sh.file(`${name}-sync.jsonl`);
    const p = spawnPlayer(['play-video', '--socket', sh.socket, '--fps', String(FPS), '--sink', `hash:${hash}`, '--sync-log', sync]);
    children.push(p.child);
    await sh.followers(['video'], [p]);
    const tickNs = await tickInstant(sync);
    return { p, stop: () => stopPlayer(p, 'play-video'), hash, sync, tickNs, stderr: p.stderr };
  }

  /**
   * Play `file` looped [in, out) for PASSES passes, its first pass starting FIRST_TICK_AFTER_MS before a display tick,
   * and check every tick: 0 black, 0 held, 0 wrong; at each seam the first tick shows the pass's in-point frame.
   */
  async function checkVideoLoop(file: string, name: string, loop: { in: number; out: number }): Promise<string> {
    const [ref, start] = await Promise.all([VideoReference.of(file), mediaStart(file)]);
    show = await Show.start({ [name]: file }, children, 'loop');
    await show.osc('/cuemux/cue/load', [s('V'), s(JSON.stringify({ media: name, in: loop.in, out: loop.out, loop: true }))]);
    await show.osc('/cuemux/clock/play');
    const v = await videoPlayer(show, 'loop');
    await waitPrepared(v.p, ['V']);
    const P = positionBeforeTick(await show.clockState(), v.tickNs, PERIOD_NS, 800, FIRST_TICK_AFTER_MS);
    const go = await show.osc('/cuemux/cue/go', [s('V'), d(P)]) as { clockSeconds: number };
    assert.equal(go.clockSeconds, P);
    const spans = loopSpans('V', P, start + loop.in, start + loop.out, PASSES, ref);
    await show.clockPast(P + PASSES * (loop.out - loop.in) + 0.1);
    await v.stop();
    const ticks = await readTicks(v.hash, v.sync);
    const checked = checkTicks(ticks, spans);
    const from = ticks.find((t) => t.clock >= P)?.monoNs ?? 0n;
    const n = counts(checked);
    const seams = seamTicks(checked, spans);
    const seamText = seams.map((x) => `${x.afterMs.toFixed(2)} ms: ${x.first?.verdict ?? 'no tick'}`).join(', ');
    const expected = PASSES * (loop.out - loop.in) * FPS;
    assert.ok(checked.length >= 0.8 * expected, `${checked.length} ticks inside ${PASSES} passes of ${expected / PASSES} ticks`);
    const bad = checked.filter((c) => c.verdict !== 'ok');
    assertNone(bad.slice(0, 20).map((c) => describeTick(c, from)),
      `${name}: ${n.black} black, ${n.held} held, ${n.wrong} wrong of ${checked.length} ticks (first tick after each pass start: ${seamText})`);
    // Each pass's first tick shows its in-point frame (the frame covering the in-point: before it on the frame grid).
    const inFrame = ref.at(start + loop.in);
    assert.ok(inFrame !== undefined);
    const inFrameEnd = ref.frames[inFrame.n + 1].seconds;
    for (const x of seams) {
      assert.ok(x.first !== undefined, `no tick in ${x.span.label}`);
      if (x.first.media < inFrameEnd) assert.equal(x.first.tick.md5, inFrame.md5, describeTick(x.first, from));
    }
    // The premise: ticks landed within 0-3 ms after seams (the phase is chosen; a loaded machine may delay a tick).
    const close = seams.slice(1).filter((x) => x.afterMs >= 0 && x.afterMs <= 3).length;
    assert.ok(close >= 1, `no tick landed 0-3 ms after a seam (${seamText})`);
    return `${checked.length} ticks in sync, first tick after each pass start: ${seamText}`;
  }

  it('open-GOP H.264 in Matroska: a loop off the frame and GOP grid, 3 passes, every tick FFmpeg\'s frame (0 black, 0 wrong)', async function () {
    process.stdout.write(`      (${await checkVideoLoop(await openGopH264Mkv(), 'h264.mkv', H264_LOOP)})\n`);
  });

  it('HEVC in Matroska: a loop off the frame and GOP grid, 3 passes, every tick FFmpeg\'s frame (0 black, 0 wrong)', async function () {
    process.stdout.write(`      (${await checkVideoLoop(await hevcMkv(), 'hevc.mkv', HEVC_LOOP)})\n`);
  });

  it('an auto-follow chain of two cues (H.264 then HEVC): every tick FFmpeg\'s frame across the transition', async function () {
    const [h264, hevc] = await Promise.all([openGopH264Mkv(), hevcMkv()]);
    const [refA, refB, startA, startB] = await Promise.all([VideoReference.of(h264), VideoReference.of(hevc), mediaStart(h264), mediaStart(hevc)]);
    show = await Show.start({ 'a.mkv': h264, 'b.mkv': hevc }, children, 'follow');
    const list = path.join(show.root, 'show.json');
    await fsp.writeFile(list, JSON.stringify({
      version: 1,
      cues: [
        { id: 'A', media: 'a.mkv', in: H264_LOOP.in, out: H264_LOOP.out },
        { id: 'B', media: 'b.mkv', in: HEVC_LOOP.in, out: HEVC_LOOP.out, follow: true },
      ],
    }));
    await show.osc('/cuemux/cuelist/load', [s(list)]);
    await show.osc('/cuemux/cue/load', [s('A')]);
    await show.osc('/cuemux/cue/load', [s('B')]);
    await show.osc('/cuemux/clock/play');
    const v = await videoPlayer(show, 'follow');
    await waitPrepared(v.p, ['A', 'B']);
    // A starts 1.5 ms before a tick; the transition to B then falls 1.0 ms before one.
    const P = positionBeforeTick(await show.clockState(), v.tickNs, PERIOD_NS, 800, 1.5);
    await show.osc('/cuemux/cue/go', [s('A'), d(P)]);
    const lengthA = H264_LOOP.out - H264_LOOP.in;
    const lengthB = HEVC_LOOP.out - HEVC_LOOP.in;
    const spans: Span[] = [
      { label: 'A', clock: P, media: startA + H264_LOOP.in, endMedia: startA + H264_LOOP.out, ref: refA },
      { label: 'B', clock: P + lengthA, media: startB + HEVC_LOOP.in, endMedia: startB + HEVC_LOOP.out, ref: refB },
    ];
    await show.clockPast(P + lengthA + lengthB + 0.1);
    await v.stop();
    const ticks = await readTicks(v.hash, v.sync);
    const checked = checkTicks(ticks, spans);
    const from = ticks.find((t) => t.clock >= P)?.monoNs ?? 0n;
    const n = counts(checked);
    const seams = seamTicks(checked, spans);
    const seamText = seams.map((x) => `${x.span.label} ${x.afterMs.toFixed(2)} ms: ${x.first?.verdict ?? 'no tick'}`).join(', ');
    assert.ok(checked.length >= 0.8 * (lengthA + lengthB) * FPS, `${checked.length} ticks inside the chain`);
    assertNone(checked.filter((c) => c.verdict !== 'ok').slice(0, 20).map((c) => describeTick(c, from)),
      `${n.black} black, ${n.held} held, ${n.wrong} wrong of ${checked.length} ticks (first tick after each cue's start: ${seamText})`);
    const inB = refB.at(startB + HEVC_LOOP.in);
    assert.equal(seams[1].first?.tick.md5, inB?.md5, 'the first tick of B shows its in-point frame');
    process.stdout.write(`      (${checked.length} ticks in sync; first tick after each cue's start: ${seamText})\n`);
  });

  it('audio across loop seams, AAC (MP4) and PCM (WAV): FFmpeg\'s samples of [in, out) pass after pass, sample for sample', async function () {
    const [aac, wav] = await Promise.all([chirpAac(), chirpWav()]);
    // On the 48 kHz sample grid (1.2345 s = 59256 samples), the pass 1.2005 s = 57624 samples.
    const LOOP = { in: 1.2345, out: 2.435 };
    const sources = [{ cue: 'AAC', name: 'chirp.m4a', file: aac, output: 'a1' }, { cue: 'PCM', name: 'chirp.wav', file: wav, output: 'a2' }];
    show = await Show.start({ 'chirp.m4a': aac, 'chirp.wav': wav }, children, 'audio-loop');
    const sh = show;
    for (const x of sources) {
      await sh.osc('/cuemux/cue/load', [s(x.cue), s(JSON.stringify({ media: x.name, in: LOOP.in, out: LOOP.out, loop: true, outputs: { [x.output]: ['audio'] } }))]);
    }
    await sh.osc('/cuemux/clock/play');
    const players = sources.map((x) => {
      const p = spawnPlayer(['play-audio', '--socket', sh.socket, '--output', x.output, '--channels', '1',
        '--sink', `wav:${sh.file(`${x.cue}.wav`)}`, '--sync-log', sh.file(`${x.cue}-sync.jsonl`)]);
      children.push(p.child);
      return p;
    });
    await sh.followers(sources.map((x) => x.output), players);
    await Promise.all(sources.map((x, i) => waitPrepared(players[i], [x.cue])));
    const clock = await sh.clockState();
    const P = Show.positionAt(clock, process.hrtime.bigint()) + 0.8;
    for (const x of sources) await sh.osc('/cuemux/cue/go', [s(x.cue), d(P)]);
    const pass = Math.round((LOOP.out - LOOP.in) * 48000);
    await sh.clockPast(P + PASSES * (LOOP.out - LOOP.in) + 0.3);
    await Promise.all(players.map((p) => stopPlayer(p, 'play-audio')));

    const report: string[] = [];
    for (const [i, x] of sources.entries()) {
      const [ref, first, start, out, log] = await Promise.all([ffmpegSamples(x.file, 0), firstAudioSeconds(x.file), mediaStart(x.file),
        wavSamples(sh.file(`${x.cue}.wav`)), readSyncLog(sh.file(`${x.cue}-sync.jsonl`))]);
      const periods = log.filter((r) => r.extra.cue === x.cue).sort((a, b) => Number(a.extra.device_sample) - Number(b.extra.device_sample));
      assert.ok(periods.length > 0, `${x.cue}: no period of the cue was played`);
      // The loop's first device sample is where the clock reaches its in-point (to the nearest sample): every period's
      // line maps a device sample to a clock position, and they all agree.
      const starts = new Map<number, number>();
      for (const r of periods) {
        const at = Number(r.extra.device_sample) + Math.round((P - r.clockSeconds) * 48000);
        starts.set(at, (starts.get(at) ?? 0) + 1);
      }
      const d0 = [...starts].sort((a, b) => b[1] - a[1])[0][0];
      assert.ok(starts.size === 1, `${x.cue}: the periods map the clock to the device differently: first loop sample ${[...starts.keys()].join(', ')}`);
      const total = PASSES * pass;
      assert.ok(out.length >= d0 + total, `${x.cue}: the device played ${out.length} samples, the loop needs up to ${d0 + total}`);
      const inRange = periods.filter((r) => Number(r.extra.device_sample) < d0 + total);
      assertNone(inRange.filter((r) => Number(r.extra.underrun) > 0).map((r) => `device sample ${String(r.extra.device_sample)}: ${String(r.extra.underrun)} missing`),
        `${x.cue}: underruns`);
      // The loop's samples the player rendered (its sync log has a line per period and cue). A period the process
      // could not render in time (an xrun: the player says so) is silence on the device and has no line.
      const rendered = new Uint8Array(total);
      for (const r of inRange) rendered.fill(1, Number(r.extra.device_sample) - d0, Math.min(total, Number(r.extra.device_sample) - d0 + Number(r.extra.samples)));
      const silentPeriods = new Set<number>();
      for (let j = 0; j < total; j++) if (rendered[j] === 0) silentPeriods.add(Math.floor((d0 + j) / PERIOD_SAMPLES));
      const xruns = players[i].stderr().split('\n').filter((l) => l.includes('(xrun)'))
        .reduce((n, l) => n + Number((/"periods":(\d+)/.exec(l) ?? ['', '0'])[1]), 0);
      assert.ok(silentPeriods.size <= xruns, `${x.cue}: ${silentPeriods.size} periods of the loop were not rendered, but the player reported ${xruns} missed (xrun)`);
      // Every rendered sample is FFmpeg's sample of the loop, pass after pass.
      const want = loopSample(ref, first, start + LOOP.in, start + LOOP.out, 1);
      const wrong: string[] = [];
      let mismatches = 0;
      for (let j = 0; j < total; j++) {
        if (rendered[j] === 0 || out[d0 + j] === want(j, 0)) continue;
        mismatches++;
        if (wrong.length < 10) wrong.push(`pass ${Math.floor(j / pass) + 1} sample ${j % pass} (device sample ${d0 + j}): ${out[d0 + j]} != FFmpeg's ${want(j, 0)}`);
      }
      assertNone(wrong, `${x.cue}: ${mismatches} of ${total} rendered samples differ from FFmpeg's [in, out) pass after pass`);
      // The seams were played: a period on each side of each (an xrun may take at most one seam).
      const seamsPlayed = Array.from({ length: PASSES - 1 }, (_, k) => (k + 1) * pass)
        .filter((j) => rendered.subarray(j - PERIOD_SAMPLES, j + PERIOD_SAMPLES).every((v) => v === 1)).length;
      assert.ok(seamsPlayed >= PASSES - 2, `${x.cue}: only ${seamsPlayed} of ${PASSES - 1} seams were rendered in full (xruns: ${xruns} periods)`);
      report.push(`${x.cue}: ${total - silentPeriods.size * PERIOD_SAMPLES}+ samples over ${PASSES} passes and ${seamsPlayed} seams equal FFmpeg's` +
        `${xruns > 0 ? `, ${silentPeriods.size} periods lost to xruns` : ''}`);
    }
    process.stdout.write(`      (${report.join('; ')})\n`);
  });
});
