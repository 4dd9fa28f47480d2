/**
 * A show with separate processes: a `cuemux serve`, a `cuemux play-audio` and a `cuemux play-video`, a cue fired
 * over OSC, and the server killed (SIGKILL) and restarted mid-cue. The players' own logs are checked against FFmpeg
 * (frame hashes) and against the show clock: audio presents what is due at each device instant (|pts − clock|
 * within 1 ms, no drift), video presents at every tick the frame whose span covers the clock, and both players ride
 * out the restart and play on.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from './support/cli';
import { checkRenderedPeriods, ffmpegSamples, wavSamples } from './support/audio';
import { framemd5Decode, type FrameMd5 } from './support/ffmpeg-reference';
import { minuteClip } from './support/media';
import { OscPeer } from './support/osc';
import { spawnServer } from './support/server';
import { readTicks, spawnPlayer } from './support/show-check';
import { copyInto, scratchDir } from './support/tmp';
import { waitFor } from './support/wait';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import { readSyncLog } from '../src/players/sync-log';

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;

/** The scheduling policy and real-time priority of every thread of process `pid` (fields 41 and 40 of /proc/PID/task/TID/stat), by thread id. */
async function threadPolicies(pid: number): Promise<Map<number, { policy: number; priority: number }>> {
  const out = new Map<number, { policy: number; priority: number }>();
  for (const tid of await fsp.readdir(`/proc/${pid}/task`)) {
    const stat = await fsp.readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue; // the thread ended meanwhile
    // Fields after the command name (which may hold spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { policy: Number(fields[41 - 3]), priority: Number(fields[40 - 3]) });
  }
  return out;
}

