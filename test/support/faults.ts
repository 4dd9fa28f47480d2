/**
 * The fault suite's shared parts (test/faults/*, `npm run test:faults`, `npm run soak`): how big a run is (fast in
 * `npm test`, long with CUEMUX_SOAK=1), the table row each attack records, what is measured of a server process
 * (open fds, RSS), a console's `/cuemux/thump` round trips while an attack runs, a seeded random source and the
 * mutators of bytes, JSON and OSC datagrams, and a small tmpfs to fill. Nothing here asserts on time: round trips are
 * reported in the table, never checked.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { closeSync, ftruncateSync, fstatSync, openSync, writeSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { encode, bundleAt, type Arg } from './osc';
import { scratchDir } from './tmp';
import { faultTable, type FaultRow } from './fault-table';
import { processScheduling, setFifo, threadScheduling, udpOwnerPid } from './scheduling';

export { faultTable, stealMeter, type FaultRow } from './fault-table';

const run = promisify(execFile);

/** A long run (`npm run soak`) rather than the fast one of `npm test`. */
export const SOAK = process.env.CUEMUX_SOAK === '1';

/** `fast` in `npm test` / `npm run test:faults`, `soak` under `npm run soak`. */
export function scaled(fast: number, soak: number): number {
  return SOAK ? soak : fast;
}

const rows: FaultRow[] = [];

/** Record an attack's row (printed after the run; written to $CUEMUX_FAULT_REPORT as JSON for `npm run soak`). */
export function recordFault(row: FaultRow): void {
  rows.push({ ...row, scheduling: row.scheduling ?? lastScheduling ?? undefined });
}

/** What the last console opened found of the parties' scheduling (see {@link ThumpConsole.scheduling}). */
let lastScheduling: string | null = null;

/** The p-th percentile (nearest rank) of `xs`, NaN when empty. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

after(async function () {
  if (rows.length === 0) return;
  process.stdout.write(`\nFault suite (${SOAK ? 'soak' : 'fast'}):\n${faultTable(rows)}\n${[...rows].sort((a, b) => a.attack.localeCompare(b.attack, 'en', { numeric: true })).filter((r) => r.note).map((r) => `  ${r.attack}: ${r.note}`).join('\n')}\n`);
  const out = process.env.CUEMUX_FAULT_REPORT;
  if (out) await fsp.writeFile(out, JSON.stringify(rows, null, 2));
});

/** Open file descriptors of process `pid` (entries of /proc/PID/fd). */
export async function fdCount(pid: number): Promise<number> {
  return (await fsp.readdir(`/proc/${pid}/fd`)).length;
}

/** What the fds of `pid` point at, for a failure message. */
export async function fdTargets(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await fsp.readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    out.push(`${fd} -> ${await fsp.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '?')}`);
  }
  return out;
}

/** Resident set size of `pid`, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await fsp.readFile(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** The tests' one poll-until (test/support/wait.ts), re-exported for the fault tests. */
export { waitFor } from './wait';

/** The console's nice value when it cannot have {@link CONSOLE_PRIORITY}: a console is another machine, so its own sends
 * and receives run ahead of the attack's processes on this one (it is the server's answer that is measured, not the
 * console's scheduling). */
export const CONSOLE_NICE = -10;

/**
 * SCHED_FIFO priority of the measuring console's main thread ($CUEMUX_FAULT_CONSOLE_PRIORITY, 0 for none; default 5,
 * the server's OSC thread's). A real console sits on another machine and shares none of the server's CPUs; on a
 * 2-vCPU VM at nice -10 the console itself waited behind the attack's processes (a client-cycle attack runs dozens of
 * Node processes), so part of the "attack" round trip was the console's own scheduling. Idle and attack rows are
 * measured by the same console at the same priority.
 */
export const CONSOLE_PRIORITY = Number(process.env.CUEMUX_FAULT_CONSOLE_PRIORITY ?? 5);

/** The server's nice value in the fault suite: what docs/systemd/cuemux.service gives it (`Nice=-10`), so that a
 * local user's processes at the default priority cannot take show control's CPU. */
export const SERVER_NICE = -10;

/**
 * A show console on 127.0.0.1 sending `/cuemux/thump` and timing each reply (a heartbeat such as QLab's), run as a
 * process of its own at nice {@link CONSOLE_NICE} (test/support/thump-console-process.ts): `sample(n)` takes n round
 * trips one after another; `start()` keeps one going every `everyMs` until `stop()`.
 */
