/**
 * The picture at a GO, checked against FFmpeg: a real `cuemux serve`, real `cuemux play-video` processes with a
 * `hash:` sink and a sync log, OSC over UDP. A cue armed before its GO is prepared by the player (decoders open, the
 * in-point frame decoded), so its in-point frame is on screen at the first or second display tick after the GO's
 * datagram — on a player started just before, for a GO "now" and for a locate onto a cue placed ahead on the clock —
 * and from then on every tick shows FFmpeg's frame for the clock. After a cue's end, `--at-end hold` keeps its last
 * frame and the default shows black. A player that connects prepares the cue loaded last first, then those loaded
 * since the last GO, then those armed and not started since. A prepared intra-only cue's decoder gives each picture
 * with its own packet (none of its preroll left in the decoder at the GO). A clock stopped and played again keeps
 * what the players decoded.
 * An unarmed GO of an intra-only cue whose first pictures are already due skips them (not decoded) and is in sync
 * from its first shown frame; an inter-coded cue skips none.
 *
 * Every tick of a cue is compared with FFmpeg's decoded frame for the media time its clock maps to (the frame with
 * the largest pts at or before it). Nothing is timed: the checks count ticks.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDecoder, decoderConfigFromParams } from '../src/ffmpeg/decoder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { decoderThreadsFor } from '../src/players/decoder-config';
import { readSyncLog } from '../src/players/sync-log';
import { WorkerFollower } from '../src/players/worker-follower';
import { waitFor } from './support/wait';
import { ensureMedia, goClip1080, hevcMkv, makeMedia, openGopH264Mkv } from './support/media';
import {
  assertNone, checkTicks, counts, d, describeTick, killAll, mediaStart, positionBeforeTick, readTicks, s, Show, spawnPlayer, stopPlayer,
  tickInstant, ticksAfter, VideoReference, waitPrepared, type PlayerProcess, type RefFrame, type Span, type Tick,
} from './support/show-check';

/** Display ticks per second of the players: 20 ms apart. */
const FPS = 50;

/** In- and out-points of the 1080p cue: 5 ms into frame 65 (pts 2.60), 15 frames after the keyframe at 2.0 s. */
const IN = 2.605;
const OUT = 4.105;

/** A play-video at 50 ticks/s with a hash sink and a sync log in the show's output folder. */
function videoPlayer(show: Show, name: string, extra: string[] = []): { p: PlayerProcess; hash: string; sync: string } {
  const hash = show.file(`${name}-frames.jsonl`);
  const sync = show.file(`${name}-sync.jsonl`);
  const p = spawnPlayer(['play-video', '--socket', show.socket, '--fps', String(FPS), '--sink', `hash:${hash}`, '--sync-log', sync, ...extra]);
  return { p, hash, sync };
}

/** The first ticks after `fromNs`, one line each, for failure messages. */
function firstTicks(ticks: Tick[], fromNs: bigint, ref: VideoReference, n = 10): string {
  return ticks.filter((t) => t.monoNs > fromNs).slice(0, n).map((t) => `  tick #${t.i} +${(Number(t.monoNs - fromNs) / 1e6).toFixed(1)} ms ` +
    `clock ${t.clock.toFixed(6)}: ${ref.nameOf(t.md5)} ${JSON.stringify({ ...t.sync, mono_ns: undefined, clock_seconds: undefined })}`).join('\n');
}

/**
 * The checks of a prepared start: of the ticks after the datagram that started the cue (sent at `sentNs`), the first
 * or second shows the in-point frame; every tick of `span` shows FFmpeg's frame for its clock, except held or black
 * ticks before the first in-sync one, of which there is at most one. Returns a summary line.
 */
function assertPreparedStart(ticks: Tick[], sentNs: bigint, span: Span, player: PlayerProcess): string {
  const after = ticks.filter((t) => t.monoNs > sentNs);
  const inFrame = span.ref.at(span.media);
  assert.ok(inFrame !== undefined);
  const checked = checkTicks(after, [span]);
  const firstOk = checked.findIndex((c) => c.verdict === 'ok');
  const before = firstOk < 0 ? checked : checked.slice(0, firstOk);
  const nBefore = counts(before);
  const nAfter = counts(firstOk < 0 ? [] : checked.slice(firstOk));
  // What happened, for every failure message: the counts over the whole cue.
  const summary = `${checked.length} ticks of the cue: before the first in-sync one ${nBefore.black} black, ${nBefore.held} held, ${nBefore.wrong} wrong` +
    `${firstOk < 0 ? ' (no tick in sync)' : `; the first in-sync one +${(Number(checked[firstOk].tick.monoNs - sentNs) / 1e6).toFixed(1)} ms after the datagram` +
    `; after it ${nAfter.ok} in sync, ${nAfter.black} black, ${nAfter.held} held, ${nAfter.wrong} wrong`}`;
  const at = after.slice(0, 2).findIndex((t) => t.md5 === inFrame.md5);
  assert.ok(at >= 0, `the in-point frame (${span.ref.nameOf(inFrame.md5)}) is not shown at the first or second tick after the datagram ` +
    `(${summary}); the cue starts at clock ${span.clock.toFixed(6)}; the first ticks after the datagram:\n${firstTicks(ticks, sentNs, span.ref)}\n` +
    `player stderr:\n${player.stderr().slice(-3000)}`);
  const expectedTicks = (span.endMedia - span.media) * FPS;
  assert.ok(checked.length >= 0.8 * expectedTicks, `${checked.length} ticks inside a cue of ${expectedTicks} ticks`);
  assert.ok(firstOk >= 0, 'no tick of the cue in sync');
  assertNone(before.filter((c) => c.verdict === 'wrong').map((c) => describeTick(c, sentNs)), `wrong frames before the first in-sync tick (${summary})`);
  assert.ok(before.length <= 1, `${before.length} held or black ticks before the first in-sync one (at most 1; ${summary}):\n${before.map((c) => describeTick(c, sentNs)).join('\n')}`);
  const bad = checked.slice(firstOk).filter((c) => c.verdict !== 'ok');
  assertNone(bad.slice(0, 20).map((c) => describeTick(c, sentNs)), `${bad.length} ticks out of sync after the first in-sync one (${summary})`);
  return `in-point frame at tick ${at + 1} after the datagram; ${summary}`;
}

