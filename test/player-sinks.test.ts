/**
 * The players' output sinks (src/players/{pipe-output,video-sinks,audio-sinks,sync-log}.ts) against real parts only:
 * FIFOs made with mkfifo, real reader processes (cat, a shell holding the FIFO open without reading), /dev/full for
 * a failing disk, and ffmpeg/ffprobe as the judge of what was written.
 *
 * No timing assertions: everything waits for an event or a condition with a generous timeout.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setLogSink, type LogLevel, type LogSink } from '../src/common/logger';
import { isCuemuxError } from '../src/common/errors';
import { openAudioSink, wavFloatHeader } from '../src/players/audio-sinks';
import { PipeOutput, totalLength, type PipeOutputEvents } from '../src/players/pipe-output';
import { copyPlanes, sharedPicture } from '../src/players/frame-pool';
import { readSyncLog, SyncLog } from '../src/players/sync-log';
import { openVideoSink, rawFrameSize, videoFormatSupported, y4mColorspace, type Picture, type PresentInfo } from '../src/players/video-sinks';
import { md5, rejectsWith } from './support/check';
import { framemd5Decode, parseFramemd5 } from './support/ffmpeg-reference';
import { makeMedia } from './support/media';
import { scratchDir } from './support/tmp';
import { restrictedUser } from './support/users';

// ------------------------------------------------------------------------------------------------------------------
// Helpers

interface LogRecord { level: LogLevel; name: string; message: string; meta?: Record<string, unknown> }

/** Records of the 'player-sink' logger since the last reset (installed for the whole file). */
const logged: LogRecord[] = [];
let previousSink: LogSink | null = null;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` until true; fail with `what` after `timeoutMs`. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The next `event` of `out`, with its arguments. */
function next<K extends keyof PipeOutputEvents & string>(out: PipeOutput, event: K, timeoutMs = 20_000): Promise<PipeOutputEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${event}"`)), timeoutMs);
    out.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Call `step` every few ms until `cond` holds: a player presenting on its ticks. */
async function tickUntil(step: () => void, cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    step();
    await sleep(4);
  }
}