export class ThumpConsole {
  readonly #child: ChildProcess;
  /** Round trips (ms) of the last probe stopped. */
  rtts: number[] = [];
  /** Thumps of the last probe stopped not answered within 5 s (or answered with an error: show control stalled). */
  unanswered = 0;
  /** `/cuemux/status` round trips (ms) of the last sample or probe stopped: a show query, run on the main thread. */
  statusRtts: number[] = [];
  /** Status requests of the last probe stopped not answered within 5 s. */
  statusUnanswered = 0;
  /** What each unanswered thump of the last probe stopped got (an error reply, or no reply within 5 s). */
  unansweredWhy: string[] = [];
  /** How the console, the server (the OSC port's owner) and the attack (this test process) were scheduled. */
  scheduling = '';

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async open(port: number): Promise<ThumpConsole> {
    const child = fork(path.join(__dirname, 'thump-console-process.js'), [String(port)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const c = new ThumpConsole(child);
    await c.#reply('ready');
    const pid = child.pid as number;
    try {
      os.setPriority(pid, CONSOLE_NICE);
    } catch {
      // Not root and no CAP_SYS_NICE: the console runs at the test's priority (the table's note says the console's nice).
    }
    const refused = CONSOLE_PRIORITY > 0 ? setFifo(pid, CONSOLE_PRIORITY) : null;
    const server = await udpOwnerPid(port);
    c.scheduling = `console ${await threadScheduling(pid)}${refused === null ? '' : ` (SCHED_FIFO ${CONSOLE_PRIORITY} refused: ${refused})`}; `
      + `server ${server === null ? 'not found' : await processScheduling(server)}; attack (the test process) ${await threadScheduling(process.pid)}`;
    lastScheduling = c.scheduling;
    return c;
  }

  #reply<T>(op: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onMessage = (m: { op: string }): void => {
        if (m.op !== op) return;
        this.#child.off('message', onMessage);
        this.#child.off('exit', onExit);
        resolve(m as T);
      };
      const onExit = (code: number | null): void => {
        this.#child.off('message', onMessage);
        reject(new Error(`thump console exited (${String(code)}) before '${op}'`));
      };
      this.#child.on('message', onMessage);
      this.#child.once('exit', onExit);
    });
  }

  /** `n` thump round trips, `everyMs` apart (ms; unanswered ones left out); the status ones go to {@link statusRtts}. */
  async sample(n: number, everyMs = 10): Promise<number[]> {
    const reply = this.#reply<{ rtts: number[]; statusRtts: number[] }>('sample');
    this.#child.send({ op: 'sample', n, everyMs });
    const r = await reply;
    this.statusRtts = r.statusRtts;
    return r.rtts;
  }

  /** Start a thump every `everyMs` until stop(). */
  start(everyMs = 20): void {
    this.#child.send({ op: 'start', everyMs });
  }

  /** Stop the running probe; resolves with its round trips (and sets `rtts` and `unanswered`). */
  async stop(): Promise<number[]> {
    if (!this.#child.connected) return this.rtts;
    const reply = this.#reply<{ rtts: number[]; unanswered: number; statusRtts: number[]; statusUnanswered: number; why: string[] }>('stopped');
    this.#child.send({ op: 'stop' });
    const r = await reply;
    this.rtts = r.rtts;
    this.unanswered = r.unanswered;
    this.statusRtts = r.statusRtts;
    this.statusUnanswered = r.statusUnanswered;
    this.unansweredWhy = r.why;
    return r.rtts;
  }

  close(): void {
    if (this.#child.connected) this.#child.disconnect();
    if (this.#child.exitCode === null) this.#child.kill();
  }
}

/** Seeded pseudo-random numbers (mulberry32): a failing input can be made again from the seed printed with it. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** One of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Values that break parsers: boundaries, huge and negative sizes, NaN-ish numbers. */
const NASTY_U32 = [0, 1, 3, 4, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff];

/** `b` damaged 1..8 times: bytes flipped, set to boundary values, cut, repeated, inserted or removed. */
export function mutateBytes(rng: Rng, input: Buffer, maxLength = 1 << 20): Buffer {
  let b: Buffer = Buffer.from(input);
  const times = 1 + rng.int(8);
  for (let k = 0; k < times; k++) {
    if (b.length === 0) {
      b = rng.bytes(1 + rng.int(16));
      continue;
    }
    const at = rng.int(b.length);
    switch (rng.int(8)) {
      case 0: b[at] ^= 1 << rng.int(8); break;
      case 1: b[at] = rng.pick([0, 0xff, 0x7f, 0x80, 0x2c, 0x2f, 0x23]); break;
      case 2: if (at + 4 <= b.length) b.writeUInt32BE(rng.pick(NASTY_U32), at - (at % 4 === 0 ? 0 : at % 4)); break;
      case 3: b = b.subarray(0, at); break; // truncated
      case 4: b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(64)), b.subarray(at)]); break;
      case 5: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64)))]); break;
      case 6: { const len = 1 + rng.int(Math.min(256, b.length - at)); b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); break; }
      default: if (at + 8 <= b.length) b.writeBigUInt64LE(rng.pick([0n, 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]), at); break;
    }
  }
  return b.length > maxLength ? b.subarray(0, maxLength) : b;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const NASTY_JSON: Json[] = [null, true, false, 0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.1, '', 'x'.repeat(5000), '../../etc/passwd', '/dev/zero',
  '00:00:00:00', '99:99:99:99', 'NaN', '-Infinity', '1e400', [], {}, [1, 2, 3], { a: { b: { c: {} } } }, '\u0000\ud800', '29.97df'];

