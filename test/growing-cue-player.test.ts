/**
 * A real `cuemux play-video` process follows a cue on a file that is still being written (a fragmented MP4, as a live
 * recorder writes it): the cue is loaded on the file's first bytes, the player prepares it once its in-point is
 * written, and a GO while the file grows plays on past what was written at the GO. Judged from outside: the player's
 * hash sink (the MD5 of every presented picture) joined with its sync log, each tick's instant mapped to the cue's
 * media time by the server's show clock, against FFmpeg's decode (framemd5) of the final file. Nothing here measures
 * time: the writer is held at its pace until the test has seen what it needs (support/growing-writers).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { makeMedia, minuteClip } from './support/media';
import { ffmpegPipeWriter } from './support/growing-writers';
import { startServer, type TestServer } from './support/server';
import { OscPeer, type Arg } from './support/osc';
import { readTicks, Show, spawnPlayer, stopPlayer, VideoReference, waitPrepared } from './support/show-check';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach, exitOf, waitFor } from './support/wait';
import type { ClockState } from '../src/generated/cuemux/v1/media_server';

/** Seconds of the clip the writer muxes, fed at 1.2 times its rate until released (ahead of a cue at the clock's rate). */
const WRITE_SECONDS = 6;

/** Fragmented MP4, a fragment every 100 ms (what `ffmpeg -movflags frag_keyframe+empty_moov` writes live). */
const FMP4_ARGS = ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '100000', '-f', 'mp4'];

/** How far behind the frame due a tick's picture may be, in s: well under --growing-wait-ms (1.5 s). */
const LATE_LIMIT_S = 1;

const str = (value: string): Arg => ({ type: 's', value });
const dbl = (value: number): Arg => ({ type: 'd', value });

