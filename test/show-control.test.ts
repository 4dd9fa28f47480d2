/**
 * The show clock and cues end to end: a real server, OSC over real UDP (osc-js as an independent peer, and liblo's
 * oscsend/oscdump), WatchClock and Follow over the Unix socket. Covers exact anchors, bundle times, GO at a
 * timecode, Follow packets against ReadPackets, auto-follow without a gap, pause/resume/loop segments, locate as a
 * new generation, chasing external timecode with jumps and loss, and cue list edits while a cue plays.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as dgram from 'node:dgram';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { minuteClip } from './support/media';
import { ffprobePackets } from './support/ffmpeg-reference';
import { bundleAt, encode, oscdump, oscsend, OscPeer, type Reply } from './support/osc';
import { spawnServer, startServer, type TestServer } from './support/server';
import { mergeConfig, defaultConfig } from '../src/server/server-config';
import { copyInto, scratchDir } from './support/tmp';
import { md5 } from './support/check';
import { MediaClientError, type MediaClient } from '../src/clients/media-client';
import { clockPositionAt } from '../src/clients/clock-position';
import { monoNs, monoToUnixNs, unixNs } from '../src/common/time-source';
import type { ClockState, FollowEvent, Packet } from '../src/generated/cuemux/v1/media_server';

type Ev = NonNullable<FollowEvent['event']>;

/** Records a server stream's messages, with the clock position (from the last ClockState) at each arrival. */
class Recorder<T> {
  readonly items: Array<{ value: T; arrivedMono: bigint }> = [];
  readonly #ctl = new AbortController();
  done: Promise<unknown>;
  #wake: (() => void) | null = null;

