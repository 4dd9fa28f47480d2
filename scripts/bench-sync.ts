/**
 * `npm run bench:sync` — how closely the reference players present on the show clock over a long cue. A
 * `cuemux serve`, a `cuemux play-audio` and two `cuemux play-video` run as separate processes; one cue (1080p25
 * H.264 + AAC, 5 minutes by default) is fired over OSC and plays to its end. From the players' sync logs:
 * - audio: |pts − clock| per 10 ms period (p50/p99/max), its drift over the run, periods left silent;
 * - video: tick lateness (presentation instant − display instant, p50/p99/max) and wrong frames (a tick inside the
 *   cue that did not show the frame covering the clock);
 * - CPU of each process (share of one core, from /proc/PID/stat).
 * The peer, in the same run on the same cue: the same video player ticking on Node timers alone (`--spin-ms 0`,
 * `--nice 0`), which is how a player built on setTimeout/setInterval presents.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaClient } from '../src/clients/media-client';
import { readSyncLog, type SyncRecord } from '../src/players/sync-log';
import { cacheDir, makeMedia } from '../test/support/media';
import { slope } from '../test/support/check';
import { OscPeer } from '../test/support/osc';
import { hd1080, small120 } from './bench-media';
import { CLI, pct, runBench, startBenchServer, withScratch } from './bench-server';

const USAGE = `Usage: npm run bench:sync -- [--seconds N] [--fps RATE] [--small]
  --seconds N   cue length in seconds (default 300)
  --fps RATE    the video players' display rate (default 60)
  --small       320x180 video instead of 1080p (a quick run)
  --profile DIR write a V8 CPU profile of each player into DIR (node --cpu-prof)
`;

/** Clock ticks per second of /proc/PID/stat times. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system) of a process so far, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Node options of the player processes (`--profile`). */
const playerNodeArgs: string[] = [];

