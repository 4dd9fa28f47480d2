/**
 * bench:multi (issue 14, item 5): a show on four "machines" — network namespaces of this machine, joined through a
 * userspace relay (./bench/relay) that delays every chunk 0.2–2 ms with jitter and loses 1 % — measured from the
 * players' sync logs (every namespace shares CLOCK_MONOTONIC, so the machines' logs compare exactly):
 *
 * - `m`: the master `cuemux serve`; `b`: its backup (`--backup-of`); `f1`, `f2`: followers (`--follow m,b`), each
 *   playing its own copy of the media. A play-video (hash sink) and a play-audio (WAV sink) with `--sync-log` on
 *   every machine: on a follower through its own server, on the master and the backup through whichever is master.
 * - The peer, in the same run: on f1 and f2 the same two players following the master over TCP across the relay
 *   (today's way: the packets cross the network and Ping estimates the wall-clock offset; no local server).
 * - The show: cues of one clip armed and GOne at a clock position, a locate inside each cue, a pause (clock stop,
 *   play), the cue under stopped; a 2 s partition of f1 (its link down) and later a SIGKILL of the master's server
 *   mid-cue (the backup takes over and the show goes on from it).
 *
 * Reported: inter-machine presentation offsets (each player against the master machine's player of its kind, at the
 * same instants: the clock of each video tick, the media time of each audio period), out-of-sync video ticks (the
 * tick's frame MD5 against FFmpeg's frame for the master's clock, as bench:go judges), dry audio periods, the
 * partition (largest step of f1's clock against the master's, out-of-sync ticks) and the failover (time until the
 * backup is master, out-of-sync ticks and dry audio on every machine), with PASS/MISS per target, load and steal.
 *
 * `node dist/scripts/bench-multi.js [--duration S (300)] [--quick (40 s)] [--takeover-ms MS (the server's 300)] [--keep (the logs)]`
 * (root: network namespaces). Namespaces are
 * named multi-*, removed at the end and (a run that died) at the start.
 */
import { closeSync, openSync, promises as fsp } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import { expectedAt, frameNames, ShowClock, Timeline, type Show } from './bench-go-analysis';
import { FollowClient, type FollowLine } from './bench-go-procs';
import { syncClip, videoFramemd5 } from './bench-media';
import { CLI, runBench, startBenchServer, type BenchServer } from './bench/harness';
import { watchMachine } from './bench/machine';
import { judgeAudio, judgeVideo, maxStep, offsetsAgainst, outside, playerPending, readAudioPlayer, readVideoPlayer, type PlayerLogs, type Sample, type Span } from './bench/multi-judge';
import { makeStar, removeStaleNamespaces, type Star } from './bench/netns';
import { OscInNamespace } from './bench/osc';
import { readFramemd5 } from './bench/reference';
import { startRelay, sumRelayStats, type Relay, type RelayStats } from './bench/relay';
import { ms, passIf, pct } from './bench/stats';

/** Namespace prefix of this benchmark (`multi-hub`, `multi-m`, ...) and the second octet of its links (10.246.i.0/30). */
const PREFIX = 'multi-';
const NET_SECOND = 246;
/** The machines, in link order. */
const MACHINES = ['m', 'b', 'f1', 'f2'] as const;
type Machine = typeof MACHINES[number];
/** Every server listens on its machine's service address at this port; the relay on its link address at SERVER_PORT + 1. */
const SERVER_PORT = 7000;
/** The video players' display rate: the clip's frame rate. */
const FPS = 25;
/** Cues of the clip (s): each cycle GOes the next one. */
const CUES = [{ id: 'A', in: 2, out: 60 }, { id: 'B', in: 30, out: 90 }, { id: 'C', in: 58, out: 118 }];
/** One cycle of the show, s: GO at +0 (the cue at clock +1), locate +5 s at +6, clock stop at +11, play at +12.5, the cue under stopped at +3. */
const CYCLE_S = 18;