describe('a show with separate processes (server, audio player, video player)', function () {
  this.timeout(300_000); // the waits below have deadlines of their own, which say what did not happen
  const children: ChildProcess[] = [];

  afterEach(async function () {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await new Promise((r) => c.once('exit', r));
      }
    }
  });

  it('bad player settings fail at once with the exit code and a message naming the problem', async function () {
    const dir = await scratchDir('player-cli');
    const bad = await runCli(['play-video', '--socket', path.join(dir, 'none.sock'), '--sink', `y4m:${path.join(dir, 'missing', 'v.y4m')}`]);
    assert.equal(bad.code, 8, bad.stderr); // NOT_FOUND: the sink's folder does not exist
    assert.match(bad.stderr, /missing\/v\.y4m/);
    const fps = await runCli(['play-video', '--fps', 'fast']);
    assert.equal(fps.code, 2, fps.stderr);
    assert.match(fps.stderr, /--fps must be like 60/);
    const wrong = await runCli(['play-audio', '--fps', '25']);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /--fps is an option of play-video/);
    const spin = await runCli(['play-video', '--fps', '500', '--spin-ms', '2']);
    assert.equal(spin.code, 2, spin.stderr);
    assert.match(spin.stderr, /--spin-ms 2 must be under half the display period \(1\.000 ms at --fps 500\)/);
    const rt = await runCli(['play-audio', '--rt-priority', '100']);
    assert.equal(rt.code, 2, rt.stderr);
    assert.match(rt.stderr, /--rt-priority must be an integer 0\.\.99, got "100"/);
    const sink = await runCli(['play-audio', '--sink', 'mp3:/tmp/x']);
    assert.equal(sink.code, 2, sink.stderr);
    assert.match(sink.stderr, /mp3:\/tmp\/x/);
  });

  it('a player started before its server waits for it; an unknown output name is refused by the server', async function () {
    const root = await scratchDir('early-root');
    const run = await scratchDir('early-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    const early = spawnPlayer(['play-video', '--socket', socket, '--output', 'video', '--sink', 'null']);
    children.push(early.child);
    await sleep(500);
    const s = await spawnServer(['--socket', socket, '--media-root', root, '--osc-port', '0']);
    children.push(s.child);
    const client = new MediaClient(socket);
    try {
      await waitFor('the early player following', async () => {
        if (early.child.exitCode !== null) assert.fail(`the player exited (${early.child.exitCode}):\n${early.stderr().slice(-2000)}`);
        return (await client.getStatus()).clients.some((c) => c.output === 'video');
      }, 60_000, 50);
      // The presenting (main) thread alone runs real-time, at --rt-priority (10); the decode worker (without
      // --worker-rt-priority), libuv's pool and FFmpeg's threads do not. (Read once it said it follows.)
      await waitFor('the early player saying it follows', () => early.stderr().includes('cuemux play-video: following output'), 60_000, 50);
      const policies = await threadPolicies(early.child.pid as number);
      const others = [...policies].filter(([tid]) => tid !== early.child.pid).map(([, p]) => p);
      const show = (ps: { policy: number; priority: number }[]): string => ps.map((p) => `${p.policy}/${p.priority}`).join(',');
      assert.ok(others.length >= 5, `${others.length} other threads`);
      if (process.getuid?.() === 0) {
        assert.deepEqual(policies.get(early.child.pid as number), { policy: SCHED_FIFO, priority: 10 });
        assert.deepEqual(others.filter((p) => p.policy !== SCHED_OTHER), [], `other threads' policies/priorities ${show(others)}`);
      } else {
        assert.ok(others.every((p) => p.policy === SCHED_OTHER), `other threads' policies/priorities ${show(others)}`);
        assert.match(early.stderr(), /the presenting thread runs at nice/);
      }
      if (process.getuid?.() === 0) {
        // --worker-rt-priority 5: the decode worker's thread (one thread) at SCHED_FIFO 5, below the presenting one;
        // asked at or above the presenting thread's, it is kept below it and the player says so.
        for (const [asked, got] of [[5, 5], [12, 9]] as const) {
          const p = spawnPlayer(['play-video', '--socket', socket, '--output', 'video', '--sink', 'null', '--worker-rt-priority', String(asked)]);
          children.push(p.child);
          await waitFor(`the player with --worker-rt-priority ${asked} saying it follows`, () => p.stderr().includes('cuemux play-video: following output'), 60_000, 50);
          const threads = await threadPolicies(p.child.pid as number);
          const raised = [...threads].filter(([tid]) => tid !== p.child.pid).map(([, q]) => q).filter((q) => q.policy !== SCHED_OTHER);
          assert.deepEqual(raised, [{ policy: SCHED_FIFO, priority: got }], `--worker-rt-priority ${asked}: ${show(raised)}`);
          if (asked !== got) assert.match(p.stderr(), /--worker-rt-priority 12: the decode worker runs at SCHED_FIFO 9, below the presenting thread's 10/);
          p.child.kill('SIGTERM');
          assert.equal(await p.exited, 0, p.stderr());
        }
      }
    } finally {
      client.close();
    }
    early.child.kill('SIGTERM');
    assert.equal(await early.exited, 0, early.stderr());
    assert.match(early.stderr(), /no server at .*retrying/);
    const bad = await runCli(['play-video', '--socket', socket, '--output', 'no such output!']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /refused to follow output "no such output!": output must be a name/);
  });

  it('plays a cue fired over OSC in sync, and both players resume after the server is killed and restarted', async function () {
    const clip = await minuteClip();
    const reference = framemd5Decode(clip, { streams: [0] });
    const firstAudio = framemd5Decode(clip, { streams: [1] }).then((f) => f.sort((a, b) => (a.pts ?? 0) - (b.pts ?? 0))[0]);
    const root = await scratchDir('show-root');
    await copyInto(clip, root, 'clip.mp4');
    const run = await scratchDir('show-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    const startServer = async (): Promise<{ child: ChildProcess; oscPort: number }> => {
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--osc-port', '0']);
      children.push(s.child);
      assert.ok(s.oscPort !== null, s.stdout());
      return { child: s.child, oscPort: s.oscPort };
    };
    let server = await startServer();
    const out = await scratchDir('show-out');
    const file = (n: string): string => path.join(out, n);
    const audio = spawnPlayer(['play-audio', '--socket', socket, '--channels', '1', '--sink', `wav:${file('audio.wav')}`, '--sync-log', file('audio-sync.jsonl')]);
    const video = spawnPlayer(['play-video', '--socket', socket, '--fps', '50', '--sink', `hash:${file('frames.jsonl')}`, '--sync-log', file('video-sync.jsonl')]);
    children.push(audio.child, video.child);
    const client = new MediaClient(socket);
    const peer = await OscPeer.open();
    try {
      // Both players follow before the cue is fired.
      await waitFor('both players following', async () => {
        for (const p of [audio, video]) if (p.child.exitCode !== null) assert.fail(`a player exited (${p.child.exitCode}):\n${p.stderr().slice(-2000)}`);
        const st = await client.getStatus();
        return ['audio', 'video'].every((o) => st.clients.some((c) => c.output === o));
      }, 60_000, 50);
      const osc = async (address: string, args: Parameters<OscPeer['request']>[2] = []): Promise<unknown> => {
        const r = await peer.request(server.oscPort, address, args);
        assert.equal(r.status, 'ok', JSON.stringify(r));
        return r.data;
      };
      await osc('/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'f', value: 5 }, { type: 'f', value: 35 }]);
      await osc('/cuemux/clock/play');
      const { clock } = await osc('/cuemux/status') as { clock: { positionSeconds: number } };
      const goAt = clock.positionSeconds + 0.5;
      await osc('/cuemux/cue/go', [{ type: 's', value: 'Q' }, { type: 'd', value: goAt }]);
      // Mid-cue (3 s of its 30 on the clock): the server dies and comes back.
      await waitFor('the clock 3 s into the cue', async () => (await osc('/cuemux/status') as { clock: { positionSeconds: number } }).clock.positionSeconds > goAt + 3, 60_000, 100);
      server.child.kill('SIGKILL');
      const killed = monoNs();
      await new Promise((r) => server.child.once('exit', r));
      await sleep(200);
      server = await startServer();
      const ready = monoNs();
      // Wait (generously: a loaded machine restarts slowly) until both players present the cue again after the
      // restart, then for one more second of the clock; the players stop mid-cue (the cue is long enough for that).
      const backAt = await waitFor('both players presenting the cue again after the restart', async () => {
        const v = (await readSyncLog(file('video-sync.jsonl')).catch(() => [])).find((r) => r.monoNs > ready && r.extra.cue === 'Q' && r.extra.held !== true);
        const a = (await readSyncLog(file('audio-sync.jsonl')).catch(() => [])).find((r) => r.monoNs > ready && r.extra.cue === 'Q' && !(Number(r.extra.underrun) > 0));
        return v !== undefined && a !== undefined ? Math.max(v.clockSeconds, a.clockSeconds) : undefined;
      }, 90_000, 200);
      await waitFor('one more second of the clock', async () => (await osc('/cuemux/status') as { clock: { positionSeconds: number } }).clock.positionSeconds > backAt + 1, 60_000, 100);
      assert.ok(backAt < goAt + 30, 'the players came back before the cue ended');
      audio.child.kill('SIGTERM');
      video.child.kill('SIGTERM');
      assert.equal(await audio.exited, 0, audio.stderr());
      assert.equal(await video.exited, 0, video.stderr());

      // Video: every tick inside the cue shows ffmpeg's frame for the clock's media time, or the picture already on
      // screen logged as held (a frame not decoded in time: the outage, or a loaded machine), or black before the
      // cue's first picture or after the kill (a player that reconnects starts the cue afresh): never another frame. And the player comes back: after the
      // new server is up it shows the cue's frames again, and from its first frame after the restart on, no black.
      const frames = (await reference).sort((a, b) => a.pts! - b.pts!);
      const sec = (f: FrameMd5): number => (f.pts ?? 0) * f.timeBase.num / f.timeBase.den;
      const ticks = await readTicks(file('frames.jsonl'), file('video-sync.jsonl'));
      assert.ok(ticks.every((t) => t.sync !== null), 'every presented tick has its sync log line');
      // What a tick showed, for the failure message: the frame's index in the clip, black, or not a frame of it.
      const indexOf = new Map(frames.map((f, i) => [f.md5, i]));
      const name = (md5: string | null): string => (md5 === null ? 'black' : `frame ${indexOf.get(md5) ?? 'not of the clip'}`);
      let inside = 0;
      const inSync: bigint[] = [];
      const held: bigint[] = [];
      const black: bigint[] = [];
      const wrong: string[] = [];
      for (const t of ticks) {
        const m = 5 + (t.clock - goAt);
        if (m < 5 || m >= 35) continue;
        inside++;
        const expected = frames.filter((f) => sec(f) <= m + 1e-9).length - 1;
        if (t.md5 === frames[expected]?.md5) inSync.push(t.monoNs);
        else if (t.sync?.held === true) held.push(t.monoNs);
        else if (t.md5 === null && (t.monoNs > killed || inSync.length === 0)) black.push(t.monoNs);
        else wrong.push(`${(Number(t.monoNs - ready) / 1e6).toFixed(0)} ms after the restart: ${name(t.md5)} for ${expected}`);
      }
      assert.deepEqual(wrong, [], `ticks that showed another picture than the frame for the clock (${inside} ticks in the cue; the video player said:\n${video.stderr().slice(-4000)})`);
      assert.ok(inSync.some((m) => m < killed), 'the cue was shown before the kill');
      const back = inSync.find((m) => m > ready);
      assert.ok(back !== undefined, `the cue's frames were not shown again after the restart (the video player said:\n${video.stderr().slice(-4000)})`);
      assert.deepEqual(black.filter((m) => m > back).length, 0, 'black again once the player was back in sync');
      const videoResume = back;

      // Audio: every period of the cue presents what the clock asks for at its device instant (sample-accurate,
      // no drift); periods left silent (underruns) only after the kill, and the cue plays again after the restart.
      const periods = (await readSyncLog(file('audio-sync.jsonl'))).filter((r) => r.extra.cue === 'Q');
      const err = periods.map((r) => Math.abs((r.ptsSeconds as number) - r.clockSeconds));
      assert.ok(Math.max(...err) <= 0.001, `max |pts − clock| ${(Math.max(...err) * 1e3).toFixed(3)} ms`);
      // And what the audio player wrote is FFmpeg's samples for every period it rendered in full, restart included.
      const first = ((await firstAudio).pts ?? 0) / 48000;
      const checked = checkRenderedPeriods(periods, await wavSamples(file('audio.wav')), await ffmpegSamples(clip, 1), first, 1);
      const rendered = periods.filter((r) => !(Number(r.extra.underrun) > 0));
      assert.ok(rendered.some((r) => r.monoNs < killed), 'audio of the cue played before the kill');
      const audioBack = rendered.find((r) => r.monoNs > ready);
      assert.ok(audioBack !== undefined, `the cue's audio did not play again after the restart (the audio player said:\n${audio.stderr().slice(-4000)})`);
      const dry = periods.filter((r) => Number(r.extra.underrun) > 0).map((r) => r.monoNs);
      assert.deepEqual(dry.filter((m) => m < killed).length, 0, 'audio underruns before the kill');
      const audioResume = audioBack.monoNs;
      // Tick lateness is a timing of this machine: reported, not asserted (bench:sync measures it over 5 minutes).
      // Reported twice: over every tick, and over the ticks away from the outage (a server and its players starting
      // up again on two cores is not the steady state the 1 ms budget is for).
      const ticksLog = await readSyncLog(file('video-sync.jsonl'));
      const lateness = (rs: typeof ticksLog): string => {
        const late = rs.map((r) => Number(r.extra.late_ns) / 1e6).sort((x, y) => x - y);
        return `p50 ${late[Math.floor(late.length / 2)].toFixed(3)} ms, p99 ${late[Math.floor(late.length * 0.99)].toFixed(3)} ms over ${late.length} ticks`;
      };
      const steady = ticksLog.filter((r) => r.monoNs < killed || r.monoNs > ready + 2_000_000_000n);
      process.stdout.write(`      (video tick lateness ${lateness(ticksLog)}; away from the outage ${lateness(steady)})\n`);
      process.stdout.write(`      (${held.length + black.length} video ticks of ${inside} held or black and ${dry.length} audio periods of ${periods.length} ran dry; ${checked} samples checked against FFmpeg; ` +
        `players back in sync ${(Number(videoResume - ready) / 1e6).toFixed(0)} ms (video) and ${(Number(audioResume - ready) / 1e6).toFixed(0)} ms (audio) after the new server was up)\n`);
    } finally {
      client.close();
      peer.close();
    }
  });
});
