/*
 * JavaScript Buffers that FFmpeg lets go of on another thread (cuemux's beamcoder patch, native/beamcoder/cuemux_release.cc):
 * packet data set from JavaScript is wrapped in an AVBufferRef whose release deletes a Node-API reference, and FFmpeg
 * releases it on whichever thread drops the last reference. A muxer's interleaving queue (av_interleaved_write_frame)
 * holding the last one drops it on a thread-pool thread: measured with gdb on packetBufferFree before the patch, all
 * 274 releases of this test's clip ran on pool threads, none on the JavaScript thread (that is undefined behaviour in
 * Node-API; servers crashed in malloc_consolidate and in Node-API's teardown). With the patch each such deletion is
 * queued to its environment's JavaScript thread (counted as `deferred`), in the main thread and in a worker_thread;
 * a worker's buffers released by its own teardown are left alone (`dropped`); cuemux's FragmentedMp4 (av_write_frame)
 * never releases off the JavaScript thread. Each run is a child process (`node --expose-gc`, collecting garbage after
 * every write so each packet object dies before the muxer drops its reference), so that a crash fails the test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { makeMedia } from './support/media';
import { scratchDir } from './support/tmp';

interface ReleaseStats {
  deferred: number;
  dropped: number;
}

/** What the child prints (test/support/native-release-child.ts). */
interface ChildReport {
  mode: string;
  packets: number;
  stats: ReleaseStats;
  held?: number;
  workerExit?: number;
  afterExit?: ReleaseStats;
}

/** 4 s of 160x120 H.264 (a keyframe a second) + AAC in MP4: 100 video and 174 audio packets. */
function clip(): Promise<string> {
  return makeMedia('release-av-4s-160x120.mp4', ['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine',
    '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac']);
}

/** Run the child in `mode`; it must exit 0 (not crash) and print its report. */
function runChild(mode: string, media: string, outDir: string): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'support', 'native-release-child.js'), mode, media, outDir],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString().trim();
      if (code !== 0 || signal !== null) {
        reject(new Error(`${mode}: child exited with ${signal ?? `code ${String(code)}`}\n${stderr}`));
        return;
      }
      const lines = Buffer.concat(out).toString().trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]) as ChildReport);
      } catch (e) {
        reject(new Error(`${mode}: no report on stdout (${String(e)})\n${stderr}`));
      }
    });
  });
}

describe('Buffers released by FFmpeg off their JavaScript thread (beamcoder patch)', function () {
  let media: string;
  let outDir: string;

  before(async function () {
    media = await clip();
    outDir = await scratchDir('native-release');
  });

  it('a muxer interleaving packets made in JavaScript: every off-thread release is deferred to the JavaScript thread, none lost', async function () {
    const r = await runChild('interleaved', media, outDir);
    assert.equal(r.packets, 274);
    // Measured with the patch: 274 deferred (as many as gdb counted pool-thread releases before it).
    assert.ok(r.stats.deferred > 0, `the off-thread path was taken: ${JSON.stringify(r)}`);
    assert.ok(r.stats.deferred <= r.packets, JSON.stringify(r));
    assert.equal(r.stats.dropped, 0, 'no reference left undeleted while the environment lives');
  });

  it('the same in a worker_thread, which then ends with packets alive: their teardown release leaves the gone environment alone', async function () {
    const r = await runChild('worker', media, outDir);
    assert.equal(r.workerExit, 0);
    assert.equal(r.packets, 274);
    assert.ok(r.stats.deferred > 0, `the worker's off-thread releases were deferred: ${JSON.stringify(r)}`);
    assert.equal(r.stats.dropped, 0, JSON.stringify(r));
    // The worker's cleanup hook unregistered its environment before Node-API's teardown freed the packets it held.
    assert.deepEqual(r.afterExit, { deferred: r.stats.deferred, dropped: r.held }, JSON.stringify(r));
  });

  it("cuemux's FragmentedMp4 (av_write_frame) releases every packet on the JavaScript thread: nothing deferred", async function () {
    const r = await runChild('fmp4', media, outDir);
    assert.equal(r.packets, 274);
    assert.deepEqual(r.stats, { deferred: 0, dropped: 0 }, JSON.stringify(r));
  });
});