/**
 * A Follow client (`prepare` on) in a worker thread whose event loop can be stalled, as a player's decode worker is
 * by a burst of work: it reports when the GO cue's preroll is in, stalls `stallMs` when told (reading nothing, so the
 * server's writes queue up), then reports the packet bytes it read between the stall and the GO cue's CueStarted,
 * and whether the message after CueStarted adopts the preroll.
 */
const STALLING_FOLLOWER = `
const { parentPort, workerData } = require('node:worker_threads');
const { MediaClient } = require(workerData.mediaClient);
const client = new MediaClient(workerData.socket);
let stalled = false, ahead = 0, aheadPackets = 0, aheadMessages = 0, started = false;
parentPort.on('message', (m) => {
  if (m !== 'stall') return;
  stalled = true;
  parentPort.postMessage({ type: 'stalling' });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.stallMs);
});
(async () => {
  for await (const e of client.follow({ output: 'video', prepare: true })) {
    const ev = e.event;
    if (ev === undefined) continue;
    if (ev.$case === 'preroll' && ev.value.cueId === workerData.cue && ev.value.last) parentPort.postMessage({ type: 'prepared' });
    if (!stalled) continue;
    if (started) {
      parentPort.postMessage({ type: 'done', ahead, aheadPackets, aheadMessages, next: ev.$case, adopts: ev.$case === 'packets' ? ev.value.preroll : null });
      break;
    }
    if (ev.$case === 'started' && ev.value.cueId === workerData.cue) started = true;
    else if (ev.$case === 'packets' || ev.$case === 'preroll') {
      for (const p of ev.value.packets) ahead += p.data.length;
      aheadPackets += ev.value.packets.length;
      aheadMessages++;
    }
  }
  client.close();
})().catch((e) => parentPort.postMessage({ type: 'error', error: String(e && e.stack || e) }));
`;

/** Sends one OSC `/cuemux/cue/go ,s CUE` datagram to the server from its own thread (the test's is blocked then). */
const GO_SENDER = `
const dgram = require('node:dgram');
const { workerData } = require('node:worker_threads');
const pad = (b) => Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]);
const msg = Buffer.concat([pad(Buffer.from('/cuemux/cue/go')), pad(Buffer.from(',s')), pad(Buffer.from(workerData.cue))]);
const sock = dgram.createSocket('udp4');
sock.send(msg, workerData.port, '127.0.0.1', () => sock.close());
`;

