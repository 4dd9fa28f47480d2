/**
 * Child processes of the benchmarks: each client, peer and player runs in a Node process of its own, as a player
 * does, so neither one's work lands on another's event loop.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

/** A Node child process running `args` (a script and its arguments) and its exit code once it exits. */
export interface NodeChild {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** Start `node ...args` (with `env`, default this process's). */
export function spawnNode(args: string[], stdio: StdioOptions = ['ignore', 'ignore', 'inherit'], env: NodeJS.ProcessEnv = process.env): NodeChild {
  const child = spawn(process.execPath, args, { stdio, env });
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/** Run `node ...args` to its end and parse what it printed as JSON (rejects when it exits non-zero). */
export function runNodeJson<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`${args.join(' ')} exited ${String(code)}`))));
  });
}

/** The line a child started with {@link runTogether} prints once it is ready; it then waits for a line on stdin. */
export const READY_LINE = '{"ready":true}\n';

/** In a child started with {@link runTogether}: say ready, and resolve once the parent says go. */
export async function readyThenWait(): Promise<void> {
  process.stdout.write(READY_LINE);
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.pause();
}

/**
 * Run children (`node ...args`, one argument list each) together: start them, wait until every one has printed
 * {@link READY_LINE} (connected, media open), then start them all at once. The wall time runs from that start to the
 * last one's end, so it measures the work, not Node's process start-up. Each child prints one JSON object at its end.
 */
export async function runTogether<T>(each: string[][]): Promise<{ wallSec: number; results: T[] }> {
  const children = each.map((args) => {
    const c = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => { onReady = resolve; });
    const result = new Promise<T>((resolve, reject) => {
      c.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.startsWith(READY_LINE)) {
          out = out.slice(READY_LINE.length);
          onReady();
        }
      });
      c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`${args.join(' ')} exited ${String(code)}`))));
    });
    result.catch(() => undefined);
    return { c, ready, result };
  });
  await Promise.race([Promise.all(children.map((x) => x.ready)), Promise.all(children.map((x) => x.result))]);
  const t = process.hrtime.bigint();
  for (const x of children) x.c.stdin?.end('go\n');
  const results = await Promise.all(children.map((x) => x.result));
  return { wallSec: Number(process.hrtime.bigint() - t) / 1e9, results };
}
