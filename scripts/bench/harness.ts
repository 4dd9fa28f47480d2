/**
 * The benchmarks' harness: a `cuemux serve` child process started as `npm start` starts it (same allocator and V8
 * settings), resolved with the addresses it prints; a scratch folder removed whatever happens; a main that prints its
 * failure. (Percentiles are in ./stats, the machine's steal time and load in ./machine.)
 *
 * Profiling the server in a benchmark: CUEMUX_BENCH_SERVER_NODE_ARGS gives it Node options of its own (e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses, or `--trace-gc`), and CUEMUX_BENCH_SERVER_STDOUT
 * names a file that receives its stdout (where `--trace-gc` writes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, promises as fsp, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorStack } from '../../src/common/errors';

/** The repository (this file runs from dist/scripts/bench). */
export const REPO = path.resolve(__dirname, '..', '..', '..');

/** `bin/cuemux.js` of this checkout. */
export const CLI = path.join(REPO, 'bin', 'cuemux.js');

/** A running `cuemux serve` and what it printed. */
export interface BenchServer {
  child: ChildProcess;
  /** TCP `host:port` when it listens on TCP, else null. */
  tcp: string | null;
  /** OSC UDP port when OSC is on, else null. */
  oscPort: number | null;
  /** HTTP `host:port` when it serves HTTP (--http), else null. */
  http: string | null;
  /** SIGTERM it and wait for its exit. */
  stop(): Promise<void>;
}

/** Where {@link startBenchServer} runs the server and where its log goes. */
export interface BenchServerPlace {
  /** Run it in this network namespace (`ip netns exec`, which execs: the child's pid is the server's); default none. */
  ns?: string;
  /** A file descriptor that receives its stderr (default: this process's stderr). */
  stderrFd?: number;
  /** Its --log-level (default warn). */
  logLevel?: string;
}

/** Nice value of a benchmark's servers: docs/systemd/cuemux.service's Nice=-10, as on a show machine. */
export const SERVER_NICE = -10;

/** Set the nice value of every thread of process `pid` (Linux nice values are per thread; the threads it starts later inherit the main thread's). */
export function reniceAll(pid: number, nice: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // it ended
  }
  for (const tid of tids) {
    try {
      os.setPriority(Number(tid), nice);
    } catch {
      // a thread that ended meanwhile
    }
  }
}

/** Start `cuemux serve <args>` (with `--log-level warn`) and resolve once it is serving. */
export function startBenchServer(args: string[], place: BenchServerPlace = {}): Promise<BenchServer> {
  // The allocator and V8 settings scripts/start.sh gives the server (large buffers returned to the OS at once, a
  // small young generation).
  const env = {
    ...process.env, MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '65536',
    NODE_OPTIONS: `--max-semi-space-size=1${process.env.NODE_OPTIONS ? ` ${process.env.NODE_OPTIONS}` : ''}`,
  };
  const nodeArgs = (process.env.CUEMUX_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const command = [process.execPath, ...nodeArgs, CLI, 'serve', ...args, '--log-level', place.logLevel ?? 'warn'];
  const [file, ...rest] = place.ns === undefined ? command : ['ip', 'netns', 'exec', place.ns, ...command];
  const child = spawn(file, rest, { stdio: ['ignore', 'pipe', place.stderrFd ?? 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      const copy = process.env.CUEMUX_BENCH_SERVER_STDOUT;
      if (copy) appendFileSync(copy, d);
      out += d;
      if (!out.includes('Stop with')) return;
      const osc = /OSC \(UDP\): +\S+:(\d+)/.exec(out);
      resolve({
        child, tcp: /TCP: +(\S+)/.exec(out)?.[1] ?? null, oscPort: osc ? Number(osc[1]) : null, http: /HTTP: +http:\/\/(\S+?)\//.exec(out)?.[1] ?? null,
        stop: async () => {
          child.kill('SIGTERM');
          if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
        },
      });
    });
    child.on('exit', (code) => reject(new Error(`cuemux serve exited ${String(code)} before it was ready`)));
  });
}

/**
 * Run `fn` in a new temporary folder (named `prefix` + random), removed afterwards whatever happens: a benchmark that
 * fails half-way (a server that does not start, a client that dies) leaves no media copies in the temp folder.
 */
export async function withScratch<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Run a benchmark's main, printing its failure and exiting 1. */
export function runBench(name: string, main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    process.stderr.write(`${name} failed: ${errorStack(e)}\n`);
    process.exit(1);
  });
}