/** A structural mutation of a JSON value: a field removed, retyped, replaced by a nasty value, an unknown field, deep nesting. */
export function mutateJson(rng: Rng, value: Json): Json {
  const copy = JSON.parse(JSON.stringify(value)) as Json;
  const times = 1 + rng.int(4);
  let root: Json = copy;
  for (let k = 0; k < times; k++) {
    // Walk to a random container.
    let node: Json = root;
    for (let depth = 0; depth < 6; depth++) {
      const kids: Json[] = Array.isArray(node) ? node : node !== null && typeof node === 'object' ? Object.values(node) : [];
      const containers = kids.filter((c) => c !== null && typeof c === 'object');
      if (containers.length === 0 || rng.chance(0.3)) break;
      node = rng.pick(containers);
    }
    if (node === null || typeof node !== 'object') {
      root = rng.pick(NASTY_JSON);
      continue;
    }
    const keys: Array<string | number> = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    const set = (key: string | number, v: Json): void => {
      if (Array.isArray(node)) node[Number(key)] = v;
      else (node as Record<string, Json>)[String(key)] = v;
    };
    switch (rng.int(7)) {
      case 0: if (keys.length > 0) { const key = rng.pick(keys); if (Array.isArray(node)) node.splice(Number(key), 1); else delete (node as Record<string, Json>)[String(key)]; } break;
      case 1: if (keys.length > 0) set(rng.pick(keys), rng.pick(NASTY_JSON)); break;
      case 2: if (!Array.isArray(node)) set(rng.pick(['ot', 'extra', '__proto__', 'constructor', 'version']), rng.pick(NASTY_JSON)); else node.push(rng.pick(NASTY_JSON)); break;
      case 3: if (keys.length > 0) { const key = rng.pick(keys); const v = Array.isArray(node) ? node[Number(key)] : (node as Record<string, Json>)[String(key)]; set(key, typeof v === 'number' ? String(v) : typeof v === 'string' ? Number(v) : [v]); } break;
      case 4: { let deep: Json = 1; for (let i = 0; i < 100 + rng.int(1900); i++) deep = [deep]; if (keys.length > 0) set(rng.pick(keys), deep); break; }
      case 5: if (Array.isArray(node) && node.length > 0 && JSON.stringify(node[0]).length < 400) { const many = 1 + rng.int(500); for (let i = 0; i < many; i++) node.push(JSON.parse(JSON.stringify(node[0])) as Json); } break;
      default: if (keys.length > 0) set(rng.pick(keys), rng.chance(0.5) ? -1 * (1 + rng.int(1e6)) : 1e6 * rng.next()); break;
    }
  }
  return root;
}

/** A mutated JSON file text: structural mutations, and sometimes bytes damaged on top. */
export function mutateJsonText(rng: Rng, value: unknown): Buffer {
  // JSON.stringify of a very deep array overflows the stack: fall back to the original for that input.
  let text: string;
  try {
    text = JSON.stringify(mutateJson(rng, value as Json));
  } catch {
    text = `${'['.repeat(20_000)}1${']'.repeat(20_000)}`;
  }
  const bytes = Buffer.from(text ?? 'undefined');
  return rng.chance(0.3) ? mutateBytes(rng, bytes, 16 << 20) : bytes;
}

