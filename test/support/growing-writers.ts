/**
 * Writers of growing media for tests, paced by the test rather than by the clock: a writer writes at a steady pace
 * until the test has observed what it needs while the file grows (it then calls `release()`), and only then writes
 * the rest at once. So a reader is always served while the file still grows (no race between a real-time writer and
 * a loaded machine), and a test takes as long as the server needs to answer, not the seconds of a real-time writer
 * (`ffmpeg -re`: 7 to 12 s a test).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { exitOf, sleep } from './wait';

/** Pause between two paced steps, in ms: short against any --growing-wait-ms of the tests (≥ 1,000 ms). */
const STEP_MS = 25;

/** A writer process whose pace the test controls: paced until {@link release}, then as fast as it goes. */
export interface GrowingWriter {
  /** The writer process (push it to the describe's children, so afterEach kills it). */
  readonly process: ChildProcess;
  /** Let the writer write the rest of the file at once and end (idempotent). */
  release(): void;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * ffmpeg (a real muxer, flushing each packet) writing `out` by stream copy of the Matroska file `source`, which the
 * test feeds to its stdin at `rate` times the source's real rate (`seconds` long) until released: so the file grows
 * as ffmpeg -re would make it grow, but for at most seconds / rate before the test has seen what it waits for, and
 * at once afterwards. If the source runs out first the writer ends, which the test then sees (a deadline, not a
 * window: seconds / rate is a generous time for a server to answer).
 */
export function ffmpegPipeWriter(source: Buffer, seconds: number, out: string, muxerArgs: readonly string[], rate = 3): GrowingWriter {
  const child = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'matroska', '-i', 'pipe:0', '-map', '0', '-c', 'copy', '-flush_packets', '1', ...muxerArgs, out],
    { stdio: ['pipe', 'ignore', 'pipe'] });
  const stdin = child.stdin;
  if (stdin === null) throw new Error('ffmpeg without stdin');
  // A writer killed by the test's afterEach: its stdin breaks (EPIPE), which is not the test's failure.
  stdin.on('error', () => undefined);
  let released = false;
  const step = Math.max(1, Math.round(source.length / seconds * rate * STEP_MS / 1000));
  void (async () => {
    let at = 0;
    while (at < source.length && !exited(child)) {
      const n = released ? source.length - at : Math.min(step, source.length - at);
      if (!stdin.write(source.subarray(at, at + n))) await Promise.race([once(stdin, 'drain'), exitOf(child)]);
      at += n;
      if (!released) await sleep(STEP_MS);
    }
    stdin.end();
  })();
  return { process: child, release: () => { released = true; } };
}

/**
 * A copier writing `source` to `out` in chunks of `chunk` bytes with `pauseMs` between them (a file copied from a
 * laptop), up to `stopAt` bytes (default: all); once it has written `holdAt` bytes (default: never) it waits for
 * {@link GrowingWriter.release}. Once done it keeps the file open and still until killed.
 */
export function chunkWriter(source: string, out: string, chunk: number, pauseMs: number, stopAt?: number, holdAt = Infinity): GrowingWriter {
  const script = `
    const fs = require('fs');
    const [src, dst, chunk, pause, stopAt, holdAt] = process.argv.slice(1);
    const whole = fs.readFileSync(src);
    const data = whole.subarray(0, stopAt === '' ? whole.length : Number(stopAt));
    const fd = fs.openSync(dst, 'w');
    let at = 0;
    let held = true;
    let waiting = null;
    process.stdin.on('data', () => { held = false; if (waiting) { const w = waiting; waiting = null; w(); } });
    const step = () => {
      if (at >= data.length) return setInterval(() => {}, 1000);
      if (held && at >= Number(holdAt)) { waiting = step; return; }
      at += fs.writeSync(fd, data, at, Math.min(Number(chunk), data.length - at), at);
      setTimeout(step, Number(pause));
    };
    step();`;
  const child = spawn(process.execPath, ['-e', script, source, out, String(chunk), String(pauseMs), stopAt === undefined ? '' : String(stopAt), String(holdAt)],
    { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin?.on('error', () => undefined);
  let released = false;
  return {
    process: child,
    release: () => {
      if (released) return;
      released = true;
      child.stdin?.write('go\n');
    },
  };
}
