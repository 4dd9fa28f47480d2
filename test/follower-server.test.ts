/**
 * Follower servers (issue 14, item 1) on one machine as two: a master `cuemux serve` and a follower `cuemux serve
 * --follow` each in a network namespace of its own, joined by a veth pair (addresses only in namespaces this test
 * makes, removed after). The master serves gRPC on its namespace address with TLS and a token; the follower reaches it
 * there. Each has its own media root: the follower's holds a copy of the same clip, and under the name of a second
 * cue a different file (reported, not played). The test reaches both servers' Unix sockets (file sockets cross
 * network namespaces) and their OSC ports from inside their namespaces (a small node helper run by `ip netns exec`).
 *
 * Checked: the follower's clock equals the master's exactly (same show id, generation, state, rate, and the same
 * position at the same CLOCK_MONOTONIC instant: both namespaces share it); cues started, looped, paused, resumed and
 * stopped on the master, and an auto-follow chain of its cue list, have the same clock mappings on the follower (the
 * CueStarted segments of Follow on both);
 * a play-video following the follower shows FFmpeg's frame for the clock; OSC GO to the follower is refused naming
 * the master; the mismatched cue is a cue problem on the follower and, through its report, on the master. Nothing is
 * timed: every wait is bounded.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { MediaClient } from '../src/clients/media-client';
import { serveConfig } from '../src/cli/serve-command';
import type { ServerConfig } from '../src/server/server-config';
import { ShowClock } from '../src/show/show-clock';
import type { ClockState, CueStarted, CueStopped } from '../src/generated/cuemux/v1/media_server';
import { makeTestPki } from './support/certs';
import type { Arg as OscArg } from './support/osc';
import { namespacePairOrSkip, oscIn, serveIn, type NamespacePair } from './support/netns';
import { minuteClip, openGopH264Mkv } from './support/media';
import { checkTicks, counts, describeTick, killAll, mediaStart, readTicks, spawnPlayer, stopPlayer, tickInstant, VideoReference, waitPrepared, type PlayerProcess } from './support/show-check';
import { copyInto, scratchDir } from './support/tmp';
import { sleep, waitFor } from './support/wait';

const str = (value: string): OscArg => ({ type: 's', value });
const dbl = (value: number): OscArg => ({ type: 'd', value });

/** Every CueStarted of a Follow of `output` on `client`, collected until `signal` aborts. */
function collectStarts(client: MediaClient, output: string, signal: AbortSignal): { starts: CueStarted[]; stops: CueStopped[]; done: Promise<void> } {
  const starts: CueStarted[] = [];
  const stops: CueStopped[] = [];
  const done = (async () => {
    try {
      for await (const ev of client.follow({ output }, { signal })) {
        if (ev.event?.$case === 'started') starts.push(ev.event.value);
        if (ev.event?.$case === 'stopped') stops.push(ev.event.value);
      }
    } catch {
      // cancelled at the end of the test
    }
  })();
  return { starts, stops, done };
}

/** The first WatchClock state of `client`. */
async function clockOf(client: MediaClient): Promise<ClockState> {
  for await (const s of client.watchClock({}, { timeout: 5000 })) return s;
  throw new Error('WatchClock ended without a state');
}

/** The clock position at CLOCK_MONOTONIC instant `mono`. */
function positionAt(c: ClockState, mono: bigint): number {
  return c.state === 'stopped' || c.rate === 0 ? c.positionSeconds : c.positionSeconds + (c.rate * Number(mono - c.anchorMonotonicNs)) / 1e9;
}

/**
 * The servers' wall clocks are their monotonic clocks plus an offset each measured at its start (Ping's rule): the
 * two differ by the time between the two readings of one measure, microseconds. The clocks compared at one monotonic
 * instant may differ by that much, times the rate.
 */
const WALL_OFFSET_SLACK_S = 0.002;