/** Valid cuemux OSC messages (what a console sends), the seeds of the OSC fuzzer. `media` is a file under the root. */
export function validOscMessages(media: string): Array<[string, Arg[]]> {
  const s = (value: string): Arg => ({ type: 's', value });
  const d = (value: number): Arg => ({ type: 'd', value });
  const i = (value: number): Arg => ({ type: 'i', value });
  return [
    ['/cuemux/thump', []], ['/cuemux/status', []], ['/cuemux/status', [i(1)]], ['/cuemux/clock/play', []], ['/cuemux/clock/play', [d(12.5)]],
    ['/cuemux/clock/stop', []], ['/cuemux/clock/locate', [s('00:00:10:00')]], ['/cuemux/clock/rate', [{ type: 'f', value: 1.5 }]],
    ['/cuemux/clock/fps', [s('29.97df')]], ['/cuemux/clock/timecode', [s('00:01:00:00')]],
    ['/cuemux/cue/load', [s('A'), s(media), d(2), d(8), { type: 'T', value: null }]], ['/cuemux/cue/load', [s('B'), s(`{"media":"${media}","in":5}`)]],
    ['/cuemux/cue/go', []], ['/cuemux/cue/go', [s('A'), s('00:00:20:00')]], ['/cuemux/cue/stop', [s('A')]], ['/cuemux/cue/pause', []],
    ['/cuemux/cue/resume', []], ['/cuemux/cue/unload', [s('B')]], ['/cuemux/cue/standby', [s('A')]], ['/cuemux/cuelist/load', [s('/nonexistent/list.json')]],
    ['/cuemux/updates', [i(1)]], ['/cuemux/updates', [i(0)]],
  ];
}

/** An OSC string: bytes, a NUL, padded to 4. */
function oscString(text: string | Buffer): Buffer {
  const b = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  return Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]);
}

/** NTP timetags a hostile or broken sender might use (seconds since 1900, fraction): 0, immediately, the far past and future. */
function oddTimetag(rng: Rng): Buffer {
  const t = Buffer.alloc(8);
  const nowNtp = Math.floor(Date.now() / 1000) + 2_208_988_800;
  const [sec, frac] = rng.pick<[number, number]>([[0, 0], [0, 1], [0xffffffff, 0xffffffff], [nowNtp - 3600, 0], [nowNtp + 1, 0],
    [nowNtp + 25 * 3600, 0], [nowNtp + 23 * 3600, 0x80000000], [nowNtp, 0xffffffff], [0x80000000, 0], [nowNtp - 2, 1]]);
  t.writeUInt32BE(sec >>> 0, 0);
  t.writeUInt32BE(frac >>> 0, 4);
  return t;
}

/** A bundle `depth` deep around `inner` messages, with odd timetags and (sometimes) lying element sizes. */
function nestedBundle(rng: Rng, inner: Buffer[], depth: number): Buffer {
  let elements = inner;
  for (let level = 0; level < depth; level++) {
    const parts: Buffer[] = [Buffer.from('#bundle\0', 'latin1'), oddTimetag(rng)];
    for (const e of elements) {
      const size = Buffer.alloc(4);
      size.writeInt32BE(rng.chance(0.1) ? rng.pick([-1, 0, 3, e.length + 4, 0x7fffffff, -0x80000000]) : e.length);
      parts.push(size, e);
    }
    elements = [Buffer.concat(parts)];
  }
  return elements[0];
}

/** Kinds of fuzzed datagrams (for the table's notes). */
export type OscFuzzKind = 'valid' | 'mutated' | 'truncated' | 'wrong-types' | 'huge-size' | 'nested-bundle' | 'odd-timetag' | 'random';

