/**
 * Growing media: files still being written by a real writer process (ffmpeg muxing a stream fed at a few times its
 * real rate, or a copier that writes a finished file in chunks) while a real server indexes and serves them; each
 * writer is held at its pace until the test has seen what it needs while the file grows (support/growing-writers). The grown file's index equals ffprobe's packets of the
 * final file, a ReadPackets client started while it grows gets every packet once with FFmpeg's bytes, an MP4 with its
 * moov at the end is "not playable until complete" and plays once complete, a file truncated while growing ends
 * reads with a typed error naming it, and `cuemux index build --follow` follows a file to completion.
 */
import assert from 'node:assert/strict';
import { promises as fsp, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { assertPacketsOfFile, ffprobePackets } from './support/ffmpeg-reference';
import { makeMedia, minuteClip } from './support/media';
import { chunkWriter, ffmpegPipeWriter } from './support/growing-writers';
import { scratchDir } from './support/tmp';
import { startServer, type TestServer } from './support/server';
import { runCli, startCli } from './support/cli';
import { childrenKilledAfterEach, exitOf, killChild, waitFor } from './support/wait';
import { MediaClientError, type MediaClient } from '../src/clients/media-client';
import type { Packet } from '../src/generated/cuemux/v1/media_server';
import { GrowingIndex } from '../src/index-store/growing-index';
import { openIndex } from '../src/index-store/open-index';
import { OpenMedia } from '../src/media/open-media';

/** The server's --growing-wait-ms in these tests: longer than any pause of the writers below (they flush often). */
const WAIT_MS = 1500;

/** Seconds of the stream the ffmpeg writers mux (the 20 s clip, fed at 3 times its rate until released). */
const WRITE_SECONDS = 20;

/**
 * How each container is written while it grows (flushed often, so it grows in small steps). FFmpeg's MPEG-TS demuxer
 * probes 5 s of the stream before it opens (analyzeduration): the writer is held at its pace until the reader has
 * packets, so the reader still has a growing file to follow once the server has it open.
 */
const WRITERS: Record<string, { ext: string; args: string[] }> = {
  matroska: { ext: '.mkv', args: ['-cluster_time_limit', '100', '-f', 'matroska'] },
  'MPEG-TS': { ext: '.ts', args: ['-f', 'mpegts'] },
  'fragmented MP4': { ext: '.mp4', args: ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-f', 'mp4'] },
};

async function collect(client: MediaClient, req: Parameters<MediaClient['readPackets']>[0], into: Packet[] = []): Promise<Packet[]> {
  for await (const b of client.readPackets(req)) into.push(...b.packets);
  return into;
}

/** The index published for `file` equals ffprobe -show_packets of it, entry by entry. */
async function assertIndexExact(file: string, cacheDir: string): Promise<void> {
  const idx = await openIndex(file, { cacheDir, build: false });
  const probe = await ffprobePackets(file);
  assert.equal(idx.packetCount, probe.length);
  assert.deepEqual([...idx.entries()].map((e) => [e.stream, e.pts, e.dts, e.pos, e.size, e.key]),
    probe.map((p) => [p.stream, p.pts, p.dts, p.pos, p.size, p.key]));
}

async function rejectsWithStatus(p: Promise<unknown>, code: grpc.status, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MediaClientError, String(e));
    assert.equal(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
    assert.match(e.details, mention);
    return true;
  });
}

/** ffprobe's JSON for `args`. */
async function execJson(args: string[]): Promise<{ format: { duration: string; start_time: string }; packets: Array<{ pts_time: string; duration_time: string }> }> {
  const { stdout } = await promisify(execFile)('ffprobe', args);
  return JSON.parse(stdout) as { format: { duration: string; start_time: string }; packets: Array<{ pts_time: string; duration_time: string }> };
}