describe('play-video following a cue on a growing file', function () {
  this.timeout(120_000);
  const children = childrenKilledAfterEach();
  let srv: TestServer;
  let peer: OscPeer;
  let clipBytes: Buffer;

  before(async function () {
    clipBytes = await fsp.readFile(await makeMedia('av-6s-160x120.mkv', ['-i', await minuteClip(), '-t', String(WRITE_SECONDS), '-c', 'copy']));
    srv = await startServer({ growingWaitMs: 1500 });
    peer = await OscPeer.open();
  });
  after(async function () {
    peer.close();
    await srv.stop();
  });

  it('loaded on the first bytes, prepared once its in-point is written, GO\'d while the file grows: every tick shows FFmpeg\'s frame of the final file for the clock, past what was written at the GO', async function () {
    const osc = async (address: string, args: Arg[] = []): Promise<unknown> => {
      const r = await peer.request(srv.oscPort, address, args);
      assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
      return r.data;
    };
    const out = await scratchDir('growing-player');
    const hashFile = path.join(out, 'frames.jsonl');
    const syncFile = path.join(out, 'sync.jsonl');
    const player = spawnPlayer(['play-video', '--socket', srv.socket, '--output', 'video', '--fps', '25', '--sink', `hash:${hashFile}`, '--sync-log', syncFile]);
    children.push(player.child);
    const client = srv.client();
    await waitFor('the player following output "video"', async () => (await client.getStatus()).clients.some((c) => c.output === 'video'));

    const file = path.join(srv.root, 'landing.mp4');
    const paced = ffmpegPipeWriter(clipBytes, WRITE_SECONDS, file, FMP4_ARGS, 1.2);
    children.push(paced.process);
    let writerExited = false;
    const writerDone = exitOf(paced.process).then((r) => {
      writerExited = true;
      return r;
    });
    // Loaded as soon as the server can open the file (its moov written), long before a second of it is.
    const def = JSON.stringify({ media: 'landing.mp4', outputs: { video: ['video'] } });
    await waitFor('the cue loaded on the first bytes of the file', async () => (await peer.request(srv.oscPort, '/cuemux/cue/load', [str('L'), str(def)])).status === 'ok');
    const cue = srv.server.show.cue('L');
    assert.ok(cue !== undefined && cue.media.growthState === 'growing', 'the cue loaded while its file grows');
    await waitPrepared(player, ['L']);
    assert.ok(!writerExited, 'prepared while the file grows');

    await osc('/cuemux/clock/play');
    let clock: ClockState | undefined;
    for await (const st of client.watchClock({}, { timeout: 5000 })) {
      clock = st;
      break;
    }
    assert.ok(clock !== undefined);
    const goAt = Show.positionAt(clock, process.hrtime.bigint()) + 0.3;
    await osc('/cuemux/cue/go', [str('L'), dbl(goAt)]);
    // The video written at the GO (the index's last video packet then): the player must show frames past it.
    const media = cue.media;
    const video = media.streams.find((s) => s.codecType === 'video')?.index ?? 0;
    const writtenAtGo = media.index.toSeconds(video, media.index.lastTime(video) ?? 0);
    const mediaAt = (mono: bigint): number => cue.inMedia + Show.positionAt(clock, mono) - goAt;
    await waitFor('the clock past the video written at the GO', () => mediaAt(process.hrtime.bigint()) > writtenAtGo + 0.3 || writerExited);
    assert.ok(!writerExited, `the cue reached what was written at its GO (${writtenAtGo.toFixed(3)} s) while the file grew`);
    paced.release();
    assert.equal((await writerDone).code, 0, 'writer');
    await waitFor('the file complete', () => media.growthState === 'complete');
    const end = media.startSeconds + media.durationSeconds;
    await waitFor('the clock past the cue\'s end', () => mediaAt(process.hrtime.bigint()) > end + 0.2, 30_000);
    await stopPlayer(player, 'play-video');

    // Every tick inside the cue shows one of FFmpeg's frames of the final file, never one whose time has not come,
    // never an earlier one than the tick before; at most LATE_LIMIT_S behind the frame due (a tick that came when its
    // frame was not decoded yet holds the one before: this VM's load, not the feed; the feed waiting on a stale size
    // at the end held one picture 1.4 s).
    const ref = await VideoReference.of(file, video);
    const byMd5 = new Map(ref.frames.map((f) => [f.md5, f]));
    const last = ref.frames[ref.frames.length - 1].seconds;
    let judged = 0;
    let due = 0;
    let past = 0;
    let previous = -1;
    let latest = 0;
    const wrong: string[] = [];
    for (const t of await readTicks(hashFile, syncFile)) {
      const m = mediaAt(t.monoNs);
      // Inside the cue: from its first frame to the start of its last (whose span's end the file does not say).
      if (m < ref.frames[0].seconds || m >= last) continue;
      judged++;
      const want = ref.at(m);
      const shown = t.md5 === null ? undefined : byMd5.get(t.md5);
      const what = `media ${m.toFixed(3)} s: showed ${ref.nameOf(t.md5)}, FFmpeg's ${want === undefined ? 'none' : ref.nameOf(want.md5)}`;
      if (shown === undefined || want === undefined || shown.n > want.n || shown.n < previous || want.seconds - shown.seconds > LATE_LIMIT_S) {
        wrong.push(what);
        continue;
      }
      previous = shown.n;
      latest = Math.max(latest, want.seconds - shown.seconds);
      if (shown.n === want.n) due++;
      if (shown.seconds > writtenAtGo) past++;
    }
    assert.ok(judged >= 25 * (last - ref.frames[0].seconds) * 0.5, `${judged} ticks inside the cue`);
    assert.ok(past > 0, `frames shown past what was written at the GO (${writtenAtGo.toFixed(3)} s)`);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${judged} ticks wrong (the cue ends at media ${end.toFixed(3)} s, its last frame at ${last.toFixed(3)} s; `
      + `${writtenAtGo.toFixed(3)} s written at the GO; ${due} ticks showed the frame due)`);
    assert.ok(due > judged / 2, `${due} of ${judged} ticks showed the frame due (the others at most ${latest.toFixed(3)} s behind)`);
  });
});
