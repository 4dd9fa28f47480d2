/**
 * A cue on a file that is still being written plays on as the file grows: a real server, a real writer (ffmpeg muxing
 * a stream fed at more than its real rate, held at its pace until the test has seen what it needs while the file
 * grows: support/growing-writers), the cue list and GO over OSC (real UDP), and a Follow client on the Unix socket.
 * The cue's feed goes on past what was indexed when it loaded, its end is open (+Infinity) while the file grows, and
 * once the file is complete the cue ends with CueStopped "ended" at the media's end and its auto-follow successor
 * starts there; every packet it was sent equals ffprobe/framemd5 of the final file, once each. A file cut while its
 * cue plays ends the cue's feed with CueFeedFailed naming the file, and the cue at the end of what was indexed.
 *
 * The clock runs at half speed until the file is complete (the writer stays ahead of it, and the end is reached only
 * after the file is complete, so no packet is late), then at 8 times (the rest of the cue takes a moment): a rate
 * change is no discontinuity, so the feed's packets stay one generation. The Follow lead is the largest (10 s of show
 * time), so the feed sends what is indexed as soon as it is. Nothing here measures time.
 */
import assert from 'node:assert/strict';
import { promises as fsp, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';
import { assertPacketsOfFile } from './support/ffmpeg-reference';
import { makeMedia, minuteClip } from './support/media';
import { chunkWriter, ffmpegPipeWriter } from './support/growing-writers';
import { startServer, type TestServer } from './support/server';
import { OscPeer, type Arg, type Reply } from './support/osc';
import { childrenKilledAfterEach, exitOf, killChild, waitFor } from './support/wait';
import type { FollowEvent, FollowPackets, Packet } from '../src/generated/cuemux/v1/media_server';

/** The server's --growing-wait-ms: longer than any pause of the paced writer (it flushes every packet). */
const WAIT_MS = 1500;

/** Seconds of the clip the writer muxes (fed at 1.5 times its rate until released). */
const WRITE_SECONDS = 8;

/** Matroska flushed often (a cluster every 100 ms), so the file grows in small steps. */
const MKV_ARGS = ['-cluster_time_limit', '100', '-f', 'matroska'];

/**
 * Fragmented MP4 as a live recorder or `ffmpeg -movflags frag_keyframe+empty_moov` writes it (a moov without samples
 * first, then a moof+mdat fragment every 100 ms): the growing index follows it fragment by fragment.
 */
const FMP4_ARGS = ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '100000', '-f', 'mp4'];

type Ev = NonNullable<FollowEvent['event']>;
type EvMap = { [E in Ev as E['$case']]: E['value'] };

/** The events of one Follow call as they arrive. */
class Recorder {
  readonly events: Ev[] = [];
  readonly #ctl = new AbortController();
  readonly done: Promise<unknown>;

