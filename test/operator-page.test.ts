/// <reference lib="dom" />
/**
 * The operator page in a real browser: Debian's chromium, headless, driven by puppeteer-core, against a real server
 * (in-process, gRPC on its socket, OSC on UDP, HTTP on 127.0.0.1:0 with the media, preview and operator routes).
 * The page loads and shows the cue list with its standby cue; GO pressed on the page starts the cue (checked through
 * gRPC GetStatus, not through the page) and the page's clock then advances; the cue whose file is missing shows in
 * the page's error log; the preview <video> plays H.264 from /preview (its currentTime advances, and a frame drawn
 * to a canvas matches FFmpeg's decode of the same frame within a PSNR bound); a growing file's preview plays past
 * what was written when it started. One browser and one server for the file; no timing assertions (every wait has
 * a deadline and waits for an event or a value).
 */
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'puppeteer-core';
import { startHttp, type HttpServer } from '../src/http/http-server';
import { mediaRoutes } from '../src/http/media-routes';
import { previewRoutes } from '../src/http/preview-routes';
import { registerOperatorRoutes } from '../src/http/operator-routes';
import { browserMissing, launchBrowser, saveScreenshot, tabletPage } from './support/browser';
import { minuteClip } from './support/media';
import { startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { killChild, waitFor } from './support/wait';

const run = promisify(execFile);

/** The server's --growing-wait-ms here: longer than any pause of the ffmpeg -re writer (it flushes every packet). */
const GROWING_WAIT_MS = 1500;

/** Width and height of the minute clip (test/support/media.ts). */
const W = 160;
const H = 120;

/**
 * Lowest PSNR (dB, RGB) accepted between the browser's frame and FFmpeg's. Chromium and swscale convert YUV to RGB
 * with their own rounding: the same frame measured 47.9 dB here, its neighbours in testsrc2 (which moves every
 * frame) 18.0-18.1 dB.
 */
const MIN_PSNR_DB = 30;

/** PSNR in dB of the RGB channels of two RGBA images of the same size. */
function psnr(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, 'images of the same size');
  let se = 0;
  let n = 0;
  for (let i = 0; i < a.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const d = a[i + c] - b[i + c];
      se += d * d;
      n++;
    }
  }
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / n));
}

/** FFmpeg's decode of video frame `n` of `file` as RGBA. */
async function ffmpegFrame(file: string, n: number): Promise<Uint8Array> {
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-vf', `select=eq(n\\,${n})`, '-frames:v', '1',
    '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { encoding: 'buffer', maxBuffer: 1 << 24 });
  assert.equal(stdout.length, W * H * 4, `ffmpeg gave frame ${n} of ${file}`);
  return new Uint8Array(stdout);
}

/** The presentation times (s) of the video packets written to `file` so far, in presentation order. */
async function videoTimes(file: string): Promise<number[]> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { maxBuffer: 1 << 24 });
  return stdout.split('\n').map((line) => parseFloat(line)).filter(Number.isFinite).sort((x, y) => x - y);
}

/** The last video time (s) written to `file` so far (a growing file: what FFmpeg can read of it now). */
async function writtenSeconds(file: string): Promise<number> {
  const times = await videoTimes(file);
  return times.length === 0 ? 0 : times[times.length - 1];
}

/** The response headers of GET `url` (the body is not read). */
function headersOf(url: string): Promise<http.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      resolve(res.headers);
      res.destroy();
    });
    req.on('error', reject);
  });
}

/** The page's preview video: currentTime, readyState, error. */
function videoState(page: Page): Promise<{ t: number; ready: number; error: string | null; src: string }> {
  return page.$eval('#preview', (v) => {
    const video = v as HTMLVideoElement;
    return { t: video.currentTime, ready: video.readyState, error: video.error ? `${video.error.code} ${video.error.message}` : null, src: video.currentSrc };
  });
}

