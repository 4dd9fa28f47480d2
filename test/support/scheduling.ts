/**
 * How the processes of a fault-suite run are scheduled, read from /proc, so that the soak's table can say what
 * priority each party ran at (the measuring console, the server's threads, the attack), and the owner of a UDP port.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';

/** Scheduling of thread `tid` of process `pid` (default: its main thread): "SCHED_FIFO 5" or "nice -10". */
export async function threadScheduling(pid: number, tid = pid): Promise<string> {
  const stat = await fsp.readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
  // Fields after the command's closing parenthesis start at field 3: nice is 19, rt_priority 40, policy 41 (proc(5)).
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (f.length < 39) return 'unknown';
  const policy = Number(f[38]);
  if (policy === 1 || policy === 2) return `${policy === 1 ? 'SCHED_FIFO' : 'SCHED_RR'} ${f[37]}`;
  return `nice ${f[16]}`;
}

/** A process's main thread and its real-time threads, e.g. "main nice -10, 1 thread SCHED_FIFO 5". */
export async function processScheduling(pid: number): Promise<string> {
  const main = await threadScheduling(pid);
  const rt = new Map<string, number>();
  for (const tid of await fsp.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    if (Number(tid) === pid) continue;
    const s = await threadScheduling(pid, Number(tid));
    if (s.startsWith('SCHED_')) rt.set(s, (rt.get(s) ?? 0) + 1);
  }
  const others = [...rt].map(([s, n]) => `${n} thread${n === 1 ? '' : 's'} ${s}`);
  return [`main ${main}`, ...(others.length > 0 ? others : ['no real-time thread'])].join(', ');
}

/** The process holding the UDP socket bound to `port` (IPv4), or null. */
export async function udpOwnerPid(port: number): Promise<number | null> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let inode: string | undefined;
  for (const line of (await fsp.readFile('/proc/net/udp', 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(hex)) inode = f[9];
  }
  if (inode === undefined) return null;
  const target = `socket:[${inode}]`;
  for (const p of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    for (const fd of await fsp.readdir(`/proc/${p}/fd`).catch(() => [] as string[])) {
      if (await fsp.readlink(`/proc/${p}/fd/${fd}`).catch(() => '') === target) return Number(p);
    }
  }
  return null;
}

/**
 * Give process `pid`'s main thread SCHED_FIFO priority `priority` (with reset-on-fork) through util-linux's chrt.
 *
 * @returns null when done, else why not.
 */
export function setFifo(pid: number, priority: number): string | null {
  const r = spawnSync('chrt', ['--reset-on-fork', '--fifo', '--pid', String(priority), String(pid)], { encoding: 'utf8', timeout: 5000 });
  if (r.error !== undefined) return r.error.message;
  return r.status === 0 ? null : (r.stderr || `chrt exited with ${String(r.status)}`).trim();
}
