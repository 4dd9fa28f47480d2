/**
 * Two machines on one: two network namespaces joined by a veth pair, each end with an address of a /30 made here
 * (only addresses in namespaces the test made itself; removed after), and what runs in them: a `cuemux serve`, an
 * OSC request sent from inside (`ip netns exec`). File sockets cross namespaces, so a test also reaches
 * the servers' Unix sockets; every namespace shares CLOCK_MONOTONIC, so the players' sync logs compare exactly.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CUEMUX_BIN, REPO_ROOT } from './cli';
import type { Arg as OscArg } from './osc';

const run = promisify(execFile);

/** Two namespaces and the link between them. */
export interface NamespacePair {
  /** Namespace names (the "machines"). */
  names: [string, string];
  /** The address of each (the veth end in it). */
  ips: [string, string];
  /** The veth end in each namespace (set it down to cut the link). */
  devices: [string, string];
  /** Set the link down (a partition) or up again (healed): both ends. */
  setLink(up: boolean): Promise<void>;
  /** Delete both namespaces (and with them the pair). Idempotent. */
  remove(): Promise<void>;
}

/**
 * Make namespaces `${tag}a`/`${tag}b` (`tag` short: interface names have 15 characters) joined by veth
 * `${tag}x`/`${tag}y`, addressed `${net}.1` and `${net}.2` (/30). Rejects with ip's message where that is not permitted.
 */
export async function makeNamespacePair(tag: string, net: string): Promise<NamespacePair> {
  const ip = (...args: string[]): Promise<unknown> => run('ip', args);
  const names: [string, string] = [`${tag}a`, `${tag}b`];
  const devices: [string, string] = [`${tag}x`, `${tag}y`];
  const ips: [string, string] = [`${net}.1`, `${net}.2`];
  let removed = false;
  const pair: NamespacePair = {
    names, ips, devices,
    async setLink(up) {
      for (let i = 0; i < 2; i++) await ip('-n', names[i], 'link', 'set', devices[i], up ? 'up' : 'down');
    },
    async remove() {
      if (removed) return;
      removed = true;
      // Deleting a namespace deletes its end of the pair, and so the pair.
      for (const ns of names) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    },
  };
  try {
    await ip('netns', 'add', names[0]);
    await ip('netns', 'add', names[1]);
    await ip('link', 'add', devices[0], 'type', 'veth', 'peer', 'name', devices[1]);
    for (let i = 0; i < 2; i++) {
      await ip('link', 'set', devices[i], 'netns', names[i]);
      await ip('-n', names[i], 'addr', 'add', `${ips[i]}/30`, 'dev', devices[i]);
      await ip('-n', names[i], 'link', 'set', devices[i], 'up');
      await ip('-n', names[i], 'link', 'set', 'lo', 'up');
    }
  } catch (e) {
    await pair.remove();
    await ip('link', 'del', devices[0]).catch(() => undefined); // made before it could move into a namespace
    throw e;
  }
  return pair;
}

/** A `cuemux serve` running in a namespace. */
export interface ServerInNamespace {
  child: ChildProcess;
  /** Its TCP address as it printed it, or null. */
  tcp: string | null;
  /** Its OSC port (on 127.0.0.1 in its namespace). */
  osc: number;
  /** Its stderr (the log) so far. */
  stderr: () => string;
}

/** A `cuemux serve` in namespace `ns` (OSC on an ephemeral port, log level info), resolved once it prints its addresses. */
export function serveIn(ns: string, args: string[], children: ChildProcess[]): Promise<ServerInNamespace> {
  return new Promise((resolve, reject) => {
    // `ip netns exec` execs the command: the child's pid is the server's (a SIGKILL reaches it).
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CUEMUX_BIN, 'serve', '--osc-port', '0', '--log-level', 'info', ...args],
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

/** {@link makeNamespacePair}, or skip the suite (`ctx`: a `before` hook's `this`), saying why, where that is not permitted. */
export async function namespacePairOrSkip(ctx: Mocha.Context, tag: string, net: string): Promise<NamespacePair> {
  try {
    return await makeNamespacePair(tag, net);
  } catch (e) {
    process.stdout.write(`      (skipped: cannot make network namespaces here: ${String(e).split('\n')[0]})\n`);
    ctx.skip();
  }
}