describe('the picture at a GO (play-video against FFmpeg)', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  it('the first GO of a player started just before shows a prepared cue\'s in-point frame at the first or second tick, then every frame in sync', async function () {
    const clip = await goClip1080();
    const [ref, start] = await Promise.all([VideoReference.of(clip), mediaStart(clip)]);
    show = await Show.start({ 'go.mp4': clip }, children, 'go-now');
    await show.osc('/cuemux/cue/load', [s('Q'), s('go.mp4'), d(IN), d(OUT)]);
    await show.osc('/cuemux/clock/play');
    const v = videoPlayer(show, 'go');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await tickInstant(v.sync);
    // The armed cue is prepared by the player (its preroll decoded) before the GO.
    await waitPrepared(v.p, ['Q']);
    const go = await show.oscTimed('/cuemux/cue/go', [s('Q')]);
    const startClock = (go.data as { clockSeconds: number }).clockSeconds;
    assert.equal(typeof startClock, 'number', JSON.stringify(go.data));
    await show.clockPast(startClock + (OUT - IN) + 0.2);
    await stopPlayer(v.p, 'play-video');
    const ticks = await readTicks(v.hash, v.sync);
    const span: Span = { label: 'Q', clock: startClock, media: start + IN, endMedia: start + OUT, ref };
    const summary = assertPreparedStart(ticks, go.sentNs, span, v.p);
    process.stdout.write(`      (${summary})\n`);
  });

  it('a locate onto a cue placed ahead on a stopped clock shows its in-point frame at the first or second tick, then every frame in sync', async function () {
    const clip = await goClip1080();
    const [ref, start] = await Promise.all([VideoReference.of(clip), mediaStart(clip)]);
    show = await Show.start({ 'go.mp4': clip }, children, 'go-locate');
    await show.osc('/cuemux/cue/load', [s('Q'), s('go.mp4'), d(IN), d(OUT)]);
    const v = videoPlayer(show, 'locate');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await tickInstant(v.sync);
    // GO with a position on a stopped clock: the cue waits at clock 30, the clock stays where it is.
    const X = 30;
    const go = await show.osc('/cuemux/cue/go', [s('Q'), d(X)]) as { clockSeconds: number };
    assert.equal(go.clockSeconds, X);
    const { clock } = await show.osc('/cuemux/status') as { clock: { state: string; positionSeconds: number } };
    assert.equal(clock.state, 'stopped');
    assert.ok(clock.positionSeconds < X - 1, `clock at ${clock.positionSeconds}`);
    await waitPrepared(v.p, ['Q']);
    // One datagram locates the clock onto the cue's in-point and plays.
    const play = await show.oscTimed('/cuemux/clock/play', [d(X)]);
    await show.clockPast(X + (OUT - IN) + 0.2);
    await stopPlayer(v.p, 'play-video');
    const ticks = await readTicks(v.hash, v.sync);
    const span: Span = { label: 'Q', clock: X, media: start + IN, endMedia: start + OUT, ref };
    const summary = assertPreparedStart(ticks, play.sentNs, span, v.p);
    process.stdout.write(`      (${summary})\n`);
  });

  it('a player started with several cues armed prepares those loaded since the third last GO first (in load order), then the others armed and not started since (the latest armed first), then the others', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'prep-order');
    const ids = ['A', 'B', 'C', 'D', 'E', 'F'];
    const load = async (id: string): Promise<void> => {
      const k = ids.indexOf(id);
      await show?.osc('/cuemux/cue/load', [s(id), s('go.mp4'), d(IN + 0.3 * k), d(OUT + 0.3 * k)]);
    };
    for (const id of ids) await load(id);
    for (const id of ['A', 'D']) {
      await show.osc('/cuemux/cue/go', [s(id)]);
      await show.osc('/cuemux/cue/stop', [s(id)]);
    }
    // Loaded again after those GOs, C then B: a console's next GOs (no cue list here, so no standby cue). E and F
    // were loaded before both GOs and are still to be GOne, F the later; A and D were GOne since their loads. Then A
    // is loaded and GOne at once (the latest load, but of a cue playing, not one armed for a GO to come), so no cue
    // is loaded since the last GO.
    await load('C');
    await load('B');
    await load('A');
    await show.osc('/cuemux/cue/go', [s('A')]);
    const v = videoPlayer(show, 'order');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await waitPrepared(v.p, ids);
    await stopPlayer(v.p, 'play-video');
    // Prerolls are prepared one at a time, in the order the server sent them.
    const order = v.p.stderr().split('\n').filter((l) => l.includes('"cue prepared"')).map((l) => /"cue":"(\w+)"/.exec(l)?.[1]);
    // C, B: loaded since the third last GO (A's first), in load order, the order a console loaded its next GOs; F, E:
    // armed before and not started since, the latest armed first; then A and D, started since their loads (in the
    // show's order).
    assert.deepEqual(order.slice(0, 4), ['C', 'B', 'F', 'E'], v.p.stderr().slice(-3000));
    assert.deepEqual(order.slice(4, ids.length).sort(), ['A', 'D'], v.p.stderr().slice(-3000));
  });

  it('a player that connects prepares the standby cue first only when it was chosen since the last GO (a standby command), not when a GO naming a cue moved the playhead', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'prep-standby');
    const list = path.join(show.root, 'show.json');
    await fsp.writeFile(list, JSON.stringify({ version: 1, cues: [
      { id: 'X', media: 'go.mp4', in: IN + 0.6, out: OUT + 0.6 }, { id: 'S', media: 'go.mp4', in: IN, out: OUT }, { id: 'T', media: 'go.mp4', in: IN + 0.3, out: OUT + 0.3 },
    ] }));
    await show.osc('/cuemux/cuelist/load', [s(list)]);
    await show.osc('/cuemux/cue/load', [s('S')]);
    await show.osc('/cuemux/cue/load', [s('T')]);
    await show.osc('/cuemux/cue/load', [s('X')]);
    // A GO that names X moves the playhead past it, to S: a place in the list, not a choice of the next GO. Three of
    // them, then C1 and C2 are loaded, for the GOs to come.
    for (let k = 0; k < 3; k++) {
      const go = await show.osc('/cuemux/cue/go', [s('X')]) as { standby: string };
      assert.equal(go.standby, 'S');
      await show.osc('/cuemux/cue/stop', [s('X')]);
    }
    await show.osc('/cuemux/cue/load', [s('C1'), s('go.mp4'), d(IN + 0.9), d(OUT + 0.9)]);
    await show.osc('/cuemux/cue/load', [s('C2'), s('go.mp4'), d(IN + 1.2), d(OUT + 1.2)]);
    const orderOf = async (name: string): Promise<string[]> => {
      const v = videoPlayer(show as Show, name);
      children.push(v.p.child);
      await (show as Show).followers(['video'], [v.p]);
      await waitPrepared(v.p, ['S', 'T', 'C1', 'C2']);
      await stopPlayer(v.p, 'play-video');
      // All H.264, so one lane: prepared one at a time, in the order the server sent them.
      return v.p.stderr().split('\n').filter((l) => l.includes('"cue prepared"')).map((l) => /"cue":"(\w+)"/.exec(l)?.[1] ?? '?');
    };
    // C1 and C2 loaded since the last GO (in load order), then T and S, armed before it, the latest armed first: S,
    // the standby cue by the GO that named X, was chosen with the cue list and loaded before T.
    const stale = await orderOf('standby-stale');
    assert.deepEqual(stale.slice(0, 4), ['C1', 'C2', 'T', 'S'], `prepared in the order ${stale.join(', ')}`);
    // Stood by now, after the last GO: the next GO without an id starts T.
    await show.osc('/cuemux/cue/standby', [s('T')]);
    const chosen = await orderOf('standby-chosen');
    assert.deepEqual(chosen.slice(0, 3), ['T', 'C1', 'C2'], `prepared in the order ${chosen.join(', ')}`);
    process.stdout.write(`      (prepared in the order ${stale.join(', ')}, then after the standby command ${chosen.join(', ')})\n`);
  });

  it('a player that connects prepares a cue a console loaded after a GO by id before the list\'s next cue, which the show pre-armed after that GO', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'prep-prearm');
    const list = path.join(show.root, 'show.json');
    await fsp.writeFile(list, JSON.stringify({ version: 1, cues: [
      { id: 'X', media: 'go.mp4', in: IN + 0.6, out: OUT + 0.6 }, { id: 'N', media: 'go.mp4', in: IN, out: OUT },
    ] }));
    await show.osc('/cuemux/cuelist/load', [s(list)]);
    const go = await show.osc('/cuemux/cue/go', [s('X')]) as { standby: string };
    assert.equal(go.standby, 'N');
    // The show arms the list's next cue a moment after the GO (its own guess); then the console loads C, its next GO.
    const loaded = async (): Promise<string[]> => ((await (show as Show).osc('/cuemux/status') as { cues?: { id: string }[] }).cues ?? []).map((c) => c.id);
    await waitFor('N pre-armed by the show', async () => (await loaded()).includes('N'), 10_000);
    await show.osc('/cuemux/cue/stop', [s('X')]);
    await show.osc('/cuemux/cue/load', [s('C'), s('go.mp4'), d(IN + 0.9), d(OUT + 0.9)]);
    const v = videoPlayer(show, 'prearm');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await waitPrepared(v.p, ['C', 'N', 'X']);
    await stopPlayer(v.p, 'play-video');
    // All H.264, so one lane: prepared one at a time, in the order the server sent them.
    const order = v.p.stderr().split('\n').filter((l) => l.includes('"cue prepared"')).map((l) => /"cue":"(\w+)"/.exec(l)?.[1] ?? '?');
    assert.deepEqual(order.slice(0, 2), ['C', 'N'], `prepared in the order ${order.join(', ')}`);
    process.stdout.write(`      (prepared in the order ${order.join(', ')})\n`);
  });

  it('a cue loaded again after a player connected is prepared next, not after the prerolls still waiting (CueRearmed)', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'prep-rearm');
    const ids = ['A', 'B', 'C', 'D', 'E'];
    for (const [k, id] of ids.entries()) await show.osc('/cuemux/cue/load', [s(id), s('go.mp4'), d(IN + 0.4 * k), d(OUT + 0.4 * k)]);
    const v = videoPlayer(show, 'rearm');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    // The player is stopped while D is loaded again, so the CueRearmed reaches it with every preroll before D's still
    // waiting (the server sent them in load order, all loaded since the last GO: A, B, C, D, E), whatever this
    // machine's speed.
    v.p.child.kill('SIGSTOP');
    try {
      await show.osc('/cuemux/cue/load', [s('D'), s('go.mp4'), d(IN + 0.4 * 3), d(OUT + 0.4 * 3)]);
    } finally {
      v.p.child.kill('SIGCONT');
    }
    await waitPrepared(v.p, ids);
    await stopPlayer(v.p, 'play-video');
    const order = v.p.stderr().split('\n').filter((l) => l.includes('"cue prepared"')).map((l) => /"cue":"(\w+)"/.exec(l)?.[1]);
    // D is prepared beside the preroll being prepared when the event came (A's), before the three still waiting.
    assert.ok(order.indexOf('D') <= 1, `prepared in the order ${order.join(', ')}: D should be first or second\n${v.p.stderr().slice(-3000)}`);
    process.stdout.write(`      (prepared in the order ${order.join(', ')})\n`);
  });

  it('an intra-only cue\'s preroll is not held back by long-GOP prerolls queued before it (a lane of its own)', async function () {
    const [clip, prores] = await Promise.all([goClip1080(), ensureMedia('mov-prores-pcm')]);
    show = await Show.start({ 'go.mp4': clip, 'pr.mov': prores }, children, 'prep-lanes');
    // P first, then three GOs of another cue: P is armed for a GO still to come, sent after the H.264 cues loaded since.
    await show.osc('/cuemux/cue/load', [s('P'), s('pr.mov'), d(1.02), d(2.02)]);
    await show.osc('/cuemux/cue/load', [s('X'), s('go.mp4'), d(IN), d(OUT)]);
    for (let k = 0; k < 3; k++) {
      await show.osc('/cuemux/cue/go', [s('X')]);
      await show.osc('/cuemux/cue/stop', [s('X')]);
    }
    const hs = ['H1', 'H2', 'H3'];
    for (const [k, id] of hs.entries()) await show.osc('/cuemux/cue/load', [s(id), s('go.mp4'), d(IN + 0.4 * k), d(OUT + 0.4 * k)]);
    const v = videoPlayer(show, 'lanes');
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await waitPrepared(v.p, ['P', ...hs]);
    await stopPlayer(v.p, 'play-video');
    const order = v.p.stderr().split('\n').filter((l) => l.includes('"cue prepared"')).map((l) => /"cue":"(\w+)"/.exec(l)?.[1]);
    // The server sends H1, H2, H3 (loaded since the third last GO, in load order), then P: in one lane P would be fourth. In
    // its own, P (a few ProRes pictures) starts on arrival, while H1 decodes its GOP and H2 waits for it.
    assert.ok(order.indexOf('P') >= 0 && order.indexOf('P') < order.indexOf('H2'), `prepared in the order ${order.join(', ')}: P should come before H2\n${v.p.stderr().slice(-3000)}`);
    process.stdout.write(`      (prepared in the order ${order.join(', ')})\n`);
  });

  it('a prepared intra-only cue (ProRes) is decoded with one picture per packet: none held back by frame threads', async function () {
    const file = await ensureMedia('mov-prores-pcm');
    const dmx = await openDemuxer(file);
    try {
      const st = dmx.info.streams.find((x) => x.codecType === 'video');
      assert.ok(st !== undefined && st.codecName === 'prores');
      const threads = decoderThreadsFor({
        codecType: st.codecType, codecName: st.codecName, width: st.width, height: st.height,
        frameRateNum: st.frameRate?.num ?? 0, frameRateDen: st.frameRate?.den ?? 0,
      }, 0);
      assert.equal(threads, 1, 'the player\'s automatic thread count for a 320x240 ProRes stream');
      const dec = await openDecoder(decoderConfigFromParams(st), `${file} stream ${st.index}`, { threads });
      const out: number[] = [];
      try {
        while (out.length < 8) {
          const p = await dmx.readPacket();
          assert.ok(p !== null, 'the file ended before 8 video packets');
          if (p.stream === st.index) out.push((await dec.decode(p)).length);
        }
      } finally {
        await dec.close();
      }
      // FFmpeg's own choice (CPU count + 1 frame threads) gives nothing for the first packets on a machine of 2 CPUs.
      assert.deepEqual(out, [1, 1, 1, 1, 1, 1, 1, 1], 'pictures given after each of the first 8 packets');
    } finally {
      await dmx.close();
    }
  });

  it('an unarmed GO placed in the past skips the intra-only pictures already due, then every tick is in sync; H.264 skips none', async function () {
    const [prores, h264] = await Promise.all([ensureMedia('mov-prores-pcm'), ensureMedia('mp4-h264-aac')]);
    const [refP, refH, startP, startH] = await Promise.all([VideoReference.of(prores), VideoReference.of(h264), mediaStart(prores), mediaStart(h264)]);
    show = await Show.start({ 'p.mov': prores, 'h.mp4': h264 }, children, 'go-late');
    await show.osc('/cuemux/clock/play');
    // --prepare off: nothing is decoded before a GO, as for a GO before the player could prepare its cue.
    const firstFile = show.file('late-first.jsonl');
    const v = videoPlayer(show, 'late', ['--prepare', 'off', '--first-pictures', firstFile]);
    children.push(v.p.child);
    await show.followers(['video'], [v.p]);
    await tickInstant(v.sync);
    const cue = { in: 0.5, out: 2.9 };
    // Each GO places its cue 0.6 s in the past: its first 15 pictures are due before the player gets a packet.
    const goPast = async (id: string, file: string): Promise<{ at: number; sentNs: bigint }> => {
      await show?.osc('/cuemux/cue/load', [s(id), s(file), d(cue.in), d(cue.out)]);
      const at = Show.positionAt(await (show as Show).clockState(), process.hrtime.bigint()) - 0.6;
      const go = await (show as Show).oscTimed('/cuemux/cue/go', [s(id), d(at)]);
      await (show as Show).clockPast(at + (cue.out - cue.in) + 0.2);
      return { at, sentNs: go.sentNs };
    };
    const P = await goPast('P', 'p.mov');
    const H = await goPast('H', 'h.mp4');
    await stopPlayer(v.p, 'play-video');
    const ticks = await readTicks(v.hash, v.sync);
    const spanP: Span = { label: 'P', clock: P.at, media: startP + cue.in, endMedia: startP + cue.out, ref: refP };
    const spanH: Span = { label: 'H', clock: H.at, media: startH + cue.in, endMedia: startH + cue.out, ref: refH };
    const skippedBy = (span: Span): number => Math.max(0, ...checkTicks(ticks, [span]).map((c) => Number(c.tick.sync?.skipped_packets ?? 0)));
    const checked = checkTicks(ticks, [spanP]);
    const firstOk = checked.findIndex((c) => c.verdict === 'ok');
    assert.ok(firstOk >= 0, `no tick of P in sync:\n${firstTicks(ticks, P.sentNs, refP)}\n${v.p.stderr().slice(-3000)}`);
    const bad = checked.slice(firstOk).filter((c) => c.verdict !== 'ok');
    const n = counts(checked.slice(firstOk));
    assertNone(bad.slice(0, 20).map((c) => describeTick(c, P.sentNs)), `ProRes: ${bad.length} ticks out of sync after the first in-sync one (${n.held} held, ${n.black} black, ${n.wrong} wrong)`);
    const skippedP = skippedBy(spanP);
    assert.ok(skippedP > 0, `ProRes: no packet skipped though its first pictures were due before the GO's datagram (${checked.length} ticks)`);
    // Inter-coded video is never skipped: a skipped reference picture would damage the pictures after it.
    const skippedH = skippedBy(spanH) - skippedP;
    assert.equal(skippedH, 0, 'H.264 packets skipped');
    // --first-pictures: each segment's first picture, FFmpeg's frame for its media time, ready after the datagram and
    // no later than the first tick showing the cue in sync; here a later frame than the in-point's for both (the GO
    // placed in the past: the server feeds H.264 from the keyframe before the clock, and ProRes skipped those due).
    const firsts = await readSyncLog(firstFile);
    const firstOf = (label: string, sentNs: bigint, span: Span, ref: VideoReference): RefFrame => {
      const l = firsts.filter((r) => r.extra.cue === label);
      assert.equal(l.length, 1, `${label}: first-picture lines ${JSON.stringify(firsts.map((r) => r.extra))}`);
      const f = ref.at(l[0].ptsSeconds as number);
      assert.ok(f !== undefined && f.md5 === l[0].extra.md5, `${label}: the first picture (pts ${String(l[0].ptsSeconds)}) is ${ref.nameOf(String(l[0].extra.md5))}, not FFmpeg's ${f?.n ?? '?'}`);
      const shown = checkTicks(ticks, [span]).find((c) => c.verdict === 'ok');
      assert.ok(l[0].monoNs > sentNs && shown !== undefined && l[0].monoNs <= shown.tick.monoNs, `${label}: first picture ready +${Number(l[0].monoNs - sentNs) / 1e6} ms, the first in-sync tick +${shown === undefined ? '?' : Number(shown.tick.monoNs - sentNs) / 1e6} ms`);
      return f;
    };
    const firstH = firstOf('H', H.sentNs, spanH, refH);
    assert.ok(firstH.n > (refH.at(startH + cue.in)?.n ?? Infinity), `H.264: the first picture ready is frame ${firstH.n}, not after the in-point's`);
    const firstP = firstOf('P', P.sentNs, spanP, refP);
    assert.ok(firstP.n > (refP.at(startP + cue.in)?.n ?? Infinity), `ProRes: the first picture ready is frame ${firstP.n}, not after the in-point's (the ones due were skipped)`);
    process.stdout.write(`      (ProRes: ${skippedP} packets skipped, the first in-sync tick +${(Number(checked[firstOk].tick.monoNs - P.sentNs) / 1e6).toFixed(1)} ms after the datagram, then ${n.ok} ticks in sync; H.264: 0 skipped)\n`);
  });

  it('after a cue ends, --at-end hold keeps its last frame until another cue plays or it is unloaded; the default shows black', async function () {
    const [h264, hevc] = await Promise.all([openGopH264Mkv(), hevcMkv()]);
    const [refQ, refR, startQ, startR] = await Promise.all([VideoReference.of(h264), VideoReference.of(hevc), mediaStart(h264), mediaStart(hevc)]);
    show = await Show.start({ 'q.mkv': h264, 'r.mkv': hevc }, children, 'at-end');
    // Both out-points are off the frame grid: the last frame of each is shown for part of its span.
    const Q = { in: 1.978, out: 3.1785 };
    const R = { in: 4.818, out: 6.0185 };
    await show.osc('/cuemux/cue/load', [s('Q'), s('q.mkv'), d(Q.in), d(Q.out)]);
    await show.osc('/cuemux/cue/load', [s('R'), s('r.mkv'), d(R.in), d(R.out)]);
    await show.osc('/cuemux/clock/play');
    const hold = videoPlayer(show, 'hold', ['--at-end', 'hold']);
    const black = videoPlayer(show, 'black');
    children.push(hold.p.child, black.p.child);
    await show.followers(['video', 'video'], [hold.p, black.p]);
    const tick = await tickInstant(hold.sync);
    await tickInstant(black.sync);
    await Promise.all([waitPrepared(hold.p, ['Q', 'R']), waitPrepared(black.p, ['Q', 'R'])]);
    const clock = await show.clockState();
    const pQ = positionBeforeTick(clock, tick, 20_000_000n, 700, 10);
    const endQ = pQ + (Q.out - Q.in);
    const pR = endQ + 0.6;
    const endR = pR + (R.out - R.in);
    await show.osc('/cuemux/cue/go', [s('Q'), d(pQ)]);
    await show.osc('/cuemux/cue/go', [s('R'), d(pR)]);
    await show.clockPast(endR + 0.6);
    const unload = await show.oscTimed('/cuemux/cue/unload');
    await Promise.all([ticksAfter(hold.sync, unload.sentNs, 20), ticksAfter(black.sync, unload.sentNs, 20)]);
    await Promise.all([stopPlayer(hold.p, 'play-video --at-end hold'), stopPlayer(black.p, 'play-video')]);

    const spans: Span[] = [
      { label: 'Q', clock: pQ, media: startQ + Q.in, endMedia: startQ + Q.out, ref: refQ },
      { label: 'R', clock: pR, media: startR + R.in, endMedia: startR + R.out, ref: refR },
    ];
    const lastQ = refQ.at(startQ + Q.out - 1e-6);
    const lastR = refR.at(startR + R.out - 1e-6);
    assert.ok(lastQ !== undefined && lastR !== undefined);
    const name = (md5: string | null): string => (md5 === null ? 'black' : refQ.nameOf(md5).startsWith('frame') ? `Q's ${refQ.nameOf(md5)}` : `R's ${refR.nameOf(md5)}`);
    // Every check of both players is made before failing, so a failure shows all that went wrong.
    const report: string[] = [];
    const problems: string[] = [];
    const check = (lines: string[], what: string): void => {
      if (lines.length > 0) problems.push(`${what}:\n    ${lines.join('\n    ')}`);
    };
    for (const [player, label, atEnd] of [[hold, 'hold', 'hold'], [black, 'default', 'black']] as const) {
      const ticks = await readTicks(player.hash, player.sync);
      // While the cues play: every tick in sync.
      const checked = checkTicks(ticks, spans);
      assert.ok(checked.length >= 0.8 * 2 * 1.2005 * FPS, `${label}: ${checked.length} ticks inside the cues`);
      const n = counts(checked);
      const startNs = ticks.find((t) => t.clock >= pQ)?.monoNs ?? 0n;
      check(checked.filter((c) => c.verdict !== 'ok').slice(0, 12).map((c) => describeTick(c, startNs)),
        `${label}: ticks out of sync while the cues play (${n.black} black, ${n.held} held, ${n.wrong} wrong of ${checked.length}; times from Q's first tick)`);
      // After each end: the cue's last frame (hold) or black, on every tick until the next cue or the unload.
      const ends: Array<{ from: number; to: number; last: RefFrame; cue: string }> = [
        { from: endQ, to: pR, last: lastQ, cue: 'Q' }, { from: endR, to: Infinity, last: lastR, cue: 'R' },
      ];
      for (const { from, to, last, cue } of ends) {
        const after = ticks.filter((t) => t.clock >= from && t.clock < to && t.monoNs < unload.sentNs);
        assert.ok(after.length >= 20, `${label}: ${after.length} ticks after ${cue}'s end`);
        const want = atEnd === 'hold' ? last.md5 : null;
        const bad = after.filter((t) => t.md5 !== want);
        check(bad.slice(0, 8).map((t) => `tick #${t.i} clock ${t.clock.toFixed(6)} (${((t.clock - from) * 1e3).toFixed(1)} ms after ${cue}'s end): ${name(t.md5)} ${JSON.stringify(t.sync)}`),
          `${label}: after ${cue}'s end every tick should show ${atEnd === 'hold' ? `its last frame (${name(last.md5)})` : 'black'}; ${bad.length} of ${after.length} do not`);
      }
      // Unloaded: black on every tick from the fifth after the unload's datagram on.
      const afterUnload = ticks.filter((t) => t.monoNs > unload.sentNs);
      assert.ok(afterUnload.length >= 10, `${label}: ${afterUnload.length} ticks after the unload`);
      const lit = afterUnload.slice(4).filter((t) => t.md5 !== null);
      check(lit.slice(0, 8).map((t) => `tick #${t.i}: ${name(t.md5)}`), `${label}: ${lit.length} pictures from the fifth tick after the unload on`);
      report.push(`${label}: ${checked.length} ticks in sync, black from tick ${afterUnload.findIndex((t) => t.md5 === null) + 1} after the unload`);
    }
    assertNone(problems, '--at-end');
    process.stdout.write(`      (${report.join('; ')})\n`);
  });

  it('a clock stopped and played again keeps its generation: every video tick after each resume is FFmpeg\'s frame, and the sound goes on from the first period it can', async function () {
    const clip = await goClip1080();
    const [ref, start] = await Promise.all([VideoReference.of(clip), mediaStart(clip)]);
    show = await Show.start({ 'go.mp4': clip }, children, 'resume');
    const cue = { in: 1.0, out: 5.5 };
    await show.osc('/cuemux/cue/load', [s('Q'), s('go.mp4'), d(cue.in), d(cue.out)]);
    await show.osc('/cuemux/clock/play');
    const v = videoPlayer(show, 'resume');
    const audioSync = show.file('resume-audio-sync.jsonl');
    const a = spawnPlayer(['play-audio', '--socket', show.socket, '--output', 'audio', '--sink', 'null', '--sync-log', audioSync]);
    children.push(v.p.child, a.child);
    await show.followers(['video', 'audio'], [v.p, a]);
    await tickInstant(v.sync);
    await waitPrepared(v.p, ['Q']);
    const go = await show.oscTimed('/cuemux/cue/go', [s('Q')]);
    const at = (go.data as { clockSeconds: number }).clockSeconds;
    const generation = (await show.clockState()).generation;
    const resumes: Array<{ position: number; sentNs: bigint }> = [];
    for (let k = 0; k < 3; k++) {
      await show.clockPast(at + 1 + 1.2 * k);
      const stopped = await show.osc('/cuemux/clock/stop') as { positionSeconds: number };
      await new Promise((r) => setTimeout(r, 400)); // paused: the players hold the frame and go silent
      const play = await show.oscTimed('/cuemux/clock/play');
      resumes.push({ position: stopped.positionSeconds, sentNs: play.sentNs });
    }
    assert.equal((await show.clockState()).generation, generation, 'stop and play are no discontinuity');
    await show.clockPast(at + (cue.out - cue.in) + 0.2);
    await Promise.all([stopPlayer(v.p, 'play-video'), stopPlayer(a, 'play-audio')]);
    // Video: a stopped clock holds its position, so FFmpeg's frame for each tick's clock is the one to show throughout.
    const ticks = await readTicks(v.hash, v.sync);
    const checked = checkTicks(ticks, [{ label: 'Q', clock: at, media: start + cue.in, endMedia: start + cue.out, ref }]);
    const firstOk = checked.findIndex((c) => c.verdict === 'ok');
    assert.ok(firstOk >= 0, 'no tick of Q in sync'); // (how soon after the GO: the tests above)
    const bad = checked.slice(firstOk).filter((c) => c.verdict !== 'ok');
    const n = counts(checked.slice(firstOk));
    assertNone(bad.slice(0, 20).map((c) => describeTick(c, resumes[0].sentNs)), `${bad.length} ticks out of sync after the first in-sync one (${n.held} held, ${n.black} black, ${n.wrong} wrong)`);
    // Audio: after each resume the cue sounds from the first period rendered once the play arrived (the periods already
    // written ahead, at most 2 of 10 ms, were rendered for the stopped clock: silence), with no sample missing.
    const lines = (await fsp.readFile(audioSync, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { mono_ns: string; cue: string | null; clock_seconds: number; underrun: number; device_sample: number });
    const q = lines.filter((l) => l.cue === 'Q');
    assert.ok(q.length > 0, 'the audio player logged periods of Q');
    const periodNs = 1e9 * 480 / 48000;
    for (const r of resumes) {
      const first = q.find((l) => l.clock_seconds > r.position + 1e-6);
      assert.ok(first !== undefined, `a period of Q after the resume at ${r.position}`);
      // The device period the play datagram was sent in, counted from a logged period's sample index.
      const periodsAfter = (Number(BigInt(first.mono_ns) - r.sentNs) / periodNs);
      assert.ok(periodsAfter <= 3 + 1e-9, `resume at clock ${r.position.toFixed(3)}: the first period of Q came ${periodsAfter.toFixed(1)} periods after the play (write-ahead 2)`);
      const missing = q.filter((l) => BigInt(l.mono_ns) > r.sentNs && l.clock_seconds < r.position + 0.5).reduce((t, l) => t + l.underrun, 0);
      assert.equal(missing, 0, `resume at clock ${r.position.toFixed(3)}: samples missing in the first 0.5 s`);
    }
    process.stdout.write(`      (${n.ok} ticks in sync after the first, 3 resumes; audio from the first period each time)\n`);
  });

  it('a GO read by the follow thread while the presenting thread waits without its event loop is given by the follower\'s poll', async function () {
    // The presenting thread waits out the last 2 ms before each tick without its event loop; at the tick it polls the
    // follower, so that a GO that reached the player before the tick is shown at it. Here the whole GO happens while
    // this thread never returns to its event loop: CueStarted and the adoption can only come through poll().
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'go-poll');
    await show.osc('/cuemux/cue/load', [s('Q'), s('go.mp4'), d(IN), d(OUT)]);
    await show.osc('/cuemux/clock/play');
    const follower = new WorkerFollower([`unix:${show.socket}`], { output: 'video', kind: 'video', prepare: true });
    const seen: string[] = [];
    follower.on('prepared', (p) => seen.push(`prepared ${p.cueId}`));
    follower.on('started', (c) => seen.push(`started ${c.cueId}`));
    follower.on('adopted', (a) => seen.push(`adopted ${a.cueId}`));
    const stop = new AbortController();
    const running = follower.run(stop.signal);
    try {
      await waitFor('the cue prepared by the follower', () => seen.includes('prepared Q'), 30_000);
      const before = seen.length;
      const sender = new Worker(GO_SENDER, { eval: true, workerData: { port: show.oscPort, cue: 'Q' } });
      const sleeper = new Int32Array(new SharedArrayBuffer(4));
      const deadline = process.hrtime.bigint() + 20_000_000_000n;
      let polls = 0;
      while (!seen.slice(before).includes('adopted Q') && process.hrtime.bigint() < deadline) {
        follower.poll();
        polls++;
        Atomics.wait(sleeper, 0, 0, 2);
      }
      await sender.terminate();
      assert.deepEqual(seen.slice(before), ['started Q', 'adopted Q'], `what poll() gave in ${polls} polls`);
      process.stdout.write(`      (CueStarted and the adoption given by poll() after ${polls} polls of 2 ms)\n`);
    } finally {
      stop.abort();
      await running;
    }
  });

  it('the GO of a prepared cue over a playing cue with large packets is not queued behind them when the player stalls', async function () {
    // 190 KB packets (uncompressed 480x270 4:2:0), as a 1080p DNxHD 36 cue's: the stall leaves megabytes due.
    const big = await makeMedia('follow-hol-480x270-raw-8s.mov', ['-f', 'lavfi', '-i', 'testsrc=size=480x270:rate=25', '-t', '8', '-c:v', 'rawvideo', '-pix_fmt', 'yuv420p']);
    show = await Show.start({ 'big.mov': big }, children, 'go-hol');
    await show.osc('/cuemux/cue/load', [s('A'), s('big.mov'), d(0), d(8)]);
    await show.osc('/cuemux/cue/load', [s('B'), s('big.mov'), d(2), d(6)]);
    await show.osc('/cuemux/clock/play');
    await show.osc('/cuemux/cue/go', [s('A')]);
    const stallMs = 1500;
    const worker = new Worker(STALLING_FOLLOWER, { eval: true, workerData: { socket: show.socket, cue: 'B', stallMs, mediaClient: path.join(__dirname, '..', 'src', 'clients', 'media-client.js') } });
    try {
      const next = (type: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
        const on = (m: Record<string, unknown>): void => {
          if (m.type === 'error') reject(new Error(String(m.error)));
          if (m.type !== type) return;
          worker.off('message', on);
          resolve(m);
        };
        worker.on('message', on);
        worker.once('error', reject);
      });
      await next('prepared');
      const stalling = next('stalling');
      worker.postMessage('stall');
      await stalling;
      // During the stall: the GO (its reply says the server placed the cue), with A's packets falling due meanwhile.
      const done = next('done');
      await show.osc('/cuemux/cue/go', [s('B')]);
      const r = await done;
      const ahead = Number(r.ahead);
      const packets = Number(r.aheadPackets);
      // What may come first: the server's bytes in flight (under 256 KiB: 2 of these packets), one more batch being
      // written, and what the socket's buffers hold (one packet here). Before, every feed wrote a batch of up to
      // 512 KiB before it waited: 8 packets (1.56 MB) came first here, and 0.4-1.3 MB in bench:go.
      assert.ok(packets <= 4, `${packets} packets (${ahead} bytes in ${String(r.aheadMessages)} messages) were read between the stall and the GO's CueStarted`);
      assert.equal(r.next, 'packets', `the message after CueStarted: ${JSON.stringify(r)}`);
      assert.ok(Number(r.adopts) > 0, `the message after CueStarted does not adopt the cue's preroll: ${JSON.stringify(r)}`);
      process.stdout.write(`      (${packets} packets, ${ahead} bytes in ${String(r.aheadMessages)} messages read between the stall and the GO's CueStarted)\n`);
    } finally {
      await worker.terminate();
    }
  });
});
