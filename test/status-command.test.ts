/**
 * `cuemux status` against a real server (child process) with a loaded cue list: the show (clock, timecode, standby
 * cue, each loaded cue's state, the cue list file and its last error) beside media and clients, as text and as
 * `--json`. The reference is independent of the server: the cue list file this test wrote, and the clock it set over
 * OSC (a timecode, a rate).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { ensureMedia } from './support/media';
import { copyInto, scratchDir } from './support/tmp';
import { spawnServer } from './support/server';
import { runCli } from './support/cli';
import { OscPeer, type Arg } from './support/osc';
import { d, s } from './support/show-check';
import { waitFor } from './support/wait';

/** What `status --json` prints (the fields this test reads). */
interface StatusJson {
  media: Array<{ path: string }>;
  clients: unknown[];
  show: {
    clock: { state: string; rate: number; positionSeconds: number; timecode: string; timecodeRate: string; source: string; generation: number };
    chaseLocked: boolean;
    cueList: { path: string; cueIds: string[]; standby?: string; reloads: number; lastError: string };
    cues: Array<{
      id: string; name: string; media: string; state: string; inSeconds: number; outSeconds?: number; loop: boolean;
      outputs: Array<{ output: string; streams: number[] }>; positionSeconds?: number; clockSeconds?: number; prefetchBytes: number;
    }>;
  };
}

