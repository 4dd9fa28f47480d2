/**
 * Shared parts of the show tests that check what the reference players present against FFmpeg: a `cuemux serve`
 * child with an OSC peer and a client, player child processes, the players' logs read back (frame hashes joined with
 * the sync log), FFmpeg's decoded frames and samples as the reference, and the checks of every tick or sample
 * against the show clock. Nothing here measures time: the checks count ticks and samples.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CUEMUX_BIN } from './cli';
import { framemd5Decode } from './ffmpeg-reference';
import { OscPeer, type Arg, type Reply } from './osc';
import { spawnServer } from './server';
import { copyInto, scratchDir } from './tmp';
import { MediaClient } from '../../src/clients/media-client';
import type { ClockState } from '../../src/generated/cuemux/v1/media_server';

const execFileAsync = promisify(execFile);

/** A player child process, its stderr so far, and its exit code once it exits. */
export interface PlayerProcess {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Start `cuemux play-video|play-audio ...args` (log level info, so its stderr says what it did); in network namespace
 * `netns` when given (`ip netns exec` execs the player: the child's pid is the player's).
 */
export function spawnPlayer(args: string[], netns?: string): PlayerProcess {
  const argv = [process.execPath, CUEMUX_BIN, '--log-level', 'info', ...args];
  const child = netns === undefined ? spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

/**
 * Wait (at most `timeoutMs`) until `p` has said that each of `cues` is prepared (its preroll decoded: the player's
 * "cue prepared" log line), at least `times` times each (a preroll is sent again after each GO).
 */
export async function waitPrepared(p: PlayerProcess, cues: string[], times = 1, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const count = (cue: string): number => p.stderr().split('\n').filter((l) => l.includes('"cue prepared"') && l.includes(`"cue":${JSON.stringify(cue)}`)).length;
  for (;;) {
    if (cues.every((c) => count(c) >= times)) return;
    if (p.child.exitCode !== null || p.child.signalCode !== null) assert.fail(`the player exited before it prepared ${cues.join(', ')}:\n${p.stderr().slice(-2000)}`);
    if (Date.now() > deadline) assert.fail(`the player did not prepare ${cues.join(', ')} within ${timeoutMs} ms:\n${p.stderr().slice(-2000)}`);
    await sleep(50);
  }
}

/** SIGTERM a player and wait for it: it must exit 0 (its logs are complete then). */
export async function stopPlayer(p: PlayerProcess, label: string): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, `${label} exited with an error:\n${p.stderr().slice(-4000)}`);
}

/** SIGKILL every child still running and wait for them (for afterEach). */
export async function killAll(children: ChildProcess[]): Promise<void> {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
}

/** A running `cuemux serve` child with an OSC peer and a gRPC client, its media in a scratch media root. */
export class Show {
  /** Where players' outputs (hash files, sync logs, WAVs) go. */
  readonly out: string;

  private constructor(
    /** The media root. */
    readonly root: string,
    /** The server's Unix socket. */
    readonly socket: string,
    /** The server process. */
    readonly server: ChildProcess,
    /** Its OSC port. */
    readonly oscPort: number,
    /** A client on the socket. */
    readonly client: MediaClient,
    /** An OSC peer. */
    readonly peer: OscPeer,
    out: string,
  ) {
    this.out = out;
  }

  /**
   * Copy `media` (name in the media root → file) into a new media root and start a server on it; the server's
   * process is pushed to `children` (killed by the caller's afterEach).
   */
  static async start(media: Record<string, string>, children: ChildProcess[], label: string): Promise<Show> {
    const root = await scratchDir(`${label}-root`);
    for (const [name, file] of Object.entries(media)) await copyInto(file, root, name);
    const run = await scratchDir(`${label}-run`);
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    const s = await spawnServer(['--socket', socket, '--media-root', root, '--osc-port', '0', '--state-file', 'none']);
    children.push(s.child);
    assert.ok(s.oscPort !== null, s.stdout());
    const out = await scratchDir(`${label}-out`);
    return new Show(root, socket, s.child, s.oscPort, new MediaClient(socket), await OscPeer.open(), out);
  }

  /** A path in the output folder. */
  file(name: string): string {
    return path.join(this.out, name);
  }

  /** Send an OSC command and return its reply's data; the reply must be ok. */
  async osc(address: string, args: Arg[] = []): Promise<unknown> {
    const r = await this.peer.request(this.oscPort, address, args);
    assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
    return r.data;
  }