describe('follower servers: a master and a follower in two network namespaces', function () {
  this.timeout(180_000);
  const children: ChildProcess[] = [];
  const clients: MediaClient[] = [];
  let ns: NamespacePair | null = null;

  before(async function () {
    ns = await namespacePairOrSkip(this, 'cmxf', 233);
  });

  after(async function () {
    for (const c of clients) c.close();
    await killAll(children);
    await ns?.remove();
  });

  it('mirrors the clock and the cues exactly, plays its own media, refuses show control and reports a file that differs', async function () {
    const { a: NS_MASTER, b: NS_FOLLOWER, aIp: MASTER_IP } = ns as NamespacePair;
    const clip = await minuteClip();
    const other = await openGopH264Mkv();
    const [ref, start] = await Promise.all([VideoReference.of(clip), mediaStart(clip)]);
    const masterRoot = await scratchDir('fm-root');
    const followerRoot = await scratchDir('ff-root');
    await copyInto(clip, masterRoot, 'clip.mp4');
    await copyInto(clip, masterRoot, 'differs.mp4');
    await copyInto(clip, followerRoot, 'clip.mp4');
    await copyInto(other, followerRoot, 'differs.mp4'); // same name, another file
    const run1 = await scratchDir('fm-run');
    const run2 = await scratchDir('ff-run');
    await fsp.chmod(run1, 0o700);
    await fsp.chmod(run2, 0o700);
    const pki = await makeTestPki(await scratchDir('f-pki'), [MASTER_IP]);
    const masterSocket = path.join(run1, 'm.sock');
    // A cue list with an auto-follow chain: L2 starts where L1 ends.
    const cueList = path.join(masterRoot, 'cues.json');
    await fsp.writeFile(cueList, JSON.stringify({ version: 1, cues: [
      { id: 'L1', media: 'clip.mp4', in: 10, out: 11.5 }, { id: 'L2', media: 'clip.mp4', in: 20, out: 21.5, follow: true }] }));
    const followerSocket = path.join(run2, 'f.sock');

    const master = await serveIn(NS_MASTER, ['--socket', masterSocket, '--media-root', masterRoot, '--state-file', 'none', '--cue-list', cueList,
      '--listen', `${MASTER_IP}:0`, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--token-file', pki.tokenFile], children);
    assert.ok(master.tcp !== null, 'the master listens on TCP');
    const follower = await serveIn(NS_FOLLOWER, ['--socket', followerSocket, '--media-root', followerRoot,
      '--follow', master.tcp, '--follow-tls-ca', pki.ca, '--follow-token-file', pki.tokenFile], children);
    const m = new MediaClient(masterSocket);
    const f = new MediaClient(followerSocket);
    clients.push(m, f);
    // The follower is connected: the master lists its WatchShow.
    await waitFor('the follower to watch the master', async () => (await m.getStatus()).clients.some((c) => c.output === '(follower server)'), 20_000);

    const stop = new AbortController();
    const onMaster = collectStarts(m, 'video', stop.signal);
    const onFollower = collectStarts(f, 'video', stop.signal);
    const hash = path.join(run2, 'frames.jsonl');
    const sync = path.join(run2, 'sync.jsonl');
    const player: PlayerProcess = spawnPlayer(['play-video', '--socket', followerSocket, '--fps', '50', '--sink', `hash:${hash}`, '--sync-log', sync]);
    children.push(player.child);
    await tickInstant(sync);

    const ok = async (address: string, args: OscArg[] = []): Promise<unknown> => {
      const r = await oscIn(NS_MASTER, master.osc, address, args);
      assert.equal(r.status, 'ok', `${address} on the master: ${JSON.stringify(r)}`);
      return r.data;
    };
    // A looping cue from 1 s to 3 s of the clip, and a cue whose file differs on the follower.
    await ok('/cuemux/cue/load', [str('A'), str('clip.mp4'), dbl(1), dbl(3), { type: 'T', value: null }]);
    await ok('/cuemux/cue/load', [str('B'), str('differs.mp4'), dbl(0), dbl(2)]);
    // As at any GO: the armed cue is prepared by the player (here through the follower) before it starts.
    await waitPrepared(player, ['A']);
    const goSentNs = process.hrtime.bigint();
    const go = await ok('/cuemux/cue/go', [str('A')]) as { clockSeconds: number };
    // Both servers at the same place: wait for the follower to have the cue playing.
    await waitFor('cue A playing on the follower', async () => (await f.getStatus()).show?.cues.find((c) => c.id === 'A')?.state === 'playing', 20_000);
    await waitFor('the clock past two loop passes on the follower', async () => positionAt(await clockOf(f), process.hrtime.bigint()) > go.clockSeconds + 4.5, 30_000);
    await ok('/cuemux/cue/pause', [str('A')]);
    await waitFor('cue A paused on the follower', async () => (await f.getStatus()).show?.cues.find((c) => c.id === 'A')?.state === 'paused', 20_000);
    await ok('/cuemux/cue/resume', [str('A')]);
    await waitFor('cue A playing again on the follower', async () => (await f.getStatus()).show?.cues.find((c) => c.id === 'A')?.state === 'playing', 20_000);
    await sleep(1500);

    // The clock: exactly the master's.
    const [cm, cf] = await Promise.all([clockOf(m), clockOf(f)]);
    assert.equal(cf.showId, cm.showId, 'show id');
    assert.equal(cf.generation, cm.generation, 'generation');
    assert.equal(cf.state, cm.state, 'state');
    assert.equal(cf.rate, cm.rate, 'rate');
    assert.equal(cf.anchorUnixNs, cm.anchorUnixNs, 'the wall-clock anchor, as the master sent it');
    const now = process.hrtime.bigint();
    const diff = Math.abs(positionAt(cf, now) - positionAt(cm, now));
    assert.ok(diff < WALL_OFFSET_SLACK_S, `the clocks differ by ${diff} s at one monotonic instant`);

    // OSC: show control on the follower is refused naming the master; a query is answered.
    const refused = await oscIn(NS_FOLLOWER, follower.osc, '/cuemux/cue/go', [str('A')]);
    assert.equal(refused.status, 'error', JSON.stringify(refused));
    assert.ok(refused.error?.includes(master.tcp), `the refusal names the master: ${JSON.stringify(refused)}`);
    const fStatus = await oscIn(NS_FOLLOWER, follower.osc, '/cuemux/status');
    assert.equal(fStatus.status, 'ok');
    const osc = fStatus.data as { follower?: { master: string; refused: Array<{ cueId: string }> } };
    assert.equal(osc.follower?.master, master.tcp);
    assert.deepEqual(osc.follower?.refused.map((r) => r.cueId), ['B'], 'OSC status lists the cue not played here');

    // The mismatched cue: a cue problem on the follower, not loaded there.
    const st = await f.getStatus();
    const problem = st.show?.problems.find((p) => p.cueId === 'B');
    assert.ok(problem !== undefined && problem.during === 'mirror' && /not the master's file/.test(problem.message),
      JSON.stringify(st.show?.problems, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
    assert.ok(!st.show?.cues.some((c) => c.id === 'B'), 'cue B is not loaded on the follower');
    // ... and on the master, from the follower's report: a cue problem naming the follower, and OSC status.
    const onMasterProblem = await waitFor('the master to list the follower\'s problem', async () =>
      (await m.getStatus()).show?.problems.find((p) => p.cueId === 'B' && p.during.startsWith('follower ')), 20_000);
    assert.match(onMasterProblem.message, /not the master's file/);
    const mStatus = await ok('/cuemux/status') as { followers?: Array<{ follower: string; refused: Array<{ cueId: string }> }> };
    assert.deepEqual(mStatus.followers?.flatMap((x) => x.refused.map((r) => r.cueId)), ['B'], JSON.stringify(mStatus.followers));

    // Stop, then compare the clock mappings of every segment placed on both.
    await ok('/cuemux/cue/stop', [str('A')]);
    await waitFor('cue A stopped on the follower', async () => (await f.getStatus()).show?.cues.find((c) => c.id === 'A')?.state === 'armed', 20_000);
    // The cue list and an auto-follow chain started on the master.
    const fList = (await f.getStatus()).show?.cueList;
    assert.deepEqual(fList?.cueIds, ['L1', 'L2'], 'the follower mirrors the cue list');
    const goL1 = await ok('/cuemux/cue/go', [str('L1')]) as { clockSeconds: number };
    await waitFor('L2 (auto-follow) ended on the master', async () => {
      const c = await clockOf(m);
      const l2 = (await m.getStatus()).show?.cues.find((q) => q.id === 'L2');
      return positionAt(c, process.hrtime.bigint()) > goL1.clockSeconds + 3.2 && l2?.state === 'armed';
    }, 30_000);
    await waitFor('L2 ended on the follower', async () => (await f.getStatus()).show?.cues.find((q) => q.id === 'L2')?.state === 'armed', 20_000);
    await sleep(300);
    await stopPlayer(player, 'play-video');
    stop.abort();
    await Promise.all([onMaster.done, onFollower.done]);
    const key = (s: CueStarted): string => `${s.cueId} #${s.segment} clock ${s.clockSeconds} media ${s.mediaSeconds}..${s.endMediaSeconds}`;
    const mStarts = onMaster.starts.map(key);
    const fStarts = onFollower.starts.map(key);
    assert.ok(mStarts.filter((k) => k.startsWith('A ')).length >= 3, `at least three segments of A on the master (two passes, a resume): ${mStarts.join('; ')}`);
    assert.ok(mStarts.some((k) => k.startsWith('L2 ')) && mStarts.some((k) => k.startsWith('L1 ')), `L1 and its auto-follow L2 started on the master: ${mStarts.join('; ')}`);
    assert.deepEqual(fStarts, mStarts, 'the follower places the same segments at the same clock positions');
    // Stops (pause, stop, end) with the same reason at the same clock position (to the ns the follower maps it through).
    const stopOf = (x: CueStopped): string => `${x.cueId} ${x.reason}`;
    assert.deepEqual(onFollower.stops.map(stopOf), onMaster.stops.map(stopOf), 'the same stops, pauses and ends on both');
    onMaster.stops.forEach((x, i) => {
      const y = onFollower.stops[i];
      assert.ok(Math.abs(y.clockSeconds - x.clockSeconds) < 1e-6 && Math.abs(y.mediaSeconds - x.mediaSeconds) < 1e-6,
        `${stopOf(x)} at clock ${x.clockSeconds} media ${x.mediaSeconds} on the master, ${y.clockSeconds} ${y.mediaSeconds} on the follower`);
    });

    // The player of the follower: FFmpeg's frame for the clock on the ticks of the first two passes.
    const ticks = await readTicks(hash, sync);
    const spans = [0, 1].map((k) => ({ label: `A pass ${k}`, clock: go.clockSeconds + 2 * k, media: start + 1, endMedia: start + 3, ref }));
    // Ticks before the GO (the OSC helper takes a while to start) show the stopped clock at the cue's start: not the cue's.
    const checked = checkTicks(ticks.filter((t) => t.monoNs > goSentNs && t.clock > go.clockSeconds), spans);
    const n = counts(checked);
    process.stdout.write(`      (follower's player, first two passes: ${checked.length} ticks: ${n.ok} in sync, ${n.held} held, ${n.black} black, ${n.wrong} wrong)\n`);
    const notOk = checked.filter((c) => c.verdict !== 'ok').slice(0, 12).map((c) => describeTick(c, checked[0].tick.monoNs)).join('\n');
    if (notOk !== '') process.stdout.write(`${notOk}\n`);
    assert.ok(n.ok > 0.9 * checked.length && checked.length > 100, `the follower's player shows FFmpeg's frames for the clock: ${JSON.stringify(n)}\n${notOk}`);
    assert.equal(n.wrong, 0, 'no tick shows a wrong frame');
    assert.ok(!/cue "A".*mirror failed/.test(follower.stderr()), 'cue A was mirrored without a problem');
  });
});

describe('follower servers: the parts on one machine', function () {
  it('ShowClock.mirror takes the master clock exactly: a new generation is a discontinuity, the same state emits nothing', function () {
    const clock = new ShowClock();
    const seen: Array<{ generation: number; discontinuity: boolean }> = [];
    clock.on('change', (s, discontinuity) => seen.push({ generation: s.generation, discontinuity }));
    const master = { showId: '0123456789abcdef', generation: 7, state: 'playing' as const, source: 'internal' as const, rate: 1, positionSeconds: 12.5, anchorUnixNs: 1_700_000_000_000_000_000n, timecodeRate: '25' };
    clock.mirror(master);
    clock.mirror(master);
    clock.mirror({ ...master, rate: 1.5 });
    clock.mirror({ ...master, generation: 8, state: 'stopped' });
    assert.deepEqual(seen, [{ generation: 7, discontinuity: true }, { generation: 7, discontinuity: false }, { generation: 8, discontinuity: true }]);
    assert.equal(clock.showId, master.showId);
    assert.equal(clock.snapshot.anchorUnixNs, master.anchorUnixNs);
    assert.equal(clock.snapshot.positionSeconds, 12.5);
  });

  it('--follow takes HOST:PORT or unix:PATH (flag, environment) and refuses anything else, naming the setting', function () {
    assert.equal((serveConfig(['--follow', '10.0.0.1:50051'], {}) as ServerConfig).follow, '10.0.0.1:50051');
    assert.equal((serveConfig([], { CUEMUX_FOLLOW: 'unix:/run/cuemux/master.sock' }) as ServerConfig).follow, 'unix:/run/cuemux/master.sock');
    assert.equal((serveConfig([], {}) as ServerConfig).follow, null);
    assert.throws(() => serveConfig(['--follow', 'not an address'], {}), /follow must be HOST:PORT/);
  });
});
