/**
 * README promises of show control that no other test checked, each tested as the README words it:
 * - crash recovery: "saved atomically on every change and every 2 s to `--state-file` (default beside the socket)";
 *   "A server started within 30 s of one that stopped without a clean shutdown ... takes the show back"; and
 *   `--state-file none` ("`none` to disable");
 * - `/cuemux/clock/stop` ("stop; the position stays"), `/cuemux/clock/fps` (the timecode rates), `/cuemux/cue/standby`
 *   ("the cue the next id-less GO starts");
 * - "A locate moves what is presented, not the mapping (locate before X and the cue waits; past its end and it ends)".
 * No wall-clock windows: tests wait for the event they need (generous deadlines), and where a delay is the behaviour
 * they check only that the event did not come before it, on the clock the server uses.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { minuteClip } from './support/media';
import { d, s as str } from './support/show-check';
import { OscPeer, type Arg, type Reply } from './support/osc';
import { spawnServer, startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { killChild, waitFor } from './support/wait';
import { clockPositionAt } from '../src/clients/clock-position';
import { monoNs } from '../src/common/time-source';
import type { ClockState, FollowEvent } from '../src/generated/cuemux/v1/media_server';

interface StatusClock { state: string; positionSeconds: number; generation: number; timecode: string; timecodeRate: string }
interface Status { clock: StatusClock; cues: Array<{ id: string; state: string }>; cueList: { playhead: string | null } }
interface SavedState { savedUnixNs: string; clean: boolean; clock: { state: string; generation: number }; cues: unknown[] }

describe('README promises: show control', function () {
  this.timeout(180_000);
  const children: ChildProcess[] = [];
  const peers: OscPeer[] = [];
  afterEach(async function () {
    for (const p of peers.splice(0)) p.close();
    for (const c of children.splice(0)) await killChild(c);
  });

  /** Send `address` to `port` and return the reply. */
  async function request(port: number, address: string, args: Arg[] = []): Promise<Reply> {
    let peer = peers[0];
    if (peer === undefined) {
      peer = await OscPeer.open();
      peers.push(peer);
    }
    return peer.request(port, address, args, 20_000);
  }
  /** The reply's data; the reply must be ok. */
  async function ok(port: number, address: string, args: Arg[] = []): Promise<unknown> {
    const r = await request(port, address, args);
    assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
    return r.data;
  }
  const status = async (port: number): Promise<Status> => await ok(port, '/cuemux/status') as Status;

  describe('crash recovery (--state-file)', function () {
    /** A media root with the minute clip, a private run folder and its socket path. */
    async function dirs(): Promise<{ root: string; socket: string }> {
      const root = await scratchDir('rp-root');
      await copyInto(await minuteClip(), root, 'clip.mp4');
      const run = await scratchDir('rp-run');
      await fsp.chmod(run, 0o700);
      return { root, socket: path.join(run, 'cuemux.sock') };
    }
    /** Start `cuemux serve` on them (the caller's afterEach kills it). */
    async function serve(root: string, socket: string, extra: string[] = []): Promise<{ child: ChildProcess; osc: number }> {
      const srv = await spawnServer(['--socket', socket, '--media-root', root, ...extra]);
      children.push(srv.child);
      assert.ok(srv.oscPort !== null, srv.stdout());
      return { child: srv.child, osc: srv.oscPort };
    }
    /** SIGKILL a server and wait until it is gone. */
    async function crash(child: ChildProcess): Promise<void> {
      await killChild(child);
    }
    const readState = async (file: string): Promise<SavedState> => JSON.parse(await fsp.readFile(file, 'utf8')) as SavedState;

    it('the state file (default <socket>.show.json) is saved on a change, and again every 2 s while nothing changes', async function () {
      const { root, socket } = await dirs();
      const file = `${socket}.show.json`;
      const srv = await serve(root, socket);
      assert.ok(existsSync(file), 'saved beside the socket');
      // A change is saved (waited for, not timed).
      await ok(srv.osc, '/cuemux/clock/play', [d(10)]);
      await waitFor('the play to be saved', async () => (await readState(file)).clock.state === 'playing', 30_000);
      // Then nothing changes: each further save is a heartbeat, at least 2 s after the one before (the save time is
      // the server's own clock, written in the file).
      // Three saves: the first may be the play's (a change), so at least one gap between two heartbeats is checked
      // (four saves, two such gaps, took 2 s more and check the same rule once more).
      const saves: bigint[] = [];
      await waitFor('two heartbeat saves after the play\'s', async () => {
        const t = BigInt((await readState(file)).savedUnixNs);
        if (saves.at(-1) !== t) saves.push(t);
        return saves.length >= 3;
      }, 60_000, 50);
      const gaps = saves.slice(1).map((t, i) => Number(t - saves[i]) / 1e6);
      assert.ok(gaps.length >= 2, `saves ${gaps.join(', ')} ms apart`);
      // The first value may be the save of the play (a change); the heartbeats after it are 2 s apart or more.
      for (const g of gaps.slice(1)) assert.ok(g >= 1995, `heartbeat saves ${gaps.map((x) => x.toFixed(0)).join(', ')} ms apart: one before 2 s`);
    });

    it('a server killed mid-cue and started again within 30 s takes the show back; 30 s or more later it does not', async function () {
      const { root, socket } = await dirs();
      const file = `${socket}.show.json`;
      const first = await serve(root, socket);
      await ok(first.osc, '/cuemux/cue/load', [str('Q'), str('clip.mp4')]);
      await ok(first.osc, '/cuemux/cue/go', [str('Q')]);
      await waitFor('the GO to be saved', async () => (await readState(file)).cues.length === 1 && (await readState(file)).clock.state === 'playing', 30_000);
      await crash(first.child);
      const saved = await readState(file);
      assert.equal(saved.clean, false);
      // Age the saved state by moving its save time back (the server's own record of when it saved): 15 s is within
      // the window, 45 s is not. The rest of the file is what the killed server wrote.
      const aged = async (seconds: number): Promise<void> => {
        const ns = BigInt(saved.savedUnixNs) - BigInt(seconds) * 1_000_000_000n;
        await fsp.writeFile(file, JSON.stringify({ ...saved, savedUnixNs: String(ns) }));
      };
      await aged(15);
      const second = await serve(root, socket);
      const within = await status(second.osc);
      assert.deepEqual(within.cues.map((c) => [c.id, c.state]), [['Q', 'playing']], 'resumed within 30 s');
      assert.equal(within.clock.state, 'playing');
      assert.equal(within.clock.generation, saved.clock.generation, 'on the same clock generation');
      await crash(second.child);
      await aged(45);
      const third = await serve(root, socket);
      const late = await status(third.osc);
      assert.deepEqual(late.cues, [], 'not resumed 45 s later');
      assert.equal(late.clock.state, 'stopped');
    });

    it('--state-file none: no state file, and a server killed mid-cue is not taken back', async function () {
      const { root, socket } = await dirs();
      const first = await serve(root, socket, ['--state-file', 'none']);
      await ok(first.osc, '/cuemux/cue/load', [str('Q'), str('clip.mp4')]);
      await ok(first.osc, '/cuemux/cue/go', [str('Q')]);
      assert.deepEqual((await status(first.osc)).cues.map((c) => c.id), ['Q']);
      await crash(first.child);
      assert.deepEqual((await fsp.readdir(path.dirname(socket))).filter((n) => n.includes('show')), [], 'no state file beside the socket');
      const second = await serve(root, socket, ['--state-file', 'none']);
      const st = await status(second.osc);
      assert.deepEqual(st.cues, []);
      assert.equal(st.clock.state, 'stopped');
    });
  });

  describe('OSC addresses', function () {
    let srv: TestServer;
    beforeEach(async function () {
      srv = await startServer({ timecodeRate: '25' });
      await copyInto(await minuteClip(), srv.root, 'clip.mp4');
    });
    afterEach(async function () {
      await srv.stop();
    });

    it('/cuemux/clock/stop: the clock stops, the position stays (the same generation: no discontinuity)', async function () {
      const played = await ok(srv.oscPort, '/cuemux/clock/play', [d(10)]) as StatusClock;
      await waitFor('the clock past 10.2', async () => (await status(srv.oscPort)).clock.positionSeconds > 10.2, 30_000, 20);
      const stopped = await ok(srv.oscPort, '/cuemux/clock/stop') as StatusClock;
      assert.equal(stopped.state, 'stopped');
      assert.ok(stopped.positionSeconds > 10.2, `stopped at ${stopped.positionSeconds}`);
      assert.equal(stopped.generation, played.generation, 'a stop is no discontinuity: the position goes on from where it stood');
      // The position stays: whatever time passes, the status says the same position (and so does WatchClock).
      let watched: ClockState | null = null;
      for await (const c of srv.client().watchClock({}, { timeout: 20_000 })) {
        watched = c;
        break;
      }
      assert.ok(watched !== null);
      assert.deepEqual([watched.state, watched.positionSeconds], ['stopped', stopped.positionSeconds]);
      const later = (await status(srv.oscPort)).clock;
      assert.deepEqual([later.state, later.positionSeconds, later.generation], ['stopped', stopped.positionSeconds, stopped.generation]);
    });

    it('/cuemux/clock/fps: every listed rate is taken, and timecode positions are read at it', async function () {
      for (const name of ['23.976', '24', '25', '29.97', '29.97df', '30', '48', '50', '59.94', '59.94df', '60']) {
        const c = await ok(srv.oscPort, '/cuemux/clock/fps', [str(name)]) as StatusClock;
        assert.equal(c.timecodeRate, name);
      }
      const bad = await request(srv.oscPort, '/cuemux/clock/fps', [str('31')]);
      assert.equal(bad.status, 'error');
      assert.equal(bad.code, 'INVALID_ARGUMENT');
      assert.equal((await status(srv.oscPort)).clock.timecodeRate, '60', 'a refused rate changes nothing');
      // SMPTE arithmetic, independent of cuemux: HH:MM:SS:FF is frame ((HH*60+MM)*60+SS)*nominal+FF (drop-frame skips
      // frames 0 and 1 of every minute not a multiple of 10), presented at num/den frames per second.
      const cases: Array<[string, string, number]> = [
        ['25', '00:00:02:12', 62 / 25],
        ['50', '00:00:02:12', 112 / 50],
        ['23.976', '00:00:01:00', (24 * 1001) / 24000],
        ['29.97df', '00:01:00;02', (1800 * 1001) / 30000],
      ];
      for (const [rate, tc, seconds] of cases) {
        await ok(srv.oscPort, '/cuemux/clock/fps', [str(rate)]);
        const c = await ok(srv.oscPort, '/cuemux/clock/locate', [str(tc)]) as StatusClock;
        assert.ok(Math.abs(c.positionSeconds - seconds) < 1e-9, `${tc} at ${rate}: ${c.positionSeconds} s, not ${seconds}`);
        assert.equal(c.timecode, tc, `the clock shows ${tc} at ${rate}`);
      }
      // Frame 25 does not exist at 25 fps.
      await ok(srv.oscPort, '/cuemux/clock/fps', [str('25')]);
      assert.equal((await request(srv.oscPort, '/cuemux/clock/locate', [str('00:00:02:25')])).status, 'error');
    });

    it('/cuemux/cue/standby: the next id-less GO starts that cue', async function () {
      const list = path.join(srv.root, 'show.json'); // show control loads cue lists from beneath the media roots only
      await fsp.writeFile(list, JSON.stringify({ version: 1, cues: [{ id: '1', media: 'clip.mp4' }, { id: '2', media: 'clip.mp4', in: 10 }, { id: '3', media: 'clip.mp4', in: 20 }] }));
      await ok(srv.oscPort, '/cuemux/cuelist/load', [str(list)]);
      assert.equal((await status(srv.oscPort)).cueList.playhead, '1');
      assert.deepEqual(await ok(srv.oscPort, '/cuemux/cue/standby', [str('3')]), { standby: '3' });
      assert.equal((await status(srv.oscPort)).cueList.playhead, '3');
      const go = await ok(srv.oscPort, '/cuemux/cue/go') as { id: string };
      assert.equal(go.id, '3', 'the id-less GO started the standby cue');
      assert.deepEqual((await status(srv.oscPort)).cues.map((c) => c.id), ['3']);
      const unknown = await request(srv.oscPort, '/cuemux/cue/standby', [str('9')]);
      assert.equal(unknown.status, 'error');
      assert.match(String(unknown.error), /9/);
    });

    it('"locate before X and the cue waits; past its end and it ends"', async function () {
      const lead = 0.5;
      const c = srv.client();
      const ctl = new AbortController();
      const events: Array<{ e: FollowEvent; atMono: bigint }> = [];
      const following = (async () => {
        for await (const e of c.follow({ output: 'main', leadSeconds: lead }, { signal: ctl.signal })) events.push({ e, atMono: monoNs() });
      })().catch(() => undefined);
      try {
        await ok(srv.oscPort, '/cuemux/cue/load', [str('Q'), str(JSON.stringify({ media: 'clip.mp4', in: 0, out: 6, outputs: { main: ['video'] } }))]);
        await ok(srv.oscPort, '/cuemux/clock/play', [d(0)]);
        // The cue's in-point at clock X = 3.
        const X = 3;
        await ok(srv.oscPort, '/cuemux/cue/go', [str('Q'), d(X)]);
        const started = await waitFor('the cue\'s start', () => events.find((x) => x.e.event?.$case === 'started')?.e.event, 30_000);
        assert.ok(started.$case === 'started' && started.value.clockSeconds === X);
        await waitFor('packets of the cue', () => events.some((x) => x.e.event?.$case === 'packets'), 30_000);
        await waitFor('the clock past X', async () => (await status(srv.oscPort)).clock.positionSeconds > X + 0.5, 30_000, 20);
        // Locate to 2 s before X: a new generation; the cue keeps its place on the clock.
        const located = await ok(srv.oscPort, '/cuemux/clock/locate', [d(X - 2)]) as StatusClock;
        const from = events.length;
        const st = await status(srv.oscPort);
        assert.deepEqual(st.cues.map((q) => [q.id, q.state]), [['Q', 'playing']], 'the cue is still on');
        // Its packets of the new generation come only once the clock is within the lead of X: not before.
        const next = await waitFor('packets after the locate', () => events.slice(from).find((x) => x.e.event?.$case === 'packets' && x.e.event.value.generation === BigInt(located.generation)), 30_000);
        const clocks = events.filter((x) => x.e.event?.$case === 'clock' && x.e.event.value.generation === BigInt(located.generation) && x.atMono <= next.atMono);
        const clock = clocks.at(-1)?.e.event;
        assert.ok(clock?.$case === 'clock', 'the clock of the new generation came first');
        const at = clockPositionAt(clock.value, next.atMono);
        assert.ok(at >= X - lead, `packets after the locate arrived at clock ${at}, before ${X - lead} (X ${X} − lead ${lead})`);
        const p = next.e.event?.$case === 'packets' ? next.e.event.value.packets : [];
        const firstRun = events.find((x) => x.e.event?.$case === 'packets')?.e.event;
        const p0 = firstRun?.$case === 'packets' ? firstRun.value.packets[0] : undefined;
        assert.ok(p.length > 0 && p[0].key && p0 !== undefined && p[0].entry === p0.entry, 'again from the in-point\'s keyframe, as at the GO');
        // Past its end (X + 6): it ends.
        await ok(srv.oscPort, '/cuemux/clock/locate', [d(X + 7)]);
        const stop = await waitFor('the cue\'s end', () => events.find((x) => x.e.event?.$case === 'stopped')?.e.event, 30_000);
        assert.ok(stop.$case === 'stopped' && stop.value.reason === 'ended', JSON.stringify(stop));
      } finally {
        ctl.abort();
        await following;
      }
    });
  });
});