  /**
   * Send an OSC command, noting CLOCK_MONOTONIC just before the datagram leaves (every tick after that instant is
   * "after the datagram"), and return that instant with the reply (which must be ok).
   */
  async oscTimed(address: string, args: Arg[] = []): Promise<{ sentNs: bigint; data: unknown }> {
    this.peer.clear();
    const sentNs = process.hrtime.bigint();
    await this.peer.send(this.oscPort, address, args);
    const r: Reply = await this.peer.reply(address.replace(/^\/cuemux\//, '/cuemux/reply/'));
    assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
    return { sentNs, data: r.data };
  }

  /**
   * Wait (at most `timeoutMs`) until a Follow call of each output is open on the server (an output named twice needs
   * two), failing at once with its stderr if one of `players` exits meanwhile (e.g. it refused an option).
   */
  async followers(outputs: string[], players: PlayerProcess[] = [], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const p of players) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) {
          assert.fail(`a player exited (code ${String(p.child.exitCode)}) before it followed: ${p.child.spawnargs.slice(2).join(' ')}\n${p.stderr().slice(-2000)}`);
        }
      }
      const st = await this.client.getStatus();
      const open = st.clients.map((c) => c.output);
      if (outputs.every((o) => open.filter((x) => x === o).length >= outputs.filter((x) => x === o).length)) return;
      if (Date.now() > deadline) assert.fail(`no Follow of every output ${outputs.join(', ')} within ${timeoutMs} ms (clients: ${open.join(', ')})`);
      await sleep(50);
    }
  }

  /** The show clock as a player sees it (WatchClock's first message). */
  async clockState(): Promise<ClockState> {
    for await (const s of this.client.watchClock({}, { timeout: 5000 })) return s;
    throw new Error('WatchClock ended without a state');
  }

  /** The show position (s) at whose CLOCK_MONOTONIC instant is `monoNs` (a clock playing forwards). */
  static positionAt(s: ClockState, monoNs: bigint): number {
    assert.equal(s.state, 'playing', `the clock is ${s.state}`);
    return s.positionSeconds + (s.rate * Number(monoNs - s.anchorMonotonicNs)) / 1e9;
  }

  /** Wait (at most `timeoutMs`) until the clock is past `position`. */
  async clockPast(position: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.osc('/cuemux/status') as { clock: { positionSeconds: number } };
      if (st.clock.positionSeconds > position) return;
      if (Date.now() > deadline) assert.fail(`the clock did not pass ${position} within ${timeoutMs} ms (at ${st.clock.positionSeconds})`);
      await sleep(50);
    }
  }

  /** Close the client and the OSC peer (the server is the caller's child). */
  close(): void {
    this.client.close();
    this.peer.close();
  }
}

/** An OSC string argument. */
export const s = (value: string): Arg => ({ type: 's', value });
/** An OSC double argument (positions go as doubles: exact). */
export const d = (value: number): Arg => ({ type: 'd', value });

/** The media timeline's start (ffprobe's format start_time, as MediaInfo.start_seconds): cue in-points count from it. */
export async function mediaStart(file: string): Promise<number> {
  const { stdout } = await execFileAsync('ffprobe', ['-v', 'error', '-show_entries', 'format=start_time', '-of', 'csv=p=0', file]);
  const v = Number(stdout.trim());
  return Number.isFinite(v) ? v : 0;
}

/** One of FFmpeg's decoded frames of a clip. */
export interface RefFrame {
  /** Its number in presentation order. */
  n: number;
  /** Its pts, seconds. */
  seconds: number;
  /** MD5 of the raw picture, as framemd5 prints it. */
  md5: string;
}

/** FFmpeg's decode of a clip's video stream: the frame for each media time. */
export class VideoReference {
  readonly #byMd5 = new Map<string, RefFrame>();

  private constructor(readonly file: string, readonly frames: RefFrame[]) {
    for (const f of frames) this.#byMd5.set(f.md5, f);
  }

  /** Decode `file`'s video stream `stream` with `ffmpeg -f framemd5`. */
  static async of(file: string, stream = 0): Promise<VideoReference> {
    const raw = await framemd5Decode(file, { streams: [stream] });
    const frames = raw.map((f) => ({ seconds: ((f.pts ?? 0) * f.timeBase.num) / f.timeBase.den, md5: f.md5 }))
      .sort((a, b) => a.seconds - b.seconds).map((f, n) => ({ ...f, n }));
    assert.ok(frames.length > 0, `${file}: no frames`);
    return new VideoReference(file, frames);
  }

