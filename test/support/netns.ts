/**
 * Several machines on one for the tests (issue 14): two network namespaces joined by a veth pair, with addresses
 * only inside namespaces the test makes (removed after), a `cuemux serve` run inside one, and an OSC request sent
 * from inside one. Names and the /30 network derive from a tag and this process's pid, so concurrent runs do not
 * share them. Every namespace shares CLOCK_MONOTONIC and CLOCK_REALTIME: a wall-clock offset between "machines" is
 * made with libfaketime on one side ({@link FAKETIME_LIB}).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeNamespacePair, type NamespacePair } from '../../scripts/bench/netns';
import type { Arg as OscArg } from './osc';
import { CUEMUX_BIN, REPO_ROOT } from './cli';

export { makeNamespacePair, type NamespacePair } from '../../scripts/bench/netns';

const run = promisify(execFile);

/** {@link makeNamespacePair}, or skip the suite (`ctx`: a `before` hook's `this`), saying why, where that is not permitted. */
export async function namespacePairOrSkip(ctx: Mocha.Context, tag: string, second: number): Promise<NamespacePair> {
  try {
    return await makeNamespacePair(tag, second);
  } catch (e) {
    process.stdout.write(`      (skipped: cannot make network namespaces here: ${String(e).split('\n')[0]})\n`);
    ctx.skip();
  }
}

/** Debian's libfaketime (package libfaketime), preloaded to shift one process's wall clock; null when not installed. */
export const FAKETIME_LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1']
  .find((f) => existsSync(f)) ?? null;

/**
 * `env` arguments that run a command with its wall clock (CLOCK_REALTIME, Date.now()) shifted by `offset` (faketime's
 * syntax, e.g. "+0.25": seconds) and CLOCK_MONOTONIC left alone (Node needs FAKETIME_DONT_FAKE_MONOTONIC=1: without
 * it libfaketime fakes the monotonic clock too, measured here). `env` execs, so the child's pid is the command's.
 */
export function faketimeEnv(offset: string): string[] {
  if (FAKETIME_LIB === null) throw new Error('libfaketime is not installed (Debian package libfaketime)');
  return ['env', `LD_PRELOAD=${FAKETIME_LIB}`, `FAKETIME=${offset}`, 'FAKETIME_DONT_FAKE_MONOTONIC=1'];
}

/** A `cuemux serve` run in a namespace: its process, addresses as printed, and its stderr so far. */
export interface ServeInNs {
  child: ChildProcess;
  tcp: string | null;
  osc: number;
  stderr: () => string;
}

/**
 * A `cuemux serve` in namespace `ns` (log level info, OSC on any port), resolved once it prints its addresses;
 * `prefix` goes before node (e.g. {@link faketimeEnv}). The child is pushed to `children` (for killAll).
 */
export function serveIn(ns: string, args: string[], children: ChildProcess[], prefix: string[] = []): Promise<ServeInNs> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, CUEMUX_BIN, 'serve', '--osc-port', '0', '--log-level', 'info', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!out.includes('Stop with')) return;
      const tcp = /TCP: +(\S+)/.exec(out);
      const osc = /OSC \(UDP\): +\S+:(\d+)/.exec(out);
      resolve({ child, tcp: tcp ? tcp[1] : null, osc: Number(osc?.[1] ?? 0), stderr: () => err });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('exit', (code) => reject(new Error(`cuemux serve in ${ns} exited with ${String(code)} before it was ready: ${err}`)));
  });
}

/** One OSC request sent from inside namespace `ns` to 127.0.0.1:`port` there; its reply. */
export async function oscIn(ns: string, port: number, address: string, args: OscArg[] = []): Promise<{ status: string; data?: unknown; error?: string }> {
  const script = `const { OscPeer } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'test', 'support', 'osc.js'))});
    (async () => { const p = await OscPeer.open(); const r = await p.request(${port}, ${JSON.stringify(address)}, ${JSON.stringify(args)}, 10000);
    p.close(); process.stdout.write(JSON.stringify(r)); })().catch((e) => { process.stderr.write(String(e)); process.exit(1); });`;
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeout: 20_000 });
  return JSON.parse(stdout) as { status: string; data?: unknown; error?: string };
}