/** A player child process. */
function player(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...playerNodeArgs, CLI, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

const ms = (s: number): string => (s * 1e3).toFixed(3);

/** Video figures of one player's sync log, for ticks inside the cue. */
function videoFigures(records: SyncRecord[], goAt: number, seconds: number): { ticks: number; wrong: number; late: number[] } {
  const inside = records.filter((r) => r.clockSeconds >= goAt && r.clockSeconds < goAt + seconds);
  const wrong = inside.filter((r) => r.ptsSeconds === null || r.extra.covers !== true).length;
  return { ticks: inside.length, wrong, late: inside.map((r) => Number(r.extra.late_ns) / 1e9) };
}

async function main(run: string): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    process.stdout.write(USAGE);
    return;
  }
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seconds = Number(opt('--seconds') ?? 300);
  const fps = opt('--fps') ?? '60';
  const small = argv.includes('--small');
  const profile = opt('--profile');
  if (profile !== undefined) playerNodeArgs.push('--cpu-prof', '--cpu-prof-dir', path.resolve(profile));
  if (!(seconds > 0)) throw new Error('--seconds must be positive');
  // The 2-minute clip looped by stream copy until it is long enough for the cue.
  const base = small ? await small120() : await hd1080();
  const loops = Math.ceil((seconds + 5) / 120);
  const media = await makeMedia(`bench-sync-${small ? '180p' : '1080p'}-${loops * 2}min.mp4`, ['-stream_loop', String(loops - 1), '-i', base, '-c', 'copy']);
  await fsp.chmod(run, 0o700);
  const socket = path.join(run, 'cuemux.sock');
  const server = await startBenchServer(['--socket', socket, '--media-root', cacheDir(), '--osc-port', '0']);
  const log = (n: string): string => path.join(run, n);
  const audio = player(['play-audio', '--socket', socket, '--sink', 'null', '--sync-log', log('audio.jsonl')]);
  const video = player(['play-video', '--socket', socket, '--fps', fps, '--sink', 'null', '--sync-log', log('video.jsonl')]);
  const timers = player(['play-video', '--socket', socket, '--fps', fps, '--sink', 'null', '--spin-ms', '0', '--nice', '0', '--rt-priority', '0', '--output', 'video', '--sync-log', log('video-timers.jsonl')]);
  const client = new MediaClient(socket);
  const peer = await OscPeer.open();
  try {
    for (;;) {
      const st = await client.getStatus();
      if (st.clients.filter((c) => c.output !== '').length >= 3) break;
      await sleep(50);
    }
    const osc = async (address: string, args: Parameters<OscPeer['request']>[2] = []): Promise<unknown> => {
      const r = await peer.request(server.oscPort as number, address, args);
      if (r.status !== 'ok') throw new Error(`${address}: ${JSON.stringify(r)}`);
      return r.data;
    };
    await osc('/cuemux/cue/load', [{ type: 's', value: 'B' }, { type: 's', value: path.basename(media) }, { type: 'f', value: 2 }, { type: 'f', value: 2 + seconds }]);
    await osc('/cuemux/clock/play');
    const { clock } = await osc('/cuemux/status') as { clock: { positionSeconds: number } };
    const goAt = clock.positionSeconds + 1;
    await osc('/cuemux/cue/go', [{ type: 's', value: 'B' }, { type: 'd', value: goAt }]);
    const pids = { server: server.child.pid as number, 'play-audio': audio.child.pid as number, 'play-video': video.child.pid as number, 'play-video (timers only)': timers.child.pid as number };
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
    const t0 = process.hrtime.bigint();
    process.stderr.write(`bench:sync: playing a ${seconds} s cue of ${path.basename(media)}...\n`);
    for (;;) {
      const st = await osc('/cuemux/status') as { clock: { positionSeconds: number } };
      if (st.clock.positionSeconds > goAt + seconds + 0.3) break;
      await sleep(500);
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (100 * (cpuSeconds(pid) - cpu0[k])) / wall]));
    for (const p of [audio, video, timers]) p.child.kill('SIGTERM');
    await Promise.all([audio.exited, video.exited, timers.exited]);

    const a = (await readSyncLog(log('audio.jsonl'))).filter((r) => r.extra.cue === 'B');
    const err = a.map((r) => (r.ptsSeconds as number) - r.clockSeconds);
    const abs = err.map(Math.abs);
    const drift = slope(a.map((r) => Number(r.monoNs - a[0].monoNs) / 1e9), err);
    const silent = a.filter((r) => Number(r.extra.underrun) > 0).length;
    const v = videoFigures(await readSyncLog(log('video.jsonl')), goAt, seconds);
    const vt = videoFigures(await readSyncLog(log('video-timers.jsonl')), goAt, seconds);
    const lines = [
      `bench:sync — ${seconds} s cue of ${path.basename(media)}, video at ${fps} ticks/s, ${os.cpus().length} cores`,
      `audio  |pts − clock| per period: p50 ${ms(pct(abs, 50))} ms  p99 ${ms(pct(abs, 99))} ms  max ${ms(Math.max(...abs))} ms  ` +
        `(${a.length} periods, drift ${(drift * 1e6).toFixed(2)} µs/s, ${silent} with missing samples)   target p99 ≤ 1 ms: ${pct(abs, 99) <= 0.001 ? 'PASS' : 'MISS'}`,
      `video  tick lateness: p50 ${ms(pct(v.late, 50))} ms  p99 ${ms(pct(v.late, 99))} ms  max ${ms(Math.max(...v.late))} ms  ` +
        `(${v.ticks} ticks, ${v.wrong} wrong frames)   target p99 ≤ 1 ms, 0 wrong: ${pct(v.late, 99) <= 0.001 && v.wrong === 0 ? 'PASS' : 'MISS'}`,
      `peer   timers only:  p50 ${ms(pct(vt.late, 50))} ms  p99 ${ms(pct(vt.late, 99))} ms  max ${ms(Math.max(...vt.late))} ms  ` +
        `(${vt.ticks} ticks, ${vt.wrong} wrong frames)   play-video p99 is ${(pct(vt.late, 99) / pct(v.late, 99)).toFixed(1)}× lower`,
      `CPU (% of one core): ${Object.entries(cpu).map(([k, c]) => `${k} ${c.toFixed(1)}`).join(', ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    client.close();
    peer.close();
    for (const p of [audio, video, timers]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await server.stop();
  }
}

runBench('bench:sync', () => withScratch('cuemux-bench-sync-', main));