  /** The frame presented at media time `m`: the one with the largest pts ≤ m (its span contains m). */
  at(m: number): RefFrame | undefined {
    let lo = 0;
    let hi = this.frames.length - 1;
    if (this.frames[0].seconds > m + 1e-9) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.frames[mid].seconds <= m + 1e-9) lo = mid;
      else hi = mid - 1;
    }
    return this.frames[lo];
  }

  /** What a picture hash is: black, a frame of this clip (number and pts), or neither. */
  nameOf(md5: string | null): string {
    if (md5 === null) return 'black';
    const f = this.#byMd5.get(md5);
    return f === undefined ? `a picture not of ${path.basename(this.file)} (md5 ${md5})` : `frame ${f.n} (pts ${f.seconds.toFixed(3)} s, md5 ${md5})`;
  }
}

/** One presented tick of a play-video, from its hash sink joined with its sync log. */
export interface Tick {
  /** Its number in the log (from 0). */
  i: number;
  /** CLOCK_MONOTONIC instant it was presented. */
  monoNs: bigint;
  /** The show clock at that instant, as the player computed it. */
  clock: number;
  /** MD5 of the picture presented, null for black. */
  md5: string | null;
  /** The sync log's line for the tick (cue, held, due, late_ns...), or null when it has none. */
  sync: Record<string, unknown> | null;
  /** The instant the tick was due (mono_ns − late_ns), when the sync log says. */
  dueNs: bigint | null;
}

function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line being written while the file is read: ignore it (the final read is after the player exited).
    }
  }
  return out;
}

/** A play-video's ticks: every line of its `hash:` sink, with the sync log line of the same instant. */
export async function readTicks(hashFile: string, syncFile: string): Promise<Tick[]> {
  const sync = new Map<string, Record<string, unknown>>();
  for (const r of jsonLines(await fsp.readFile(syncFile, 'utf8'))) sync.set(String(r.mono_ns), r);
  return jsonLines(await fsp.readFile(hashFile, 'utf8')).map((h, i) => {
    const r = sync.get(String(h.mono_ns)) ?? null;
    const monoNs = BigInt(String(h.mono_ns));
    return {
      i, monoNs, clock: Number(h.clock_seconds), md5: typeof h.md5 === 'string' ? h.md5 : null, sync: r,
      dueNs: r !== null && typeof r.late_ns === 'number' ? monoNs - BigInt(r.late_ns) : null,
    };
  });
}

/**
 * The instant of one of a running play-video's display ticks (mono_ns − late_ns of a line of its sync log), once it
 * has logged `minTicks` ticks (waiting at most `timeoutMs`): its ticks are this instant plus whole periods.
 */
