/**
 * `play-video --window` under a real X server (Xvfb, started here on a free display): a real `cuemux serve`, a real
 * player presenting into an SDL window, a cue fired over OSC. While it plays, screenshots of the X screen
 * (`xwd -root`, decoded by FFmpeg) are compared with FFmpeg's own decode of the clip scaled to the window the same
 * way: the window shows the frame for the clock at the screenshot's instant (PSNR at least {@link MIN_PSNR_DB} dB,
 * and better than against its neighbouring frames). The sync log carries each presentation's figures.
 *
 * Nothing is timed: a screenshot is only judged when the frame for the clock is the same all through its capture
 * and no presentation finished during it (read back from the player's logs afterwards).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CUEMUX_BIN } from './support/cli';
import { makeMedia } from './support/media';
import { startXvfb, stopXvfb } from './support/xvfb';
import { d, killAll, mediaStart, readTicks, s, Show, stopPlayer, tickInstant, VideoReference, waitPrepared, type PlayerProcess } from './support/show-check';
import { SDL_ADDON } from '../src/players/video-window';

const execFileAsync = promisify(execFile);

/** The window: 640x360 at the screen's top left (borderless; Xvfb has no window manager anyway). */
const WIN = { w: 640, h: 360 };
/** Display ticks per second; the clip has 2 frames a second, so each picture is on screen for 12-13 ticks (500 ms). */
const FPS = 25;
/** Lowest PSNR (dB, over R, G and B) of a screenshot against FFmpeg's scaled frame (measured 46-47 dB; neighbouring frames 11-17 dB). */
const MIN_PSNR_DB = 40;
/**
 * Screenshots taken during the cue, one per 500 ms frame: 6 consecutive frames (at least 3 judged) show the window
 * following the clock frame after frame as well as 10 did, in 2 s less.
 */
const SHOTS = 6;

/**
 * 20 s of 1280x720 2 fps H.264 (testsrc2: every frame differs from its neighbours). Slow, so that a screenshot (40 ms
 * to 400 ms for xwd on a loaded machine) falls within one frame's span.
 */
function clip720(): Promise<string> {
  return makeMedia('window-720p2-20s.mp4', ['-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=2:duration=20',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '4']);
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** A play-video child with DISPLAY set. */
function spawnWindowPlayer(args: string[], display: string): PlayerProcess {
  const child = spawn(process.execPath, [CUEMUX_BIN, '--log-level', 'info', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DISPLAY: display } });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (x: string) => { err += x; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

/**
 * FFmpeg's decode of `file` as the window shows it, rgb24, one buffer per frame in pts order: converted to RGB at its
 * own size (BT.709, limited range: SDL's choice above 576 lines), then scaled to the window by swscale's `flags`.
 * SDL's renderers work in that order: its software renderer converts the YUV texture to RGB and then stretches it,
 * its OpenGL renderer samples the planes with linear filtering and converts in the shader. Scaling the YUV planes
 * first instead (`-vf scale=640:360`) differs where testsrc2's saturated colours clip: measured 29.7 dB against
 * 46-47 dB this way (`--window-scale linear` against `area`, an exact 2:1 reduction being a 2x2 average for both).
 */
async function scaledReference(file: string, flags: string): Promise<Buffer[]> {
  const frame = WIN.w * WIN.h * 3;
  const { stdout } = await execFileAsync('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:v:0', '-fps_mode', 'passthrough',
    '-vf', `scale=in_color_matrix=bt709:in_range=tv,format=rgb24,scale=${WIN.w}:${WIN.h}:flags=${flags}`, '-f', 'rawvideo', '-'],
  { encoding: 'buffer', maxBuffer: 1 << 30 });
  const out: Buffer[] = [];
  for (let o = 0; o + frame <= stdout.length; o += frame) out.push(stdout.subarray(o, o + frame));
  return out;
}

/** The window's region of an xwd screenshot, rgb24. */
async function windowPixels(xwdFile: string): Promise<Buffer> {
  const { stdout } = await execFileAsync('ffmpeg', ['-v', 'error', '-f', 'image2', '-c:v', 'xwd', '-i', xwdFile,
    '-vf', `crop=${WIN.w}:${WIN.h}:0:0,format=rgb24`, '-f', 'rawvideo', '-'], { encoding: 'buffer', maxBuffer: 1 << 28 });
  assert.equal(stdout.length, WIN.w * WIN.h * 3, `${xwdFile}: ${stdout.length} bytes of window pixels`);
  return stdout;
}

/**
 * What a window manager sends when its user closes a window: WM_DELETE_WINDOW (a WM_PROTOCOLS client message) to
 * every top-level window named argv[2] on display argv[1], through libX11 from Python's ctypes (Xvfb runs no window
 * manager). Prints how many it found.
 */
const WM_CLOSE_PY = String.raw`import ctypes, ctypes.util, sys
x = ctypes.CDLL(ctypes.util.find_library('X11'))
x.XOpenDisplay.restype = ctypes.c_void_p; x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XDefaultRootWindow.restype = ctypes.c_ulong; x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x.XInternAtom.restype = ctypes.c_ulong; x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)), ctypes.POINTER(ctypes.c_uint)]
x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
class Ev(ctypes.Structure):
    _fields_ = [('type', ctypes.c_int), ('serial', ctypes.c_ulong), ('send_event', ctypes.c_int), ('display', ctypes.c_void_p),
                ('window', ctypes.c_ulong), ('message_type', ctypes.c_ulong), ('format', ctypes.c_int), ('l', ctypes.c_long * 5), ('pad', ctypes.c_long * 12)]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(Ev)]
x.XFlush.argtypes = [ctypes.c_void_p]; x.XCloseDisplay.argtypes = [ctypes.c_void_p]
d = x.XOpenDisplay(sys.argv[1].encode())
if not d: sys.exit('cannot open display ' + sys.argv[1])
root = x.XDefaultRootWindow(d)
r = ctypes.c_ulong(); p = ctypes.c_ulong(); ch = ctypes.POINTER(ctypes.c_ulong)(); n = ctypes.c_uint()
x.XQueryTree(d, root, ctypes.byref(r), ctypes.byref(p), ctypes.byref(ch), ctypes.byref(n))
found = 0
for i in range(n.value):
    name = ctypes.c_char_p()
    if x.XFetchName(d, ch[i], ctypes.byref(name)) and name.value == sys.argv[2].encode():
        ev = Ev(); ev.type = 33; ev.window = ch[i]; ev.message_type = x.XInternAtom(d, b'WM_PROTOCOLS', 0); ev.format = 32
        ev.l[0] = x.XInternAtom(d, b'WM_DELETE_WINDOW', 0); ev.l[1] = 0
        x.XSendEvent(d, ch[i], 0, 0, ctypes.byref(ev)); found += 1
x.XFlush(d); x.XCloseDisplay(d)
print(found)
sys.exit(0 if found else 2)
`;

function psnr(a: Buffer, b: Buffer): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const e = a[i] - b[i];
    se += e * e;
  }
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