/** Wait until the preview video has played past `seconds` (failing at once on a media error). */
async function videoPast(page: Page, seconds: number, timeoutMs = 20_000): Promise<number> {
  return waitFor(`the preview <video> past ${seconds.toFixed(2)} s`, async () => {
    const s = await videoState(page);
    if (s.error !== null) throw new Error(`the preview <video> failed: ${s.error} (${s.src})`);
    return s.t > seconds ? s.t : undefined;
  }, timeoutMs, 50);
}

describe('operator page in headless chromium', function () {
  let srv: TestServer;
  let web: HttpServer;
  let base: string;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];
  let clip: string;
  const writers: ChildProcess[] = [];

  before(async function () {
    const missing = browserMissing();
    if (missing !== null) {
      // eslint-disable-next-line no-console -- the reason for the skip
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    const root = await scratchDir('page-root');
    clip = await copyInto(await minuteClip(), root, 'clip.mp4');
    const cueList = path.join(root, 'show.json');
    await fsp.writeFile(cueList, JSON.stringify({
      version: 1, name: 'Page test',
      cues: [{ id: '1', name: 'Opening', media: 'clip.mp4' }, { id: '2', name: 'Lost file', media: 'missing.mp4' }],
    }));
    srv = await startServer({ mediaRoots: [root], cueList, growingWaitMs: GROWING_WAIT_MS });
    const started = await startHttp(srv.server, { http: '127.0.0.1:0', httpAllow: null, tokenFile: undefined, mediaRoots: [root], growingWaitMs: GROWING_WAIT_MS },
      [mediaRoutes, previewRoutes, (app, ctx) => registerOperatorRoutes(app, ctx)]);
    assert.ok(started !== null);
    web = started;
    base = `http://${web.address}`;
    browser = await launchBrowser();
    ({ page, errors: pageErrors } = await tabletPage(browser));
  });

  after(async function () {
    for (const w of writers) await killChild(w);
    await browser?.close();
    await web?.close(500);
    await srv?.stop();
  });

  it('loads: the cue list in order with the standby cue highlighted, the clock stopped, live updates connected', async function () {
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => document.querySelectorAll('#cues tbody tr').length === 2 && document.getElementById('link')?.textContent === 'live',
      { timeout: 20_000 });
    const rows = await page.$$eval('#cues tbody tr', (trs) => trs.map((tr) => ({ id: (tr as HTMLElement).dataset.cue, state: (tr as HTMLElement).dataset.state, standby: tr.classList.contains('standby') })));
    assert.deepEqual(rows, [{ id: '1', state: 'unloaded', standby: true }, { id: '2', state: 'unloaded', standby: false }]);
    assert.equal(await page.$eval('#clock-state', (e) => e.textContent), 'stopped');
    assert.equal(await page.$eval('#timecode', (e) => e.textContent), '00:00:00:00');
    // Touch targets of the transport: at least 44 CSS px each way.
    const sizes = await page.$$eval('#transport button', (bs) => bs.map((b) => b.getBoundingClientRect()).map((r) => Math.min(r.width, r.height)));
    assert.ok(sizes.length >= 5 && sizes.every((s) => s >= 44), `transport buttons at least 44 px: ${sizes.join(', ')}`);
    assert.deepEqual(pageErrors, []);
  });

  it('GO on the page starts the standby cue (seen through gRPC GetStatus); the page\'s clock then advances; the cue whose file is missing is in the error log', async function () {
    const client = srv.client();
    const before = await client.getStatus();
    assert.equal(before.show?.clock?.state, 'stopped');
    await page.click('#go');
    const status = await waitFor('cue 1 playing in GetStatus', async () => {
      const s = await client.getStatus();
      return s.show?.cues.find((c) => c.id === '1')?.state === 'playing' ? s : undefined;
    }, 20_000);
    assert.equal(status.show?.clock?.state, 'playing');
    assert.equal(status.show?.cueList?.standby, '2', 'the playhead moved on');
    // The page's clock: read twice, the second time after the server's clock has run at least half a second more.
    const first = await page.$eval('#clock-seconds', (e) => parseFloat(e.textContent ?? 'NaN'));
    const firstTc = await page.$eval('#timecode', (e) => e.textContent);
    const serverAt = (await client.getStatus()).show?.clock?.positionSeconds ?? 0;
    await waitFor('the server clock 0.5 s further', async () => ((await client.getStatus()).show?.clock?.positionSeconds ?? 0) > serverAt + 0.5, 20_000, 50);
    const second = await page.$eval('#clock-seconds', (e) => parseFloat(e.textContent ?? 'NaN'));
    assert.ok(second > first, `the page's clock advanced: ${first} -> ${second}`);
    assert.notEqual(await page.$eval('#timecode', (e) => e.textContent), firstTc, 'the timecode moved');
    await page.waitForFunction(() => document.querySelector('#cues tr[data-cue="1"]')?.getAttribute('data-state') === 'playing', { timeout: 20_000 });
    // Cue 2 is armed in the background after the GO; its file does not exist.
    await page.waitForFunction(() => /cue 2 \(pre-arm\): .*missing\.mp4/.test(document.getElementById('log')?.textContent ?? ''), { timeout: 20_000 });
  });

  it('the page\'s actions get the OSC replies: stop answers the stopped cues, a cross-site action is refused', async function () {
    const reply = await page.evaluate(() => fetch('/action/stop', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.json() as Promise<unknown>));
    assert.deepEqual(reply, { address: '/cuemux/cue/stop', status: 'ok', data: { stopped: ['1'] } });
    const bad = await page.evaluate(() => fetch('/action/standby', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":"nope"}' })
      .then(async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> })));
    assert.equal(bad.status, 404);
    assert.equal(bad.body.code, 'NOT_FOUND');
    assert.match(String(bad.body.error), /no cue "nope"/);
    const cross = await fetch(`${base}/action/go`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://elsewhere.example' }, body: '{}' });
    assert.equal(cross.status, 403);
    const status = await srv.client().getStatus();
    assert.equal(status.show?.cues.find((c) => c.id === '1')?.state, 'armed', 'the refused GO started nothing');
  });

  it('live updates are bounded: 16 pages at a time, the 17th refused with 503 naming the limit; a page that goes away frees its place', async function () {
    // The browser's page holds one place; 15 more connections fill the rest.
    const open: http.ClientRequest[] = [];
    const connect = (): Promise<http.IncomingMessage> => new Promise((resolve, reject) => {
      const req = http.get(`${base}/events`, resolve);
      req.on('error', reject);
      open.push(req);
    });
    try {
      for (let i = 0; i < 15; i++) assert.equal((await connect()).statusCode, 200, `page ${i + 2}`);
      const refused = await connect();
      assert.equal(refused.statusCode, 503);
      const body = await new Promise<string>((resolve) => {
        let text = '';
        refused.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => resolve(text));
      });
      assert.match(body, /already 16 operator pages/);
      open.pop();
      open.pop()?.destroy();
      await waitFor('a place freed', async () => (await connect()).statusCode === 200 ? true : undefined, 10_000, 50);
    } finally {
      for (const req of open) req.destroy();
    }
  });

  it('the preview <video> plays the cue\'s H.264 from /preview: currentTime advances, and a frame matches FFmpeg\'s within the PSNR bound', async function () {
    await page.click('#cues tr[data-cue="1"] button[title^="Preview"]');
    await videoPast(page, 1.5);
    const src = (await videoState(page)).src;
    const shift = Number((await headersOf(src))['x-cuemux-preview-start'] ?? 'NaN');
    assert.ok(Number.isFinite(shift), `X-Cuemux-Preview-Start of ${src}`);
    // The frame the browser presents next, drawn in its requestVideoFrameCallback (the frame on screen then), with
    // its media time: source frame n is shown at video time pts(n) - shift. (The stream is not seekable: a seek
    // lands on 0.)
    const { mediaTime, pixels } = await page.evaluate(async (w, h) => {
      const v = document.getElementById('preview') as HTMLVideoElement;
      return new Promise<{ mediaTime: number; pixels: number[] }>((resolve) => {
        v.requestVideoFrameCallback((_now, meta) => {
          const canvas = document.createElement('canvas');
          canvas.width = w;
          canvas.height = h;
          const g = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D;
          g.drawImage(v, 0, 0, w, h);
          resolve({ mediaTime: meta.mediaTime, pixels: Array.from(g.getImageData(0, 0, w, h).data) });
        });
      });
    }, W, H);
    const pts = await videoTimes(clip);
    let n = 0;
    for (let i = 1; i < pts.length; i++) if (Math.abs(pts[i] - shift - mediaTime) < Math.abs(pts[n] - shift - mediaTime)) n = i;
    const target = mediaTime;
    const shown = new Uint8Array(pixels);
    const same = psnr(shown, await ffmpegFrame(clip, n));
    const neighbours = [psnr(shown, await ffmpegFrame(clip, n - 1)), psnr(shown, await ffmpegFrame(clip, n + 1))];
    // eslint-disable-next-line no-console -- the figures behind MIN_PSNR_DB
    console.log(`      frame ${n} at ${target.toFixed(3)} s: PSNR ${same.toFixed(1)} dB; frames ${n - 1} and ${n + 1}: ${neighbours.map((p) => p.toFixed(1)).join(', ')} dB`);
    assert.ok(same >= MIN_PSNR_DB, `the browser's frame ${n} is FFmpeg's: PSNR ${same.toFixed(1)} dB >= ${MIN_PSNR_DB}`);
    assert.ok(neighbours.every((p) => p < same), 'and closer to it than to its neighbours');
    // The page as a reader sees it (README: docs/images/operator-page.png is one of these).
    await fsp.access(await saveScreenshot(page, 'operator-page'));
  });

  it('a growing file\'s preview plays past what was written when it started', async function () {
    const out = path.join(srv.root, 'growing.mkv');
    const writer = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-re', '-i', clip, '-t', '40', '-map', '0', '-c', 'copy', '-flush_packets', '1',
      '-cluster_time_limit', '100', '-f', 'matroska', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    writers.push(writer);
    await waitFor('the writer has written 1 s', async () => (await fsp.stat(out).catch(() => null) !== null) && await writtenSeconds(out) >= 1, 20_000, 100);
    // A player opens it first, as a cue would (the server then follows it), and the preview is asked once its first
    // packets are indexed: what is measured is the growth after that.
    const client = srv.client();
    const info = await client.openMedia('growing.mkv');
    assert.equal(info.growth?.state, 'growing');
    await waitFor('packets indexed', async () => {
      const m = (await client.getStatus()).media.find((x) => x.path.endsWith('growing.mkv'));
      return m !== undefined && m.packetCount > 0n;
    }, 20_000, 50);
    await page.evaluate(() => {
      const v = document.getElementById('preview') as HTMLVideoElement;
      v.src = '/preview/growing.mkv?start=0';
      void v.play();
    });
    await page.waitForFunction(() => (document.getElementById('preview') as HTMLVideoElement).readyState >= 2, { timeout: 20_000 });
    // The browser has its first bytes: the preview began with at most what is written now.
    const writtenAtStart = await writtenSeconds(out);
    const reached = await videoPast(page, writtenAtStart + 1.5, 30_000);
    assert.ok(reached > writtenAtStart + 1.5, `played to ${reached.toFixed(2)} s, past the ${writtenAtStart.toFixed(2)} s written when it began`);
    // The writer (40 s of media at its real rate) is stopped here: the test does not wait for it.
    await killChild(writer);
  });
});