const say = (s: string): void => { process.stderr.write(`bench:multi: ${s}\n`); };

interface Options {
  duration: number;
  keep: boolean;
  /** The main's and the backup's --takeover-ms, or null for the server's default (300). */
  takeoverMs: string | null;
}

function options(): Options {
  const { values } = parseArgs({ options: { duration: { type: 'string' }, quick: { type: 'boolean' }, keep: { type: 'boolean' }, 'takeover-ms': { type: 'string' } } });
  const duration = values.duration !== undefined ? Number(values.duration) : values.quick === true ? 40 : 300;
  if (!(duration >= 2 * CYCLE_S + 4)) throw new Error(`--duration must be at least ${2 * CYCLE_S + 4} s (two cycles of the show)`);
  return { duration, keep: values.keep === true, takeoverMs: values['takeover-ms'] ?? null };
}

/** A player process of the run and its files. */
interface Player {
  label: string;
  kind: 'video' | 'audio';
  child: ChildProcess;
  files: { hash: string; sync: string; wav: string; log: string };
}

async function main(): Promise<void> {
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('bench:multi makes network namespaces: run it as root');
  const stale = await removeStaleNamespaces(PREFIX);
  if (stale.length > 0) say(`removed stale namespaces of a run that died: ${stale.join(', ')}`);
  const machine = watchMachine();
  const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-multi-'));
  const children: ChildProcess[] = [];
  const clients: MediaClient[] = [];
  const followers: FollowClient[] = [];
  const oscs: OscInNamespace[] = [];
  let star: Star | null = null;
  let relays: Relay[] = [];
  try {
    star = await makeStar(PREFIX, MACHINES, NET_SECOND);
    const lines = await runShow(o, star, scratch, children, clients, followers, oscs, (r) => { relays = r; });
    process.stdout.write(`${[machine.startLine, ...lines, machine.endLine()].join('\n')}\n`);
  } finally {
    for (const c of clients) c.close();
    for (const f of followers) f.stop();
    for (const x of oscs) x.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const r of relays) await r.stop();
    await star?.remove();
    if (o.keep) say(`logs kept in ${scratch}`);
    else await fsp.rm(scratch, { recursive: true, force: true });
  }
}