describe('play-video --window (SDL2 under Xvfb)', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];
  const xservers: ChildProcess[] = [];
  let show: Show | null = null;

  before(function () {
    const missing = ['Xvfb', 'xwd', 'ffmpeg'].filter((c) => !have(c));
    const why = missing.length > 0 ? `${missing.join(', ')} not installed (Debian xvfb, x11-apps, ffmpeg: scripts/setup.sh installs them)`
      : !existsSync(SDL_ADDON) ? `the SDL window addon is not built (${SDL_ADDON}): scripts/setup.sh installs libsdl2-dev and builds it` : null;
    if (why !== null) {
      process.stdout.write(`      (skipped: ${why})\n`);
      this.skip();
    }
  });

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
    for (const c of xservers.splice(0)) await stopXvfb(c);
  });

  it('shows the frame for the clock in the window, scaled (PSNR against FFmpeg), and logs each presentation', async function () {
    const clip = await clip720();
    const x = await startXvfb();
    xservers.push(x.child);
    const [ref, start, scaled] = await Promise.all([VideoReference.of(clip), mediaStart(clip), scaledReference(clip, 'area')]);
    assert.equal(scaled.length, ref.frames.length, 'FFmpeg\'s scaled decode and its framemd5 have the same frames');
    show = await Show.start({ 'w.mp4': clip }, children, 'window');
    const IN = 1;
    const OUT = 18;
    await show.osc('/cuemux/cue/load', [s('Q'), s('w.mp4'), d(IN), d(OUT)]);
    await show.osc('/cuemux/clock/play');
    const hash = show.file('frames.jsonl');
    const sync = show.file('sync.jsonl');
    const p = spawnWindowPlayer(['play-video', '--socket', show.socket, '--fps', String(FPS), '--window', `${WIN.w}x${WIN.h}+0+0`,
      // --lead 2: at 2 frames a second the decoder's frame-threading delay alone is more than the default 0.5 s.
      '--window-scale', 'linear', '--lead', '2', '--sink', `hash:${hash}`, '--sync-log', sync], x.display);
    children.push(p.child);
    await show.followers(['video'], [p]);
    await tickInstant(sync);
    await waitPrepared(p, ['Q']);
    const go = await show.osc('/cuemux/cue/go', [s('Q')]) as { clockSeconds: number };
    const startClock = go.clockSeconds;
    assert.equal(typeof startClock, 'number');
    // Screenshots while it plays, each bracketed by CLOCK_MONOTONIC instants, started 150 ms into each frame's 500 ms
    // span on the clock: after the frame's first tick (≤ 40 ms in) has been presented, and, for a capture under
    // 350 ms, before the next frame's. A screenshot that still straddles a change is not judged (below).
    await show.clockPast(startClock + 1);
    const clock = await show.clockState();
    const monoAtMedia = (m: number): bigint => clock.anchorMonotonicNs + BigInt(Math.round((startClock + (m - start - IN) - clock.positionSeconds) * 1e9 / clock.rate));
    const dir = await fsp.mkdtemp(path.join(show.out, 'shots-'));
    const shots: Array<{ file: string; t0: bigint; t1: bigint }> = [];
    let n = (ref.at(start + IN + (Show.positionAt(clock, process.hrtime.bigint()) - startClock))?.n ?? 0) + 2;
    for (let k = 0; k < SHOTS; k++, n++) {
      const f = ref.frames[n];
      const wait = Number(monoAtMedia(f.seconds + 0.15) - process.hrtime.bigint()) / 1e6;
      if (wait > 0) await sleep(wait);
      const file = path.join(dir, `shot-${k}.xwd`);
      const t0 = process.hrtime.bigint();
      const r = spawnSync('xwd', ['-root', '-display', x.display, '-silent', '-out', file]);
      const t1 = process.hrtime.bigint();
      assert.equal(r.status, 0, `xwd: ${String(r.stderr)}`);
      shots.push({ file, t0, t1 });
    }
    await show.clockPast(startClock + 0.5 + Number(process.hrtime.bigint() - shots[SHOTS - 1].t1) / 1e9);
    await stopPlayer(p, 'play-video --window');
    const stderr = p.stderr();

    // The window opened on the Xvfb display, and the player said how.
    assert.match(stderr, /video window open: 640x360, SDL x11 \S+ renderer, vsync (on|off|requested)/, stderr.slice(-3000));
    const opened = /video window open: [^"]*/.exec(stderr)?.[0] ?? '';

    // Every tick from the first presentation on carries the presentation figures (of the latest one): the lines
    // without them are the ticks before the window first showed a picture (more of them on a loaded machine, where
    // llvmpipe's first frame takes longer), never one after.
    const ticks = await readTicks(hash, sync);
    const lines = ticks.map((t) => t.sync).filter((r): r is Record<string, unknown> => r !== null);
    const hasFigures = (r: Record<string, unknown>): boolean => typeof r.present_ns === 'number' && typeof r.present_of_ns === 'number' && typeof r.swap_ns === 'number';
    const withFigures = lines.filter(hasFigures);
    const first = lines.findIndex(hasFigures);
    assert.ok(first >= 0 && withFigures.length === lines.length - first,
      `${withFigures.length} of ${lines.length} sync-log lines carry present_ns; the first at line ${first}: ${lines.length - first - withFigures.length} after it do not`);
    assert.ok(withFigures.length > lines.length / 2, `only ${withFigures.length} of ${lines.length} ticks came after the first presentation`);
    for (const r of withFigures) {
      assert.ok((r.present_ns as number) > 0 && (r.swap_ns as number) >= 0 && (r.swap_ns as number) <= (r.present_ns as number), JSON.stringify(r));
      assert.ok(typeof r.late_ns === 'number', JSON.stringify(r));
    }
    // present_of_ns names a tick of the log (its mono_ns).
    const byMono = new Map(ticks.map((t) => [Number(t.monoNs), t]));
    const presentations = new Map<number, { endNs: number; md5: string | null }>();
    for (const r of withFigures) {
      const of = r.present_of_ns as number;
      const t = byMono.get(of);
      assert.ok(t !== undefined, `present_of_ns ${of} is not the mono_ns of a tick`);
      presentations.set(of, { endNs: of + (r.present_ns as number), md5: t.md5 });
    }
    const presentNs = [...withFigures.map((r) => r.present_ns as number)].sort((a, b) => a - b);
    const p50 = presentNs[Math.floor(presentNs.length / 2)];
    const p99 = presentNs[Math.floor(presentNs.length * 0.99)];
    const swapNs = [...withFigures.map((r) => r.swap_ns as number)].sort((a, b) => a - b);
    const lateNs = lines.map((r) => r.late_ns as number).sort((a, b) => a - b);
    const stats = /cuemux play-video: (\{.*\})/.exec(stderr)?.[1];
    assert.ok(stats !== undefined, 'the player printed its counters');
    const window = (JSON.parse(stats) as { window?: { presentations: number; replaced: number; presentNs: { p99: number } } }).window;
    assert.ok(window !== undefined && window.presentations > 0, stats);

    // Each screenshot: the frame for the clock at its instant, scaled as FFmpeg scales it.
    const sorted = [...presentations.entries()].sort((a, b) => a[0] - b[0]);
    const onScreenAt = (ns: number): string | null | undefined => sorted.filter(([, v]) => v.endNs <= ns).at(-1)?.[1].md5;
    const results: string[] = [];
    let judged = 0;
    for (const shot of shots) {
      const media0 = start + IN + (Show.positionAt(clock, shot.t0) - startClock);
      const media1 = start + IN + (Show.positionAt(clock, shot.t1) - startClock);
      const f0 = ref.at(media0);
      const f1 = ref.at(media1);
      assert.ok(f0 !== undefined && f1 !== undefined);
      const shown0 = onScreenAt(Number(shot.t0));
      const shown1 = onScreenAt(Number(shot.t1));
      if (f0.n !== f1.n || shown0 !== shown1) {
        results.push(`${path.basename(shot.file)}: not judged: during its capture (${(Number(shot.t1 - shot.t0) / 1e6).toFixed(1)} ms) the frame for the clock went `
          + `${f0.n}→${f1.n}, the one presented ${ref.nameOf(shown0 ?? null)}→${ref.nameOf(shown1 ?? null)}`);
        continue;
      }
      judged++;
      const pixels = await windowPixels(shot.file);
      const scores = [-2, -1, 0, 1, 2].map((k) => f0.n + k).filter((n) => n >= 0 && n < scaled.length).map((n) => ({ n, db: psnr(pixels, scaled[n]) }));
      const own = scores.find((x) => x.n === f0.n);
      assert.ok(own !== undefined);
      const best = scores.reduce((a, b) => (b.db > a.db ? b : a));
      results.push(`${path.basename(shot.file)}: clock frame ${f0.n} PSNR ${own.db.toFixed(2)} dB; neighbours ${scores.filter((x) => x.n !== f0.n).map((x) => `${x.n}: ${x.db.toFixed(1)}`).join(', ')}`);
      assert.equal(shown0, f0.md5, `${path.basename(shot.file)}: the player's logs say it had presented ${ref.nameOf(shown0 ?? null)}, not the frame for the clock (${ref.nameOf(f0.md5)})\n${results.join('\n')}`);
      assert.equal(best.n, f0.n, `${path.basename(shot.file)}: the screenshot matches frame ${best.n} best, not frame ${f0.n} (the frame for the clock)\n${results.join('\n')}`);
      assert.ok(own.db >= MIN_PSNR_DB, `${path.basename(shot.file)}: PSNR ${own.db.toFixed(2)} dB < ${MIN_PSNR_DB}\n${results.join('\n')}`);
    }
    assert.ok(judged >= SHOTS / 2, `only ${judged} of ${SHOTS} screenshots could be judged:\n${results.join('\n')}`);
    process.stdout.write(`      (${opened}; ${withFigures.length} ticks with present_ns: p50 ${(p50 / 1e3).toFixed(0)} µs, p99 ${(p99 / 1e3).toFixed(0)} µs, in SDL_RenderPresent p50 ${(swapNs[swapNs.length >> 1] / 1e3).toFixed(0)} µs, ` +
      `p99 ${(swapNs[Math.floor(swapNs.length * 0.99)] / 1e3).toFixed(0)} µs; tick late_ns p99 ${(lateNs[Math.floor(lateNs.length * 0.99)] / 1e3).toFixed(0)} µs; ` +
      `${window.replaced} replaced in the mailbox)\n      ${results.join('\n      ')}\n`);
  });

  it('closing the window (WM_DELETE_WINDOW, as a window manager sends) stops the player cleanly: exit 0', async function () {
    if (!have('python3')) this.skip();
    const x = await startXvfb();
    xservers.push(x.child);
    show = await Show.start({}, children, 'window-close');
    const sync = show.file('sync.jsonl');
    const p = spawnWindowPlayer(['play-video', '--socket', show.socket, '--fps', String(FPS), '--window', '320x240+0+0', '--sync-log', sync], x.display);
    children.push(p.child);
    await show.followers(['video'], [p]);
    await tickInstant(sync);
    const r = spawnSync('python3', ['-c', WM_CLOSE_PY, x.display, 'cuemux video'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `no window named "cuemux video" on ${x.display}: ${r.stdout}${r.stderr}`);
    assert.equal(await p.exited, 0, p.stderr().slice(-3000));
    assert.match(p.stderr(), /the window was closed: the player stops/);
    assert.match(p.stderr(), /cuemux play-video: \{.*"window":\{/);
  });

  it('without a display: a clear error naming $DISPLAY and a failing exit code', async function () {
    let n = 1000;
    while (existsSync(`/tmp/.X11-unix/X${n}`)) n++;
    const p = spawnWindowPlayer(['play-video', '--socket', '/nonexistent/cuemux.sock', '--window', '320x240'], `:${n}`);
    children.push(p.child);
    const code = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.stderr(), new RegExp(`cannot open a window: .*DISPLAY=":${n}"`), p.stderr());
  });
});