/** One fuzzed datagram built from `seeds` (valid messages), at most 65,507 bytes (what UDP carries). */
export function oscFuzzDatagram(rng: Rng, seeds: Array<[string, Arg[]]>): { kind: OscFuzzKind; bytes: Buffer } {
  const seed = (): Buffer => {
    const [address, args] = rng.pick(seeds);
    return encode(address, args);
  };
  const r = rng.int(100);
  let kind: OscFuzzKind;
  let bytes: Buffer;
  if (r < 12) {
    kind = 'valid';
    bytes = rng.chance(0.7) ? seed() : bundleAt(0n, Array.from({ length: 1 + rng.int(4) }, seed));
  } else if (r < 40) {
    kind = 'mutated';
    bytes = mutateBytes(rng, rng.chance(0.7) ? seed() : bundleAt(BigInt(Date.now()) * 1_000_000n, Array.from({ length: 1 + rng.int(4) }, seed)), 65_507);
  } else if (r < 50) {
    kind = 'truncated';
    const b = rng.chance(0.6) ? seed() : bundleAt(0n, [seed(), seed()]);
    bytes = b.subarray(0, rng.int(b.length));
  } else if (r < 62) {
    kind = 'wrong-types';
    const [address, args] = rng.pick(seeds);
    const valid = encode(address, args);
    const head = oscString(address);
    const tagsLen = oscString(`,${args.map((a) => a.type).join('')}`).length;
    const letters = 'ifdsbhtTFNIcrmS[]xyz?,\0';
    const tags = `,${Array.from({ length: rng.int(12) }, () => letters[rng.int(letters.length)]).join('')}`;
    bytes = Buffer.concat([head, oscString(tags), valid.subarray(head.length + tagsLen), rng.chance(0.5) ? rng.bytes(rng.int(16)) : Buffer.alloc(0)]);
  } else if (r < 72) {
    kind = 'huge-size';
    const big = Buffer.alloc(4);
    big.writeUInt32BE(rng.pick([0x7fffffff, 0xffffffff, 0x80000000, 0x10000, 65_000]));
    switch (rng.int(4)) {
      case 0: bytes = Buffer.concat([oscString('/cuemux/cue/load'), oscString(',sb'), oscString('A'), big, rng.bytes(rng.int(64))]); break; // blob claiming 2 GB
      case 1: bytes = Buffer.concat([Buffer.from('#bundle\0', 'latin1'), Buffer.alloc(8), big, seed()]); break; // element claiming 2 GB
      case 2: bytes = Buffer.concat([Buffer.from(`/cuemux/${'x'.repeat(20_000 + rng.int(40_000))}`, 'latin1')]); break; // address with no NUL
      default: bytes = Buffer.concat([oscString('/cuemux/cue/load'), oscString(`,${'s'.repeat(2000)}`), oscString('A'.repeat(rng.int(30_000)))]); break;
    }
  } else if (r < 84) {
    kind = 'nested-bundle';
    bytes = nestedBundle(rng, Array.from({ length: 1 + rng.int(3) }, seed), 1 + rng.int(rng.chance(0.2) ? 400 : 12));
  } else if (r < 94) {
    kind = 'odd-timetag';
    bytes = nestedBundle(rng, Array.from({ length: 1 + rng.int(3) }, seed), 1);
  } else {
    kind = 'random';
    bytes = rng.bytes(rng.chance(0.02) ? 60_000 : rng.int(600));
    if (rng.chance(0.5) && bytes.length > 8) bytes.write(rng.chance(0.5) ? '#bundle\0' : '/cuemux/', 0, 'latin1');
  }
  return { kind, bytes: bytes.length > 65_507 ? bytes.subarray(0, 65_507) : bytes };
}

/** Mounted tmpfs folders, unmounted by {@link unmountAll}. */
const mounts: string[] = [];

/**
 * A new tmpfs of `size` (e.g. `512k`) mounted on a scratch folder, or null when mounting is not permitted here (not
 * root, or a container without CAP_SYS_ADMIN).
 */
export async function mountTmpfs(size: string): Promise<string | null> {
  if (process.getuid?.() !== 0) return null;
  const dir = await scratchDir('fault-tmpfs');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  } catch {
    return null;
  }
  mounts.push(dir);
  return dir;
}

/** Unmount every tmpfs of {@link mountTmpfs} (lazily, so a process still holding a file there cannot keep it). */
export async function unmountAll(): Promise<void> {
  for (const m of mounts.splice(0)) await run('umount', ['-l', m]).catch(() => undefined);
}

/** Fill the filesystem of `dir` with `dir/<name>` until ENOSPC, then give back `pagesFree` pages of 4 KiB. */
export function fillDisk(dir: string, pagesFree: number, name = 'filler'): void {
  const fd = openSync(path.join(dir, name), 'a');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 1 << 20; i++) {
      try {
        writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
    // The last partial chunk: page by page.
    const page = Buffer.alloc(4096, 1);
    for (let i = 0; i < 64; i++) {
      try {
        writeSync(fd, page);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
    const size = fstatSync(fd).size;
    ftruncateSync(fd, Math.max(0, Math.floor(size / 4096) * 4096 - pagesFree * 4096));
  } finally {
    closeSync(fd);
  }
}

/** Datagrams the kernel dropped at the UDP socket bound to `port` on 127.0.0.1 (its receive buffer was full), from /proc/net/udp. */
export async function udpDrops(port: number): Promise<number> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of (await fsp.readFile('/proc/net/udp', 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex}`)) return Number(f[f.length - 1]);
  }
  return 0;
}

/** A UDP port on 127.0.0.1 free a moment ago (bound to port 0, then released): for a server that must keep one port across restarts. */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(resolve));
  return port;
}