async function runShow(o: Options, star: Star, scratch: string, children: ChildProcess[], clients: MediaClient[], followers: FollowClient[],
  oscs: OscInNamespace[], setRelays: (r: Relay[]) => void): Promise<string[]> {
  const at = (m: Machine): { ns: string; ip: string; serviceIp: string } => star.machines.get(m) as { ns: string; ip: string; serviceIp: string };
  /** Machine `m`'s server, as every machine reaches it (its service address: through the relay from the others). */
  const addr = (m: Machine): string => `${at(m).serviceIp}:${SERVER_PORT}`;
  // A relay on every machine: to each other machine's server (shaped), and from the link to its own (as it is).
  const relays: Relay[] = [];
  for (const m of MACHINES) {
    relays.push(await startRelay(at(m).ns, {
      routes: [
        ...MACHINES.filter((to) => to !== m).map((to) => ({ proto: 'tcp' as const, listen: addr(to), to: `${at(to).ip}:${SERVER_PORT + 1}` })),
        { proto: 'tcp' as const, listen: `${at(m).ip}:${SERVER_PORT + 1}`, to: addr(m), shaped: false },
      ],
      minDelayMs: 0.2, maxDelayMs: 2, loss: 0.01,
    }));
  }
  setRelays(relays);

  say('media and FFmpeg\'s decode of it (cached after the first run)...');
  const clip = await syncClip(true, 120);
  const ref = await readFramemd5(await videoFramemd5(clip), 'clip');
  const roots = new Map<Machine, string>();
  for (const m of MACHINES) {
    const root = path.join(scratch, `root-${m}`);
    await fsp.mkdir(root);
    await fsp.link(clip, path.join(root, 'clip.mp4')).catch(() => fsp.copyFile(clip, path.join(root, 'clip.mp4')));
    roots.set(m, root);
  }
  await new Promise<void>((resolve, reject) => {
    spawn(process.execPath, [CLI, 'index', 'build', ...roots.values()], { stdio: ['ignore', 'ignore', 'inherit'] })
      .once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`index build exited ${String(code)}`))));
  });

  // The servers, each on its machine, its log in a file.
  const sock = (m: Machine): string => path.join(scratch, `${m}.sock`);
  const logOf = (name: string): number => openSync(path.join(scratch, name), 'w');
  const serve = async (m: Machine, extra: string[]): Promise<BenchServer> => {
    const fd = logOf(`server-${m}.log`);
    const s = await startBenchServer(['--socket', sock(m), '--media-root', roots.get(m) as string, '--state-file', 'none', '--osc-port', '0',
      '--listen', addr(m), '--insecure-listen', ...extra], { ns: at(m).ns, stderrFd: fd, logLevel: 'info' });
    closeSync(fd);
    children.push(s.child);
    return s;
  };
  say('servers: master, two followers...');
  // Both servers of the pair get the same --takeover-ms: a main that stands down is a backup with its own.
  const takeover = o.takeoverMs === null ? [] : ['--takeover-ms', o.takeoverMs];
  const master = await serve('m', takeover);
  for (const f of ['f1', 'f2'] as const) await serve(f, ['--follow', `${addr('m')},${addr('b')}`]);
  const mc = new MediaClient(sock('m'));
  clients.push(mc);
  await until('both followers watching the master', 30_000, async () =>
    (await mc.getStatus()).clients.filter((c) => c.output === '(follower server)').length >= 2);

  // The players.
  const players: Player[] = [];
  const spawnPlayer = (label: string, ns: string, kind: 'video' | 'audio', connect: string[]): void => {
    const base = path.join(scratch, `${label.replace(' ', '-')}-${kind}`);
    const files = { hash: `${base}-hash.jsonl`, sync: `${base}-sync.jsonl`, wav: `${base}.wav`, log: `${base}.log` };
    const fd = openSync(files.log, 'w');
    const args = kind === 'video'
      ? ['play-video', ...connect, '--fps', String(FPS), '--sink', `hash:${files.hash}`, '--sync-log', files.sync]
      : ['play-audio', ...connect, '--sink', `wav:${files.wav}`, '--sync-log', files.sync];
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, '--log-level', 'info', ...args], { stdio: ['ignore', 'ignore', fd] });
    closeSync(fd);
    children.push(child);
    players.push({ label, kind, child, files });
  };
  const connectOf: Record<Machine, string[]> = {
    m: ['--target', `unix:${sock('m')},${addr('b')}`],
    b: ['--target', `${addr('m')},unix:${sock('b')}`],
    f1: ['--socket', sock('f1')],
    f2: ['--socket', sock('f2')],
  };
  for (const m of MACHINES) for (const kind of ['video', 'audio'] as const) spawnPlayer(m, at(m).ns, kind, connectOf[m]);
  for (const m of ['f1', 'f2'] as const) {
    for (const kind of ['video', 'audio'] as const) spawnPlayer(`${m} peer`, at(m).ns, kind, ['--target', `${addr('m')},${addr('b')}`]);
  }
  const alive = (): void => {
    const dead = players.find((p) => p.child.exitCode !== null);
    if (dead !== undefined) throw new Error(`the ${dead.label} ${dead.kind} player exited ${String(dead.child.exitCode)} (its log: ${dead.files.log})`);
  };
  // On the master: its own players, the backup's and the peers (6 video, 6 audio with the reference below).
  await until('the players on the master and the backup and the peers following the master', 60_000, async () => {
    alive();
    const st = await mc.getStatus();
    return st.clients.filter((c) => c.output === 'video').length >= 4 && st.clients.filter((c) => c.output === 'audio').length >= 4;
  });
  for (const [f, c] of [['f1', 'f1'], ['f2', 'f2']] as const) {
    const fc = new MediaClient(sock(f));
    clients.push(fc);
    await until(`the players on ${c} following it`, 60_000, async () => {
      alive();
      const st = await fc.getStatus();
      return ['video', 'audio'].every((k) => st.clients.some((x) => x.output === k));
    });
  }
  // The backup last: the start of a dozen processes on a small machine can hold the master's heartbeats past
  // --takeover-ms (seen: a takeover at the start, 333 ms silent, with the machine's load average at 13).
  say('the backup...');
  const backup = await serve('b', ['--backup-of', addr('m'), ...takeover]);
  const bc = new MediaClient(sock('b'));
  clients.push(bc);
  await until('the backup watching the master', 30_000, async () =>
    (await mc.getStatus()).clients.filter((c) => c.output === '(follower server)').length >= 3);
  // The master, as the show control and the judge follow it: m at first; a takeover (the SIGKILL's, or one the
  // machine's load causes: counted) moves both to the new master.
  const clientOf: Partial<Record<Machine, MediaClient>> = { m: mc, b: bc };
  const serverOf: Partial<Record<Machine, BenchServer>> = { m: master, b: backup };
  let current: Machine = 'm';
  const takeovers: Array<{ mono: bigint; to: Machine }> = [];
  // The judge's show clock and cues: a Follow client on the master (from the root namespace, on its Unix socket).
  const follow: FollowClient[] = [await FollowClient.start(sock('m'), 'video')];
  followers.push(...follow);
  let control = OscInNamespace.start(at('m').ns, master.oscPort as number);
  oscs.push(control);
  /** Which of m and b is master now (the newer term), or null while neither says so. */
  const masterNow = async (): Promise<Machine | null> => {
    let best: { m: Machine; term: bigint } | null = null;
    for (const m of ['m', 'b'] as const) {
      const c = clientOf[m];
      const child = serverOf[m]?.child;
      if (c === undefined || child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      const role = await c.getRole({ timeout: 1000 }).catch(() => null);
      if (role?.role === 'master' && (best === null || role.term > best.term)) best = { m, term: role.term };
    }
    return best?.m ?? null;
  };
  /** Follow the master to `m`: show control and the judge's Follow client go there. */
  const moveTo = async (m: Machine): Promise<void> => {
    takeovers.push({ mono: monoNs(), to: m });
    current = m;
    control.close();
    control = OscInNamespace.start(at(m).ns, (serverOf[m] as BenchServer).oscPort as number);
    oscs.push(control);
    // Roles may change again meanwhile (a loaded machine can make them flap): the judge's Follow client goes to
    // whichever is master; without one for a while, the judge runs the clock on from its last state.
    for (let k = 0; k < 5; k++) {
      const f = await FollowClient.start(sock(current), 'video').catch(() => null);
      if (f !== null) {
        follow.push(f);
        followers.push(f);
        return;
      }
      await sleep(200);
      current = (await masterNow()) ?? current;
    }
    say('no Follow client on the master for the judge: its clock runs on from the last state');
  };
  const checkMaster = async (): Promise<void> => {
    const m = await masterNow();
    if (m !== null && m !== current) {
      say(`${m === 'b' ? 'the backup' : 'the main'} is master now (not the SIGKILL's doing: the machine's load)`);
      await moveTo(m);
    }
  };
  const commands: bigint[] = [];
  const send = async (address: string, ...args: string[]): Promise<Record<string, unknown>> => {
    commands.push(monoNs());
    let r = await control.request(address, ...args);
    // Roles that flap (a loaded machine) can move the master again meanwhile: a few tries, each after a look.
    for (let k = 0; k < 5 && r.status !== 'ok' && /send show control to the master/.test(String(r.error)); k++) {
      await sleep(200);
      await checkMaster();
      r = await control.request(address, ...args);
    }
    if (r.status !== 'ok') throw new Error(`${address} ${args.join(' ')}: ${String(r.error)}`);
    return r;
  };
  const clockNow = async (): Promise<number> => {
    const r = await control.request('/cuemux/status') as { data?: { clock?: { positionSeconds?: number } } };
    return Number(r.data?.clock?.positionSeconds);
  };
  const cycles = Math.floor((o.duration - 4) / CYCLE_S);
  const partitionCycle = Math.floor(cycles * 0.35);
  const killCycle = Math.max(partitionCycle + 1, Math.floor(cycles * 0.65));
  say(`the show: ${cycles} cycles of ${CYCLE_S} s (GO, locate, pause, the cue under stopped); f1 cut off in cycle ${partitionCycle + 1}, the master killed in cycle ${killCycle + 1}...`);
  const t0 = monoNs();
  const waitUntil = async (s: number): Promise<void> => {
    const d = Number(t0 + BigInt(Math.round(s * 1e9)) - monoNs()) / 1e6;
    if (d > 0) await sleep(d);
    alive();
  };
  let partition: Span | null = null;
  let failover: Span | null = null;
  let takeoverMs = NaN;
  await sleep(1000);
  await checkMaster();
  await send('/cuemux/cue/load', CUES[0].id, 'clip.mp4', String(CUES[0].in), String(CUES[0].out));
  await send('/cuemux/clock/play');
  await sleep(2000); // the followers open the cue's media
  let firstGo = 0n;
  let under: string | null = null;
  for (let i = 0; i < cycles; i++) {
    const base = 1 + i * CYCLE_S;
    const cue = CUES[i % CUES.length];
    const next = CUES[(i + 1) % CUES.length];
    await waitUntil(base);
    await checkMaster();
    // A load sent to a master that a takeover had already replaced (it learns so a moment later) is lost: load again.
    await send('/cuemux/cue/go', cue.id, String((await clockNow()) + 1)).catch(async (e: unknown) => {
      if (!(e instanceof Error && /no cue "/.test(e.message))) throw e;
      say(`cue ${cue.id} was not loaded on the master (a takeover took its load): loaded again`);
      await send('/cuemux/cue/load', cue.id, 'clip.mp4', String(cue.in), String(cue.out));
      await send('/cuemux/cue/go', cue.id, String((await clockNow()) + 1));
    });
    if (i === 0) firstGo = monoNs() + 1_000_000_000n;
    if (i === partitionCycle) {
      await waitUntil(base + 2);
      const from = monoNs();
      await star.setLink('f1', false);
      await sleep(2000);
      await star.setLink('f1', true);
      partition = { from, to: monoNs() + 5_000_000_000n };
      say('f1 cut off for 2 s, healed');
    }
    await waitUntil(base + 3);
    if (under !== null) {
      // After a takeover that took its load the cue is not on the master: nothing to stop.
      const gone = (e: unknown): void => {
        if (!(e instanceof Error && /no cue "|not loaded/.test(e.message))) throw e;
      };
      await send('/cuemux/cue/stop', under).catch(gone);
      await send('/cuemux/cue/unload', under).catch(gone);
    }
    under = cue.id;
    if (i === killCycle) {
      await waitUntil(base + 4);
      await checkMaster();
      const victim = current;
      const heir: Machine = victim === 'm' ? 'b' : 'm';
      const killed = monoNs();
      (serverOf[victim] as BenchServer).child.kill('SIGKILL');
      await until(`the ${heir === 'b' ? 'backup' : 'main'} to take over`, 20_000, async () =>
        (await (clientOf[heir] as MediaClient).getRole({ timeout: 1000 }).catch(() => null))?.role === 'master', 20);
      takeoverMs = Number(monoNs() - killed) / 1e6;
      failover = { from: killed, to: monoNs() + 5_000_000_000n };
      say(`the master (${victim}) SIGKILLed; ${heir} answered as master ${takeoverMs.toFixed(0)} ms later`);
      await moveTo(heir);
      takeovers.pop();
    }
    await waitUntil(base + 6);
    await send('/cuemux/clock/locate', String((await clockNow()) + 5));
    await waitUntil(base + 11);
    await send('/cuemux/clock/stop');
    await waitUntil(base + 12.5);
    await send('/cuemux/clock/play');
    await waitUntil(base + 14);
    await send('/cuemux/cue/load', next.id, 'clip.mp4', String(next.in), String(next.out));
  }
  await waitUntil(1 + cycles * CYCLE_S);
  const endMono = monoNs();
  say('the show is over: stopping the players...');
  for (const p of players) p.child.kill('SIGTERM');
  await Promise.all(players.map((p) => (p.child.exitCode !== null ? Promise.resolve() : new Promise((r) => p.child.once('exit', r)))));
  const relayStats = sumRelayStats(await Promise.all(relays.map((r) => r.stop())));

  // The judge.
  const followLines: FollowLine[] = follow.flatMap((f) => f.lines);
  await fsp.writeFile(path.join(scratch, 'follow.jsonl'), followLines.map((l) => JSON.stringify(l)).join('\n'));
  const show: Show = { clock: new ShowClock(followLines), timeline: new Timeline(followLines), video: new Map(CUES.map((c) => [c.id, ref])), audio: new Map(), frameNames: frameNames([ref]) };
  const expected = (s: Show, mono: bigint): string | null => expectedAt(s, s.clock.at(mono))?.md5 ?? null;
  const logs: PlayerLogs[] = [];
  for (const p of players) {
    logs.push(p.kind === 'video' ? await readVideoPlayer(p.label, p.files.hash, p.files.sync) : await readAudioPlayer(p.label, p.files.sync));
  }
  return report({ o, logs, show, expected, firstGo, endMono, commands, partition, failover, takeoverMs, relayStats, cycles, falseTakeovers: takeovers.map((t) => `${t.to} at ${(Number(t.mono - t0) / 1e9).toFixed(1)} s`) });
}

/** Poll `check` every `everyMs` until it is true; throws naming `what` after `ms`. */
async function until(what: string, msMax: number, check: () => Promise<boolean>, everyMs = 100): Promise<void> {
  const end = Date.now() + msMax;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${msMax} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** What the report is made of. */
interface ReportInput {
  o: Options;
  logs: PlayerLogs[];
  show: Show;
  expected: (s: Show, mono: bigint) => string | null;
  firstGo: bigint;
  endMono: bigint;
  commands: bigint[];
  partition: Span | null;
  failover: Span | null;
  takeoverMs: number;
  relayStats: RelayStats | null;
  cycles: number;
  /** Takeovers nobody caused (the machine's load held heartbeats past --takeover-ms): the new master and when. */
  falseTakeovers: string[];
}

function report(r: ReportInput): string[] {
  const out: string[] = [];
  const periodNs = 1e9 / FPS;
  const from = r.firstGo + 1_000_000_000n; // after the first cue's first second: every player has reached it
  const of = (label: string, kind: 'video' | 'audio'): PlayerLogs => r.logs.find((l) => l.label === label && l.kind === kind) as PlayerLogs;
  out.push(`bench:multi: ${r.cycles} cycles of the show (${r.o.duration} s), players at ${FPS} ticks/s (video) and 10 ms periods (audio, 48 kHz)`);
  const rs = r.relayStats;
  if (rs !== null) {
    out.push(`Relay (0.2-2 ms one way with jitter, 1 % loss): ${rs.tcpConnections} TCP connections, ${rs.tcpChunks} chunks, ${rs.tcpLost} lost (retransmitted 10 ms later); `
      + `delay given p50 ${rs.delayP50Ms.toFixed(2)} ms, p99 ${rs.delayP99Ms.toFixed(2)} ms, max ${rs.delayMaxMs.toFixed(2)} ms (Node timers fire on whole ms)`);
  }
  out.push('', 'Inter-machine presentation offset against the master machine\'s player (ms; video: the clock of each tick, audio: the media time of each period):');
  out.push(`${'player'.padEnd(16)}${'video p50'.padStart(11)}${'p99'.padStart(9)}${'max'.padStart(9)}${'audio p50'.padStart(11)}${'p99'.padStart(9)}${'max'.padStart(9)}`);
  const offs = new Map<string, Array<{ mono: bigint; offset: number }>>();
  const p99 = new Map<string, number>();
  const pendingOf = new Map(r.logs.map((l) => [`${l.label} ${l.kind}`, playerPending(r.show, l, r.commands, r.expected)]));
  /** A player's samples after `from` outside its pending spans (a command not yet presented is no offset). */
  const steady = (label: string, kind: 'video' | 'audio'): Sample[] => outside(of(label, kind).samples.filter((s) => s.mono >= from), pendingOf.get(`${label} ${kind}`) ?? []);
  for (const label of ['b', 'f1', 'f2', 'f1 peer', 'f2 peer']) {
    const cells: string[] = [];
    for (const kind of ['video', 'audio'] as const) {
      const o = offsetsAgainst(steady('m', kind), steady(label, kind));
      offs.set(`${label} ${kind}`, o);
      const abs = o.map((x) => Math.abs(x.offset));
      p99.set(`${label} ${kind}`, pct(abs, 99));
      cells.push(ms(pct(o.map((x) => x.offset), 50)).padStart(kind === 'video' ? 11 : 11), ms(pct(abs, 99)).padStart(9), ms(Math.max(0, ...abs)).padStart(9));
    }
    out.push(`${label.padEnd(16)}${cells.join('')}`);
  }
  out.push('', 'Out-of-sync video ticks (frame MD5 against FFmpeg\'s for the master\'s clock; a command up to the first in-sync tick not judged) and dry audio periods:');
  out.push(`${'player'.padEnd(16)}${'ticks'.padStart(8)}${'wrong'.padStart(7)}${'partition'.padStart(11)}${'failover'.padStart(10)}${'periods'.padStart(9)}${'dry'.padStart(6)}${'partition'.padStart(11)}${'failover'.padStart(10)}`);
  let wrongFollowers = 0;
  let wrongAll = 0;
  let wrongFailover = 0;
  let dryFailover = 0;
  let dryFollowersSteady = 0;
  let wrongFollowersSteady = 0;
  let wrongPartition = 0;
  const examples: string[] = [];
  for (const label of ['m', 'b', 'f1', 'f2', 'f1 peer', 'f2 peer']) {
    const v = of(label, 'video');
    const a = of(label, 'audio');
    const jv = judgeVideo(r.show, v, from, pendingOf.get(`${label} video`) ?? [], periodNs, r.partition, r.failover);
    const ja = judgeAudio(a, from, pendingOf.get(`${label} audio`) ?? [], r.partition, r.failover);
    out.push(`${label.padEnd(16)}${String(jv.judged).padStart(8)}${String(jv.wrong).padStart(7)}${String(jv.inPartition).padStart(11)}${String(jv.inFailover).padStart(10)}`
      + `${String(ja.periods).padStart(9)}${String(ja.dry).padStart(6)}${String(ja.inPartition).padStart(11)}${String(ja.inFailover).padStart(10)}`);
    for (const e of jv.examples) examples.push(`  ${label}: ${e}`);
    if (!label.includes('peer')) {
      wrongAll += jv.wrong;
      wrongFailover += jv.inFailover;
      dryFailover += ja.inFailover;
      wrongPartition += jv.inPartition;
      if (label.startsWith('f')) {
        wrongFollowers += jv.wrong;
        wrongFollowersSteady += jv.wrong - jv.inPartition - jv.inFailover;
        dryFollowersSteady += ja.dry - ja.inPartition - ja.inFailover;
      }
    }
  }
  if (examples.length > 0) out.push('First out-of-sync ticks (s after the first GO + 1 s):', ...examples.slice(0, 12));
  // The partition: f1's clock against the master's, from the cut to 5 s after the heal.
  let stepV = NaN;
  let stepA = NaN;
  if (r.partition !== null) {
    stepV = maxStep(offs.get('f1 video') ?? [], r.partition);
    stepA = maxStep(offs.get('f1 audio') ?? [], r.partition);
    out.push('', `Partition of f1 (link down 2 s, then 5 s after the heal): largest step of f1's offset to the master machine: video ${ms(stepV)} ms, audio ${ms(stepA)} ms; `
      + `out-of-sync ticks there (all machines but the peers): ${wrongPartition}`);
  }
  out.push(`Takeovers nobody caused (heartbeats held past --takeover-ms by the load): ${r.falseTakeovers.length === 0 ? 'none' : r.falseTakeovers.join(', ')}`);
  out.push(`Failover: the backup answered as master ${r.takeoverMs.toFixed(0)} ms after the SIGKILL (GetRole every 20 ms); in the 5 s after that: `
    + `${wrongFailover} out-of-sync ticks and ${dryFailover} dry audio periods on the four machines`);
  void wrongFollowers;
  const audioP99 = Math.max(...['b', 'f1', 'f2'].map((l) => p99.get(`${l} audio`) ?? NaN));
  const peerAudioP99 = Math.max(...['f1 peer', 'f2 peer'].map((l) => p99.get(`${l} audio`) ?? NaN));
  const videoP99 = Math.max(...['b', 'f1', 'f2'].map((l) => p99.get(`${l} video`) ?? NaN));
  const peerVideoP99 = Math.max(...['f1 peer', 'f2 peer'].map((l) => p99.get(`${l} video`) ?? NaN));
  out.push('', `Peer (the same players over TCP across the relay with the Ping offset, no local server): audio p99 ${ms(peerAudioP99)} ms vs followers ${ms(audioP99)} ms `
    + `(${(peerAudioP99 / audioP99).toFixed(1)}x), video p99 ${ms(peerVideoP99)} ms vs ${ms(videoP99)} ms`);
  out.push('', 'Targets:');
  out.push(`  ${passIf(audioP99 <= 0.001)} inter-machine audio p99 <= 1 ms (worst machine: ${ms(audioP99)} ms)`);
  out.push(`  ${passIf(wrongAll === 0)} 0 out-of-sync video ticks on the four machines (${wrongAll})`);
  out.push(`  ${passIf(wrongFailover === 0 && dryFailover === 0 && Number.isFinite(r.takeoverMs))} failover: 0 out-of-sync ticks, no dry audio period (${wrongFailover}, ${dryFailover}; backup master after ${r.takeoverMs.toFixed(0)} ms)`);
  out.push(`  ${passIf(wrongPartition === 0 && stepV <= 0.001 && stepA <= 0.001)} partition: re-lock without a visible jump (0 out-of-sync ticks, steps <= 1 ms: ${wrongPartition}, ${ms(stepV)}, ${ms(stepA)} ms)`);
  out.push(`  ${passIf(wrongFollowersSteady === 0 && dryFollowersSteady === 0)} the 1 % loss link costs nothing visible on the followers outside the partition and the failover (${wrongFollowersSteady} ticks, ${dryFollowersSteady} dry periods)`);
  out.push(`Run span: ${(Number(r.endMono - r.firstGo) / 1e9).toFixed(1)} s of show.`);
  return out;
}

runBench('bench:multi', main);