  constructor(stream: (signal: AbortSignal) => AsyncGenerator<FollowEvent>) {
    this.done = (async () => {
      for await (const e of stream(this.#ctl.signal)) if (e.event !== undefined) this.events.push(e.event);
    })().catch((e: unknown) => e);
  }

  /** Values of the events of kind `k` for cue `cueId`. */
  of<K extends keyof EvMap>(k: K, cueId: string): Array<EvMap[K]> {
    return this.events.filter((e) => e.$case === k && (e.value as { cueId?: string }).cueId === cueId).map((e) => e.value as EvMap[K]);
  }

  stop(): void {
    this.#ctl.abort();
  }
}

function ok(r: Reply): unknown {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r.data;
}

const str = (value: string): Arg => ({ type: 's', value });

describe('a cue on a growing file', function () {
  this.timeout(120_000);
  const children = childrenKilledAfterEach();
  let srv: TestServer;
  let peer: OscPeer;
  let recorder: Recorder | null = null;
  /** The clip the writer muxes (Matroska: ffmpeg reads it from a pipe), its bytes. */
  let clip: string;
  let clipBytes: Buffer;

  before(async function () {
    clip = await makeMedia('av-8s-160x120.mkv', ['-i', await minuteClip(), '-t', String(WRITE_SECONDS), '-c', 'copy']);
    clipBytes = await fsp.readFile(clip);
    srv = await startServer({ growingWaitMs: WAIT_MS });
    peer = await OscPeer.open();
  });
  after(async function () {
    recorder?.stop();
    peer.close();
    await srv.stop();
  });

  /**
   * GO cue `cueId` on `name`, written by ffmpeg with `muxerArgs` as the cue plays; `next` auto-follows it. The checks of
   * the two tests below (Matroska, fragmented MP4).
   */
  async function goOnGrowingFile(name: string, muxerArgs: readonly string[], cueId: string, next: string): Promise<void> {
    const osc = (address: string, args: Arg[] = []): Promise<Reply> => peer.request(srv.oscPort, address, args);
    const file = path.join(srv.root, name);
    await fsp.copyFile(clip, path.join(srv.root, 'next.mkv'));
    const list = path.join(srv.root, 'show.json');
    await fsp.writeFile(list, JSON.stringify({
      version: 1, cues: [
        { id: cueId, media: name, outputs: { main: ['video', 'audio'] } },
        { id: next, media: 'next.mkv', follow: true, outputs: { main: ['video'] } },
      ],
    }));
    ok(await osc('/cuemux/cuelist/load', [str(list)]));
    const paced = ffmpegPipeWriter(clipBytes, WRITE_SECONDS, file, muxerArgs, 1.5);
    children.push(paced.process);
    let writerExited = false;
    const writerDone = exitOf(paced.process).then((r) => {
      writerExited = true;
      return r;
    });
    await waitFor('the first bytes of the file', () => (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 0);

    recorder?.stop();
    const client = srv.client();
    recorder = new Recorder((signal) => client.follow({ output: 'main', leadSeconds: 10 }, { signal }));
    const r = recorder;
    ok(await osc('/cuemux/cue/load', [str(cueId)]));
    const loaded = srv.server.show.cue(cueId);
    assert.ok(loaded !== undefined && loaded.media.growthState === 'growing', 'the cue loaded while its file grows');
    // The written end at load: the latest decode time indexed (read after the load: if anything, later). Not the
    // media's duration: FFmpeg's estimate of a growing Matroska file's is the whole clip's.
    const media = loaded.media;
    const atLoad = media.index;
    const endAtLoad = Math.max(...atLoad.streams.map((s) => atLoad.toSeconds(s.index, atLoad.lastTime(s.index) ?? 0)));
    ok(await osc('/cuemux/clock/rate', [{ type: 'd', value: 0.5 }]));
    const go = ok(await osc('/cuemux/cue/go', [str(cueId)])) as { clockSeconds: number };

    const packets = (): Packet[] => r.of('packets', cueId).flatMap((b) => b.packets);
    const seconds = (p: Packet): number => media.index.toSeconds(p.streamIndex, Number(p.pts ?? p.dts ?? 0n));
    await waitFor('a packet 1 s past the end written at load, the cue\'s end, or the writer\'s end',
      () => packets().some((p) => seconds(p) > endAtLoad + 1) || r.of('stopped', cueId).length > 0 || writerExited);
    assert.deepEqual(r.of('stopped', cueId), [], `the cue ended at the end written when it was loaded (${endAtLoad.toFixed(3)} s)`);
    assert.ok(!writerExited, `the packets past the end written at load (${endAtLoad} s) came while the file grew (${packets().length} packets, the last at ${packets().map(seconds).at(-1)} s)`);
    const started = r.of('started', cueId);
    assert.equal(started.length, 1);
    assert.equal(started[0].endMediaSeconds, Infinity, 'CueStarted.end_media_seconds while the file grows');
    assert.ok(r.of('packets', cueId).every((b) => !b.last), 'no last batch while the file grows');

    paced.release();
    assert.equal((await writerDone).code, 0, 'writer');
    await waitFor('the file complete', () => media.growthState === 'complete');
    assert.deepEqual(r.of('stopped', cueId), [], 'the cue plays on until the clock reaches the media\'s end');
    ok(await osc('/cuemux/clock/rate', [{ type: 'd', value: 8 }]));
    await waitFor('the cue\'s end', () => r.of('stopped', cueId).length > 0);
    await waitFor('CueStarted of the auto-follow successor', () => r.of('started', next).length > 0);

    const stopped = r.of('stopped', cueId);
    assert.equal(stopped.length, 1);
    assert.equal(stopped[0].reason, 'ended');
    const end = media.startSeconds + media.durationSeconds;
    assert.ok(end > endAtLoad + 1);
    assert.ok(Math.abs(stopped[0].mediaSeconds - end) < 1e-6, `ended at media ${stopped[0].mediaSeconds}, the media ends at ${end}`);
    assert.ok(Math.abs(stopped[0].clockSeconds - (go.clockSeconds + end - started[0].mediaSeconds)) < 1e-6, 'ended where the media\'s end is on the clock');
    assert.ok(Math.abs(r.of('started', next)[0].clockSeconds - stopped[0].clockSeconds) < 1e-6, 'the successor starts where the cue ended');

    // One generation (a rate change is no discontinuity), one segment, the last batch before the end.
    const batches: FollowPackets[] = r.of('packets', cueId);
    assert.equal(new Set(batches.map((b) => `${b.segment}/${b.generation}`)).size, 1);
    assert.ok(batches.at(-1)?.last === true, 'the segment\'s last batch, once the file is complete');
    const at = (k: Ev['$case'], last = false): number => r.events.findIndex((e) => e.$case === k && (e.value as { cueId?: string }).cueId === cueId && (!last || (e.$case === 'packets' && e.value.last)));
    assert.ok(at('packets', true) < at('stopped'), 'the last batch comes before the cue ends');
    await assertPacketsOfFile(packets(), file);
  }

  it('GO on a Matroska file being written: packets past what was indexed at load, an open end, then CueStopped "ended" at the media\'s end, auto-follow, and FFmpeg\'s packets of the final file once each', async function () {
    await goOnGrowingFile('late-render.mkv', MKV_ARGS, 'G', 'N');
  });

  it('the same on a fragmented MP4 being written (-movflags frag_keyframe+empty_moov): followed fragment by fragment to CueStopped "ended", FFmpeg\'s packets once each', async function () {
    await goOnGrowingFile('late-render.mp4', FMP4_ARGS, 'GF', 'NF');
  });

  it('a file truncated while its cue plays on it: CueFeedFailed (MEDIA_DAMAGED) naming the file, and the cue ends at the end of what was indexed', async function () {
    const osc = (address: string, args: Arg[] = []): Promise<Reply> => peer.request(srv.oscPort, address, args);
    const file = path.join(srv.root, 'cut.mkv');
    // A copier (a file copied from a laptop) stopped at half the file, then the file is cut to half of that.
    const writer = chunkWriter(clip, file, 8 << 10, 50, Math.floor(clipBytes.length / 2)).process;
    children.push(writer);
    await waitFor('the first bytes of the file', () => (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 0);
    recorder?.stop();
    const client = srv.client();
    recorder = new Recorder((signal) => client.follow({ output: 'main', leadSeconds: 10 }, { signal }));
    const r = recorder;
    ok(await osc('/cuemux/clock/rate', [{ type: 'd', value: 1 }]));
    ok(await osc('/cuemux/cue/load', [str('T'), str(JSON.stringify({ media: 'cut.mkv', outputs: { main: ['video', 'audio'] } }))]));
    ok(await osc('/cuemux/cue/go', [str('T')]));
    await waitFor('packets while it grows', () => r.of('packets', 'T').flatMap((b) => b.packets).length > 50);
    assert.equal(r.of('started', 'T')[0]?.endMediaSeconds, Infinity);
    await killChild(writer);
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const failed = (await waitFor('CueFeedFailed', () => r.of('failed', 'T')[0]));
    assert.equal(failed.code, 'MEDIA_DAMAGED');
    assert.match(failed.message, /cut\.mkv: truncated \(\d+ -> \d+ bytes\) while it was growing/);
    const stopped = await waitFor('the cue\'s end', () => r.of('stopped', 'T')[0]);
    assert.equal(stopped.reason, 'ended');
    const media = srv.server.show.cue('T')?.media;
    assert.equal(media?.growthState, 'failed');
    assert.ok(Math.abs(stopped.mediaSeconds - (media.startSeconds + media.durationSeconds)) < 1e-6, 'ended at the end of what was indexed');
    assert.ok(stopped.mediaSeconds < WRITE_SECONDS / 2, `ended at ${stopped.mediaSeconds} s: at most half the clip was written`);
  });
});