describe('growing media', function () {
  this.timeout(120_000);
  const children = childrenKilledAfterEach();
  let srv: TestServer;
  let source: string;
  /** The first 20 s of the minute clip in Matroska (a stream ffmpeg can read from a pipe), its path and bytes. */
  let mkv: string;
  let mkvBytes: Buffer;

  before(async function () {
    source = await minuteClip();
    mkv = await makeMedia('av-20s-160x120.mkv', ['-i', source, '-t', '20', '-c', 'copy']);
    mkvBytes = await fsp.readFile(mkv);
    srv = await startServer({ growingWaitMs: WAIT_MS });
  });
  after(async function () {
    await srv.stop();
  });

  for (const [name, w] of Object.entries(WRITERS)) {
    it(`${name} written by ffmpeg as it grows: a reader started while it grows gets every packet once, FFmpeg's bytes; the index ends final and equal to ffprobe`, async function () {
      const file = `grow-${w.ext.slice(1)}${w.ext}`;
      const abs = path.join(srv.root, file);
      const paced = ffmpegPipeWriter(mkvBytes, WRITE_SECONDS, abs, w.args);
      const writer = paced.process;
      children.push(writer);
      await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
      const c = srv.client();
      const info = await c.openMedia(file);
      assert.equal(info.growth?.state, 'growing', 'opened while it grows');
      const packets: Packet[] = [];
      const reading = collect(c, { mediaId: info.mediaId, startSeconds: -1e9 }, packets);
      // The reader has packets before the writer is done: it is served while the file grows.
      const writerDone = exitOf(writer);
      let writerExited = false;
      void writerDone.then(() => { writerExited = true; });
      await waitFor('packets, or the writer\'s end', () => packets.length > 0 || writerExited);
      const early = writerExited ? 0 : packets.length;
      const during = (await c.getStatus()).media.find((m) => m.mediaId === info.mediaId)?.growth;
      if (!writerExited) {
        assert.equal(during?.state, 'growing', 'GetStatus while the writer writes');
        assert.ok(Number(during?.indexedPackets) > 0 && Number(during?.writtenBytes) > 0, JSON.stringify(during, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
      }
      paced.release();
      assert.equal((await writerDone).code, 0, 'writer');
      assert.ok(early > 0, 'packets were served before the writer finished');
      await reading;
      await assertPacketsOfFile(packets, abs);
      const status = await c.getStatus();
      assert.equal(status.media.find((m) => m.mediaId === info.mediaId)?.growth?.state, 'complete');
      await assertIndexExact(abs, path.join(srv.root, '..', 'unused-cache'));
      await c.closeMedia(info.mediaId);
    });
  }

  it('fragmented MP4 past 4 MiB as it grows: the index keeps up with the writer, and so does a reader', async function () {
    // A new demuxer (a fragmented MP4's ends at the size it saw at open) starts far behind the written end and reads
    // everything in one batch, which ends at that end: the old code dropped such a batch whole, so past 4 MiB
    // (FAR_BYTES) nothing more was indexed until the writer stopped.
    const big = await makeMedia('grow-640x360-8mbps-12s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-t', '12',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '8M', '-g', '25']);
    const abs = path.join(srv.root, 'grow-keepup.mp4');
    const paced = ffmpegPipeWriter(await fsp.readFile(big), 12, abs, WRITERS['fragmented MP4'].args, 2);
    children.push(paced.process);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
    const c = srv.client();
    const info = await c.openMedia('grow-keepup.mp4');
    assert.equal(info.growth?.state, 'growing', 'opened while it grows');
    const indexed = async (): Promise<number> => Number((await c.getStatus()).media.find((m) => m.mediaId === info.mediaId)?.growth?.indexedPackets ?? 0);
    const packets: Packet[] = [];
    const reading = collect(c, { mediaId: info.mediaId, startSeconds: -1e9 }, packets);
    let writerExited = false;
    const writerDone = exitOf(paced.process);
    void writerDone.then(() => { writerExited = true; });
    // 200 of the 300 pictures (8 MB) indexed and at the reader while the writer still writes (it takes 6 s: twice real time).
    await waitFor('200 packets indexed, or the writer\'s end', async () => ((await indexed()) >= 200 || writerExited ? true : undefined), 60_000);
    await waitFor('200 packets at the reader, or the writer\'s end', () => (packets.length >= 200 || writerExited ? true : undefined), 60_000);
    assert.ok(!writerExited, `the writer ended before 200 packets were indexed and read (indexed ${await indexed()}, read ${packets.length})`);
    paced.release();
    assert.equal((await writerDone).code, 0, 'writer');
    await reading;
    await assertPacketsOfFile(packets, abs);
    await c.closeMedia(info.mediaId);
  });

  it('MP4 with its moov first, copied in chunks: followed as it is copied; every packet once, FFmpeg\'s bytes', async function () {
    const mp4 = await makeMedia('av-20s-160x120-faststart.mp4', ['-i', source, '-t', '20', '-c', 'copy', '-movflags', '+faststart']);
    const abs = path.join(srv.root, 'faststart.mp4');
    // Held at 128 KiB (the moov and the first packets) until the open has seen the file growing.
    const writer = chunkWriter(mp4, abs, 16 << 10, 10, undefined, 128 << 10);
    children.push(writer.process);
    // The moov (sample tables) is written first: wait until it is, so the open sees an MP4 it can follow.
    await waitFor('the moov box', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 64 << 10);
    const c = srv.client();
    const info = await c.openMedia('faststart.mp4');
    assert.equal(info.growth?.state, 'growing');
    writer.release();
    const packets = await collect(c, { mediaId: info.mediaId, startSeconds: -1e9 });
    await assertPacketsOfFile(packets, abs);
    assert.equal((await fsp.readFile(abs)).equals(await fsp.readFile(mp4)), true, 'the copy is whole');
  });

  it('a fragmented MP4 with B-frames lasts until its last picture ends, past FFmpeg\'s container duration', async function () {
    const file = 'frag-bframes.mp4';
    // Cut by -t while copied (as bench:progressive's writer does): FFmpeg's duration is then the last packet's dts plus
    // its duration, before the end of the last picture (B-frames are shown after later-decoded ones).
    const mkvB = await makeMedia('bframes-3s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=3', '-f', 'lavfi', '-i', 'sine=duration=3',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-g', '25', '-c:a', 'aac']);
    await fsp.copyFile(await makeMedia('frag-bframes-cut.mp4', ['-i', mkvB, '-t', '1.5', '-map', '0', '-c', 'copy',
      '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-f', 'mp4']), path.join(srv.root, file));
    const probe = await execJson(['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,duration_time:format=duration,start_time', '-of', 'json', path.join(srv.root, file)]);
    const start = Number(probe.format.start_time);
    const lastEnd = Math.max(...probe.packets.map((k) => Number(k.pts_time) + Number(k.duration_time))) - start;
    assert.ok(Number(probe.format.duration) < lastEnd - 0.01, `FFmpeg's duration ${probe.format.duration} s ends before the last picture's ${lastEnd} s (else this test shows nothing)`);
    const info = await srv.client().openMedia(file);
    assert.ok(Math.abs(info.durationSeconds - lastEnd) < 1e-6, `duration ${info.durationSeconds} s, the last picture ends at ${lastEnd} s`);
  });

  it('OpenMedia.readAt on a growing file waits for bytes not yet written (cancellable), then returns the file\'s bytes', async function () {
    const dir = await scratchDir('growing-readat');
    const abs = path.join(dir, 'r.mkv');
    const total = (await fsp.stat(mkv)).size;
    // Held at 64 KiB until the read aborted at once has returned, so that read meets a file still growing.
    const writer = chunkWriter(mkv, abs, 16 << 10, 10, total, 64 << 10);
    children.push(writer.process);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 16 << 10);
    const file = await fsp.open(abs, 'r');
    const growth = await GrowingIndex.start(abs, { file, waitMs: WAIT_MS, cacheDir: path.join(dir, 'cache') });
    const media = OpenMedia.open(abs, growth.index, file, growth);
    try {
      // Aborted at once: returns what is there (less than the whole file), without waiting.
      const stop = new AbortController();
      stop.abort();
      const short = await media.readAt(0, total, { signal: stop.signal, timeoutMs: 60_000 });
      assert.ok(short.length < total, `${short.length} of ${total} bytes while it grows`);
      writer.release();
      // Waited for: the bytes at the end of the file, once the copier has written them.
      const tail = await media.readAt(total - 1000, 1000, { timeoutMs: 60_000 });
      assert.deepEqual(tail, (await fsp.readFile(mkv)).subarray(total - 1000));
      const final = await growth.done;
      assert.equal(growth.state, 'complete');
      assert.equal(final.packetCount, (await ffprobePackets(abs)).length);
    } finally {
      await media.close();
    }
  });

  it('MP4 with its moov at the end: "not playable until complete" while written, then plays once complete', async function () {
    const abs = path.join(srv.root, 'moov-last.mp4');
    const paced = ffmpegPipeWriter(mkvBytes, WRITE_SECONDS, abs, ['-f', 'mp4']);
    const writer = paced.process;
    children.push(writer);
    await waitFor('the mdat header', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 64);
    const c = srv.client();
    await rejectsWithStatus(c.openMedia('moov-last.mp4'), grpc.status.FAILED_PRECONDITION, /moov-last\.mp4: not playable until complete: .*moov/);
    paced.release();
    assert.equal((await exitOf(writer)).code, 0, 'writer');
    const info = await waitFor('OpenMedia once complete', () => c.openMedia('moov-last.mp4'), 60_000, 200);
    assert.equal(info.growth?.state, 'complete');
    await assertPacketsOfFile(await collect(c, { mediaId: info.mediaId, startSeconds: -1e9 }), abs);
    await c.closeMedia(info.mediaId);
  });

  it('a file truncated while it grows ends the read with DATA_LOSS (MEDIA_DAMAGED) naming the file', async function () {
    const abs = path.join(srv.root, 'cut.mkv');
    const total = (await fsp.stat(mkv)).size;
    const writer = chunkWriter(mkv, abs, 8 << 10, 50, Math.floor(total / 2)).process;
    children.push(writer);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
    const c = srv.client();
    const info = await c.openMedia('cut.mkv');
    assert.equal(info.growth?.state, 'growing');
    const packets: Packet[] = [];
    const reading = collect(c, { mediaId: info.mediaId, startSeconds: -1e9 }, packets);
    reading.catch(() => undefined);
    await waitFor('packets while it grows', () => packets.length > 50);
    // The copier stops (else it would write on at its own offset, past a hole) and the file is cut to half its size.
    await killChild(writer);
    truncateSync(abs, Math.floor(statSync(abs).size / 2));
    await rejectsWithStatus(reading, grpc.status.DATA_LOSS, /cut\.mkv: truncated \(\d+ -> \d+ bytes\) while it was growing/);
    const status = await c.getStatus();
    assert.equal(status.media.find((m) => m.mediaId === info.mediaId)?.growth?.state, 'failed');
  });

  it('a file replaced (another renamed over it) while it grows ends the read with DATA_LOSS naming the file', async function () {
    const abs = path.join(srv.root, 'swap.mkv');
    const total = (await fsp.stat(mkv)).size;
    const writer = chunkWriter(mkv, abs, 8 << 10, 50, Math.floor(total / 2)).process;
    children.push(writer);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
    const c = srv.client();
    const info = await c.openMedia('swap.mkv');
    const packets: Packet[] = [];
    const reading = collect(c, { mediaId: info.mediaId, startSeconds: -1e9 }, packets);
    reading.catch(() => undefined);
    await waitFor('packets while it grows', () => packets.length > 50);
    await killChild(writer);
    await fsp.copyFile(mkv, `${abs}.new`);
    await fsp.rename(`${abs}.new`, abs);
    await rejectsWithStatus(reading, grpc.status.DATA_LOSS, /swap\.mkv: replaced by another file \(inode changed\) while it was growing/);
  });

  it('cuemux index build --follow: progress while it grows, exit 0 once final (index equal to ffprobe); index info shows growing, then complete', async function () {
    const dir = await scratchDir('growing-cli');
    const abs = path.join(dir, 'cli.mkv');
    const paced = ffmpegPipeWriter(mkvBytes, WRITE_SECONDS, abs, WRITERS.matroska.args);
    const writer = paced.process;
    children.push(writer);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
    const cache = path.join(dir, 'cache');
    const follow = startCli(['index', 'build', '--follow', '--growing-wait-ms', String(WAIT_MS), '--cache-dir', cache, abs]);
    children.push(follow);
    let stdout = '';
    let stderr = '';
    follow.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    follow.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const growing = await runCli(['index', 'info', '--growing-wait-ms', String(WAIT_MS), '--cache-dir', cache, '--json', abs]);
    assert.equal(growing.code, 0, growing.stderr);
    assert.equal((JSON.parse(growing.stdout) as { growth: string }).growth, 'growing');
    await waitFor('progress of the follow while it grows', () => /growing +\S*cli\.mkv +\d+ packets, \d+ bytes written/.test(stderr));
    paced.release();
    assert.equal((await exitOf(writer)).code, 0, 'writer');
    const end = await exitOf(follow);
    assert.equal(end.code, 0, `${stdout}\n${stderr}`);
    assert.match(stderr, /growing +\S*cli\.mkv +\d+ packets, \d+ bytes written/);
    assert.match(stdout, /complete \S*cli\.mkv +\d+ packets \(followed while it grew\)/);
    await assertIndexExact(abs, cache);
    const done = await runCli(['index', 'info', '--cache-dir', cache, '--json', abs]);
    assert.equal((JSON.parse(done.stdout) as { growth: string }).growth, 'complete');
  });

  it('cuemux index build --follow: Ctrl-C while it grows leaves no index and no temporary file', async function () {
    const dir = await scratchDir('growing-cli-int');
    const abs = path.join(dir, 'int.mkv');
    const writer = ffmpegPipeWriter(mkvBytes, WRITE_SECONDS, abs, WRITERS.matroska.args).process;
    children.push(writer);
    await waitFor('the first bytes of the file', () => (statSync(abs, { throwIfNoEntry: false })?.size ?? 0) > 0);
    const follow = startCli(['index', 'build', '--follow', '--growing-wait-ms', String(WAIT_MS), '--cache-dir', path.join(dir, 'cache'), abs]);
    children.push(follow);
    let stderr = '';
    follow.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    await waitFor('progress of the follow', () => /\d+ packets, \d+ bytes written/.test(stderr));
    follow.kill('SIGINT');
    const end = await exitOf(follow);
    assert.notEqual(end.code, 0, 'stopped, not complete');
    assert.deepEqual((await fsp.readdir(dir)).filter((n) => n !== 'cache').sort(), ['int.mkv'], 'nothing but the media beside it');
    const cached = await fsp.readdir(path.join(dir, 'cache')).catch(() => []);
    assert.deepEqual(cached, [], 'nothing in the cache folder');
  });
});