/** Wait (at most `timeoutMs`) until `syncFile` has logged `n` ticks after CLOCK_MONOTONIC instant `afterNs`. */
export async function ticksAfter(syncFile: string, afterNs: bigint, n: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = jsonLines(await fsp.readFile(syncFile, 'utf8').catch(() => ''));
    if (lines.filter((r) => BigInt(String(r.mono_ns)) > afterNs).length >= n) return;
    if (Date.now() > deadline) assert.fail(`${syncFile}: fewer than ${n} ticks logged after the instant within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function tickInstant(syncFile: string, minTicks = 5, timeoutMs = 20_000): Promise<bigint> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = jsonLines(await fsp.readFile(syncFile, 'utf8').catch(() => ''));
    const last = lines.filter((r) => typeof r.late_ns === 'number').at(-1);
    if (lines.length >= minTicks && last !== undefined) return BigInt(String(last.mono_ns)) - BigInt(last.late_ns as number);
    if (Date.now() > deadline) assert.fail(`${syncFile}: fewer than ${minTicks} ticks logged within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * The clock position at which to place something so that a play-video tick (of the grid through `tickNs`, `periodNs`
 * apart) lands `afterMs` after it: the first tick at least `aheadMs` from now, minus `afterMs`, on clock `clock`.
 */
export function positionBeforeTick(clock: ClockState, tickNs: bigint, periodNs: bigint, aheadMs: number, afterMs: number): number {
  const from = process.hrtime.bigint() + BigInt(Math.round(aheadMs * 1e6));
  const k = (from - tickNs + periodNs - 1n) / periodNs;
  const tick = tickNs + k * periodNs;
  return Show.positionAt(clock, tick - BigInt(Math.round(afterMs * 1e6)));
}

/** A stretch of a cue on the clock: media [media, endMedia) presented from clock position `clock` on. */
export interface Span {
  /** A name for messages, e.g. `Q pass 3`. */
  label: string;
  /** Clock position of `media`. */
  clock: number;
  /** First media instant. */
  media: number;
  /** End media instant (exclusive). */
  endMedia: number;
  /** The clip's reference decode. */
  ref: VideoReference;
}

/** The spans of `passes` passes of a loop [inMedia, outMedia) whose first pass starts at clock `clock`. */
export function loopSpans(label: string, clock: number, inMedia: number, outMedia: number, passes: number, ref: VideoReference): Span[] {
  const length = outMedia - inMedia;
  return Array.from({ length: passes }, (_, k) => ({ label: `${label} pass ${k + 1}`, clock: clock + k * length, media: inMedia, endMedia: outMedia, ref }));
}

/** A tick checked against FFmpeg's frame for its clock. */
export interface CheckedTick {
  tick: Tick;
  span: Span;
  /** Media time the clock maps to. */
  media: number;
  expected: RefFrame;
  /** in sync (FFmpeg's frame), held (logged `held`: the previous picture again), black, or wrong (any other picture). */
  verdict: 'ok' | 'held' | 'black' | 'wrong';
}

/** Every tick whose clock falls inside one of `spans`, checked against the reference frame for its clock. */
export function checkTicks(ticks: Tick[], spans: Span[]): CheckedTick[] {
  const out: CheckedTick[] = [];
  for (const t of ticks) {
    const span = spans.find((sp) => t.clock >= sp.clock && t.clock < sp.clock + (sp.endMedia - sp.media));
    if (span === undefined) continue;
    const media = span.media + (t.clock - span.clock);
    const expected = span.ref.at(media);
    assert.ok(expected !== undefined, `no reference frame at ${media} s of ${span.ref.file}`);
    const verdict = t.md5 === expected.md5 ? 'ok' : t.sync?.held === true ? 'held' : t.md5 === null ? 'black' : 'wrong';
    out.push({ tick: t, span, media, expected, verdict });
  }
  return out;
}

/** A line describing a checked tick, for failure messages (`fromNs`: the instant tick times are counted from). */
export function describeTick(c: CheckedTick, fromNs: bigint): string {
  const t = c.tick;
  return `tick #${t.i} (+${(Number(t.monoNs - fromNs) / 1e6).toFixed(1)} ms, clock ${t.clock.toFixed(6)}, ${c.span.label}, media ${c.media.toFixed(6)} s): ` +
    `${c.verdict}: expected ${c.span.ref.nameOf(c.expected.md5)}, got ${c.span.ref.nameOf(t.md5)}` +
    `${t.sync === null ? '' : ` [sync log: ${JSON.stringify({ ...t.sync, mono_ns: undefined, clock_seconds: undefined })}]`}`;
}

/** Verdict counts of checked ticks. */
export function counts(checked: CheckedTick[]): Record<CheckedTick['verdict'], number> {
  const c = { ok: 0, held: 0, black: 0, wrong: 0 };
  for (const x of checked) c[x.verdict]++;
  return c;
}

/** For each span start (seam), the first tick at or after it: how far after it (clock ms) and what it showed. */
export function seamTicks(checked: CheckedTick[], spans: Span[]): Array<{ span: Span; afterMs: number; first: CheckedTick | undefined }> {
  return spans.map((span) => {
    const first = checked.find((c) => c.span === span);
    return { span, afterMs: first === undefined ? NaN : (first.tick.clock - span.clock) * 1e3, first };
  });
}

/**
 * The samples a device plays from the start of a loop [inS, outS) (media seconds) on: FFmpeg's decode `ref` (whose
 * first sample is at media time `firstSeconds`, `channels` interleaved) of [in, out), pass after pass. `j` counts
 * device samples from the loop's first one.
 */
export function loopSample(ref: Float32Array, firstSeconds: number, inS: number, outS: number, channels: number): (j: number, ch: number) => number {
  const inIdx = Math.round((inS - firstSeconds) * 48000);
  const pass = Math.round((outS - inS) * 48000);
  return (j, ch) => ref[(inIdx + (j % pass)) * channels + ch];
}

/** Media time (s) of the first sample of FFmpeg's decode of audio stream `stream` (what ffmpegSamples starts with). */
export async function firstAudioSeconds(file: string, stream = 0): Promise<number> {
  const frames = await framemd5Decode(file, { streams: [stream] });
  const first = frames.reduce((a, f) => ((f.pts ?? 0) < (a.pts ?? 0) ? f : a));
  return ((first.pts ?? 0) * first.timeBase.num) / first.timeBase.den;
}

/** Fail with `message` and one line per problem when `problems` is not empty (the lines in full, never truncated). */
export function assertNone(problems: string[], message: string): void {
  if (problems.length > 0) assert.fail(`${message}:\n  ${problems.join('\n  ')}`);
}