  constructor(stream: (signal: AbortSignal) => AsyncGenerator<T>) {
    this.done = (async () => {
      for await (const v of stream(this.#ctl.signal)) {
        this.items.push({ value: v, arrivedMono: monoNs() });
        this.#wake?.();
      }
    })().catch((e: unknown) => e);
  }

  /** The first item (after index `from`) satisfying `pred`, waiting up to `timeoutMs`. */
  async waitFor(pred: (v: T) => boolean, timeoutMs = 10_000, from = 0): Promise<{ value: T; arrivedMono: bigint; index: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.items.findIndex((x, k) => k >= from && pred(x.value));
      if (i >= 0) return { ...this.items[i], index: i };
      if (Date.now() > deadline) throw new Error(`nothing matched within ${timeoutMs} ms (${this.items.length} items)`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  stop(): void {
    this.#ctl.abort();
  }
}

const isCase = <K extends Ev['$case']>(k: K) => (e: FollowEvent): e is FollowEvent & { event: Extract<Ev, { $case: K }> } => e.event?.$case === k;
type EvMap = { [E in Ev as E['$case']]: E['value'] };
function ev<K extends keyof EvMap>(e: FollowEvent, k: K): EvMap[K] {
  assert.equal(e.event?.$case, k);
  return (e.event as { value: unknown }).value as EvMap[K];
}

function follow(c: MediaClient, output: string, leadSeconds = 0.5): Recorder<FollowEvent> {
  return new Recorder((signal) => c.follow({ output, leadSeconds }, { signal }));
}

function packetsOf(r: Recorder<FollowEvent>, cueId: string): Array<{ generation: bigint; segment: number; packets: Packet[]; arrivedMono: bigint }> {
  return r.items.filter((x) => x.value.event?.$case === 'packets').map((x) => {
    const v = ev(x.value, 'packets');
    return { generation: v.generation, segment: v.segment, packets: v.packets, arrivedMono: x.arrivedMono };
  }).filter((_x, i) => {
    const p = r.items.filter((y) => y.value.event?.$case === 'packets')[i];
    return ev(p.value, 'packets').cueId === cueId;
  });
}

function ok(r: Reply): unknown {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r.data;
}

describe('show clock, cues and OSC control', function () {
  this.timeout(120_000);
  let srv: TestServer;
  let peer: OscPeer;
  let client: MediaClient;
  let clip: string;
  let osc: (address: string, args?: Parameters<OscPeer['request']>[2]) => Promise<Reply>;
  const recorders: Array<Recorder<unknown>> = [];
  const watch = <T>(r: Recorder<T>): Recorder<T> => {
    recorders.push(r);
    return r;
  };

  before(async function () {
    clip = await minuteClip();
  });

  beforeEach(async function () {
    srv = await startServer({ prefetchSeconds: 1, timecodeRate: '25' });
    await copyInto(clip, srv.root, 'clip.mp4');
    peer = await OscPeer.open();
    client = srv.client();
    osc = (address, args = []) => peer.request(srv.oscPort, address, args);
  });

  afterEach(async function () {
    for (const r of recorders.splice(0)) r.stop();
    peer.close();
    await srv.stop();
  });

  it('WatchClock anchors: a bundled play takes effect at the bundle time (within 1 ms), on the shared monotonic clock', async function () {
    const clock = watch(new Recorder<ClockState>((signal) => client.watchClock({}, { signal })));
    const first = await clock.waitFor(() => true);
    assert.equal(first.value.state, 'stopped');
    assert.equal(first.value.timecodeRate, '25');
    assert.equal((ok(await osc('/cuemux/clock/locate', [{ type: 'd', value: 12.5 }])) as { positionSeconds: number }).positionSeconds, 12.5);
    assert.equal((ok(await osc('/cuemux/clock/locate', [{ type: 's', value: '00:00:10:00' }])) as { positionSeconds: number }).positionSeconds, 10);
    const at = unixNs() + 300_000_000n;
    await peer.sendRaw(srv.oscPort, bundleAt(at, [encode('/cuemux/clock/play')]));
    ok(await peer.reply('/cuemux/reply/clock/play'));
    const playing = (await clock.waitFor((s) => s.state === 'playing')).value;
    assert.equal(playing.positionSeconds, 10);
    assert.equal(playing.timecode, '00:00:10:00');
    assert.ok(playing.generation > first.value.generation);
    const errorMs = Number(playing.anchorUnixNs - at) / 1e6;
    assert.ok(Math.abs(errorMs) <= 1, `anchor ${errorMs} ms from the bundle time`);
    // The two anchors are one instant, and this process's monotonic clock is the server's (CLOCK_MONOTONIC).
    assert.ok(Math.abs(Number(monoToUnixNs(playing.anchorMonotonicNs) - playing.anchorUnixNs)) < 1e6);
    const now = monoNs();
    const expected = 10 + Number(monoToUnixNs(now) - at) / 1e9;
    assert.ok(Math.abs(clockPositionAt(playing, now) - expected) < 0.001);
    // A heartbeat repeats the state without a new generation.
    const beat = await clock.waitFor((s) => s.generation === playing.generation, 3000, clock.items.length);
    assert.equal(beat.value.anchorMonotonicNs, playing.anchorMonotonicNs);
    // Rate change: a change without a new generation, continuous position.
    ok(await osc('/cuemux/clock/rate', [{ type: 's', value: '2' }]));
    const fast = (await clock.waitFor((s) => s.rate === 2)).value;
    assert.equal(fast.generation, playing.generation);
    assert.ok(Math.abs(clockPositionAt(playing, fast.anchorMonotonicNs) - fast.positionSeconds) < 1e-6);
  });

  it('GO at a timecode starts the cue at that clock position; Follow packets equal ReadPackets of the range and respect the lead', async function () {
    const info = await client.openMedia('clip.mp4');
    const video = info.streams.find((s) => s.codecType === 'video');
    assert.ok(video);
    const f = watch(follow(client, 'video', 0.5));
    await f.waitFor(isCase('clock'));
    ok(await osc('/cuemux/clock/rate', [{ type: 'i', value: 4 }]));
    ok(await osc('/cuemux/clock/play'));
    const loaded = ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'Q1' }, { type: 's', value: 'clip.mp4' }, { type: 's', value: '00:00:04:00' }, { type: 'f', value: 7 }])) as { outputs: Record<string, number[]> };
    assert.deepEqual(loaded.outputs.video, [video.index]);
    // At clock 12 (3 s of real time at rate 4 after the play): still ahead of the clock however slow the machine.
    const go = ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'Q1' }, { type: 's', value: '00:00:12:00' }])) as { clockSeconds: number };
    assert.equal(go.clockSeconds, 12);
    const cueLoaded = ev((await f.waitFor(isCase('loaded'))).value, 'loaded');
    assert.equal(cueLoaded.media?.mediaId, info.mediaId);
    assert.deepEqual(cueLoaded.streams, [video.index]);
    const started = ev((await f.waitFor(isCase('started'))).value, 'started');
    const start = info.startSeconds ?? 0;
    assert.deepEqual([started.clockSeconds, started.mediaSeconds, started.endMediaSeconds], [12, start + 4, start + 7]);
    const ended = ev((await f.waitFor(isCase('stopped'), 20_000)).value, 'stopped');
    assert.equal(ended.reason, 'ended');
    assert.equal(ended.clockSeconds, 15);
    const sent = packetsOf(f, 'Q1');
    const got = sent.flatMap((b) => b.packets);
    const reference: Packet[] = [];
    for await (const b of client.readPackets({ mediaId: info.mediaId, streams: [video.index], startSeconds: start + 4, endSeconds: start + 7 })) reference.push(...b.packets);
    assert.equal(got.length, reference.length);
    assert.deepEqual(got.map((p) => [p.pts, p.dts, p.key, md5(p.data)]), reference.map((p) => [p.pts, p.dts, p.key, md5(p.data)]));
    // Not sent before the lead window: each batch arrived when the clock was at most `lead` before its first packet.
    const clocks = f.items.filter((x) => x.value.event?.$case === 'clock').map((x) => ev(x.value, 'clock'));
    const clockAt = (mono: bigint): number => clockPositionAt([...clocks].reverse().find((c) => c.anchorMonotonicNs <= mono) ?? clocks[0], mono);
    const tb = video.timeBaseNum / video.timeBaseDen;
    for (const b of sent) {
      const p = b.packets[0];
      const mediaT = Number(p.dts ?? p.pts ?? 0n) * tb;
      const due = 12 + (mediaT - (start + 4)) - 0.5;
      assert.ok(clockAt(b.arrivedMono) >= due - 0.01, `batch at clock ${clockAt(b.arrivedMono)} before its window ${due}`);
    }
  });

  it('liblo oscsend drives clock and cues; every reply (errors too) is read by oscdump on the configured reply port', async function () {
    await srv.stop();
    const dumpPort = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    srv = await startServer({ oscReplyPort: dumpPort });
    await copyInto(clip, srv.root, 'clip.mp4');
    const dump = oscdump(dumpPort);
    try {
      const deadline = Date.now() + 5000;
      while (dump.lines.length === 0) {
        assert.ok(Date.now() < deadline, 'oscdump printed nothing');
        await oscsend(srv.oscPort, '/cuemux/thump');
        await sleep(50);
      }
      assert.equal((await dump.reply('/cuemux/reply/thump')).data, 'thump');
      dump.lines.length = 0;
      await oscsend(srv.oscPort, '/cuemux/clock/locate', 's', '00:01:00:00');
      assert.equal((ok(await dump.reply('/cuemux/reply/clock/locate')) as { positionSeconds: number }).positionSeconds, 60);
      await oscsend(srv.oscPort, '/cuemux/clock/locate', 'i', '5');
      assert.equal((ok(await dump.reply('/cuemux/reply/clock/locate')) as { positionSeconds: number }).positionSeconds, 5);
      await oscsend(srv.oscPort, '/cuemux/cue/load', 'ss', 'Q7', 'clip.mp4');
      assert.equal((ok(await dump.reply('/cuemux/reply/cue/load')) as { state: string }).state, 'armed');
      await oscsend(srv.oscPort, '/cuemux/cue/go', 's', 'Q7');
      assert.equal((ok(await dump.reply('/cuemux/reply/cue/go')) as { clockSeconds: number }).clockSeconds >= 5, true);
      await oscsend(srv.oscPort, '/cuemux/status');
      const status = ok(await dump.reply('/cuemux/reply/status')) as { clock: { state: string }; cues: Array<{ id: string; state: string }> };
      assert.equal(status.clock.state, 'playing');
      assert.deepEqual(status.cues.map((c) => [c.id, c.state]), [['Q7', 'playing']]);
      await oscsend(srv.oscPort, '/cuemux/cue/stop', 's', 'Q7');
      assert.deepEqual(ok(await dump.reply('/cuemux/reply/cue/stop')), { stopped: ['Q7'] });
      // Errors: unknown address, bad number, unknown cue, missing file — each a reply naming the problem.
      await oscsend(srv.oscPort, '/cuemux/nonsense');
      assert.match(String((await dump.reply('/cuemux/reply/nonsense')).error), /unknown OSC address \/cuemux\/nonsense/);
      await oscsend(srv.oscPort, '/cuemux/clock/rate', 's', 'banana');
      const bad = await dump.reply('/cuemux/reply/clock/rate');
      assert.equal(bad.status, 'error');
      assert.match(String(bad.error), /banana/);
      await oscsend(srv.oscPort, '/cuemux/cue/go', 's', 'Q404');
      assert.match(String((await dump.reply('/cuemux/reply/cue/go')).error), /Q404/);
      await oscsend(srv.oscPort, '/cuemux/cue/load', 'ss', 'Q8', 'missing.mp4');
      const missing = await dump.reply('/cuemux/reply/cue/load');
      assert.equal(missing.code, 'NOT_FOUND');
      assert.match(String(missing.error), /missing\.mp4/);
      // A malformed datagram gets an error reply too, and the port keeps working.
      await peer.sendRaw(srv.oscPort, Buffer.from('/cuemux/status\0\0,q\0\0garbage\0', 'latin1'));
      assert.equal((await dump.reply('/cuemux/reply/status')).status, 'error');
      await oscsend(srv.oscPort, '/cuemux/thump');
      assert.equal((await dump.reply('/cuemux/reply/thump')).status, 'ok');
    } finally {
      dump.stop();
    }
  });

  it('auto-follow chains cues with no gap; pause/resume and loops start new segments; unload ends the cue', async function () {
    // Show control loads cue lists from beneath the media roots only.
    const list = path.join(srv.root, 'cues-chain.json');
    await fsp.writeFile(list, JSON.stringify({
      version: 1,
      cues: [
        { id: 'A', media: 'clip.mp4', in: 0, out: 10, outputs: { main: ['video'] } },
        { id: 'B', media: 'clip.mp4', in: 2, out: 3, follow: true, outputs: { main: ['video'] } },
        { id: 'C', media: 'clip.mp4', in: 1, out: 2, loop: true, outputs: { main: ['video', 'audio'] } },
      ],
    }));
    ok(await osc('/cuemux/cuelist/load', [{ type: 's', value: list }]));
    const f = watch(follow(client, 'main', 0.3));
    await f.waitFor(isCase('clock'));
    ok(await osc('/cuemux/clock/rate', [{ type: 'd', value: 4 }]));
    const go = ok(await osc('/cuemux/cue/go')) as { id: string; clockSeconds: number; standby: string };
    assert.equal(go.id, 'A');
    assert.equal(go.standby, 'C', 'the playhead skips the auto-follow cue');
    const startedB = ev((await f.waitFor((e) => isCase('started')(e) && e.event.value.cueId === 'B')).value, 'started');
    const endedA = ev((await f.waitFor((e) => isCase('stopped')(e) && e.event.value.cueId === 'A')).value, 'stopped');
    assert.equal(endedA.reason, 'ended');
    assert.equal(startedB.clockSeconds, go.clockSeconds + 10, 'B starts exactly where A ends');
    assert.equal(endedA.clockSeconds, go.clockSeconds + 10);
    // No gap: the server sent B's first packets ahead of B's start (within the lead window), i.e. before it said that
    // A ended at that same clock position. Order in the one stream, not arrival times: a loaded machine delays both.
    const firstB = f.items.findIndex((x) => isCase('packets')(x.value) && ev(x.value, 'packets').cueId === 'B');
    const endA = f.items.findIndex((x) => isCase('stopped')(x.value) && ev(x.value, 'stopped').cueId === 'A');
    assert.ok(firstB >= 0, 'B\'s packets were sent');
    assert.ok(firstB < endA, `B's first packets (message ${firstB}) came after A ended (message ${endA}): ${f.items.slice(0, endA + 1).map((x) => x.value.event?.$case).join(' ')}`);
    const endedB = ev((await f.waitFor((e) => isCase('stopped')(e) && e.event.value.cueId === 'B')).value, 'stopped');
    assert.equal(endedB.clockSeconds, startedB.clockSeconds + 1);
    // C loops: segment 1 starts one loop length after segment 0.
    const goC = ok(await osc('/cuemux/cue/go')) as { id: string; clockSeconds: number };
    assert.equal(goC.id, 'C');
    const seg0 = ev((await f.waitFor((e) => isCase('started')(e) && e.event.value.cueId === 'C')).value, 'started');
    const seg1 = ev((await f.waitFor((e) => isCase('started')(e) && e.event.value.cueId === 'C' && e.event.value.segment === seg0.segment + 1)).value, 'started');
    assert.equal(seg1.clockSeconds, seg0.clockSeconds + 1);
    assert.equal(seg1.mediaSeconds, seg0.mediaSeconds);
    const paused = ok(await osc('/cuemux/cue/pause', [{ type: 's', value: 'C' }]));
    assert.deepEqual(paused, { paused: ['C'] });
    const pauseEv = ev((await f.waitFor((e) => isCase('stopped')(e) && e.event.value.cueId === 'C')).value, 'stopped');
    assert.equal(pauseEv.reason, 'pause');
    const nPackets = packetsOf(f, 'C').length;
    await sleep(300);
    assert.equal(packetsOf(f, 'C').length, nPackets, 'no packets while paused');
    ok(await osc('/cuemux/cue/resume', [{ type: 's', value: 'C' }]));
    const resumed = ev((await f.waitFor((e) => isCase('started')(e) && e.event.value.cueId === 'C' && e.event.value.segment > seg1.segment)).value, 'started');
    assert.ok(Math.abs(resumed.mediaSeconds - pauseEv.mediaSeconds) < 1e-9, 'resumes where it paused');
    ok(await osc('/cuemux/cue/unload', [{ type: 's', value: 'C' }]));
    const stopIdx = (await f.waitFor((e) => isCase('stopped')(e) && e.event.value.cueId === 'C' && e.event.value.reason === 'unload')).index;
    const unloadIdx = (await f.waitFor((e) => isCase('unloaded')(e) && e.event.value.cueId === 'C')).index;
    assert.ok(stopIdx < unloadIdx);
    const err = await osc('/cuemux/cue/resume', [{ type: 's', value: 'C' }]);
    assert.equal(err.status, 'error');
    assert.match(String(err.error), /"C" is not loaded/);
  });

  it('a clock locate is a new generation: packets restart at the keyframe at or before the new position', async function () {
    const info = await client.openMedia('clip.mp4');
    const video = info.streams.find((s) => s.codecType === 'video');
    assert.ok(video);
    const f = watch(follow(client, 'video', 0.5));
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'L' }, { type: 's', value: 'clip.mp4' }]));
    ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'L' }, { type: 'd', value: 0 }]));
    await f.waitFor(isCase('packets'));
    const before = (await f.waitFor(isCase('clock'), 5000, f.items.length)).value;
    const g0 = ev(before, 'clock').generation;
    ok(await osc('/cuemux/clock/locate', [{ type: 's', value: '00:00:33:00' }]));
    const relocated = await f.waitFor((e) => isCase('packets')(e) && e.event.value.generation > g0);
    const first = ev(relocated.value, 'packets').packets[0];
    assert.equal(first.key, true);
    const start = info.startSeconds ?? 0;
    const keyT = Number(first.pts ?? 0n) * (video.timeBaseNum / video.timeBaseDen);
    assert.ok(keyT <= start + 33 && keyT > start + 33 - 2.1, `keyframe at ${keyT} for 33 s (GOP 2 s)`);
    // Exactly the keyframe at or before: ReadPackets from 33 s starts with the same packet.
    for await (const b of client.readPackets({ mediaId: info.mediaId, streams: [video.index], startSeconds: start + 33 })) {
      assert.equal(b.packets[0].pts, first.pts);
      break;
    }
  });

  it('chases external timecode: locks, ignores jitter, follows a jump with a new generation, holds on loss', async function () {
    await srv.stop();
    // Loss only when the feed really stops (a stall of this loaded machine between two samples is not a loss).
    srv = await startServer({ chaseLossMs: 2000, chaseLossPolicy: 'hold' });
    const clock = watch(new Recorder<ClockState>((signal) => client.watchClock({}, { signal })));
    client = srv.client();
    const c2 = watch(new Recorder<ClockState>((signal) => client.watchClock({}, { signal })));
    clock.stop();
    await c2.waitFor(() => true);
    const t0 = monoNs();
    /** The source's position at CLOCK_MONOTONIC instant `mono`: `base` at t0, running at rate 1. */
    const source = (base: number, mono: bigint): number => base + Number(mono - t0) / 1e9;
    // Each sample goes in a bundle timed at the instant its position refers to (as a bridge stamps a frame), so when
    // the server happens to read it does not change what it says: the chased clock is checked by value. The samples
    // jitter by ±2 ms (a bridge's frame quantisation), within the 4 ms the chase ignores; the first of a run has none.
    const jitter = [0, 0.002, -0.002];
    const feed = async (base: number, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const at = monoNs();
        await peer.sendRaw(srv.oscPort, bundleAt(monoToUnixNs(at), [encode('/cuemux/clock/timecode', [{ type: 'd', value: source(base, at) + jitter[i % 3] }])]));
        await sleep(40);
      }
    };
    await feed(100, 15);
    const lock = (await c2.waitFor((s) => s.state === 'chasing')).value;
    assert.equal(lock.source, 'external');
    // It locks onto a sample: the source's position at the lock's anchor, to the nanosecond the timetag carries.
    assert.ok(Math.abs(lock.positionSeconds - source(100, lock.anchorMonotonicNs)) < 1e-6, `locked at ${lock.positionSeconds}, source ${source(100, lock.anchorMonotonicNs)}`);
    const chasing = c2.items.filter((x) => x.value.state === 'chasing').map((x) => x.value.generation);
    assert.ok(chasing.every((g) => g === lock.generation), 'jitter never makes a new generation');
    const last = c2.items[c2.items.length - 1].value;
    const now = monoNs();
    const err = clockPositionAt(last, now) - source(100, now);
    // Samples that agree within 4 ms change nothing (README): the chased clock stays within that of the source, give
    // or take the ±2 ms jitter of the sample it anchored on.
    assert.ok(Math.abs(err) <= 0.0065, `chased clock ${err} s off the source ${JSON.stringify(c2.items.map((x) => [x.value.state, x.value.positionSeconds, x.value.rate, Number(x.value.anchorMonotonicNs - t0) / 1e9]))}`);
    await feed(200, 5);
    const jump = await c2.waitFor((s) => s.generation > lock.generation && s.state === 'chasing');
    const jumped = jump.value;
    assert.ok(Math.abs(jumped.positionSeconds - source(200, jumped.anchorMonotonicNs)) < 1e-6, `re-locked at ${jumped.positionSeconds}, source ${source(200, jumped.anchorMonotonicNs)}`);
    // The feed stops: after --chase-loss-ms the clock holds (stops) where it is.
    const held = (await c2.waitFor((s) => s.state === 'stopped', 30_000, jump.index)).value;
    assert.equal(held.source, 'external');
    assert.ok(held.generation > jumped.generation);
    assert.ok(held.positionSeconds >= jumped.positionSeconds, 'hold keeps the position reached');
  });

  it('a cue list edited while a cue plays: the playing cue goes on, the edit applies, a broken save is reported and ignored', async function () {
    const list = path.join(srv.root, 'show.json'); // show control loads cue lists from beneath the media roots only
    const write = (cues: unknown[]): Promise<void> => fsp.writeFile(list, JSON.stringify({ version: 1, timecodeRate: '25', cues }, null, 2));
    await write([
      { id: '1', media: 'clip.mp4', loop: true, in: 0, out: 4, outputs: { video: ['video'] } },
      { id: '2', media: 'clip.mp4', in: '00:00:05:00', outputs: { video: ['video'] } },
    ]);
    ok(await osc('/cuemux/cuelist/load', [{ type: 's', value: list }]));
    const f = watch(follow(client, 'video'));
    ok(await osc('/cuemux/cue/go'));
    await f.waitFor(isCase('packets'));
    const status = async (): Promise<{ cues: Array<{ id: string; state: string; inSeconds: number }>; cueList: { cues: string[]; playhead: string }; cueListFile: { reloads: number; lastError: string | null } }> =>
      ok(await osc('/cuemux/status')) as never;
    assert.deepEqual((await status()).cueList, { path: list, cues: ['1', '2'], playhead: '2' });
    await write([
      { id: '1', media: 'clip.mp4', loop: true, in: 10, out: 14, outputs: { video: ['video'] } },
      { id: '2', media: 'clip.mp4', in: '00:00:20:00', outputs: { video: ['video'] } },
      { id: '3', media: 'clip.mp4', in: 30, outputs: { video: ['video'] } },
    ]);
    const deadline = Date.now() + 5000;
    let s = await status();
    while (s.cueListFile.reloads < 1) {
      assert.ok(Date.now() < deadline, 'the edit was not applied');
      await sleep(50);
      s = await status();
    }
    assert.deepEqual(s.cueList.cues, ['1', '2', '3']);
    const one = s.cues.find((c) => c.id === '1');
    assert.deepEqual([one?.state, one?.inSeconds], ['playing', 0], 'the playing cue keeps its definition');
    const countBefore = packetsOf(f, '1').length;
    await sleep(700);
    assert.ok(packetsOf(f, '1').length > countBefore, 'the playing cue still gets packets');
    assert.equal(f.items.some((x) => isCase('stopped')(x.value)), false, 'nothing stopped');
    const two = await (async () => {
      for (;;) {
        const c = (await status()).cues.find((x) => x.id === '2');
        if (c?.inSeconds === 20) return c;
        await sleep(50);
      }
    })();
    assert.equal(two.state, 'armed', 'the standby cue was re-armed with its new in-point');
    await fsp.writeFile(list, '{"version": 1, "cues": [\n  {"id": "1", "media": "clip.mp4",,}\n]}');
    const until = Date.now() + 5000;
    while ((await status()).cueListFile.lastError === null) {
      assert.ok(Date.now() < until, 'the broken save was not reported');
      await sleep(50);
    }
    const broken = await status();
    assert.match(String(broken.cueListFile.lastError), /show\.json: not valid JSON.*line 2/);
    assert.deepEqual(broken.cueList.cues, ['1', '2', '3'], 'the list in effect stays');
  });

  it('an unarmed GO loads the cue first; Follow calls end with UNAVAILABLE when the server stops', async function () {
    const f = watch(follow(client, 'audio'));
    await f.waitFor(isCase('clock'));
    const err = await osc('/cuemux/cue/go', [{ type: 's', value: 'U' }]);
    assert.equal(err.status, 'error', 'U is in no cue list and not loaded');
    assert.match(String(err.error), /no cue "U"/);
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'U' }, { type: 's', value: '{"media": "clip.mp4", "in": 12}' }]));
    ok(await osc('/cuemux/cue/unload', [{ type: 's', value: 'U' }]));
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'U' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 12 }]));
    ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'U' }]));
    await f.waitFor(isCase('packets'));
    await srv.server.close(5000);
    const end = await f.done;
    assert.ok(end instanceof MediaClientError, String(end));
    assert.equal(end.code, grpc.status.UNAVAILABLE);
    assert.equal(end.method, 'Follow');
  });

  it('/cuemux/updates pushes clock and cue changes to subscribers until they unsubscribe', async function () {
    const sub = await OscPeer.open();
    try {
      assert.deepEqual(ok(await sub.request(srv.oscPort, '/cuemux/updates', [{ type: 'i', value: 1 }])), { subscribed: true });
      ok(await osc('/cuemux/clock/locate', [{ type: 's', value: '00:00:20:00' }]));
      const clockPush = JSON.parse(String((await sub.next((m) => m.address === '/cuemux/update/clock')).args[0])) as { data: { positionSeconds: number; timecode: string } };
      assert.equal(clockPush.data.positionSeconds, 20);
      assert.equal(clockPush.data.timecode, '00:00:20:00');
      ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'P' }, { type: 's', value: 'clip.mp4' }]));
      const cuePush = JSON.parse(String((await sub.next((m) => m.address === '/cuemux/update/cue')).args[0])) as { data: { id: string; event: string } };
      assert.deepEqual([cuePush.data.id, cuePush.data.event], ['P', 'loaded']);
      assert.equal((ok(await osc('/cuemux/status')) as { updateSubscribers: number }).updateSubscribers, 1);
      ok(await sub.request(srv.oscPort, '/cuemux/updates', [{ type: 's', value: '0' }]));
      sub.clear();
      ok(await osc('/cuemux/clock/locate', [{ type: 'i', value: 1 }]));
      await assert.rejects(sub.next((m) => m.address.startsWith('/cuemux/update/'), 300), /no OSC message matched/);
    } finally {
      sub.close();
    }
  });

  it('cuemux serve (child process) prints its OSC port and answers on it', async function () {
    const run = await scratchDir('osc-run');
    await fsp.chmod(run, 0o700);
    const { child, stdout, oscPort } = await spawnServer(['--socket', path.join(run, 's.sock'), '--media-root', srv.root, '--osc-port', '0']);
    try {
      assert.match(stdout(), /OSC \(UDP\): +127\.0\.0\.1:\d+/);
      assert.ok(oscPort !== null);
      assert.equal((await peer.request(oscPort, '/cuemux/thump')).data, 'thump');
      const st = ok(await peer.request(oscPort, '/cuemux/status')) as { clock: { timecodeRate: string; state: string } };
      assert.deepEqual(st.clock, { ...st.clock, timecodeRate: '25', state: 'stopped' });
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('show settings are validated with messages naming the setting and the value', function () {
    const base = defaultConfig({});
    const bad = (values: Record<string, unknown>, re: RegExp): void => {
      assert.throws(() => mergeConfig(base, [{ where: 'test', values }]), (e: unknown) => e instanceof Error && re.test(e.message));
    };
    bad({ timecodeRate: '26' }, /timecodeRate is not a timecode rate.*"26"/);
    bad({ oscPort: '70000' }, /oscPort must be a UDP port/);
    bad({ leadSeconds: '0' }, /leadSeconds must be a number of seconds above 0/);
    bad({ chaseLossPolicy: 'panic' }, /chaseLossPolicy must be hold or freerun/);
    const c = mergeConfig(base, [{ where: 'test', values: { timecodeRate: '29.97DF', oscPort: 'off', leadSeconds: '0.25', cueList: 'x.json' } }]);
    assert.deepEqual([c.timecodeRate, c.oscPort, c.leadSeconds, c.cueList], ['29.97df', null, 0.25, path.resolve('x.json')]);
  });

  it('a cue reaching its end on a clock that stands still (rate 0 from a still timecode source) ends cleanly', async function () {
    const f = watch(follow(client, 'video'));
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'Z' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 0 }, { type: 'i', value: 2 }]));
    ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'Z' }, { type: 'd', value: 5 }]));
    ok(await osc('/cuemux/clock/timecode', [{ type: 'd', value: 5 }]));
    ok(await osc('/cuemux/clock/timecode', [{ type: 'd', value: 5 }]));
    assert.equal((ok(await osc('/cuemux/status')) as { clock: { rate: number } }).clock.rate, 0);
    ok(await osc('/cuemux/clock/locate', [{ type: 'd', value: 9999 }]));
    const ended = ev((await f.waitFor((e) => isCase('stopped')(e) && e.event.value.cueId === 'Z')).value, 'stopped');
    assert.equal(ended.reason, 'ended');
    assert.equal((await osc('/cuemux/thump')).data, 'thump', 'the server is alive');
  });

  it('a file cut short while its cue plays: the Follow call is told (CueFeedFailed naming the file), the server goes on', async function () {
    await copyInto(clip, srv.root, 'cut.mp4');
    const info = await client.openMedia('cut.mp4');
    const video = info.streams.find((s) => s.codecType === 'video');
    assert.ok(video);
    const f = watch(follow(client, 'video', 0.5));
    ok(await osc('/cuemux/cue/load', [{ type: 's', value: 'K' }, { type: 's', value: 'cut.mp4' }]));
    // Cut the file (already open and indexed) where the packets of 3 s begin: the feed reads them about 2.5 s in.
    const tb = video.timeBaseNum / video.timeBaseDen;
    const cutAt = (await ffprobePackets(path.join(srv.root, 'cut.mp4')))
      .find((p) => p.stream === video.index && p.pts !== null && (p.pts - Number(video.startPts)) * tb >= 3)?.pos;
    assert.ok(cutAt !== null && cutAt !== undefined);
    await fsp.truncate(path.join(srv.root, 'cut.mp4'), cutAt);
    ok(await osc('/cuemux/cue/go', [{ type: 's', value: 'K' }]));
    const failed = ev((await f.waitFor(isCase('failed'), 15_000)).value, 'failed');
    assert.equal(failed.cueId, 'K');
    assert.equal(failed.code, 'MEDIA_DAMAGED');
    assert.match(failed.message, /cut\.mp4: file ends at byte \d+.*truncated/);
    // Everything before the cut was sent, every batch of the segment the failure names.
    const sent = packetsOf(f, 'K').filter((b) => b.segment === failed.segment).flatMap((b) => b.packets);
    assert.ok(sent.length > 0 && sent.every((p) => Number(p.pos) + p.data.length <= cutAt), 'packets before the cut only');
    assert.ok(sent.some((p) => (Number(p.pts) - Number(video.startPts)) * tb > 2), 'packets up to the cut');
    const st = ok(await osc('/cuemux/status')) as { cues: Array<{ id: string; state: string }> };
    assert.deepEqual(st.cues.map((c) => [c.id, c.state]), [['K', 'playing']], 'the cue stays on the clock: show control decides');
    // A discontinuity tries again: a locate back before the cut feeds the cue from there.
    ok(await osc('/cuemux/clock/locate', [{ type: 'd', value: 0.5 }]));
    const again = ev((await f.waitFor((e) => isCase('packets')(e) && e.event.value.cueId === 'K' && e.event.value.generation > failed.generation, 5000)).value, 'packets');
    assert.ok(again.packets.length > 0 && again.packets[0].key, 'fed again from a keyframe');
  });

  it("an operator's STOP cancels a GO still opening its media", async function () {
    const list = path.join(srv.root, 'cues-stop.json');
    await fsp.writeFile(list, JSON.stringify({ version: 1, cues: [{ id: 'S', media: 'clip.mp4', in: 30 }] }));
    ok(await osc('/cuemux/cuelist/load', [{ type: 's', value: list }]));
    await peer.send(srv.oscPort, '/cuemux/cue/go', [{ type: 's', value: 'S' }]);
    await peer.send(srv.oscPort, '/cuemux/cue/stop');
    const go = await peer.reply('/cuemux/reply/cue/go');
    ok(await peer.reply('/cuemux/reply/cue/stop'));
    assert.equal(go.status, 'error');
    assert.match(String(go.error), /cancelled by a STOP/);
    const st = ok(await osc('/cuemux/status')) as { cues: Array<{ id: string; state: string }>; clock: { state: string } };
    assert.deepEqual(st.cues.map((c) => [c.id, c.state]), [['S', 'armed']]);
  });
});