function mkfifo(dir: string, name: string): string {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  return p;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** A reader that copies the FIFO into `out` until the writer closes it. */
function catInto(fifo: string, out: string): ChildProcess {
  return spawn('sh', ['-c', 'exec cat "$0" > "$1"', fifo, out], { stdio: 'ignore' });
}

/** Run a tool, return stdout as bytes; rejects with stderr. */
function run(bin: string, args: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${bin} ${args.join(' ')}: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

/** Bytes per sample and chroma shifts of the planar formats the tests generate. */
const LAYOUT: Record<string, { bps: number; xs: number; ys: number; planes: number }> = {
  yuv420p: { bps: 1, xs: 1, ys: 1, planes: 3 },
  yuv422p: { bps: 1, xs: 1, ys: 0, planes: 3 },
  yuv444p: { bps: 1, xs: 0, ys: 0, planes: 3 },
  gray: { bps: 1, xs: 0, ys: 0, planes: 1 },
  yuv420p10le: { bps: 2, xs: 1, ys: 1, planes: 3 },
  yuv422p10le: { bps: 2, xs: 1, ys: 0, planes: 3 },
  yuv444p10le: { bps: 2, xs: 0, ys: 0, planes: 3 },
};

const ceilShift = (v: number, s: number): number => (v + (1 << s) - 1) >> s;

/** Byte size of each plane of a `w`×`h` picture of `format` (computed here independently of the sinks). */
function planeSizes(w: number, h: number, format: string): number[] {
  const l = LAYOUT[format];
  const luma = w * h * l.bps;
  if (l.planes === 1) return [luma];
  const chroma = ceilShift(w, l.xs) * ceilShift(h, l.ys) * l.bps;
  return [luma, chroma, chroma];
}

/** Split ffmpeg rawvideo output into pictures with their planes. */
function splitRaw(raw: Buffer, w: number, h: number, format: string): Picture[] {
  const sizes = planeSizes(w, h, format);
  const frame = sizes.reduce((a, b) => a + b, 0);
  assert.equal(raw.length % frame, 0, 'rawvideo is whole frames');
  const out: Picture[] = [];
  for (let at = 0; at < raw.length; at += frame) {
    const planes: Buffer[] = [];
    let p = at;
    for (const s of sizes) {
      planes.push(raw.subarray(p, p + s));
      p += s;
    }
    out.push({ width: w, height: h, format, planes });
  }
  return out;
}

/** `n` test pictures from ffmpeg's testsrc in `format`. */
async function testPictures(w: number, h: number, format: string, n: number): Promise<Picture[]> {
  const raw = await run('ffmpeg', [
    '-v', 'error', '-nostdin', '-f', 'lavfi', '-i', `testsrc=size=${w}x${h}:rate=25`, '-frames:v', String(n),
    '-pix_fmt', format, '-f', 'rawvideo', '-',
  ]);
  return splitRaw(raw, w, h, format);
}

/** Black as the tests expect it: limited-range Y, neutral chroma. */
function blackBytes(w: number, h: number, format: string): Buffer {
  const l = LAYOUT[format];
  const sizes = planeSizes(w, h, format);
  const [y, uv] = l.bps === 1 ? [16, 128] : [64, 512];
  return Buffer.concat(sizes.map((s, i) => {
    const b = Buffer.alloc(s);
    for (let k = 0; k < s / l.bps; k++) {
      if (l.bps === 1) b[k] = i === 0 ? y : uv;
      else b.writeUInt16LE(i === 0 ? y : uv, 2 * k);
    }
    return b;
  }));
}

interface Y4m { header: string; frames: Buffer[]; trailing: number }

/**
 * Parse a YUV4MPEG2 stream: the header line, then `FRAME\n` + one frame of `frameSize` bytes each. Fails on any byte
 * that is not at a frame boundary; `trailing` counts the bytes of a last frame cut short.
 */
function parseY4m(b: Buffer, frameSize: number): Y4m {
  const nl = b.indexOf(0x0a);
  assert.ok(nl > 0, 'a y4m header line');
  const header = b.subarray(0, nl).toString('latin1');
  assert.match(header, /^YUV4MPEG2 /);
  const frames: Buffer[] = [];
  let at = nl + 1;
  while (at < b.length) {
    const tag = b.subarray(at, at + 6).toString('latin1');
    if (at + 6 > b.length) return { header, frames, trailing: b.length - at };
    assert.equal(tag, 'FRAME\n', `a FRAME tag at byte ${at}`);
    if (at + 6 + frameSize > b.length) return { header, frames, trailing: b.length - at };
    frames.push(b.subarray(at + 6, at + 6 + frameSize));
    at += 6 + frameSize;
  }
  return { header, frames, trailing: 0 };
}

const at = (i: number): PresentInfo => ({ monoNs: 1_000_000_000n * BigInt(i) + 7n, ptsSeconds: i / 25, clockSeconds: i / 25 });

const escape = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

// ------------------------------------------------------------------------------------------------------------------

describe('player output sinks', function () {
  let dir: string;

  before(async function () {
    dir = await scratchDir('sinks');
    previousSink = setLogSink((level, name, message, meta) => {
      if (name === 'player-sink') logged.push({ level, name, message, meta });
    });
  });

  after(function () {
    if (previousSink !== null) setLogSink(previousSink);
  });

  beforeEach(function () {
    logged.length = 0;
  });

  describe('PipeOutput on a FIFO', function () {
    it('drops units while no reader is attached, without blocking or throwing', async function () {
      const fifo = mkfifo(dir, 'noreader');
      const out = await PipeOutput.open(fifo, { retryMs: 20 });
      assert.equal(out.kind, 'fifo');
      assert.equal(out.attached, false);
      for (let i = 0; i < 50; i++) assert.equal(out.writeUnit([Buffer.alloc(1000, i)]), false);
      await sleep(100); // a few retries happen meanwhile
      assert.equal(out.writeUnit([Buffer.alloc(10)]), false);
      assert.deepEqual(out.stats, { unitsWritten: 0, unitsDropped: 51, bytesWritten: 0, attachments: 0, queuedBytes: 0 });
      await out.close();
      await out.close();
    });

    it('gives a reader that attaches the header first, then whole units', async function () {
      const fifo = mkfifo(dir, 'reader');
      const header = Buffer.from('HEADER\n');
      let headerCalls = 0;
      const out = await PipeOutput.open(fifo, { retryMs: 10, header: () => { headerCalls++; return header; } });
      const file = path.join(dir, 'reader.out');
      const attached = next(out, 'attached');
      const reader = catInto(fifo, file);
      await attached;
      assert.equal(out.attached, true);
      const units = Array.from({ length: 20 }, (_, i) => [Buffer.from(`unit ${i} `), Buffer.alloc(5000 + i, i)]);
      for (const u of units) assert.equal(out.writeUnit(u), true);
      await waitFor(() => out.stats.unitsWritten === 20, 'every unit written');
      await out.close();
      assert.equal(await exited(reader), 0);
      assert.deepEqual(await fsp.readFile(file), Buffer.concat([header, ...units.flat()]));
      assert.equal(headerCalls, 1);
      assert.equal(out.stats.bytesWritten, header.length + units.flat().reduce((a, b) => a + b.length, 0));
    });

    it('detaches quietly when the reader dies mid-stream, and gives the next reader a fresh header and whole frames', async function () {
      const fifo = mkfifo(dir, 'video.y4m');
      const pictures = await testPictures(64, 48, 'yuv420p', 10);
      const frameSize = rawFrameSize(64, 48, 'yuv420p') as number;
      const known = new Set(pictures.map((p) => md5(Buffer.concat(p.planes))));
      known.add(md5(blackBytes(64, 48, 'yuv420p')));
      const sink = await openVideoSink(`y4m:${fifo}`, { fps: { num: 25, den: 1 }, name: 'fifo-test', maxQueuedBytes: 4 * frameSize });
      // Pictures lent from shared slots, as a decode worker gives them: the sink holds each while its write is queued.
      let lent = 0;
      let returned = 0;
      const pooled = (p: Picture): { picture: Picture; release: () => void } => {
        const slot = new SharedArrayBuffer(totalLength(p.planes));
        lent++;
        return sharedPicture({ kind: 'video', pts: null, bestEffortPts: null, duration: 0, width: p.width, height: p.height, format: p.format, keyFrame: false, sampleAspectRatio: p.sampleAspectRatio ?? { num: 0, den: 1 } },
          slot, copyPlanes(p.planes, slot), () => returned++);
      };
      let i = 0;
      const present = (): void => {
        if (i % 7 === 3) sink.present(null, at(i));
        else {
          const { picture, release } = pooled(pictures[i % pictures.length]);
          sink.present(picture, at(i));
          release();
        }
        i++;
      };

      // First reader: read some frames, then die without closing anything cleanly.
      const first = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
      let got = 0;
      first.stdout?.on('data', (b: Buffer) => { got += b.length; });
      await tickUntil(present, () => got >= 3 * frameSize, 'the first reader to receive frames');
      first.kill('SIGKILL');
      await exited(first);
      const droppedBefore = sink.stats.dropped;
      await tickUntil(present, () => sink.stats.dropped > droppedBefore + 3, 'frames dropped after the reader died');
      assert.ok(logged.some((r) => r.level === 'info' && r.message === 'the reader went away'), 'the departure is logged at info');
      assert.ok(!logged.some((r) => r.level === 'error' || r.level === 'warn'), JSON.stringify(logged));

      // Second reader: a fresh stream from the header on, every frame whole and one that was presented.
      const file = path.join(dir, 'second.y4m');
      const second = catInto(fifo, file);
      const writtenBefore = sink.stats.written;
      await tickUntil(present, () => sink.stats.written >= writtenBefore + 12, 'frames written to the second reader');
      await sink.close();
      assert.equal(await exited(second), 0);
      const y4m = parseY4m(await fsp.readFile(file), frameSize);
      assert.equal(y4m.header, 'YUV4MPEG2 W64 H48 F25:1 Ip A0:0 C420jpeg');
      assert.equal(y4m.trailing, 0, 'no frame cut short');
      assert.ok(y4m.frames.length >= 12, `${y4m.frames.length} frames`);
      for (const f of y4m.frames) assert.ok(known.has(md5(f)), 'a frame that was presented');
      // Every lent picture went back once written, dropped or abandoned with the dead reader's pipe.
      assert.ok(lent > 20);
      assert.equal(returned, lent, 'pictures the sink never let go of');
      // ffmpeg agrees the stream is well-formed.
      const decoded = parseFramemd5((await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'])).toString());
      assert.deepEqual(decoded.map((d) => d.md5), y4m.frames.map((f) => md5(f)));
    });

    it('drops units from a reader that never reads, keeping the queue within maxQueuedBytes plus one unit', async function () {
      const fifo = mkfifo(dir, 'slow');
      const max = 100_000;
      const unit = 10_000;
      const out = await PipeOutput.open(fifo, { retryMs: 10, maxQueuedBytes: max, closeGraceMs: 50 });
      const detached: string[] = [];
      out.on('detached', (reason) => detached.push(reason));
      const attached = next(out, 'attached');
      // Holds the FIFO open for reading and never reads.
      const reader = spawn('sh', ['-c', 'exec 3<"$0"; exec sleep 600', fifo], { stdio: 'ignore' });
      await attached;
      let accepted = 0;
      let highest = 0;
      for (let i = 0; i < 500; i++) {
        if (out.writeUnit([Buffer.alloc(unit / 2, i), Buffer.alloc(unit / 2, i)])) accepted++;
        highest = Math.max(highest, out.queuedBytes);
        assert.ok(out.queuedBytes <= max + unit, `queued ${out.queuedBytes}`);
        if (i % 50 === 0) await sleep(5); // let libuv move what the pipe takes
      }
      // The kernel takes up to 64 KiB, the queue the rest up to the limit: far fewer than 500 units.
      assert.ok(accepted > 0 && accepted < 30, `accepted ${accepted}`);
      assert.ok(highest > max / 2, `the queue filled (${highest})`);
      assert.equal(out.stats.unitsDropped, 500 - accepted);
      reader.kill('SIGKILL');
      await exited(reader);
      await out.close();
      assert.equal(out.attached, false);
      assert.ok(detached.length >= 1, 'detached');
    });
  });

  describe('PipeOutput on files and stdout', function () {
    it('writes a regular file: the header once, then every unit', async function () {
      const file = path.join(dir, 'plain.bin');
      await fsp.writeFile(file, 'old content that must go away');
      const out = await PipeOutput.open(file, { header: () => [Buffer.from('H1'), Buffer.from('H2')] });
      assert.equal(out.kind, 'file');
      assert.equal(out.attached, true);
      const detached: string[] = [];
      out.on('detached', (reason) => detached.push(reason));
      const units = Array.from({ length: 100 }, (_, i) => [Buffer.alloc(3000, i), Buffer.from([i])]);
      for (const u of units) assert.equal(out.writeUnit(u), true);
      await out.close();
      await out.close();
      assert.deepEqual(await fsp.readFile(file), Buffer.concat([Buffer.from('H1H2'), ...units.flat()]));
      assert.equal(out.stats.unitsWritten, 100);
      assert.equal(out.writeUnit([Buffer.from('late')]), false, 'closed');
      assert.deepEqual(detached, ['closed']);
      assert.deepEqual(logged.filter((r) => r.level !== 'info' && r.level !== 'debug'), []);
    });

    it('asks a header that is not ready yet again, and sends it with the first unit', async function () {
      const file = path.join(dir, 'late-header.bin');
      let ready = false;
      const out = await PipeOutput.open(file, { header: () => (ready ? Buffer.from('HDR') : null) });
      out.writeUnit([Buffer.from('a')]);
      ready = true;
      out.writeUnit([Buffer.from('b')]);
      out.writeUnit([Buffer.from('c')]);
      await out.close();
      assert.equal(await fsp.readFile(file, 'latin1'), 'aHDRbc');
    });

    it('turns a failing disk (/dev/full) into a detached output that drops units, never an exception', async function () {
      const out = await PipeOutput.open('/dev/full');
      const detached = next(out, 'detached');
      out.writeUnit([Buffer.alloc(100)]);
      assert.deepEqual(await detached, ['ENOSPC']);
      assert.equal(out.attached, false);
      assert.equal(out.writeUnit([Buffer.alloc(100)]), false);
      await out.close();
      assert.equal(logged.filter((r) => r.level === 'error').length, 1);
    });

    it('writes stdout (a pipe that goes away: detached for good, no crash; a file: every byte)', async function () {
      const script = path.join(dir, 'stdout-writer.js');
      const module = path.resolve(__dirname, '../src/players/pipe-output.js');
      await fsp.writeFile(script, `
        const { PipeOutput } = require(${JSON.stringify(module)});
        const fs = require('fs');
        (async () => {
          const out = await PipeOutput.open('-', { header: () => Buffer.from('HEAD') });
          const events = [];
          out.on('detached', (r) => events.push(r));
          for (let i = 0; i < 200; i++) {
            out.writeUnit([Buffer.alloc(4096, i % 256)]);
            await new Promise((r) => setTimeout(r, 2));
          }
          await out.close();
          fs.writeFileSync(process.argv[2], JSON.stringify({ events, stats: out.stats }));
        })();
      `);
      // A pipe whose reader leaves after 10000 bytes.
      const report1 = path.join(dir, 'stdout-pipe.json');
      const piped = spawn('sh', ['-c', 'node "$0" "$1" | head -c 10000 > /dev/null', script, report1], { stdio: 'ignore' });
      assert.equal(await exited(piped), 0);
      const r1 = JSON.parse(await fsp.readFile(report1, 'utf8')) as { events: string[]; stats: { unitsWritten: number; unitsDropped: number } };
      assert.deepEqual(r1.events.slice(0, 1), ['EPIPE']);
      assert.ok(r1.stats.unitsDropped > 0 && r1.stats.unitsWritten < 200, JSON.stringify(r1));
      // A file.
      const report2 = path.join(dir, 'stdout-file.json');
      const file = path.join(dir, 'stdout.bin');
      const toFile = spawn('sh', ['-c', 'node "$0" "$1" > "$2"', script, report2, file], { stdio: 'ignore' });
      assert.equal(await exited(toFile), 0);
      const bytes = await fsp.readFile(file);
      assert.equal(bytes.length, 4 + 200 * 4096);
      assert.equal(bytes.subarray(0, 4).toString(), 'HEAD');
      assert.equal(bytes[4 + 199 * 4096], 199);
    });

    it('rejects paths it cannot write with a CuemuxError naming the path', async function () {
      await rejectsWith(PipeOutput.open(dir), 'INVALID_ARGUMENT', escape(dir));
      const missing = path.join(dir, 'no-such-folder', 'out.y4m');
      await rejectsWith(PipeOutput.open(missing), 'NOT_FOUND', escape(missing));
      // Root ignores file modes: the permission check runs in a child as nobody (when we are root).
      const ro = path.join(dir, 'read-only');
      await fsp.mkdir(ro);
      await fsp.chmod(ro, 0o555);
      const denied = path.join(ro, 'out.bin');
      const script = path.join(dir, 'denied.js');
      await fsp.writeFile(script, `
        const { PipeOutput } = require(${JSON.stringify(path.resolve(__dirname, '../src/players/pipe-output.js'))});
        const { SyncLog } = require(${JSON.stringify(path.resolve(__dirname, '../src/players/sync-log.js'))});
        const report = (e) => ({ code: e.code, message: e.message });
        Promise.all([PipeOutput.open(process.argv[2]), SyncLog.open(process.argv[2])].map((p) => p.then(() => null, report)))
          .then((r) => process.stdout.write(JSON.stringify(r)));
      `);
      const child = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [script, denied], { ...restrictedUser(), encoding: 'utf8' }, (err, stdout, stderr) => {
          if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
          else resolve(stdout);
        });
      });
      for (const r of JSON.parse(child) as Array<{ code: string; message: string } | null>) {
        assert.equal(r?.code, 'PERMISSION_DENIED', child);
        assert.match(r.message, escape(denied));
      }
      await rejectsWith(openVideoSink(`y4m:${missing}`, { fps: { num: 25, den: 1 }, name: 'x' }), 'NOT_FOUND', escape(missing));
      await rejectsWith(openAudioSink(`wav:${dir}`, { channels: 2, name: 'x' }), 'INVALID_ARGUMENT', escape(dir));
      await rejectsWith(SyncLog.open(missing), 'NOT_FOUND', escape(missing));
      await rejectsWith(SyncLog.open(dir), 'INVALID_ARGUMENT', escape(dir));
      await rejectsWith(openVideoSink('hash:-', { fps: { num: 25, den: 1 }, name: 'x' }), 'INVALID_ARGUMENT', /^-: /);
      await rejectsWith(openVideoSink('mp4:/tmp/x', { fps: { num: 25, den: 1 }, name: 'x' }), 'INVALID_ARGUMENT', /y4m:PATH/);
      await rejectsWith(openVideoSink('y4m:', { fps: { num: 25, den: 1 }, name: 'x' }), 'INVALID_ARGUMENT', /y4m:PATH/);
      await rejectsWith(openAudioSink('raw', { channels: 2, name: 'x' }), 'INVALID_ARGUMENT', /raw:PATH/);
      await rejectsWith(openAudioSink('null', { channels: 0, name: 'x' }), 'INVALID_ARGUMENT', /channels/);
    });
  });

  describe('video sinks', function () {
    for (const format of Object.keys(LAYOUT)) {
      it(`y4m of ${format} (odd size): ffmpeg decodes exactly the planes presented, black included`, async function () {
        const [w, h] = format === 'yuv420p' ? [64, 48] : [63, 47];
        const pictures = await testPictures(w, h, format, 6);
        const file = path.join(dir, `${format}.y4m`);
        const sink = await openVideoSink(`y4m:${file}`, { fps: { num: 30000, den: 1001 }, name: format });
        sink.present(null, at(0)); // before the first picture: nothing to size black by, not written
        pictures.forEach((p, i) => {
          sink.present(p, at(i + 1));
          if (i === 2) sink.present(null, at(100));
        });
        await sink.close();
        const expected = [...pictures.slice(0, 3).map((p) => Buffer.concat(p.planes)), blackBytes(w, h, format),
          ...pictures.slice(3).map((p) => Buffer.concat(p.planes))].map((b) => md5(b));
        const text = (await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'])).toString();
        assert.deepEqual(parseFramemd5(text).map((f) => f.md5), expected);
        const probe = JSON.parse((await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', file])).toString()) as
          { streams: Array<{ pix_fmt: string; width: number; height: number; r_frame_rate: string }> };
        assert.deepEqual(probe.streams.map((s) => [s.pix_fmt, s.width, s.height, s.r_frame_rate]), [[format, w, h, '30000/1001']]);
        const s = sink.stats;
        assert.deepEqual([s.presented, s.pictures, s.black, s.written, s.dropped], [8, 6, 1, 7, 0], 'the first black is not written');
      });
    }

    it('writes the y4m header ffmpeg writes for yuv420p, with the first picture\'s aspect ratio', async function () {
      const [p] = await testPictures(64, 48, 'yuv420p', 1);
      const file = path.join(dir, 'sar.y4m');
      const sink = await openVideoSink(`y4m:${file}`, { fps: { num: 25, den: 1 }, name: 'sar' });
      sink.present({ ...p, sampleAspectRatio: { num: 16, den: 15 } }, at(0));
      await sink.close();
      const ours = (await fsp.readFile(file)).toString('latin1').split('\n')[0];
      assert.equal(ours, 'YUV4MPEG2 W64 H48 F25:1 Ip A16:15 C420jpeg');
      const theirs = (await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=25', '-frames:v', '1',
        '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', '-'])).toString('latin1').split('\n')[0];
      assert.match(theirs, / C420jpeg( |$)/);
      assert.equal(y4mColorspace('yuv420p'), '420jpeg');
      assert.equal(y4mColorspace('nv12'), null);
    });

    it('replaces a picture of another size or format by black, counts it, and logs once per change', async function () {
      const [big] = await testPictures(64, 48, 'yuv420p', 1);
      const [small] = await testPictures(32, 24, 'yuv420p', 1);
      const [other] = await testPictures(64, 48, 'yuv444p', 1);
      const file = path.join(dir, 'mismatch.y4m');
      const sink = await openVideoSink(`y4m:${file}`, { fps: { num: 25, den: 1 }, name: 'mismatch' });
      const order = [big, small, small, small, other, big, { ...big, planes: [big.planes[0]] }];
      order.forEach((p, i) => sink.present(p, at(i)));
      await sink.close();
      const frameSize = rawFrameSize(64, 48, 'yuv420p') as number;
      const y4m = parseY4m(await fsp.readFile(file), frameSize);
      const black = md5(blackBytes(64, 48, 'yuv420p'));
      const bigMd5 = md5(Buffer.concat(big.planes));
      assert.deepEqual(y4m.frames.map((f) => md5(f)), [bigMd5, black, black, black, black, bigMd5, black]);
      assert.equal(y4m.trailing, 0);
      const s = sink.stats;
      assert.deepEqual([s.pictures, s.black, s.mismatched, s.unsupported], [2, 5, 5, 0]);
      assert.equal(logged.filter((r) => r.message.startsWith('a picture does not match')).length, 3);
    });

    it('does not write a format y4m cannot carry: logged once, counted, kept as the sink\'s error; a later supported picture starts the stream', async function () {
      const w = 32;
      const h = 24;
      const nv12: Picture = { width: w, height: h, format: 'nv12', planes: [Buffer.alloc(w * h, 16), Buffer.alloc(w * h / 2, 128)] };
      const odd: Picture = { width: w, height: h, format: 'p010le', planes: [Buffer.alloc(10)] };
      assert.equal(videoFormatSupported('y4m', 'nv12'), false);
      assert.equal(videoFormatSupported('raw', 'nv12'), true);
      const file = path.join(dir, 'unsupported.y4m');
      const sink = await openVideoSink(`y4m:${file}`, { fps: { num: 25, den: 1 }, name: 'unsupported' });
      sink.present(nv12, at(0));
      sink.present(nv12, at(1));
      sink.present(odd, at(2));
      sink.present(null, at(3));
      assert.ok(isCuemuxError(sink.error, 'INVALID_ARGUMENT'));
      assert.match(sink.error.message, /p010le/);
      assert.equal(logged.filter((r) => r.level === 'error').length, 2, 'once per format');
      const [p] = await testPictures(w, h, 'yuv420p', 1);
      sink.present(p, at(4));
      sink.present(nv12, at(5));
      await sink.close();
      const y4m = parseY4m(await fsp.readFile(file), rawFrameSize(w, h, 'yuv420p') as number);
      assert.deepEqual(y4m.frames.map((f) => md5(f)), [md5(Buffer.concat(p.planes)), md5(blackBytes(w, h, 'yuv420p'))]);
      const s = sink.stats;
      assert.deepEqual([s.presented, s.pictures, s.black, s.mismatched, s.unsupported], [6, 1, 1, 1, 3]);
    });

    it('raw: exactly the bytes of ffmpeg -f rawvideo, black as black', async function () {
      const pictures = await testPictures(63, 47, 'yuv422p10le', 4);
      const file = path.join(dir, 'out.raw');
      const sink = await openVideoSink(`raw:${file}`, { fps: { num: 25, den: 1 }, name: 'raw' });
      pictures.forEach((p, i) => sink.present(p, at(i)));
      sink.present(null, at(9));
      await sink.close();
      assert.deepEqual(await fsp.readFile(file), Buffer.concat([...pictures.flatMap((p) => p.planes), blackBytes(63, 47, 'yuv422p10le')]));
      const nv12: Picture = { width: 4, height: 2, format: 'nv12', planes: [Buffer.alloc(8, 1), Buffer.alloc(4, 2)] };
      const file2 = path.join(dir, 'nv12.raw');
      const sink2 = await openVideoSink(`raw:${file2}`, { fps: { num: 25, den: 1 }, name: 'raw-nv12' });
      sink2.present(nv12, at(0));
      sink2.present(null, at(1));
      await sink2.close();
      assert.deepEqual([...await fsp.readFile(file2)], [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 16, 16, 16, 16, 16, 16, 16, 16, 128, 128, 128, 128]);
    });

    it('hash: one line per tick whose md5 is what ffmpeg -f framemd5 prints for the decoded clip', async function () {
      const clip = await makeMedia('player-sinks-clip.mkv', [
        '-f', 'lavfi', '-i', 'testsrc2=size=96x54:rate=25:duration=1', '-c:v', 'mpeg4', '-q:v', '5', '-pix_fmt', 'yuv420p',
      ]);
      const reference = await framemd5Decode(clip);
      const raw = await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', clip, '-map', '0:v', '-fps_mode', 'passthrough',
        '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-']);
      const pictures = splitRaw(raw, 96, 54, 'yuv420p');
      assert.equal(pictures.length, reference.length);
      const file = path.join(dir, 'hash.jsonl');
      const sink = await openVideoSink(`hash:${file}`, { fps: { num: 25, den: 1 }, name: 'hash' });
      sink.present(null, { monoNs: 2n ** 63n + 5n, ptsSeconds: null, clockSeconds: -0.5 });
      pictures.forEach((p, i) => sink.present(p, at(i)));
      await sink.close();
      const lines = await readSyncLog(file);
      assert.equal(lines.length, pictures.length + 1);
      assert.deepEqual(lines[0], { monoNs: 2n ** 63n + 5n, ptsSeconds: null, clockSeconds: -0.5, extra: { md5: null, width: null, height: null, format: null } });
      assert.deepEqual(lines.slice(1).map((l) => l.extra.md5), reference.map((f) => f.md5));
      assert.deepEqual(lines[1], { ...at(0), extra: { md5: reference[0].md5, width: 96, height: 54, format: 'yuv420p' } });
      const first = (await fsp.readFile(file, 'utf8')).split('\n')[1];
      assert.match(first, /^\{"mono_ns":"7","pts_seconds":0,"clock_seconds":0,"md5":"[0-9a-f]{32}","width":96,"height":54,"format":"yuv420p"\}$/);
      assert.equal(sink.stats.written, pictures.length + 1);
    });

    it('hash: pictures lent from shared slots are hashed off the presenting thread, lines in tick order, each slot given back once', async function () {
      const pictures = await testPictures(64, 48, 'yuv420p', 6);
      const file = path.join(dir, 'hash-shared.jsonl');
      const sink = await openVideoSink(`hash:${file}`, { fps: { num: 25, den: 1 }, name: 'hash-shared' });
      const returned = new Map<number, number>();
      const expected: Array<string | null> = [];
      let heldPastPresent = 0;
      for (let i = 0; i < 24; i++) {
        if (i % 5 === 4) {
          sink.present(null, at(i)); // a black tick after pending ones: written after them, in its place
          expected.push(null);
          continue;
        }
        const p = pictures[i % pictures.length];
        const slot = new SharedArrayBuffer(totalLength(p.planes) + 16);
        const { picture, release } = sharedPicture({ kind: 'video', pts: null, bestEffortPts: null, duration: 0, width: p.width, height: p.height, format: p.format, keyFrame: false, sampleAspectRatio: { num: 0, den: 1 } },
          slot, copyPlanes(p.planes, slot), () => returned.set(i, (returned.get(i) ?? 0) + 1));
        sink.present(picture, at(i));
        sink.present(picture, { ...at(i), held: true }); // the same picture again: hashed once
        expected.push(md5(Buffer.concat(p.planes)), md5(Buffer.concat(p.planes)));
        release();
        if (!returned.has(i)) heldPastPresent++;
      }
      // The old sink hashed in present() and never kept a slot.
      assert.ok(heldPastPresent > 0, 'the sink kept a slot past present(): it was hashed on another thread');
      await sink.close();
      const lines = await readSyncLog(file);
      assert.deepEqual(lines.map((l) => l.extra.md5), expected);
      assert.deepEqual(lines.map((l) => l.monoNs), [...lines.map((l) => l.monoNs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      assert.equal(lines.filter((l) => l.extra.held === true).length, expected.filter((m) => m !== null).length / 2);
      assert.equal(returned.size, 24 - 4, 'every slot given back by close()');
      assert.ok([...returned.values()].every((n) => n === 1), 'each slot given back exactly once');
      assert.equal(sink.stats.written, expected.length);
    });

    it('null: counts only', async function () {
      const sink = await openVideoSink('null', { fps: { num: 25, den: 1 }, name: 'null' });
      sink.present(null, at(0));
      sink.present({ width: 2, height: 2, format: 'gray', planes: [Buffer.alloc(4)] }, at(1));
      await sink.close();
      assert.deepEqual(sink.stats, { presented: 2, pictures: 1, black: 1, mismatched: 0, unsupported: 0, written: 0, dropped: 0, bytesWritten: 0 });
    });
  });

  describe('audio sinks', function () {
    /** `frames` interleaved stereo frames starting at frame `from`: a ramp on the left, its negation on the right. */
    const period = (from: number, frames: number, channels = 2): Float32Array => {
      const a = new Float32Array(frames * channels);
      for (let f = 0; f < frames; f++) for (let c = 0; c < channels; c++) a[f * channels + c] = ((from + f) % 1000) / 1000 * (c % 2 === 0 ? 1 : -1);
      return a;
    };
    const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

    it('wav: ffprobe reads pcm_f32le 48000 Hz stereo with the exact sample count, and the samples round-trip', async function () {
      const file = path.join(dir, 'out.wav');
      const sink = await openAudioSink(`wav:${file}`, { channels: 2, name: 'wav' });
      const periods = Array.from({ length: 25 }, (_, i) => period(i * 480, 480));
      const reused = new Float32Array(960);
      periods.forEach((p, i) => {
        reused.set(p);
        sink.write(reused, at(i)); // copied: reusing the array is safe
        reused.fill(9);
      });
      await sink.close();
      await sink.close();
      const probe = JSON.parse((await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', file])).toString()) as
        { streams: Array<{ codec_name: string; sample_rate: string; channels: number; duration_ts: number }> };
      assert.deepEqual(probe.streams.map((s) => [s.codec_name, s.sample_rate, s.channels, s.duration_ts]), [['pcm_f32le', '48000', 2, 25 * 480]]);
      const decoded = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'f32le', '-']);
      assert.deepEqual(decoded, Buffer.concat(periods.map(bytesOf)));
      const header = (await fsp.readFile(file)).subarray(0, 58);
      assert.equal(header.readUInt16LE(20), 3, 'WAVE_FORMAT_IEEE_FLOAT');
      assert.equal(header.subarray(38, 42).toString(), 'fact');
      assert.equal(header.readUInt32LE(46), 25 * 480, 'fact: frames');
      assert.equal(header.readUInt32LE(54), 25 * 480 * 8, 'data size');
      assert.equal(header.readUInt32LE(4), 50 + 25 * 480 * 8, 'RIFF size');
      assert.deepEqual(sink.stats, { periods: 25, frames: 25 * 480, written: 25, dropped: 0, bytesWritten: 58 + 25 * 480 * 8 });
    });

    it('wav left by a killed player (sizes 0) is still read by ffmpeg to its end', async function () {
      const file = path.join(dir, 'killed.wav');
      const data = period(0, 4800, 6);
      await fsp.writeFile(file, Buffer.concat([wavFloatHeader(44100, 6), bytesOf(data)]));
      const probe = JSON.parse((await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', file])).toString()) as
        { streams: Array<{ codec_name: string; sample_rate: string; channels: number }> };
      assert.deepEqual(probe.streams.map((s) => [s.codec_name, s.sample_rate, s.channels]), [['pcm_f32le', '44100', 6]]);
      assert.deepEqual(await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'f32le', '-']), bytesOf(data));
    });

    it('raw to a FIFO: the reader gets whole f32le periods; a period that is not whole frames is dropped', async function () {
      const fifo = mkfifo(dir, 'audio.raw');
      const sink = await openAudioSink(`raw:${fifo}`, { channels: 2, name: 'raw' });
      sink.write(period(0, 100), at(0)); // no reader yet: dropped
      const file = path.join(dir, 'audio.out');
      const reader = catInto(fifo, file);
      const periods: Float32Array[] = [];
      let i = 0;
      await tickUntil(() => {
        const p = period(i * 256, 256);
        sink.write(p, at(i));
        i++;
        periods.push(p);
      }, () => sink.stats.written >= 20, 'periods written');
      sink.write(new Float32Array(3), at(i));
      await sink.close();
      assert.equal(await exited(reader), 0);
      const got = await fsp.readFile(file);
      // The reader attached at some period boundary; from there on it got every period written.
      const all = Buffer.concat(periods.map(bytesOf));
      assert.equal(got.length % (256 * 8), 0, 'whole periods');
      assert.ok(got.length >= 20 * 256 * 8);
      assert.ok(all.subarray(all.length - got.length).equals(got), 'the last periods, in order');
      assert.equal(logged.filter((r) => r.message.startsWith('a period is not a whole number of frames')).length, 1);
      assert.ok(sink.stats.dropped >= 2);
    });

    it('null: counts only', async function () {
      const sink = await openAudioSink('null', { channels: 1, name: 'null' });
      sink.write(period(0, 10, 1), at(0));
      await sink.close();
      assert.deepEqual(sink.stats, { periods: 1, frames: 10, written: 0, dropped: 0, bytesWritten: 0 });
    });
  });

  describe('SyncLog', function () {
    it('writes JSON lines that readSyncLog reads back exactly, mono_ns as a bigint', async function () {
      const file = path.join(dir, 'sync.jsonl');
      const log = await SyncLog.open(file);
      const big = 123_456_789_012_345_678_901n;
      log.record(big, 1.25, 1.5, { cue: 'intro', segment: 2, covers: true, media_seconds: null, mono_ns: 'ignored' });
      log.record(1n, null, Number.NaN);
      log.record(2n, 3, 4, {});
      await log.close();
      await log.close();
      log.record(3n, 0, 0);
      assert.deepEqual(log.stats, { records: 3, dropped: 1, failed: false });
      const text = await fsp.readFile(file, 'utf8');
      assert.equal(text.split('\n')[0], `{"mono_ns":"${big}","pts_seconds":1.25,"clock_seconds":1.5,"cue":"intro","segment":2,"covers":true,"media_seconds":null}`);
      await fsp.writeFile(file, text.replace('"clock_seconds":null', '"clock_seconds":0'));
      assert.deepEqual(await readSyncLog(file), [
        { monoNs: big, ptsSeconds: 1.25, clockSeconds: 1.5, extra: { cue: 'intro', segment: 2, covers: true, media_seconds: null } },
        { monoNs: 1n, ptsSeconds: null, clockSeconds: 0, extra: {} },
        { monoNs: 2n, ptsSeconds: 3, clockSeconds: 4, extra: {} },
      ]);
    });

    it('reads a log cut short by a killed player, and rejects a damaged one naming the line', async function () {
      const file = path.join(dir, 'cut.jsonl');
      await fsp.writeFile(file, '{"mono_ns":"5","pts_seconds":1,"clock_seconds":1}\n{"mono_ns":"6","pts_sec');
      assert.deepEqual((await readSyncLog(file)).map((r) => r.monoNs), [5n]);
      await fsp.writeFile(file, '{"mono_ns":5,"pts_seconds":1,"clock_seconds":1}\n{"mono_ns":"6","pts_seconds":1,"clock_seconds":1}\n');
      await rejectsWith(readSyncLog(file), 'INVALID_ARGUMENT', new RegExp(`${escape(file).source}:1: .*mono_ns`));
      await rejectsWith(readSyncLog(path.join(dir, 'none.jsonl')), 'NOT_FOUND', /none\.jsonl/);
    });

    it('a write error (full disk) is logged once and disables the log; the player is never stopped', async function () {
      const log = await SyncLog.open('/dev/full');
      for (let i = 0; i < 5; i++) log.record(BigInt(i), i, i);
      await waitFor(() => log.stats.failed, 'the write error');
      for (let i = 0; i < 5; i++) log.record(BigInt(i), i, i);
      await log.close();
      assert.equal(log.stats.failed, true);
      assert.ok(log.stats.dropped >= 5);
      assert.equal(logged.filter((r) => r.level === 'error').length, 1);
    });
  });
});