describe('cuemux status shows the show', function () {
  this.timeout(120_000);
  let root: string;
  let socket: string;
  let cueFile: string;
  let server: ChildProcess | undefined;
  let oscPort: number;
  let peer: OscPeer;

  /** The cue list this test wrote: the reference for the cue list part of the status. */
  const CUES = {
    version: 1, name: 'status test', timecodeRate: '25',
    cues: [
      { id: 'A', name: 'opening', media: 'clip.mp4', in: 1, out: 3, loop: true, outputs: { stage: ['video'], main: ['audio'] } },
      { id: 'B', name: 'second', media: 'clip.mp4' },
      { id: 'C', media: 'clip.mp4', in: '00:00:02:00' },
    ],
  };

  before(async function () {
    root = await scratchDir('status-root');
    const run = await scratchDir('status-run');
    await fsp.chmod(run, 0o700);
    await copyInto(await ensureMedia('mp4-h264-aac'), root, 'clip.mp4');
    socket = path.join(run, 'cuemux.sock');
    cueFile = path.join(run, 'cues.json');
    await fsp.writeFile(cueFile, JSON.stringify(CUES, null, 1));
    const started = await spawnServer(['--socket', socket, '--media-root', root, '--cue-list', cueFile, '--state-file', 'none'], { CUEMUX_LOG_LEVEL: 'warn' });
    server = started.child;
    assert.ok(started.oscPort !== null);
    oscPort = started.oscPort;
    peer = await OscPeer.open();
  });

  after(async function () {
    peer?.close();
    if (server !== undefined && server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  });

  async function osc(address: string, args: Arg[] = []): Promise<void> {
    const r = await peer.request(oscPort, address, args);
    assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
  }

  async function statusJson(): Promise<StatusJson> {
    const r = await runCli(['status', '--socket', socket, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  }

  it('--json: clock, timecode, standby cue, each loaded cue and the cue list file, as the test set them', async function () {
    // The clock, set over OSC: located to a timecode (stopped, so it stays there) at half speed.
    await osc('/cuemux/clock/locate', [s('00:00:12:10')]);
    await osc('/cuemux/clock/rate', [d(0.5)]);
    await osc('/cuemux/cue/load', [s('A')]);
    await osc('/cuemux/cue/standby', [s('C')]);
    const st = await statusJson();
    const c = st.show.clock;
    assert.equal(c.state, 'stopped');
    assert.equal(c.source, 'internal');
    assert.equal(c.rate, 0.5);
    assert.equal(c.timecode, '00:00:12:10');
    assert.equal(c.timecodeRate, '25');
    assert.ok(Math.abs(c.positionSeconds - (12 + 10 / 25)) < 1e-9, `position ${c.positionSeconds}`);
    assert.equal(st.show.chaseLocked, false);
    // The cue list: the file written, its ids in order, the standby cue set over OSC, no error.
    assert.equal(st.show.cueList.path, cueFile);
    assert.deepEqual(st.show.cueList.cueIds, CUES.cues.map((q) => q.id));
    assert.equal(st.show.cueList.standby, 'C');
    assert.equal(st.show.cueList.lastError, '');
    // The loaded cue A, from its definition in the file; C may be pre-armed as the standby cue, B is not loaded.
    const a = st.show.cues.find((q) => q.id === 'A');
    assert.ok(a !== undefined, JSON.stringify(st.show.cues));
    assert.equal(a.name, 'opening');
    assert.equal(a.media, path.join(root, 'clip.mp4'));
    assert.equal(a.state, 'armed');
    assert.equal(a.inSeconds, 1);
    assert.equal(a.outSeconds, 3);
    assert.equal(a.loop, true);
    // Streams of the corpus clip: 0 video (H.264), 1 audio (AAC).
    assert.deepEqual(a.outputs.map((o) => [o.output, o.streams]).sort(), [['main', [1]], ['stage', [0]]]);
    assert.equal(a.positionSeconds, undefined, 'an armed cue has no position');
    assert.ok(a.prefetchBytes > 0, 'loaded with its in-point prefetched');
    assert.ok(!st.show.cues.some((q) => q.id === 'B'));
    // Media and clients are still there: the cue's media is open.
    assert.ok(st.media.some((m) => m.path === path.join(root, 'clip.mp4')));
  });

  it('text: the same show in lines a technician reads', async function () {
    const r = await runCli(['status', '--socket', socket]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Show clock: stopped at rate 0\.5, 00:00:12:10 @ 25 \(12\.400 s\), generation \d+$/m);
    assert.ok(r.stdout.includes(`Cue list: ${cueFile}, 3 cues, standby "C", 0 edits applied\n`), r.stdout);
    assert.match(r.stdout, new RegExp(`^  cue "A" \\(opening\\)  armed; ${path.join(root, 'clip.mp4').replace(/[.]/g, '\\.')}, in 1\\.000 s, out 3\\.000 s, looping; outputs (stage\\[0\\] main\\[1\\]|main\\[1\\] stage\\[0\\]); prefetch [\\d.]+ MB$`, 'm'));
    assert.match(r.stdout, /^Active: \d+ media open, \d+ streams$/m);
  });

  it('a cue list edit that cannot be applied shows as the cue list\'s last error; the previous list stays in effect', async function () {
    await fsp.writeFile(cueFile, JSON.stringify({ ...CUES, cues: [...CUES.cues, { id: 'A', media: 'clip.mp4' }] }));
    // The server applies edits when it sees the file change: ask until it has seen it (no timing is asserted).
    const st = await waitFor('the failed edit in the status', async () => {
      const now = await statusJson();
      return now.show.cueList.lastError !== '' && now;
    }, 30_000, 50);
    assert.match(st.show.cueList.lastError, /cues\[3\]: cue id "A" is used twice/, JSON.stringify(st.show.cueList));
    assert.deepEqual(st.show.cueList.cueIds, CUES.cues.map((q) => q.id));
    const text = await runCli(['status', '--socket', socket]);
    assert.match(text.stdout, /^ {2}LAST EDIT NOT APPLIED: .*cue id "A" is used twice$/m);
  });

  it('no server: exit 1 with a message naming where it looked', async function () {
    const r = await runCli(['status', '--socket', `${socket}.nobody`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no cuemux server answers at unix:.*\.nobody/);
  });
});

describe('cuemux status shows the cue problems the show met on its own', function () {
  this.timeout(120_000);

  it('a cue whose media went missing fails to pre-arm after the GO before it: status names the cue, what failed and the file', async function () {
    const root = await scratchDir('status-problem-root');
    const run = await scratchDir('status-problem-run');
    await fsp.chmod(run, 0o700);
    await copyInto(await ensureMedia('mp4-h264-aac'), root, 'clip.mp4');
    const socket = path.join(run, 'cuemux.sock');
    const cueFile = path.join(run, 'cues.json');
    await fsp.writeFile(cueFile, JSON.stringify({ version: 1, cues: [{ id: 'A', media: 'clip.mp4' }, { id: 'B', media: 'gone.mp4' }] }));
    const started = await spawnServer(['--socket', socket, '--media-root', root, '--cue-list', cueFile, '--state-file', 'none'], { CUEMUX_LOG_LEVEL: 'error' });
    const peer = await OscPeer.open();
    try {
      assert.ok(started.oscPort !== null);
      const go = await peer.request(started.oscPort, '/cuemux/cue/go', [s('A')]);
      assert.equal(go.status, 'ok', JSON.stringify(go));
      // The GO arms the next cue a moment later (no console is told when that fails): ask until the problem is there.
      type Problem = { cueId: string; during: string; message: string; unixNs: number };
      const problems = await waitFor('the pre-arm problem in the status', async () => {
        const r = await runCli(['status', '--socket', socket, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const st = JSON.parse(r.stdout) as { show: { problems: Problem[] } };
        return st.show.problems.length > 0 && st.show.problems;
      }, 30_000, 50);
      assert.deepEqual(problems.map((p) => [p.cueId, p.during]), [['B', 'pre-arm']]);
      assert.match(problems[0].message, /gone\.mp4/);
      const text = await runCli(['status', '--socket', socket]);
      assert.match(text.stdout, /^Cue problems: 1$/m);
      assert.match(text.stdout, /^ {2}cue "B": pre-arm failed at \d{4}-\d\d-\d\dT[\d:.]+Z: .*gone\.mp4/m);
    } finally {
      peer.close();
      started.child.kill('SIGTERM');
      await once(started.child, 'exit');
    }
  });
});
